// Cross-shard SELECT planning and result merging: unit tests of the planner
// (shard texts, refusals) and of the merger (hand-built messages), then a
// real Postgres 15 check: the same random rows split over three databases
// (stand-in shards) and whole in a fourth; for each query shape the shards'
// replies to plan.shardSql, merged, must equal the fourth's reply.
import pg from 'pg';
import t from 'tap';
import { divNumeric, formatNumeric, parseNumeric } from '../pooler/sharding/numeric.js';
import { formatFloat4, formatFloat8 } from '../pooler/sharding/floats.js';
import { clientRowDescription, mergeShardReplies, MergeError } from '../pooler/sharding/merge.js';
import { planCrossShard, PlanError, type CrossShardPlan } from '../pooler/sharding/plan.js';
import { buildDataRow, buildRowDescription, parseDataRow, parseRowDescription, readMessages, type FieldDesc } from '../pooler/sharding/wire.js';
import { commandComplete } from '../pooler/protocol/messages/rows.js';
import { noticeResponse, errorResponse } from '../pooler/protocol/messages/error.js';
import { startPostgres } from './harness/postgres.js';

type TextRow = (string | null)[];

function plan(sql: string): CrossShardPlan {
  const p = planCrossShard(sql);
  if (p instanceof PlanError) throw new Error(`unexpected PlanError ${p.code}: ${p.message}`);
  return p;
}

const field = (name: string, typeOid: number): FieldDesc => ({ name, tableOid: 0, attnum: 0, typeOid, typlen: -1, typmod: -1, format: 0 });

/** One shard's reply: RowDescription (optional), DataRows, CommandComplete. */
function reply(fields: FieldDesc[] | null, rows: TextRow[], extra: Buffer[] = []): Buffer {
  const parts = [...extra];
  if (fields) parts.push(buildRowDescription(fields));
  for (const r of rows) parts.push(buildDataRow(r.map((v) => (v === null ? null : Buffer.from(v)))));
  parts.push(commandComplete(`SELECT ${rows.length}`));
  return Buffer.concat(parts);
}

/** A merged reply decoded: field names/types, text rows, tag, other message types. */
function decode(buf: Buffer): { fields: FieldDesc[] | null; rows: TextRow[]; tag: string; types: string } {
  let fields: FieldDesc[] | null = null;
  const rows: TextRow[] = [];
  let tag = '';
  let types = '';
  for (const m of readMessages(buf)) {
    types += String.fromCharCode(m.type);
    if (m.type === 0x54) fields = parseRowDescription(m.body);
    else if (m.type === 0x44) rows.push(parseDataRow(m.body).map((c) => (c === null ? null : c.toString('utf8'))));
    else if (m.type === 0x43) tag = m.body.toString('utf8', 0, m.body.length - 1);
  }
  return { fields, rows, tag, types };
}

