// One parse per statement text, whatever features are on: a pooler with
// the query parser, read/write splitting (a primary and a streaming
// replica), query plugins (table_access, intercept), prepared statements
// shared across servers, automatic sharding (two shards: keys, multi-row
// INSERT split, cross-shard plans) and pgml models runs the same statements
// over and over from several clients. pglynx_sql_parses_total (Prometheus)
// grows by the distinct texts of the first round, and by nothing after it.
import t from 'tap';
import type pg from 'pg';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres, type PgCluster } from './harness/postgres.js';

const USER = { name: 'app', password: 'pw' };
const ROUNDS = 8;
const INTERCEPTED = 'select pglynx_probe()';

async function parses(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  const text = await res.text();
  const m = /^pglynx_sql_parses_total (\d+)$/m.exec(text);
  if (!m) throw new Error('no pglynx_sql_parses_total in /metrics');
  return Number(m[1]);
}

async function waitFor(fn: () => Promise<boolean>, ms: number): Promise<void> {
  const start = Date.now();
  while (Date.now() - start < ms) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`condition not met within ${ms} ms`);
}

/** Runs `q`; an error (the refused or misspelt ones) is returned, not thrown. */
async function attempt(c: pg.Client, q: string | pg.QueryConfig): Promise<string | null> {
  try {
    await c.query(q);
    return null;
  } catch (err) {
    return (err as { code?: string }).code ?? 'error';
  }
}

/** What each round sends to the unsharded pool (read/write splitting, plugins, pgml, prepared statements). */
const appQueries = (round: number): (string | pg.QueryConfig)[] => [
  'SELECT id, body FROM items WHERE id = 1',
  { text: 'SELECT body FROM items WHERE id = $1', values: [round % 3] },
  { name: 'by_id', text: 'SELECT id FROM items WHERE id = $1', values: [2] },
  'BEGIN',
  { text: 'UPDATE items SET body = body WHERE id = $1', values: [2] },
  'COMMIT',
  "SET application_name = 'one-parse'",
  "SELECT pgml.embed('lexical', 'hello world') AS e",
  { text: "SELECT pgml.embed('lexical', $1) AS e", values: [`round ${round}`] },
  INTERCEPTED,
  'SELECT * FROM secret',
  'SELEC 1',
  'PREPARE p AS SELECT 1; EXECUTE p; DEALLOCATE p',
];
const APP_ERRORS = ['42501', '42601']; // the refused table, the misspelt statement

/** What each round sends to the sharded pool (keys, a split INSERT, cross-shard plans, no table). */
const shopQueries = (round: number): (string | pg.QueryConfig)[] => [
  { text: 'INSERT INTO items (id, body) VALUES ($1, $2)', values: [round, `r${round}`] },
  "INSERT INTO items (id, body) VALUES (1, 'a'), (2, 'b'), (3, 'c')",
  { text: 'SELECT body FROM items WHERE id = $1', values: [round] },
  'SELECT count(*) FROM items',
  'SELECT id FROM items ORDER BY id LIMIT 3',
  "UPDATE items SET body = 'x' WHERE id = 1",
  'SELECT 1',
];

/** Runs a round; the error codes, in order. */
async function run(c: pg.Client, queries: (string | pg.QueryConfig)[]): Promise<string[]> {
  const codes: string[] = [];
  for (const q of queries) {
    const code = await attempt(c, q);
    if (code) codes.push(code);
  }
  return codes;
}

const textOf = (q: string | pg.QueryConfig): string => (typeof q === 'string' ? q : q.text);

/**
 * Texts the pooler parses: every distinct text a client sends but the
 * intercepted one (answered from its scan alone), plus the two texts the
 * pgml rewrite makes (`SELECT '{...}'::real[] AS e`, `SELECT $2::real[] AS e`),
 * which are new texts classified for read/write splitting.
 */
const EXPECTED_PARSES = new Set([...appQueries(0), ...shopQueries(0)].map(textOf).filter((q) => q !== INTERCEPTED)).size + 2;

