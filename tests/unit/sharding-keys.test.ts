// Unit tests of sharding's pure parts: key parsing and hashing edge cases,
// automatic sharding keys (libpg-query), comment routing, shard selection.
import t from 'tap';
import { parseInt64, pgBigintHash, sha1Shard, shardForKey } from '../../pooler/sharding/hash.js';
import { CommentRouter, commentRouter } from '../../pooler/sharding/comments.js';
import { insertForRows, ShardingKeyFinder, type ShardingKeys } from '../../pooler/sharding/keys.js';
import {
  defaultShard, parseArrayLiteral, resolveKey, resolveKeys, selectShards, shardRows, type ShardingSettings,
} from '../../pooler/sharding/select-shards.js';

const text = (...v: string[]): ShardingKeys => ({ kind: 'keys', values: v.map((s) => ({ text: s })) });
const NONE: ShardingKeys = { kind: 'none' };

t.test('int64 key text', async (t) => {
  const cases: [string, bigint | null][] = [
    ['0', 0n], ['-0', 0n], ['+7', 7n], [' 42\n', 42n], ['-1', -1n], ['007', 7n],
    ['9223372036854775807', 2n ** 63n - 1n], ['-9223372036854775808', -(2n ** 63n)],
    ['9223372036854775808', null], ['-9223372036854775809', null], ['99999999999999999999', null],
    ['', null], ['-', null], ['1.0', null], ['1e3', null], ['abc', null], ['1 2', null], ['0x10', null],
  ];
  for (const [s, want] of cases) {
    const got = parseInt64(s);
    t.equal(got === null ? null : BigInt.asIntN(64, (BigInt(got.hi) << 32n) | BigInt(got.lo)), want, JSON.stringify(s));
  }
  t.equal(shardForKey('pg_bigint_hash', '-5', 3), pgBigintHash(-5n, 3));
  t.equal(shardForKey('pg_bigint_hash', '1.5', 3), null);
  t.equal(pgBigintHash(12345n, 1), 0, 'one shard');
});