t.test('planner: shard texts', async (t) => {
  const cases: [string, string][] = [
    ['SELECT id, body FROM docs ORDER BY emb <-> $1 LIMIT 5', 'SELECT id, body, (emb <-> $1) AS __pglynx_h0 FROM docs ORDER BY emb <-> $1 LIMIT 5'],
    ['SELECT a FROM t ORDER BY a LIMIT 10 OFFSET 20', 'SELECT a FROM t ORDER BY a LIMIT 30'],
    ['SELECT a FROM t ORDER BY a OFFSET 20', 'SELECT a FROM t ORDER BY a '],
    ['SELECT a FROM t LIMIT $1 OFFSET $2', 'SELECT a FROM t LIMIT ($1::int8 + $2::int8)'],
    ['SELECT a FROM t LIMIT 5 OFFSET $1', 'SELECT a FROM t LIMIT (5 + $1::int8)'],
    ['SELECT a FROM t FETCH FIRST 3 ROWS ONLY', 'SELECT a FROM t LIMIT 3'],
    // Parameters the shard clause no longer needs stay referenced (a Bind carries them all).
    ['SELECT a FROM t ORDER BY a OFFSET $1', 'SELECT a FROM t ORDER BY a OFFSET (0 * $1::int8)'],
    ['SELECT count(*) FROM t LIMIT $1 OFFSET $2', 'SELECT count(*) FROM t OFFSET (0 * $1::int8 + 0 * $2::int8)'],
    ['SELECT a FROM t LIMIT -1', 'SELECT a FROM t LIMIT -1'],
    ['SELECT a AS x, b FROM t ORDER BY x, 2 DESC, a + b', 'SELECT a AS x, b, (a + b) AS __pglynx_h0 FROM t ORDER BY x, 2 DESC, a + b'],
    ['SELECT a + b FROM t ORDER BY a + b', 'SELECT a + b FROM t ORDER BY a + b'],
    ["SELECT 'é' AS e, avg(v) FROM t WHERE s = 'ü' GROUP BY g ORDER BY g LIMIT 2 OFFSET 1",
      "SELECT 'é' AS e, sum(v) AS avg, (count(v)) AS __pglynx_h0, (g) AS __pglynx_h1 FROM t WHERE s = 'ü' GROUP BY g ORDER BY g LIMIT 3"],
    ['SELECT avg(x) AS m FROM t', 'SELECT sum(x) AS m, (count(x)) AS __pglynx_h0 FROM t'],
    ['SELECT count(*), sum(x) FROM t LIMIT 1', 'SELECT count(*), sum(x) FROM t '],
    ['SELECT g, count(*) FROM t GROUP BY g ORDER BY count(*) DESC LIMIT 3', 'SELECT g, count(*) FROM t GROUP BY g ORDER BY count(*) DESC '],
    ['SELECT g FROM t GROUP BY g ORDER BY avg(x)', 'SELECT g, (count(x)) AS __pglynx_h0, (sum(x)) AS __pglynx_h1 FROM t GROUP BY g ORDER BY avg(x)'],
    ['SELECT * FROM t ORDER BY created_at DESC NULLS LAST', 'SELECT *, (created_at) AS __pglynx_h0 FROM t ORDER BY created_at DESC NULLS LAST'],
    ['SELECT a IS DISTINCT FROM b FROM t ORDER BY c;', 'SELECT a IS DISTINCT FROM b, (c) AS __pglynx_h0 FROM t ORDER BY c;'],
    ['WITH w AS (SELECT * FROM t ORDER BY a LIMIT 3) SELECT a FROM w ORDER BY b LIMIT 1', 'WITH w AS (SELECT * FROM t ORDER BY a LIMIT 3) SELECT a, (b) AS __pglynx_h0 FROM w ORDER BY b LIMIT 1'],
  ];
  for (const [sql, shard] of cases) t.equal(plan(sql).shardSql, shard, sql);
});

t.test('planner: column roles', async (t) => {
  const p = plan('SELECT g, avg(x), count(*) AS n FROM t GROUP BY g ORDER BY n DESC, g LIMIT $1 OFFSET 4');
  t.same(p.columns, [
    { hidden: false, agg: null },
    { hidden: false, agg: 'avg', avgCountColumn: 3 },
    { hidden: false, agg: 'count' },
    { hidden: true, agg: 'count' },
  ]);
  t.same(p.groupBy, [0]);
  t.same(p.orderBy, [{ column: 2, desc: true, nullsFirst: true }, { column: 0, desc: false, nullsFirst: false }]);
  t.same([p.limit, p.offset, p.aggregate, p.distinct, p.visibleCount], [{ param: 1 }, { const: 4n }, true, false, 3]);
  const star = plan('SELECT * FROM t ORDER BY 2, z');
  t.same([star.visibleCount, star.columns, star.orderBy.map((k) => k.column)], [null, [{ hidden: true, agg: null }], [1, -1]]);
  t.equal(plan('SELECT DISTINCT a FROM t ORDER BY a').distinct, true);
  t.equal(plan('select count(*) from t').groupBy.length, 0);
});