t.test('one parse per statement text, all features on', async (t) => {
  const primary = await startPostgres({ auth: 'md5', users: [USER], replication: true, t });
  const schema = 'CREATE TABLE items (id bigint, body text); CREATE TABLE secret (x int); GRANT ALL ON items, secret TO app';
  await primary.query(schema);
  await primary.query("INSERT INTO items VALUES (1, 'one'), (2, 'two')");
  const replica = await primary.startReplica({ t });
  const [{ lsn }] = await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  await waitFor(async () => (await replica.query<{ ok: boolean }>(`SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn AS ok`))[0].ok, 10_000);
  const shards: PgCluster[] = [await startPostgres({ auth: 'md5', users: [USER], t }), await startPostgres({ auth: 'md5', users: [USER], t })];
  for (const s of shards) await s.query(schema);

  const metricsPort = await freePort();
  const user = { username: 'app', password: 'pw', pool_size: 3 };
  const parser = { query_parser_enabled: true, query_parser_read_write_splitting: true, prepared_statements_cache_size: 100 };
  const pooler = await startPglynx(
    configToml({
      port: await freePort(),
      general: { enable_prometheus_exporter: true, prometheus_exporter_port: metricsPort },
      pools: {
        app: {
          pool_mode: 'transaction',
          ...parser,
          primary_reads_enabled: false,
          users: [user],
          shards: [{ database: 'postgres', servers: [['127.0.0.1', primary.port, 'primary'], ['127.0.0.1', replica.port, 'replica']] }],
        },
        // No feature that reads SQL: nothing it runs is parsed.
        plain: { pool_mode: 'transaction', users: [user], shards: [{ database: 'postgres', servers: [['127.0.0.1', primary.port, 'primary']] }] },
        // Read/write splitting needs replicas, which these shards do not have.
        shop: {
          pool_mode: 'transaction',
          query_parser_enabled: true,
          prepared_statements_cache_size: 100,
          automatic_sharding_key: 'items.id',
          sharding_function: 'pg_bigint_hash',
          users: [user],
          shards: shards.map((s) => ({ database: 'postgres', servers: [['127.0.0.1', s.port, 'primary']] })),
        },
      },
      extra: {
        models: { lexical: { builtin: 'hash-384' } },
        plugins: {
          table_access: { enabled: true, tables: ['secret'] },
          intercept: {
            enabled: true,
            queries: { '0': { query: INTERCEPTED, schema: [['who', 'text']], result: [['${USER}']] } },
          },
        },
      },
    }),
    { t, logLevel: 'warn' },
  );
  const connect = (database: string): Promise<pg.Client> => pgClient({ port: pooler.port, user: 'app', password: 'pw', database });
  const clients = { app: [await connect('app'), await connect('app')], shop: [await connect('shop'), await connect('shop')] };
  t.teardown(() => Promise.all([...clients.app, ...clients.shop].map((c) => c.end())));

  const before = await parses(metricsPort);
  t.same(await run(clients.app[0], appQueries(0)), APP_ERRORS, 'the refused table and the misspelt statement fail, the rest runs');
  t.same(await run(clients.shop[0], shopQueries(0)), [], 'every sharded statement runs');
  const afterFirst = await parses(metricsPort);
  t.equal(afterFirst - before, EXPECTED_PARSES, `the first round parses each of its ${EXPECTED_PARSES} distinct texts once`);

  for (let round = 1; round <= ROUNDS; round++) {
    for (let i = 0; i < 2; i++) {
      t.same(await run(clients.app[i], appQueries(round)), APP_ERRORS);
      t.same(await run(clients.shop[i], shopQueries(round)), []);
    }
  }
  t.equal(await parses(metricsPort), afterFirst, `${ROUNDS * 2} more rounds from two clients per pool parse nothing`);

  const plain = await connect('plain');
  t.teardown(() => plain.end());
  const beforePlain = await parses(metricsPort);
  for (let i = 0; i < 5; i++) {
    await plain.query('SELECT id, body FROM items WHERE id = 7');
    await plain.query({ text: 'UPDATE items SET body = body WHERE id = $1', values: [i] });
    await plain.query('BEGIN; SELECT 1; COMMIT');
  }
  t.equal(await parses(metricsPort), beforePlain, 'a pool with no SQL feature parses nothing (ordinary texts pass the session-state pre-check)');

  const [{ n }] = (await clients.app[0].query<{ n: string }>("SELECT count(*) AS n FROM items WHERE body = 'two'")).rows;
  t.equal(Number(n), 1, 'the reads ran (on the replica or the primary)');
});
