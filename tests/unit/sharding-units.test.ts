// A sharded pool's client stream cut into units (pooler/sharding/units.ts):
// a simple Query is a unit, an extended batch is one up to its Sync, and
// what routing needs (statement text, text parameters, named or not) is
// read from each; then where each unit goes (route-unit.ts): SET SHARD,
// comments, keys in the SQL or its parameters, cross-shard SELECTs, DDL on
// every shard, multi-row INSERTs split, and the refusals.
import t from 'tap';
import '../harness/pg-protocol-hook.js';
import { serialize } from '../harness/pg-sasl.js';
import type { Cluster } from '../../pooler/pool/cluster.js';
import { CommentRouter } from '../../pooler/sharding/comments.js';
import type { ShardingContext } from '../../pooler/sharding/context.js';
import { shardForKey } from '../../pooler/sharding/hash.js';
import { ShardingKeyFinder } from '../../pooler/sharding/keys.js';
import { takeUnits, withStatementText, type Unit } from '../../pooler/sharding/units.js';

// After the hook: route-unit.ts imports pg-protocol.
const { routeUnit } = await import('../../pooler/sharding/route-unit.js');

const query = (sql: string): Buffer => serialize.query(sql);
const parse = (text: string, name = '', types: number[] = []): Buffer => serialize.parse({ name, text, types });
const bind = (values: (string | Buffer | null)[] = [], statement = '', binary = false): Buffer =>
  serialize.bind({ statement, values, valueMapper: (v: unknown) => v, binary } as Parameters<typeof serialize.bind>[0]);
const execute = (): Buffer => serialize.execute();
const sync = (): Buffer => serialize.sync();
const closeStatement = (name: string): Buffer => serialize.close({ type: 'S', name });
const extended = (text: string, values: (string | null)[] = [], name = ''): Buffer =>
  Buffer.concat([parse(text, name), bind(values, name), serialize.describe({ type: 'P' }), execute(), sync()]);

t.test('a Query is a unit; an extended batch is one up to its Sync', async (t) => {
  const q1 = query('SELECT 1');
  const batch = extended('SELECT * FROM docs WHERE id = $1', ['42']);
  const q2 = query("SELECT 'x'");
  const stream = Buffer.concat([q1, batch, q2]);
  const { units, rest } = takeUnits(stream, new Map());
  t.same(units.map((u) => [u.kind, u.sql]), [['query', 'SELECT 1'], ['extended', 'SELECT * FROM docs WHERE id = $1'], ['query', "SELECT 'x'"]]);
  t.same(units.map((u) => u.bytes), [q1, batch, q2], "each unit's bytes are its messages as sent");
  t.same(units[1]!.params, ['42'], 'Bind parameters as text');
  t.equal(units[1]!.named, false);
  t.equal(rest.length, 0, 'nothing left');
});

t.test('an extended batch without its Sync waits; the rest completes it', async (t) => {
  const batch = extended('SELECT * FROM docs WHERE id = $1', ['7']);
  const stream = Buffer.concat([query('BEGIN'), batch.subarray(0, batch.length - 5)]);
  const first = takeUnits(stream, new Map());
  t.same(first.units.map((u) => u.sql), ['BEGIN'], 'the Query before it runs');
  t.same(first.rest, batch.subarray(0, batch.length - 5), 'the open batch is held whole');
  const second = takeUnits(Buffer.concat([first.rest, sync()]), new Map());
  t.same(second.units.map((u) => [u.kind, u.sql, u.params]), [['extended', 'SELECT * FROM docs WHERE id = $1', ['7']]]);
  t.same(second.units[0]!.bytes, batch);
});

t.test('several Syncs in one read: one unit each; a bare Sync is a unit with no statement', async (t) => {
  const a = extended('SELECT $1::int', ['1']);
  const b = Buffer.concat([bind(['2']), execute(), sync()]); // the unnamed statement again
  const { units } = takeUnits(Buffer.concat([a, b, sync()]), new Map());
  t.same(units.map((u) => [u.sql, u.params]), [['SELECT $1::int', ['1']], [null, ['2']], [null, []]]);
});