t.test('planner: refusals', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['UPDATE t SET a = 1', '0A000', /not a single SELECT/],
    ['SELECT 1; SELECT 2', '0A000', /not a single SELECT/],
    ['SELECT avg(DISTINCT a) FROM t', '0A000', /avg\(DISTINCT/],
    ['SELECT string_agg(s, \',\') FROM t', '0A000', /string_agg/],
    ['SELECT sum(a) ^ count(*) FROM t', '0A000', /expressions over aggregates/],
    ['SELECT rank() OVER (ORDER BY a) FROM t', '0A000', /window functions/],
    ['SELECT g, count(*) FROM t GROUP BY g HAVING bool_or(b)', '0A000', /bool_or/],
    ['SELECT DISTINCT ON (a) a, b FROM t', '0A000', /DISTINCT ON/],
    ['SELECT a FROM t UNION SELECT b FROM u', '0A000', /UNION/],
    ['SELECT g, count(*) FROM t GROUP BY ROLLUP (g)', '0A000', /GROUPING SETS/],
    ['SELECT a FROM t ORDER BY a USING <', '0A000', /USING/],
    ['SELECT a FROM t ORDER BY a FETCH FIRST 2 ROWS WITH TIES', '0A000', /WITH TIES/],
    ['SELECT a FROM t FOR UPDATE', '0A000', /FOR UPDATE/],
    ['SELECT a FROM t LIMIT (SELECT 1)', '0A000', /LIMIT/],
    ['SELECT DISTINCT a FROM t ORDER BY b', '42P10', /DISTINCT/],
    ['SELECT a FROM t ORDER BY 3', '42P10', /position 3/],
    ['SELECT *, count(*) FROM t GROUP BY id', '0A000', /\*/],
    ['SELEKT 1', '42601', /syntax error/],
  ];
  for (const [sql, code, message] of cases) {
    const p = planCrossShard(sql);
    t.ok(p instanceof PlanError, sql);
    if (p instanceof PlanError) {
      t.equal(p.code, code, `${sql}: code`);
      t.match(p.message, message, `${sql}: message`);
    }
  }
  t.equal(planCrossShard('SELECT 1; SELECT 2'), planCrossShard('SELECT 1; SELECT 2'), 'cached by text');
});

t.test('numeric and float formatting', async (t) => {
  const div = (a: string, b: string): string => formatNumeric(divNumeric(parseNumeric(a), parseNumeric(b)));
  // Expected values printed by Postgres 15.
  t.equal(div('10', '3'), '3.3333333333333333');
  t.equal(div('1', '3'), '0.33333333333333333333');
  t.equal(div('2', '3'), '0.66666666666666666667');
  t.equal(div('-2', '3'), '-0.66666666666666666667');
  t.equal(div('12345.678900', '7'), '1763.6684142857142857');
  t.equal(div('0', '5'), '0.00000000000000000000');
  t.equal(div('NaN', '2'), 'NaN');
  t.equal(formatFloat8(0.1 + 0.2), '0.30000000000000004');
  t.equal(formatFloat8(1e15), '1e+15');
  t.equal(formatFloat8(123456789012345), '123456789012345');
  t.equal(formatFloat8(0.0001), '0.0001');
  t.equal(formatFloat8(0.00001), '1e-05');
  t.equal(formatFloat8(-1.5e300), '-1.5e+300');
  t.equal(formatFloat4(Math.fround(0.1)), '0.1');
  t.equal(formatFloat4(Math.fround(1234567)), '1.234567e+06');
  t.equal(formatFloat4(Math.fround(123456)), '123456');
});