t.test('automatic sharding keys: SELECT, UPDATE, DELETE', async (t) => {
  const f = new ShardingKeyFinder('docs.id');
  const cases: [string, ShardingKeys][] = [
    ['SELECT * FROM docs WHERE id = 1', text('1')],
    ['SELECT * FROM docs WHERE id = 0', text('0')],
    ['SELECT * FROM docs WHERE id = -42', text('-42')],
    ['SELECT * FROM docs WHERE id = 9223372036854775807', text('9223372036854775807')],
    ['SELECT * FROM docs WHERE id = -9223372036854775808', text('-9223372036854775808')],
    ["SELECT * FROM docs WHERE id = '17'", text('17')],
    ["SELECT * FROM docs WHERE id = '17'::bigint", text('17')],
    ['SELECT * FROM docs WHERE 5 = id', text('5')],
    ['SELECT * FROM docs WHERE docs.id = 3', text('3')],
    ['SELECT * FROM public.docs WHERE public.docs.id = 3', text('3')],
    ['SELECT * FROM docs d WHERE d.id = 3', text('3')],
    ['SELECT * FROM docs AS d WHERE d.id = 3 AND d.name = $1', text('3')],
    ['SELECT * FROM "Docs" WHERE "ID" = 8', text('8')],
    ['SELECT * FROM docs WHERE id = $1', { kind: 'keys', values: [{ param: 1 }] }],
    ['SELECT * FROM docs WHERE id = $2::bigint', { kind: 'keys', values: [{ param: 2 }] }],
    ['SELECT * FROM docs WHERE id IN (1, 2, $3, NULL)', { kind: 'keys', values: [{ text: '1' }, { text: '2' }, { param: 3 }] }],
    ["SELECT * FROM docs WHERE id = ANY('{4, 5,\"6\"}')", text('4', '5', '6')],
    ["SELECT * FROM docs WHERE id = ANY('{4,5}'::bigint[])", text('4', '5')],
    ['SELECT * FROM docs WHERE id = ANY(ARRAY[4, -5])', text('4', '-5')],
    ['SELECT * FROM docs WHERE id = ANY($1)', { kind: 'keys', values: [{ paramArray: 1 }] }],
    ['SELECT * FROM docs WHERE id = NULL', text()],
    ['SELECT * FROM docs WHERE id IN (1, 2, 3) AND id = 2', text('2')],
    ['SELECT * FROM docs WHERE (id = 1 AND x = 2) AND y > 3', text('1')],
    ['SELECT * FROM docs WHERE id = 1 OR id = 2', text('1', '2')],
    ['SELECT * FROM docs WHERE id = 1 OR x = 2', NONE],
    ['SELECT * FROM docs WHERE NOT (id = 1)', NONE],
    ['SELECT * FROM docs WHERE id <> 1', NONE],
    ['SELECT * FROM docs WHERE id > 1', NONE],
    ['SELECT * FROM docs WHERE id NOT IN (1, 2)', NONE],
    ['SELECT * FROM docs WHERE id IN (SELECT doc_id FROM refs)', NONE],
    ['SELECT * FROM docs WHERE id = other_id', NONE],
    ['SELECT * FROM docs WHERE id IN (1, other_id)', NONE],
    ['SELECT * FROM docs', NONE],
    ['SELECT * FROM other WHERE id = 1', NONE],
    ['SELECT * FROM docs d WHERE other.id = 1', NONE],
    ['SELECT * FROM docs d WHERE e.id = 1', NONE],
    ['SELECT * FROM other o JOIN docs d ON d.id = 4 AND o.x = d.x', text('4')],
    ['SELECT * FROM other o JOIN docs d ON o.x = d.x WHERE d.id = 4', text('4')],
    ['SELECT * FROM other o LEFT JOIN docs d ON d.id = 4', NONE],
    ['SELECT * FROM docs d LEFT JOIN other o ON o.x = d.x WHERE d.id = 9', text('9')],
    ['SELECT * FROM (SELECT * FROM docs) s WHERE id = 1', NONE],
    ['WITH x AS (DELETE FROM docs RETURNING *) SELECT * FROM docs WHERE id = 1', NONE],
    ['SELECT * FROM docs WHERE id = 1 UNION SELECT * FROM docs WHERE id = 2', NONE],
    ['SELECT * FROM docs WHERE id = 1; SELECT 2', NONE],
    ['SELEKT nonsense', NONE],
    ['', NONE],
    ['UPDATE docs SET name = $1 WHERE id = $2', { kind: 'keys', values: [{ param: 2 }] }],
    ['UPDATE docs AS d SET name = 1 FROM other o WHERE d.id = 12 AND o.x = d.x', text('12')],
    ['UPDATE docs SET name = 1', NONE],
    ['DELETE FROM docs WHERE id = -1', text('-1')],
    ['DELETE FROM docs USING other o WHERE o.id = 1', NONE],
    ['DELETE FROM docs USING other o WHERE o.id = 1 AND docs.id = 6', text('6')],
  ];
  for (const [sql, want] of cases) t.same(f.find(sql), want, sql);
  t.equal(f.find('SELECT * FROM docs WHERE id = 1'), f.find('SELECT * FROM docs WHERE id = 1'), 'cached by text');
});

t.test('automatic sharding key given as a column only', async (t) => {
  for (const spec of ['id', '*.id', '"ID"']) {
    const f = new ShardingKeyFinder(spec);
    t.same(f.find('SELECT * FROM anything a WHERE a.id = 5'), text('5'), spec);
    t.same(f.find('SELECT * FROM anything WHERE id = 5'), text('5'), spec);
    t.same(f.find('SELECT * FROM anything WHERE other = 5'), NONE, spec);
  }
  t.same(new ShardingKeyFinder('"Docs"."Id"').spec, { table: 'docs', column: 'id' });
});