t.test('named statements: Parse defines, Bind finds, Close forgets', async (t) => {
  const statements = new Map<string, string>();
  const define = takeUnits(Buffer.concat([parse('SELECT * FROM docs WHERE id = $1', 's1'), sync()]), statements);
  t.same(define.units.map((u) => [u.sql, u.named]), [['SELECT * FROM docs WHERE id = $1', true]]);
  t.same([...statements], [['s1', 'SELECT * FROM docs WHERE id = $1']]);
  const use = takeUnits(Buffer.concat([bind(['9'], 's1'), execute(), sync()]), statements);
  t.same(use.units.map((u) => [u.sql, u.params, u.named]), [['SELECT * FROM docs WHERE id = $1', ['9'], true]], 'the text comes from the earlier Parse');
  takeUnits(Buffer.concat([closeStatement('s1'), sync()]), statements);
  t.equal(statements.size, 0, 'Close removes it');
  const pooled = takeUnits(Buffer.concat([bind([], 'shared'), execute(), sync()]), statements, (name) => (name === 'shared' ? 'SELECT 2' : undefined));
  t.equal(pooled.units[0]!.sql, 'SELECT 2', "a statement the unit's map lacks is looked up");
});

t.test('parameters routing cannot read are null: SQL NULL and binary values', async (t) => {
  const { units } = takeUnits(Buffer.concat([parse('SELECT $1, $2'), bind(['a', null]), execute(), sync()]), new Map());
  t.same(units[0]!.params, ['a', null]);
  const bin = takeUnits(Buffer.concat([parse('SELECT $1'), bind([Buffer.from([0, 0, 0, 1])], '', true), execute(), sync()]), new Map());
  t.same(bin.units[0]!.params, [null], 'binary format');
});

t.test('withStatementText: the Parse text replaced, its name and types and the other messages kept', async (t) => {
  const bytes = Buffer.concat([parse('SELECT a FROM docs', 'n', [23]), bind(), execute(), sync()]);
  const unit = takeUnits(bytes, new Map()).units[0]!;
  const out = withStatementText(unit, 'SELECT a, b FROM docs');
  t.same(out, Buffer.concat([parse('SELECT a, b FROM docs', 'n', [23]), bind(), execute(), sync()]));
});

// ------------------------------------------------------------------ routing

const SHARDS = 3;
const keyShard = (key: string): number => shardForKey('pg_bigint_hash', key, SHARDS)!;
const cluster = { shards: Array.from({ length: SHARDS }, () => [{ banned: false }]) } as unknown as Cluster;
const context = (over: Partial<ShardingContext> = {}, defaultShard = 'shard_1'): ShardingContext => ({
  settings: { fn: 'pg_bigint_hash', shards: SHARDS, defaultShard },
  comments: null,
  finder: new ShardingKeyFinder('docs.id'),
  automaticKey: 'docs.id',
  keyToShard: (key) => shardForKey('pg_bigint_hash', key, SHARDS),
  ...over,
});
type ShardState = Parameters<typeof routeUnit>[2];
const NO_SHARD: ShardState = { shard: null, shardingKey: null };
const unitOf = (bytes: Buffer, statements = new Map<string, string>()): Unit => {
  const { units } = takeUnits(bytes, statements);
  if (units.length !== 1) throw new Error(`${units.length} units`);
  return units[0]!;
};
const route = (bytes: Buffer, ctx = context(), state: ShardState = NO_SHARD) => routeUnit(unitOf(bytes), ctx, state, cluster);

t.test('SET SHARD wins over everything; a shard out of range is refused', async (t) => {
  t.same(route(query('SELECT * FROM docs WHERE id = 1'), context(), { shard: 2, shardingKey: null }), { kind: 'single', shards: [2] });
  t.match(route(query('SELECT 1'), context(), { shard: 5, shardingKey: null }), { kind: 'error', code: '22023', message: /shard 5 does not exist/ });
  const any = route(query('SELECT 1'), context(), { shard: 'any', shardingKey: null });
  t.ok(any.kind === 'single' && any.shards[0]! >= 0 && any.shards[0]! < SHARDS, "SET SHARD TO 'any': one of them");
});

t.test('comments: shard_id and sharding_key', async (t) => {
  const comments = new CommentRouter({ shard_id_regex: String.raw`/\* shard_id: (\d+) \*/`, sharding_key_regex: String.raw`/\* sharding_key: (\d+) \*/`, regex_search_limit: 1000 });
  const ctx = context({ comments });
  t.same(route(query('/* shard_id: 0 */ SELECT * FROM docs WHERE id = 1'), ctx), { kind: 'single', shards: [0] });
  t.same(route(query('/* sharding_key: 77 */ SELECT * FROM docs'), ctx), { kind: 'single', shards: [keyShard('77')] });
});