t.test('merger: sorted merge, hidden columns, limit/offset', async (t) => {
  const p = plan('SELECT id, s FROM t ORDER BY score DESC NULLS LAST, id LIMIT 3 OFFSET 1');
  const f = [field('id', 23), field('s', 25), field('__pglynx_h0', 701)];
  const a = reply(f, [['1', 'a', '9.5'], ['4', 'é', '2'], ['7', null, null]]);
  const b = reply(f, [['2', 'b', 'NaN'], ['3', 'c', '9.5'], ['5', 'd', '-Infinity']]);
  const out = decode(mergeShardReplies(p, [a, b], { includeRowDescription: true }));
  t.same(out.fields?.map((x) => x.name), ['id', 's'], 'hidden column stripped from RowDescription');
  t.same(out.rows, [['1', 'a'], ['3', 'c'], ['4', 'é']], 'NaN first in DESC, ties by id, offset 1 limit 3');
  t.equal(out.tag, 'SELECT 3');
  const rowsOnly = decode(mergeShardReplies(p, [a, b], { includeRowDescription: false }));
  t.equal(rowsOnly.types, 'DDDC', 'rows only');
  t.same(decode(clientRowDescription(p, buildRowDescription(f))).fields?.length, 2, 'Describe reply rewritten');
  const noT = [reply(null, [['1', 'a', '1']]), reply(null, [['2', 'b', '2']])];
  const ext = decode(mergeShardReplies(p, noT, { includeRowDescription: false, rowDescription: buildRowDescription(f) }));
  t.same(ext.rows, [['1', 'a']], 'extended protocol: types from the Describe RowDescription');

  const pp = plan('SELECT n FROM t ORDER BY n LIMIT $1 OFFSET $2');
  const nf = [field('n', 1700)];
  const r = [reply(nf, [['-1.50'], ['10'], [null]]), reply(nf, [['-10'], ['2.000001'], ['NaN']])];
  t.same(decode(mergeShardReplies(pp, r, { includeRowDescription: true, params: ['3', '1'] })).rows, [['-1.50'], ['2.000001'], ['10']]);
  t.same(decode(mergeShardReplies(pp, r, { includeRowDescription: true, params: [null, null] })).rows.length, 6, 'NULL limit: all rows');
});

t.test('merger: aggregates and groups', async (t) => {
  const p = plan('SELECT g, count(*), sum(i), sum(n), min(s), max(s), avg(i), avg(f) FROM t GROUP BY g ORDER BY g NULLS FIRST');
  const f = [field('g', 23), field('count', 20), field('sum', 20), field('sum', 1700), field('min', 25), field('max', 25), field('avg', 20), field('avg', 701), field('__pglynx_h0', 20), field('__pglynx_h1', 20)];
  const a = reply(f, [
    ['1', '2', '5', '1.5', 'b', 'é', '5', '0.5', '2', '2'],
    [null, '1', null, null, null, null, null, null, '0', '0'],
  ]);
  const b = reply(f, [['1', '1', '6', '2.25', 'a', 'c', '6', '1', '1', '1'], ['2', '1', '1', '0', 'z', 'z', '1', '2', '1', '1']]);
  const out = decode(mergeShardReplies(p, [a, b], { includeRowDescription: true }));
  t.same(out.fields?.map((x) => [x.name, x.typeOid]), [['g', 23], ['count', 20], ['sum', 20], ['sum', 1700], ['min', 25], ['max', 25], ['avg', 1700], ['avg', 701]]);
  t.same(out.rows, [
    [null, '1', null, null, null, null, null, null],
    ['1', '3', '11', '3.75', 'a', 'é', '3.6666666666666667', '0.5'],
    ['2', '1', '1', '0', 'z', 'z', '1.00000000000000000000', '2'],
  ]);
  const g = plan('SELECT count(*), sum(x), avg(x) FROM t');
  const gf = [field('count', 20), field('sum', 20), field('avg', 20), field('__pglynx_h0', 20)];
  t.same(decode(mergeShardReplies(g, [reply(gf, [['0', null, null, '0']]), reply(gf, [['0', null, null, '0']])], { includeRowDescription: true })).rows, [['0', null, null]], 'global aggregate over no rows');
  t.same(decode(mergeShardReplies(g, [reply(gf, []), reply(gf, [])], { includeRowDescription: true })).rows, [['0', null, null]], 'one row even when no shard sent one');
});

