// Cross-shard expressions over aggregates, HAVING, count/sum(DISTINCT) and
// SELECT DISTINCT (issue 16, point 3): the same seeded rows split over three
// databases (stand-in shards) and whole in a fourth; for each query shape
// the shards' replies to plan.shardSql, merged, must equal the fourth's
// reply (column names, types and every value's text). Then the planner's
// refusals of what it cannot merge.
import pg from 'pg';
import t from 'tap';
import { mergeShardReplies } from '../pooler/sharding/merge.js';
import { planCrossShard, PlanError, type CrossShardPlan } from '../pooler/sharding/plan.js';
import { buildDataRow, buildRowDescription, parseDataRow, parseRowDescription, readMessages, type FieldDesc } from '../pooler/sharding/wire.js';
import { commandComplete } from '../pooler/protocol/messages/rows.js';
import { startPostgres } from './harness/postgres.js';

type TextRow = (string | null)[];

function plan(sql: string): CrossShardPlan {
  const p = planCrossShard(sql);
  if (p instanceof PlanError) throw new Error(`unexpected PlanError ${p.code}: ${p.message} (${sql})`);
  return p;
}

function reply(fields: FieldDesc[], rows: TextRow[]): Buffer {
  const parts = [buildRowDescription(fields)];
  for (const r of rows) parts.push(buildDataRow(r.map((v) => (v === null ? null : Buffer.from(v)))));
  parts.push(commandComplete(`SELECT ${rows.length}`));
  return Buffer.concat(parts);
}

/** A merged reply: fields, rows, or the ErrorResponse's SQLSTATE. */
function decode(buf: Buffer): { fields: FieldDesc[] | null; rows: TextRow[]; error: string | null } {
  let fields: FieldDesc[] | null = null;
  const rows: TextRow[] = [];
  let error: string | null = null;
  for (const m of readMessages(buf)) {
    if (m.type === 0x54) fields = parseRowDescription(m.body);
    else if (m.type === 0x44) rows.push(parseDataRow(m.body).map((c) => (c === null ? null : c.toString('utf8'))));
    else if (m.type === 0x45) error = /C([0-9A-Z]{5})\0/.exec(m.body.toString('latin1'))?.[1] ?? '?';
  }
  return { fields, rows, error };
}

t.test('planner: shard texts', async (t) => {
  const cases: [string, string][] = [
    ['SELECT round(avg(x), 2) FROM t', 'SELECT (CASE WHEN false THEN round(avg(x), 2) END) AS "round", (count(x)) AS __pglynx_h0, (sum(x)) AS __pglynx_h1 FROM t'],
    ['SELECT g, sum(x) / count(*) AS q FROM t GROUP BY g', 'SELECT g, (CASE WHEN false THEN sum(x) / count(*) END) AS q, (sum(x)) AS __pglynx_h0, (count(*)) AS __pglynx_h1 FROM t GROUP BY g'],
    ['SELECT g, count(DISTINCT x) FROM t GROUP BY g HAVING count(*) > 1 ORDER BY g LIMIT 2',
      'SELECT g, (CASE WHEN false THEN count(DISTINCT x) END) AS "count", (array_agg(DISTINCT x)) AS __pglynx_h0, (count(*)) AS __pglynx_h1 FROM t GROUP BY g HAVING true OR (count(*) > 1) ORDER BY g '],
  ];
  for (const [sql, shard] of cases) t.equal(plan(sql).shardSql, shard, sql);
});