t.test('keys in the SQL and in Bind parameters', async (t) => {
  for (const key of ['1', '2', '3', '1000', '-5']) {
    t.same(route(query(`SELECT * FROM docs WHERE id = ${key}`)), { kind: 'single', shards: [keyShard(key)] }, `literal ${key}`);
    t.same(route(extended('SELECT * FROM docs WHERE id = $1', [key])), { kind: 'single', shards: [keyShard(key)] }, `parameter ${key}`);
  }
  // Two keys on two different shards: the write goes to those two only.
  const a = '1';
  const b = ['2', '3', '4', '5', '6', '7'].find((k) => keyShard(k) !== keyShard(a))!;
  const spanning = route(query(`UPDATE docs SET v = 0 WHERE id IN (${a}, ${b})`));
  t.same(spanning, { kind: 'broadcast', shards: [keyShard(a), keyShard(b)].sort() }, 'a write whose keys span shards goes to those shards');
});

t.test('no key: a SELECT runs on every shard as a planned query; no table: the default shard', async (t) => {
  const all = route(query('SELECT count(*) FROM docs'));
  t.equal(all.kind, 'select');
  if (all.kind !== 'select') return;
  t.same(all.shards, [0, 1, 2]);
  t.same(all.bytes, serialize.query(all.plan.shardSql), 'the shard query, as a Query');
  const ext = route(extended('SELECT count(*) FROM docs'));
  t.equal(ext.kind, 'select', 'extended too');
  if (ext.kind === 'select') t.same(takeUnits(ext.bytes, new Map()).units[0]!.sql, ext.plan.shardSql, 'its Parse carries the shard query');
  t.same(route(query('SELECT 1')), { kind: 'single', shards: [1] }, 'SELECT 1: default_shard');
  t.match(route(extended('SELECT count(*) FROM docs', [], 'named')), { kind: 'error', code: '0A000', message: /named prepared statements/ });
});

t.test('no key: DDL on every shard; a data change refused', async (t) => {
  t.same(route(query('CREATE TABLE x (id bigint)')), { kind: 'broadcast', shards: [0, 1, 2] });
  t.match(route(query('UPDATE docs SET v = 1')), { kind: 'error', code: '0A000', message: /UPDATE on a sharded pool needs its sharding key \(docs\.id\)/ });
  t.match(route(query('DELETE FROM docs')), { kind: 'error', code: '0A000', message: /DELETE/ });
  t.match(route(query('SELECT 1; SELECT 2')), { kind: 'error', code: '0A000', message: /several statements/ });
});

t.test('a multi-row INSERT is split by shard (simple protocol only)', async (t) => {
  const keys = ['1', '2', '3', '4', '5', '6', '7', '8'];
  const sql = `INSERT INTO docs (id, v) VALUES ${keys.map((k) => `(${k}, 'v${k}')`).join(', ')}`;
  const r = route(query(sql));
  t.equal(r.kind, 'insert');
  if (r.kind !== 'insert') return;
  const expected = new Map<number, string[]>();
  for (const k of keys) expected.set(keyShard(k), [...(expected.get(keyShard(k)) ?? []), k]);
  t.same(r.shards, [...expected.keys()].sort(), 'the shards the rows hash to');
  r.shards.forEach((s, i) => {
    const text = unitOf(r.perShard[i]!).sql!;
    for (const k of keys) t.equal(text.includes(`(${k}, 'v${k}')`), expected.get(s)!.includes(k), `row ${k} ${expected.get(s)!.includes(k) ? 'in' : 'not in'} shard ${s}'s INSERT`);
  });
  t.match(route(extended(sql)), { kind: 'error', code: '0A000', message: /simple query protocol/ });
  t.same(route(query("INSERT INTO docs (id, v) VALUES (4, 'a')")), { kind: 'single', shards: [keyShard('4')] }, 'one row: one shard');
  t.match(route(query("INSERT INTO docs (v) VALUES ('a')")), { kind: 'error', code: '0A000', message: /row 1 has no sharding key/ });
});

t.test('without the parser: default_shard, or an error with default_shard = "fail"', async (t) => {
  t.same(route(query('SELECT * FROM docs WHERE id = 1'), context({ finder: null })), { kind: 'single', shards: [1] });
  t.match(route(query('SELECT * FROM docs'), context({ finder: null }, 'fail')), { kind: 'error', code: '0A000', message: /default_shard = "fail"/ });
  t.same(route(sync(), context()), { kind: 'single', shards: [1] }, 'a unit with no statement text: default_shard');
});