t.test('merger: errors, notices, DISTINCT', async (t) => {
  const p = plan('SELECT a FROM t');
  const err = errorResponse('42P01', 'relation "t" does not exist');
  t.same(mergeShardReplies(p, [reply([field('a', 23)], [['1']]), err], { includeRowDescription: true }), err, 'a shard error is the reply');
  t.throws(() => mergeShardReplies(p, [reply([field('a', 23)], []), reply([field('a', 25)], [])], { includeRowDescription: true }), new MergeError('42804', 'shards returned different row descriptions'));
  const notice = noticeResponse('hello');
  const out = decode(mergeShardReplies(p, [reply([field('a', 23)], [['1']], [notice]), reply([field('a', 23)], [['2']], [notice])], { includeRowDescription: true }));
  t.equal(out.types, 'NTDDC', 'one notice, then the result');
  const d = plan('SELECT DISTINCT a FROM t ORDER BY a');
  const df = [field('a', 1700)];
  t.same(decode(mergeShardReplies(d, [reply(df, [['1.0'], ['2']]), reply(df, [['1.00'], ['2'], ['3']])], { includeRowDescription: true })).rows, [['1.0'], ['2'], ['3']]);
});

// ---------------------------------------------------------------------------
// Real Postgres: three shards and one database holding every row.

const pgc = await startPostgres({ databases: ['shard0', 'shard1', 'shard2', 'whole'].map((name) => ({ name })), t });

let seed = 20240611;
function rand(): number {
  // mulberry32: reproducible data, so a failure can be replayed.
  seed = (seed + 0x6d2b79f5) | 0;
  let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
}
const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
const maybe = <V>(v: V, nullRate = 0.1): V | null => (rand() < nullRate ? null : v);
const WORDS = ['alpha', 'Beta', 'été', 'über', 'zeta', '日本', 'Ωmega', 'a b', 'Zürich', ''];

const SCHEMA = `
  CREATE TABLE items (id int PRIMARY KEY, g int, i4 int, i8 bigint, n numeric, f float8, r real, s text, ts timestamptz, d date, emb real[]);
  CREATE FUNCTION l2(real[], real[]) RETURNS float8 LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT sqrt(sum((x - y) * (x - y))) FROM unnest($1, $2) AS u(x, y) $$;
  CREATE OPERATOR <-> (LEFTARG = real[], RIGHTARG = real[], FUNCTION = l2);`;

const rows: unknown[][] = [];
for (let id = 1; id <= 300; id++) {
  const scale = int(0, 6);
  const n = `${rand() < 0.5 ? '-' : ''}${int(0, 99999)}${scale ? '.' + String(int(0, 10 ** scale - 1)).padStart(scale, '0') : ''}`;
  rows.push([
    id,
    maybe(int(0, 6)),
    maybe(int(-1_000_000, 1_000_000)),
    maybe((BigInt(int(-4_000_000, 4_000_000)) * 1_000_000_000_000n + BigInt(int(0, 999_999_999))).toString()),
    maybe(id % 50 === 0 ? '123456789012345678901234.5' : n),
    maybe(int(-80_000, 80_000) / 8),
    maybe(int(-4000, 4000) / 4),
    maybe(WORDS[int(0, WORDS.length - 1)] + (rand() < 0.5 ? '' : String(int(0, 9)))),
    maybe(new Date(Date.UTC(2020, 0, 1) + int(0, 1e9) * 1000).toISOString()),
    maybe(`${int(1990, 2030)}-0${int(1, 9)}-1${int(0, 9)}`),
    `{${[0, 1, 2].map(() => int(-32, 32) / 16).join(',')}}`,
  ]);
}

const clients = new Map<string, pg.Client>();
for (const db of ['shard0', 'shard1', 'shard2', 'whole']) {
  const c = new pg.Client({ host: pgc.socketDir, port: pgc.port, user: 'postgres', database: db });
  await c.connect();
  t.teardown(() => c.end());
  await c.query(SCHEMA);
  clients.set(db, c);
}
const insert = 'INSERT INTO items VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)';
for (const r of rows) {
  await clients.get('whole')!.query(insert, r);
  await clients.get(`shard${((r[0] as number) * 7919) % 3}`)!.query(insert, r);
}