t.test('planner: refusals keep 0A000', async (t) => {
  const cases: [string, RegExp][] = [
    ['SELECT avg(DISTINCT x) FROM t', /avg\(DISTINCT/],
    ['SELECT sqrt(sum(x)) FROM t', /sqrt/],
    ['SELECT sum(x) ^ 2 FROM t', /operator \^/],
    ['SELECT g FROM t GROUP BY g HAVING string_agg(s, \',\') = \'a\'', /string_agg/],
    ['SELECT count(x ORDER BY x) FROM t', /ORDER BY inside/],
    ['SELECT avg(x)::interval FROM t', /casts/],
  ];
  for (const [sql, message] of cases) {
    const p = planCrossShard(sql);
    t.ok(p instanceof PlanError, sql);
    if (p instanceof PlanError) {
      t.equal(p.code, '0A000', `${sql}: code`);
      t.match(p.message, message, `${sql}: message`);
    }
  }
});

t.test('merger: DISTINCT values that are arrays are refused with 0A000', async (t) => {
  const p = plan('SELECT count(DISTINCT a) FROM t');
  const fields: FieldDesc[] = [
    { name: 'count', tableOid: 0, attnum: 0, typeOid: 20, typlen: 8, typmod: -1, format: 0 },
    { name: '__pglynx_h0', tableOid: 0, attnum: 0, typeOid: 1021, typlen: -1, typmod: -1, format: 0 },
  ];
  t.throws(() => mergeShardReplies(p, [reply(fields, [[null, '{{1,2},{3,4}}']])], { includeRowDescription: true }), { code: '0A000', message: /scalar values only/ });
  const ok = decode(mergeShardReplies(p, [reply(fields, [[null, '{1,2.5}']]), reply(fields, [[null, '{2.50,3,NULL}']])], { includeRowDescription: true }));
  t.same(ok.rows, [['3']], '2.5 and 2.50 are one value; NULL is not counted');
});

const pgc = await startPostgres({ databases: ['shard0', 'shard1', 'shard2', 'whole'].map((name) => ({ name })), t });

let seed = 16_3;
function rand(): number {
  // mulberry32: reproducible data.
  seed = (seed + 0x6d2b79f5) | 0;
  let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
}
const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
const maybe = <V>(v: V): V | null => (rand() < 0.1 ? null : v);

const SCHEMA = 'CREATE TABLE data (id int PRIMARY KEY, g int, x int, b bigint, n numeric, f float8, s text)';
const clients = new Map<string, pg.Client>();
for (const db of ['shard0', 'shard1', 'shard2', 'whole']) {
  const c = new pg.Client({ host: pgc.socketDir, port: pgc.port, user: 'postgres', database: db });
  await c.connect();
  t.teardown(() => c.end());
  await c.query(SCHEMA);
  clients.set(db, c);
}
for (let id = 1; id <= 240; id++) {
  // Few distinct values, so DISTINCT aggregates see the same value on several shards.
  const n = `${int(-50, 50)}.${String(int(0, 99)).padStart(2, '0')}${rand() < 0.3 ? '0' : ''}`;
  const row = [id, maybe(int(0, 5)), maybe(int(-20, 20)), maybe(BigInt(int(-9, 9)) * 1_000_000_000_000n), maybe(n), maybe(int(-40, 40) / 8), maybe(['a', 'b', 'c', 'é'][int(0, 3)])];
  const q = 'INSERT INTO data VALUES ($1, $2, $3, $4, $5, $6, $7)';
  await clients.get('whole')!.query(q, row);
  await clients.get(`shard${(id * 7919) % 3}`)!.query(q, row);
}

const raw = { getTypeParser: () => (v: string) => v };
async function run(db: string, text: string, values: unknown[] = []): Promise<{ fields: FieldDesc[]; rows: TextRow[]; error: string | null }> {
  try {
    const res = await clients.get(db)!.query({ text, values, rowMode: 'array', types: raw });
    const fields = res.fields.map((f) => ({ name: f.name, tableOid: f.tableID, attnum: f.columnID, typeOid: f.dataTypeID, typlen: f.dataTypeSize, typmod: f.dataTypeModifier, format: 0 }));
    return { fields, rows: res.rows as TextRow[], error: null };
  } catch (err) {
    return { fields: [], rows: [], error: (err as { code?: string }).code ?? '?' };
  }
}

const SHAPES: { sql: string; unordered?: boolean; params?: unknown[] }[] = [
  // 1. Expressions over aggregates.
  { sql: 'SELECT round(avg(id), 2) FROM data' },
  { sql: 'SELECT round(avg(x), 2), round(avg(n), 1), round(avg(f)), round(avg(x)) AS r0, round(avg(n), -1) FROM data' },
  { sql: 'SELECT sum(x) / count(*), sum(n) / count(*), sum(f) / count(f), sum(b) / count(b), count(*) * 2 + 1 AS k FROM data' },
  { sql: 'SELECT avg(x)::int, avg(n)::int4, avg(f)::bigint, avg(n)::numeric(10,3), sum(x)::float8, count(*)::numeric, avg(x)::text AS t FROM data' },
  { sql: 'SELECT coalesce(sum(x), 0), coalesce(max(s), \'none\'), nullif(count(*), 0), abs(sum(x) - 1000), greatest(min(x), 0) FROM data' },
  { sql: 'SELECT coalesce(sum(x), 0) AS s, round(avg(x) * 100.0 / max(x), 3) FROM data WHERE id > 1000' },
  { sql: 'SELECT g, round(avg(x), 2) AS a, sum(x) / count(*) AS q, -min(x) AS m, (max(n) - min(n)) * 2 FROM data GROUP BY g ORDER BY g NULLS FIRST' },
  { sql: 'SELECT g, sum(x) % 7, sum(n) % 3, count(*)::float8 / 3 FROM data GROUP BY g ORDER BY g' },
  { sql: 'SELECT g, round(avg(x), 2) FROM data GROUP BY g ORDER BY round(avg(x), 2) DESC NULLS LAST, g LIMIT 3' },
  { sql: 'SELECT g FROM data GROUP BY g ORDER BY sum(x) * -1, g' },
  { sql: 'SELECT g, count(*) FILTER (WHERE x > 0) * 1.0 / count(*) AS share FROM data GROUP BY g ORDER BY g' },
  { sql: 'SELECT g * 10 + 1 AS k, sum(x) + g FROM data GROUP BY g ORDER BY 1' },
  { sql: "SELECT g, CASE WHEN count(*) > 40 THEN 'many' WHEN count(*) > 35 THEN 'some' ELSE 'few' END AS size, 'n=' || count(*) AS label FROM data GROUP BY g ORDER BY g" },
  { sql: 'SELECT g, CASE g WHEN 1 THEN sum(x) WHEN 2 THEN -sum(x) END, CASE WHEN count(x) = 0 THEN NULL ELSE sum(n) / count(x) END FROM data GROUP BY g ORDER BY g' },
  // 2. HAVING.
  { sql: 'SELECT g, count(*) FROM data GROUP BY g HAVING count(*) > 40 ORDER BY g' },
  { sql: 'SELECT g, sum(x) FROM data GROUP BY g HAVING avg(x) > 0 AND max(s) = \'é\' OR g IS NULL ORDER BY g LIMIT 2' },
  { sql: 'SELECT g FROM data GROUP BY g HAVING g >= 2 AND NOT sum(n) < 0 ORDER BY g' },
  { sql: 'SELECT s, count(*) FROM data GROUP BY s HAVING min(x) IS NOT NULL ORDER BY s' },
  { sql: 'SELECT count(*) FROM data HAVING count(*) > 1000' },
  { sql: 'SELECT g, count(*) AS c FROM data GROUP BY g HAVING count(*) > 1 ORDER BY c DESC, g LIMIT 2 OFFSET 1' },
  { sql: 'SELECT g, sum(x) AS s FROM data GROUP BY g HAVING sum(x) BETWEEN -20 AND 60 OR count(*) NOT BETWEEN 30 AND 45 ORDER BY g' },
  { sql: 'SELECT g FROM data GROUP BY g HAVING g IN (1, 3, 5) OR count(*) NOT IN (40, 41) ORDER BY g' },
  { sql: 'SELECT g, avg(x), round(avg(x), 1), avg(x) * 2 FROM data GROUP BY g HAVING sum(n) > 10.5 ORDER BY g' },
  { sql: 'SELECT round(avg(f)::numeric, 3), sum(x) / count(*)::float8, nullif(sum(x), 0), -sum(n), count(*) - count(x) AS nulls FROM data' },
  { sql: 'SELECT g, sum(x) * $1 AS k FROM data GROUP BY g HAVING count(*) > $2 AND max(s) <> $3 ORDER BY g', params: [3, 35, 'b'] },
  { sql: 'SELECT g, round(avg(n), $1) FROM data GROUP BY g HAVING sum(n) > $2 OR g = $3 ORDER BY g', params: [2, '12.5', 4] },
  // 3. DISTINCT aggregates and SELECT DISTINCT.
  { sql: 'SELECT count(DISTINCT x), sum(DISTINCT x), count(DISTINCT n), sum(DISTINCT n), count(DISTINCT s), sum(DISTINCT b), sum(DISTINCT f) FROM data' },
  { sql: 'SELECT g, count(DISTINCT x), sum(DISTINCT x), count(*) FROM data GROUP BY g ORDER BY g' },
  { sql: 'SELECT g, count(DISTINCT s) AS ds FROM data GROUP BY g HAVING count(DISTINCT x) > 10 ORDER BY ds, g' },
  { sql: 'SELECT round(sum(DISTINCT x) * 1.0 / count(DISTINCT x), 3), min(DISTINCT x), max(DISTINCT n) FROM data' },
  { sql: 'SELECT count(DISTINCT x) FROM data WHERE false' },
  { sql: 'SELECT DISTINCT s FROM data ORDER BY s' },
  { sql: 'SELECT DISTINCT g, x > 0 AS pos FROM data', unordered: true },
  { sql: 'SELECT DISTINCT count(*) FROM data GROUP BY g', unordered: true },
  // Errors raise the same SQLSTATE.
  { sql: 'SELECT sum(x) / 0 FROM data' },
  { sql: 'SELECT count(*)::int2 * 1000::int2 FROM data' },
  { sql: 'SELECT count(*)::int2 * 1000 FROM data' },
];

t.test(`real Postgres: ${SHAPES.length} shapes merged from 3 shards equal one node`, async (t) => {
  for (const shape of SHAPES) {
    const p = plan(shape.sql);
    const replies: Buffer[] = [];
    for (const db of ['shard0', 'shard1', 'shard2']) {
      const r = await run(db, p.shardSql, shape.params);
      t.equal(r.error, null, `${shape.sql}: shard text runs (${p.shardSql})`);
      replies.push(reply(r.fields, r.rows));
    }
    const whole = await run('whole', shape.sql, shape.params);
    let merged: ReturnType<typeof decode>;
    try {
      merged = decode(mergeShardReplies(p, replies, { includeRowDescription: true, params: shape.params?.map(String) }));
    } catch (err) {
      merged = { fields: null, rows: [], error: (err as { code?: string }).code ?? String(err) };
    }
    if (whole.error !== null) {
      t.equal(merged.error, whole.error, `${shape.sql}: same error`);
      continue;
    }
    t.equal(merged.error, null, `${shape.sql}: no error`);
    t.same(merged.fields?.map((f) => [f.name, f.typeOid]), whole.fields.map((f) => [f.name, f.typeOid]), `${shape.sql}: columns`);
    const sort = (rs: TextRow[]): TextRow[] => (shape.unordered ? [...rs].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)) : rs);
    t.same(sort(merged.rows), sort(whole.rows), `${shape.sql}: ${whole.rows.length} rows (shard text: ${p.shardSql})`);
  }
});