t.test('automatic sharding keys: INSERT', async (t) => {
  const f = new ShardingKeyFinder('docs.id');
  const sql = "INSERT INTO docs (name, id) VALUES ('a', 1), ('b', $2), ('c', DEFAULT), ('d', -3) ON CONFLICT (id) DO UPDATE SET name = excluded.name RETURNING id";
  const r = f.find(sql);
  if (r.kind !== 'insert') throw new Error(`expected insert, got ${r.kind}`);
  t.same(r.rows.map((row) => row.key), [{ text: '1' }, { param: 2 }, null, { text: '-3' }]);
  t.same(r.rows.map((row) => sql.slice(row.start, row.end)), ["('a', 1)", "('b', $2)", "('c', DEFAULT)", "('d', -3)"]);
  t.equal(sql.slice(r.valuesStart, r.valuesEnd), "('a', 1), ('b', $2), ('c', DEFAULT), ('d', -3)");
  t.equal(
    insertForRows(sql, r, [0, 3]),
    "INSERT INTO docs (name, id) VALUES ('a', 1), ('d', -3) ON CONFLICT (id) DO UPDATE SET name = excluded.name RETURNING id",
  );

  // Non-ASCII text before and inside the rows: parser locations are bytes.
  const uni = '/* ünïcödé 😀 */ INSERT INTO docs ("naïve", id) VALUES (\'é€😀)(\', 10), (\'🙂\', 20) RETURNING "naïve"';
  const u = f.find(uni);
  if (u.kind !== 'insert') throw new Error(`expected insert, got ${u.kind}`);
  t.same(u.rows.map((row) => uni.slice(row.start, row.end)), ["('é€😀)(', 10)", "('🙂', 20)"]);
  t.same(u.rows.map((row) => row.key), [{ text: '10' }, { text: '20' }]);
  t.equal(insertForRows(uni, u, [1]), '/* ünïcödé 😀 */ INSERT INTO docs ("naïve", id) VALUES (\'🙂\', 20) RETURNING "naïve"');

  // Parenthesised expressions and a nested VALUES inside a row.
  const nested = 'INSERT INTO docs (id, v) VALUES ((1), (SELECT x FROM (VALUES (2)) s(x))), (2, ((3)))';
  const n = f.find(nested);
  if (n.kind !== 'insert') throw new Error(`expected insert, got ${n.kind}`);
  t.same(n.rows.map((row) => nested.slice(row.start, row.end)), ['((1), (SELECT x FROM (VALUES (2)) s(x)))', '(2, ((3)))']);
  t.same(n.rows.map((row) => row.key), [{ text: '1' }, { text: '2' }]);

  const keysOf = (q: string): unknown => {
    const k = f.find(q);
    return k.kind === 'insert' ? k.rows.map((row) => row.key) : k;
  };
  t.same(keysOf('INSERT INTO docs VALUES (1, 2)'), [null], 'no column list: key unknown');
  t.same(keysOf('INSERT INTO docs (name) VALUES ($1)'), [null], 'key column not given');
  t.same(keysOf('INSERT INTO docs (id) VALUES (NULL), (nextval(\'s\')), ($1::bigint)'), [null, null, { param: 1 }]);
  t.same(keysOf('INSERT INTO public.docs AS d ("ID") VALUES (5)'), [{ text: '5' }]);
  t.same(keysOf('INSERT INTO docs (id) SELECT id FROM other'), text(), 'INSERT ... SELECT: one shard');
  t.same(keysOf('INSERT INTO docs DEFAULT VALUES'), text(), 'DEFAULT VALUES: one shard');
  t.same(keysOf('INSERT INTO other (id) VALUES (1)'), NONE, 'another table');
  t.same(keysOf('WITH s AS (SELECT 1) INSERT INTO docs (id) VALUES (1)'), NONE);
});

t.test('comment routing', async (t) => {
  const config = {
    sharding_key_regex: String.raw`/\* sharding_key: (\d+) \*/`,
    shard_id_regex: String.raw`/\* shard_id: (\d+) \*/`,
    regex_search_limit: 40,
  };
  const r = new CommentRouter(config);
  t.same(r.route('/* shard_id: 2 */ SELECT 1'), { shard: 2 });
  t.same(r.route('/* shard_id: 99 */ SELECT 1'), { shard: 99 }, 'out of range is reported as given');
  t.same(r.route('/* sharding_key: 1234 */ SELECT 1'), { key: '1234' });
  t.same(r.route('/* sharding_key: 1 */ /* shard_id: 3 */ SELECT 1'), { shard: 3 }, 'shard_id wins');
  t.same(r.route('/* sharding_key: 99999999999999999999 */'), null, 'key beyond int64 is ignored');
  t.same(r.route('SELECT 1'), null);
  t.same(r.route(`SELECT ${'x'.repeat(30)} /* shard_id: 1 */`), null, 'beyond regex_search_limit');
  t.same(new CommentRouter({ ...config, regex_search_limit: 1000 }).route(`SELECT ${'x'.repeat(30)} /* shard_id: 1 */`), { shard: 1 });
  t.same(r.route('/* shard_id: 1'), null, 'partial comment');
  const keyOnly = new CommentRouter({ ...config, shard_id_regex: null });
  t.same(keyOnly.route('/* shard_id: 2 */ /* sharding_key: 5 */'), { key: '5' });
  t.equal(commentRouter({ sharding_key_regex: null, shard_id_regex: null, regex_search_limit: 1000 }), null);
  t.ok(commentRouter(config)?.enabled);
});