const raw = { getTypeParser: () => (v: string) => v };

async function run(db: string, text: string, values: unknown[]): Promise<{ fields: FieldDesc[]; rows: TextRow[] }> {
  const res = await clients.get(db)!.query({ text, values, rowMode: 'array', types: raw });
  const fields = res.fields.map((f) => ({ name: f.name, tableOid: f.tableID, attnum: f.columnID, typeOid: f.dataTypeID, typlen: f.dataTypeSize, typmod: f.dataTypeModifier, format: 0 }));
  return { fields, rows: res.rows as TextRow[] };
}

interface Shape {
  sql: string;
  params?: unknown[];
  /** ORDER BY does not fix the order: compare as multisets. */
  unordered?: boolean;
}

const PROBE = '{0.5,-0.25,1}';
const SHAPES: Shape[] = [
  { sql: 'SELECT id, s FROM items ORDER BY id' },
  { sql: 'SELECT id, i4 FROM items ORDER BY i4 DESC, id' },
  { sql: 'SELECT id, i4 FROM items ORDER BY i4 NULLS FIRST, id DESC' },
  { sql: 'SELECT id, s FROM items ORDER BY s, id LIMIT 10 OFFSET 5' },
  { sql: 'SELECT s, id FROM items ORDER BY 1 DESC NULLS LAST, 2 LIMIT 12' },
  { sql: 'SELECT id FROM items ORDER BY n DESC NULLS LAST, id LIMIT 7' },
  { sql: 'SELECT id, f FROM items ORDER BY f, id LIMIT $1 OFFSET $2', params: [5, 3] },
  { sql: 'SELECT id, i8 FROM items ORDER BY i8, id OFFSET $1', params: [290] },
  { sql: 'SELECT id FROM items ORDER BY ts, id LIMIT 20' },
  { sql: 'SELECT id, d FROM items ORDER BY d DESC, id LIMIT 15' },
  { sql: 'SELECT id, r FROM items ORDER BY r DESC, id LIMIT 10' },
  { sql: 'SELECT id, s FROM items ORDER BY emb <-> $1, id LIMIT 5', params: [PROBE] },
  { sql: 'SELECT id, emb <-> $1 AS dist FROM items WHERE g = 2 ORDER BY dist, id LIMIT 4', params: [PROBE] },
  { sql: 'SELECT * FROM items ORDER BY i8 DESC NULLS LAST, id LIMIT 5' },
  { sql: "SELECT id, s FROM items WHERE s LIKE '%é%' ORDER BY id DESC" },
  { sql: 'SELECT count(*), count(i4), sum(i4), sum(i8), sum(n), sum(f), sum(r), min(s), max(s), min(n), max(ts), min(d) FROM items' },
  { sql: 'SELECT avg(i4), avg(i8), avg(n), avg(f), avg(r) FROM items' },
  { sql: 'SELECT g, count(*), sum(n), avg(i4), min(i8), max(d), avg(n) FROM items GROUP BY g ORDER BY g' },
  { sql: 'SELECT count(*) AS c FROM items GROUP BY g ORDER BY c DESC, g' },
  { sql: 'SELECT g, avg(n) FROM items WHERE i4 > 0 GROUP BY g ORDER BY avg(n) DESC NULLS LAST, g LIMIT 3' },
  { sql: 'SELECT g, sum(i8) FROM items GROUP BY 1 ORDER BY 1 LIMIT 4 OFFSET 2' },
  { sql: 'SELECT i4 % 3 AS m, count(*), avg(i8) FROM items GROUP BY i4 % 3 ORDER BY m NULLS FIRST' },
  { sql: 'SELECT g FROM items GROUP BY g ORDER BY sum(i4) DESC NULLS LAST, g' },
  { sql: 'SELECT g, max(s) FROM items GROUP BY g ORDER BY avg(n), g' },
  { sql: 'SELECT id % 7 AS k, avg(n), avg(i8), avg(i4), sum(n * 1.5) FROM items GROUP BY 1 ORDER BY 1' },
  { sql: 'SELECT id % 11 AS k, avg(n) FROM items WHERE n IS NOT NULL AND id < 40 GROUP BY 1 ORDER BY 1' },
  { sql: 'SELECT count(*), sum(i4), avg(n), min(s) FROM items WHERE false' },
  { sql: 'SELECT g, count(*) FROM items WHERE false GROUP BY g' },
  { sql: 'SELECT id FROM items WHERE id < 0 ORDER BY id' },
  { sql: 'SELECT DISTINCT g FROM items ORDER BY g' },
  { sql: 'SELECT DISTINCT s FROM items ORDER BY s LIMIT 5' },
  { sql: 'SELECT DISTINCT g, i4 > 0 AS pos FROM items', unordered: true },
  { sql: 'SELECT id, s FROM items WHERE i4 > $1', params: [500000], unordered: true },
  { sql: 'SELECT g, count(*) FROM items GROUP BY g', unordered: true },
];