t.test('real Postgres: the evaluator on 300 values per expression (one group per value)', async (t) => {
  const whole = clients.get('whole')!;
  await whole.query('CREATE TABLE vals (id int PRIMARY KEY, v numeric, f float8, i int)');
  const rows: string[] = [];
  for (let id = 1; id <= 300; id++) {
    // Many halves and ties, so rounding rules show.
    const scale = int(0, 4);
    const v = `${rand() < 0.4 ? '-' : ''}${int(0, 999)}${scale ? '.' + (rand() < 0.5 ? '5'.padEnd(scale, '0') : String(int(0, 10 ** scale - 1)).padStart(scale, '0')) : ''}`;
    rows.push(`(${id}, ${v}, ${int(-64, 64) / 8}, ${int(-2_000_000_000, 2_000_000_000)})`);
  }
  await whole.query(`INSERT INTO vals VALUES ${rows.join(',')}`);
  const exprs = [
    'round(sum(v), 1), round(sum(v)), round(sum(v), -1), round(sum(f)), round(sum(v), 6)',
    'sum(v) * sum(v), sum(v) / 7, sum(v) % 3, -sum(v) / 0.3, abs(sum(v)), sum(v) - 0.005',
    'sum(f)::numeric, avg(v)::int, sum(f)::int, sum(v)::float8, (sum(v) * 3)::numeric(8,1), sum(v)::text',
    'sum(i) * 3, max(i) > 0, (max(i)::int8 * 4) / 3, sum(i) / 7, sum(i) % 7, min(i) / -3',
    'count(*) > 0 AND sum(v) > 0, sum(v) > 0.5 OR sum(f) < 0, greatest(sum(v), sum(f)::numeric), least(sum(v), 1)',
  ];
  for (const e of exprs) {
    const sql = `SELECT id, ${e} FROM vals GROUP BY id ORDER BY id`;
    const p = plan(sql);
    const r = await run('whole', p.shardSql);
    t.equal(r.error, null, `${sql}: shard text runs`);
    const merged = decode(mergeShardReplies(p, [reply(r.fields, r.rows)], { includeRowDescription: true }));
    const expected = await run('whole', sql);
    t.same(merged.fields?.map((f) => [f.name, f.typeOid]), expected.fields.map((f) => [f.name, f.typeOid]), `${e}: columns`);
    t.same(merged.rows, expected.rows, `${e}: 300 values`);
  }
  // Overflow raises Postgres's SQLSTATE (22003) in the pooler too.
  const p = plan('SELECT max(i) * 2 FROM vals');
  const r = await run('whole', p.shardSql);
  t.throws(() => mergeShardReplies(p, [reply(r.fields, r.rows)], { includeRowDescription: true }), { code: '22003' });
  t.equal((await run('whole', 'SELECT max(i) * 2 FROM vals')).error, '22003');
});