t.test('shard selection', async (t) => {
  const s: ShardingSettings = { fn: 'pg_bigint_hash', shards: 3, defaultShard: 'shard_1' };
  const one = (k: bigint): number => pgBigintHash(k, 3);
  t.same(selectShards(s, ['1']), [one(1n)]);
  t.same(selectShards(s, ['1', '2', '3', '4', '5', '1']), [...new Set([1n, 2n, 3n, 4n, 5n].map(one))].sort());
  t.equal(selectShards(s, null), 'all');
  t.equal(selectShards(s, ['1', 'abc']), 'all', 'unhashable key: everywhere');
  t.same(selectShards(s, []), [1], 'no key: default shard');
  t.same(selectShards({ ...s, defaultShard: 'fail' }, []), [], 'fail: nothing');
  t.same(selectShards({ ...s, fn: 'sha1' }, ['abc']), [shardForKey('sha1', 'abc', 3)]);

  t.equal(defaultShard({ ...s, defaultShard: 'shard_2' }), 2);
  t.equal(defaultShard({ ...s, defaultShard: 'random' }, { random: () => 0.99 }), 2);
  t.equal(defaultShard({ ...s, defaultShard: 'random_healthy' }, { random: () => 0, healthy: (i) => i === 2 }), 2);
  t.equal(defaultShard({ ...s, defaultShard: 'random_healthy' }, { random: () => 0.5, healthy: () => false }), 1, 'none healthy: any');
  t.equal(defaultShard({ ...s, defaultShard: 'fail' }), null);

  t.same(resolveKeys([{ text: '1' }, { param: 2 }, { paramArray: 1 }], ['{3,NULL,"4"}', '2']), ['1', '2', '3', '4']);
  t.same(resolveKeys([{ param: 1 }], [null]), [], 'NULL parameter matches nothing');
  t.equal(resolveKeys([{ param: 3 }], ['1']), null, 'missing parameter');
  t.equal(resolveKeys([{ paramArray: 1 }], ['{{1,2}}']), null, 'nested array');
  t.equal(resolveKey({ param: 2 }, ['a', 'b']), 'b');
  t.equal(resolveKey(null, []), null);

  t.same(parseArrayLiteral(' { 1 , -2,"3" ,null,"NULL","a\\"b"} '), ['1', '-2', '3', 'NULL', 'a"b']);
  t.same(parseArrayLiteral('{}'), []);
  for (const bad of ['1,2', '{1,,2}', '{{1}}', '[1:2]={1,2}', '{"1}']) t.equal(parseArrayLiteral(bad), null, bad);

  const rows = shardRows(s, ['1', '2', null, 'x', '1']);
  const want = new Map<number, number[]>();
  for (const [i, shard] of [one(1n), one(2n), 1, 1, one(1n)].entries()) want.set(shard, [...(want.get(shard) ?? []), i]);
  t.same(rows, want, 'unknown and unhashable rows go to the default shard');
  t.equal(shardRows({ ...s, defaultShard: 'fail' }, ['1', null]), null);
  t.same(shardRows({ ...s, defaultShard: 'fail' }, ['1']), new Map([[one(1n), [0]]]));
});

t.test("sha1 follows PgCat's definition", async (t) => {
  // PgCat: SHA-1 of the decimal text, last 8 hex digits as an integer, % shards.
  const expected = [4, 7, 8, 3, 6, 0, 0, 10, 3, 11, 1, 7, 4, 4, 11, 2, 5, 0, 8, 3];
  t.same(
    expected.map((_, i) => sha1Shard(String(i), 12)),
    expected,
    'keys 0..19 over 12 shards',
  );
  // sha1("1234") = 7110eda4d09e062aa5e4a390b0a572ac0d2c0220: last 4 bytes 0x0d2c0220.
  t.equal(sha1Shard('1234', 1_000_000), 0x0d2c0220 % 1_000_000);
  t.equal(sha1Shard('1234', 2 ** 32), 0x0d2c0220, 'big-endian read of the last 4 bytes');
  // Keys are int64s in PgCat: the canonical decimal text is hashed.
  for (const [a, b] of [['007', '7'], ['+5', '5'], ['-0', '0'], [' 12 ', '12']]) {
    t.equal(shardForKey('sha1', a, 1000), sha1Shard(b, 1000), `${JSON.stringify(a)} hashes as ${b}`);
  }
  t.equal(shardForKey('sha1', 'abc', 1000), sha1Shard('abc', 1000), 'non-integer keys hash as given');
});