t.test(`real Postgres: ${SHAPES.length} query shapes merged from 3 shards equal one node`, async (t) => {
  for (const shape of SHAPES) {
    const params = shape.params ?? [];
    const p = plan(shape.sql);
    const replies: Buffer[] = [];
    let shardFields: FieldDesc[] = [];
    for (const db of ['shard0', 'shard1', 'shard2']) {
      const r = await run(db, p.shardSql, params);
      shardFields = r.fields;
      replies.push(reply(r.fields, r.rows));
    }
    const merged = decode(mergeShardReplies(p, replies, { includeRowDescription: true, params: params.map((v) => String(v)) }));
    const whole = await run('whole', shape.sql, params);
    t.same(merged.fields?.map((f) => [f.name, f.typeOid]), whole.fields.map((f) => [f.name, f.typeOid]), `${shape.sql}: columns`);
    const sort = (rs: TextRow[]): TextRow[] => (shape.unordered ? [...rs].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)) : rs);
    t.same(sort(merged.rows), sort(whole.rows), `${shape.sql}: ${whole.rows.length} rows (shard text: ${p.shardSql})`);
    t.equal(merged.tag, `SELECT ${whole.rows.length}`);
    t.ok(shardFields.length >= whole.fields.length);
  }
});

t.test('real Postgres: numeric division scale and float output', async (t) => {
  const pairs: [string, string][] = [];
  for (let i = 0; i < 300; i++) {
    const scale = int(0, 8);
    const digits = String(int(0, 10 ** int(1, 9))) + (scale ? '.' + String(int(0, 10 ** scale - 1)).padStart(scale, '0') : '');
    pairs.push([(rand() < 0.3 ? '-' : '') + digits, String(int(1, rand() < 0.5 ? 20 : 200000))]);
  }
  const values = pairs.map(([a, b]) => `('${a}'::numeric, '${b}'::numeric)`).join(',');
  const res = await run('whole', `SELECT a / b FROM (VALUES ${values}) v(a, b)`, []);
  t.same(pairs.map(([a, b]) => formatNumeric(divNumeric(parseNumeric(a), parseNumeric(b)))), res.rows.map((r) => r[0]), 'numeric_div digits and scale');

  const f8 = Array.from({ length: 300 }, () => (rand() - 0.5) * 10 ** int(-8, 20));
  const r8 = await run('whole', `SELECT x::float8::text FROM unnest($1::float8[]) x`, [`{${f8.map((x) => x.toPrecision(17)).join(',')}}`]);
  t.same(f8.map(formatFloat8), r8.rows.map((r) => r[0]), 'float8 output');
  const f4 = Array.from({ length: 300 }, () => Math.fround((rand() - 0.5) * 10 ** int(-6, 12)));
  const r4 = await run('whole', `SELECT x::text FROM unnest($1::float4[]) x`, [`{${f4.map((x) => x.toPrecision(9)).join(',')}}`]);
  t.same(f4.map(formatFloat4), r4.rows.map((r) => r[0]), 'float4 output');
});
