// PgCat's plugins in front of a real Postgres 15: intercept (canned rows from
// the pooler), table_access (refused tables, inside and outside
// transactions, in simple Query and extended-protocol Parse, with the error
// in stream order), query_logger (lines in the pooler's log, Parse text
// included) and prewarmer
// (statements on every new server connection), plus PgCat's config rules:
// a pool's own [pools.<name>.plugins] replaces the global [plugins] as a
// whole, and query plugins only run with query_parser_enabled = true.
import pg from 'pg';
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { pgClient, psql } from './harness/clients.js';
import { configToml, startPglynx, type ConfigPool } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';
import { errorFields, msg, RawClient, types } from './harness/raw-client.js';

const APP = { username: 'app', password: 'apppw' };
const PREWARM = 'INSERT INTO prewarm_log VALUES (pg_backend_pid())';
const DENIED = 'permission for table "secret" denied';

const main = await startPostgres({
  auth: 'scram-sha-256',
  users: [{ name: APP.username, password: APP.password }],
  databases: [{ name: 'app', owner: 'app' }],
  t,
});
for (const ddl of ['CREATE TABLE secret (x int)', 'CREATE TABLE open_t (x int)', 'CREATE TABLE prewarm_log (pid int)']) {
  await main.query(ddl, [], 'app');
  await main.query(`ALTER TABLE ${ddl.split(' ')[2]} OWNER TO app`, [], 'app');
}
await main.query('INSERT INTO secret VALUES (7)', [], 'app');

const pool = (extra: Partial<ConfigPool> = {}, poolSize = 2): ConfigPool => ({
  pool_mode: 'transaction',
  users: [{ ...APP, pool_size: poolSize }],
  shards: [primaryShard(main, 'app')],
  ...extra,
});

const pooler = await startPglynx(
  configToml({
    port: await freePort(),
    pools: {
      // Own plugins: replace the global ones (no table_access, no prewarmer here).
      ic: pool({
        query_parser_enabled: true,
        plugins: {
          query_logger: { enabled: true },
          intercept: {
            enabled: true,
            queries: {
              // A function the server does not have: a reply proves the pooler answered.
              '0': {
                query: 'select pglynx_probe()',
                schema: [['who', 'text'], ['n', 'int4'], ['flag', 'bool'], ['nothing', 'text']],
                result: [['${USER}@${DATABASE}', '42', 't', '']],
              },
              '1': {
                query: 'SELECT current_database() AS a, current_schemas(false) AS b',
                schema: [['a', 'text'], ['b', 'text']],
                result: [['${DATABASE}', '{public}'], ['second', 'row']],
              },
            },
          },
        },
      }),
      // The global plugins.
      ta: pool({ query_parser_enabled: true }),
      // Global plugins without the parser: the prewarmer runs, query plugins do not (PgCat).
      np: pool({}, 1),
      // The global plugins with prepared statements shared across servers (Parses may be answered by the pooler).
      tp: pool({ query_parser_enabled: true, prepared_statements_cache_size: 100 }, 1),
    },
    extra: {
      plugins: {
        table_access: { enabled: true, tables: ['secret'] },
        prewarmer: { enabled: true, queries: [PREWARM] },
        query_logger: { enabled: false },
      },
    },
  }),
  { t },
);

const client = (database: string): Promise<pg.Client> =>
  pgClient({ host: pooler.host, port: pooler.port, user: APP.username, password: APP.password, database });
const sql = (db: string, text: string) =>
  psql({ host: pooler.host, port: pooler.port, user: APP.username, password: APP.password, db, sql: text });

async function errorOf(c: pg.Client, query: string | pg.QueryConfig): Promise<{ code?: string; message: string } | null> {
  try {
    await c.query(query);
    return null;
  } catch (err) {
    return err as { code?: string; message: string };
  }
}

// ------------------------------------------------------------------ intercept

t.test('intercept: psql gets the configured rows, ${USER} and ${DATABASE} substituted', async (t) => {
  const r = await sql('ic', 'select pglynx_probe()');
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'app@ic|42|t|\n', 'one row; an empty value is NULL');

  const spaced = await sql('ic', '  SELECT   PGLYNX_PROBE ( ) ;  -- any case, spacing, comments');
  t.equal(spaced.code, 0, spaced.stderr);
  t.equal(spaced.stdout, 'app@ic|42|t|\n', 'matched case-insensitively, blanks and trailing semicolon ignored');

  const two = await sql('ic', 'select current_database() as a, current_schemas(false) as b');
  t.equal(two.stdout, 'ic|{public}\nsecond|row\n', 'the configured query is matched case-insensitively too');

  const both = await sql('ic', 'select pglynx_probe(); select pglynx_probe()');
  t.equal(both.stdout, 'app@ic|42|t|\napp@ic|42|t|\n', 'several intercepted statements: one result each');

  const mixed = await sql('ic', 'select 1; select pglynx_probe()');
  t.not(mixed.code, 0, 'a Query mixing intercepted and other statements goes to the server');
  t.match(mixed.stderr, /function pglynx_probe\(\) does not exist/);
});

t.test('intercept: node-postgres parses the declared column types', async (t) => {
  const c = await client('ic');
  t.teardown(() => c.end());
  const r = await c.query('select pglynx_probe()');
  t.same(r.rows, [{ who: 'app@ic', n: 42, flag: true, nothing: null }]);
  t.equal(r.rowCount, 1);
  t.same(r.fields.map((f) => f.dataTypeID), [25, 23, 16, 25]);

  t.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'other queries reach the server');
  // queryMode is missing from @types/pg.
  const ext = await errorOf(c, { text: 'select pglynx_probe()', queryMode: 'extended' } as pg.QueryConfig);
  t.equal(ext?.code, '42883', 'a Parse is not intercepted (a canned reply cannot answer Parse/Bind/Describe)');
  t.same((await c.query('select pglynx_probe()')).rows[0].who, 'app@ic', 'the client carries on');
});

// ------------------------------------------------------------------ table_access

t.test('table_access: queries touching a listed table are refused with 42501', async (t) => {
  const c = await client('ta');
  t.teardown(() => c.end());
  for (const q of [
    'SELECT * FROM secret',
    'INSERT INTO secret VALUES (1)',
    'select x from SECRET',
    'SELECT * FROM open_t WHERE x IN (SELECT x FROM public.secret)',
    'WITH s AS (SELECT * FROM secret) SELECT * FROM s',
    'UPDATE secret SET x = 0',
    'DELETE FROM secret',
    'TRUNCATE secret',
  ]) {
    const err = await errorOf(c, q);
    t.equal(err?.code, '42501', q);
    t.equal(err?.message, DENIED, q);
  }
  t.same((await c.query('SELECT count(*)::int AS n FROM open_t')).rows, [{ n: 0 }], 'other tables work');
  t.equal((await c.query('INSERT INTO open_t VALUES (1)')).rowCount, 1);
  t.equal((await errorOf(c, 'SELEC * FROM secret'))?.code, '42601', 'unparseable SQL passes through to the server');
  t.same((await main.query('SELECT count(*)::int AS n FROM secret', [], 'app'))[0], { n: 1 }, 'secret untouched');
  await main.query('DELETE FROM open_t', [], 'app');

  const r = await sql('ta', 'SELECT * FROM secret');
  t.not(r.code, 0);
  t.match(r.stderr, DENIED, 'psql shows the error');
});

t.test('table_access inside a transaction: the error aborts it, ROLLBACK recovers', async (t) => {
  const c = await client('ta');
  t.teardown(() => c.end());
  await c.query('BEGIN');
  await c.query('INSERT INTO open_t VALUES (2)');
  const err = await errorOf(c, 'SELECT * FROM secret');
  t.equal(err?.code, '42501');
  t.match(err?.message, DENIED);
  t.equal((await errorOf(c, 'SELECT 1'))?.code, '25P02', 'the transaction is aborted, as after a server error');
  await c.query('ROLLBACK');
  t.same((await c.query('SELECT count(*)::int AS n FROM open_t')).rows, [{ n: 0 }], 'the insert was rolled back');
  t.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'the client carries on');

  // psql -c sends one Query: a refused statement anywhere refuses all of it.
  const r = await sql('ta', 'BEGIN; INSERT INTO open_t VALUES (3); SELECT * FROM secret; COMMIT');
  t.not(r.code, 0);
  t.match(r.stderr, DENIED);
  t.same(await main.query('SELECT count(*)::int AS n FROM open_t', [], 'app'), [{ n: 0 }], 'nothing committed');
});

t.test('table_access: extended-protocol Parse is refused too, and the connection carries on', async (t) => {
  for (const db of ['ta', 'tp']) {
    const c = await client(db);
    t.teardown(() => c.end());
    const unnamed = await errorOf(c, { text: 'SELECT * FROM secret WHERE x = $1', values: [7] });
    t.equal(unnamed?.code, '42501', `${db}: a parameterised query on a refused table`);
    t.equal(unnamed?.message, DENIED);
    const named = await errorOf(c, { name: 'peek', text: 'SELECT x FROM public.secret', values: [] });
    t.equal(named?.code, '42501', `${db}: a named prepared statement`);
    t.same((await c.query('SELECT x FROM open_t WHERE x = $1', [1])).rows, [], `${db}: the connection is still usable`);
    t.equal((await c.query({ text: 'SELECT $1::int AS n', values: [5] })).rows[0].n, 5);
    // The refused statement was never prepared: using its name again is refused again, not served.
    t.equal((await errorOf(c, { name: 'peek', text: 'SELECT x FROM public.secret', values: [] }))?.code, '42501');
  }
  t.same((await main.query('SELECT count(*)::int AS n FROM secret', [], 'app'))[0], { n: 1 }, 'secret untouched');
});

t.test('table_access on Parse inside a transaction: the error aborts it, ROLLBACK recovers', async (t) => {
  const c = await client('ta');
  t.teardown(() => c.end());
  await c.query('BEGIN');
  await c.query('INSERT INTO open_t VALUES ($1)', [4]);
  t.equal((await errorOf(c, { text: 'SELECT * FROM secret WHERE x > $1', values: [0] }))?.code, '42501');
  t.equal((await errorOf(c, { text: 'SELECT $1::int', values: [1] }))?.code, '25P02', 'the transaction is aborted');
  await c.query('ROLLBACK');
  t.same(await main.query('SELECT count(*)::int AS n FROM open_t', [], 'app'), [{ n: 0 }], 'the insert was rolled back');
});

t.test('table_access on Parse: the error comes at its place in the batch, the rest is skipped up to Sync', async (t) => {
  for (const db of ['ta', 'tp']) {
    const c = await RawClient.connect({ host: pooler.host, port: pooler.port, user: APP.username, password: APP.password, database: db });
    t.teardown(() => c.end());
    // One extended batch: a statement that runs, a refused Parse, more after it, one Sync.
    c.send(
      msg.parse('SELECT 1 AS one'), msg.bind(), msg.execute(),
      msg.parse('SELECT * FROM secret', 'refused'), msg.bind([], 'refused'), msg.execute(),
      msg.parse('INSERT INTO open_t VALUES (9)'), msg.bind(), msg.execute(),
      msg.sync(),
    );
    const batch = await c.readUntilReady();
    t.equal(types(batch), '12DCEZ', `${db}: the first statement's replies, then the error, then ReadyForQuery`);
    t.equal(errorFields(batch[4]!.body).get('C'), '42501');
    t.equal(batch[5]!.body[0], 0x49, 'idle: the implicit transaction ended');
    // Parses alone then Sync: with prepared statements shared, the pooler may answer such a batch itself.
    c.send(msg.parse('SELECT 2', 'fine'), msg.parse('SELECT x FROM secret', 'blocked'), msg.sync());
    const parses = await c.readUntilReady();
    t.equal(types(parses), '1EZ', `${db}: ParseComplete for the first, the error for the refused one`);
    // The Sync of a refused Parse may come in a later packet.
    c.send(msg.parse('SELECT x FROM secret'), msg.bind(), msg.execute());
    await new Promise((r) => setTimeout(r, 100));
    c.send(msg.sync());
    t.equal(types(await c.readUntilReady()), 'EZ', `${db}: the error is given at the Sync that arrives later`);
    t.match(types(await c.query('SELECT 3')), /^TDCZ$/, `${db}: the connection carries on`);
  }
  t.same(await main.query('SELECT count(*)::int AS n FROM open_t', [], 'app'), [{ n: 0 }], 'nothing after the refused Parse ran');
});

t.test("a pool's own plugins replace the global ones; no parser, no query plugins", async (t) => {
  t.equal((await sql('ic', 'SELECT x FROM secret')).stdout, '7\n', 'ic has its own plugins, without table_access');
  t.equal((await sql('np', 'SELECT x FROM secret')).stdout, '7\n', 'np has query_parser_enabled = false');
  t.match(pooler.output(), /global query plugins are not run in this pool/, 'and the operator is told');
  const r = await sql('ta', 'select pglynx_probe()');
  t.match(r.stderr, /does not exist/, 'intercept is only configured in ic');
});

// ------------------------------------------------------------------ query_logger

t.test('query_logger: each Query and Parse is logged at info with its pool and user', async (t) => {
  const from = pooler.output().length;
  t.equal((await sql('ic', "SELECT 'logged-marker-1' AS m")).code, 0);
  await pooler.waitForOutput('logged-marker-1', 5000, from);
  const line = pooler
    .output()
    .slice(from)
    .split('\n')
    .find((l) => l.includes('logged-marker-1'));
  const entry = JSON.parse(line ?? '{}') as Record<string, unknown>;
  t.equal(entry.level, 30, 'info');
  t.equal(entry.pool, 'ic');
  t.equal(entry.user, 'app');
  t.equal(entry.query, "SELECT 'logged-marker-1' AS m");

  await sql('ic', 'select pglynx_probe() -- intercepted-marker');
  await pooler.waitForOutput('intercepted-marker', 5000, from);
  t.pass('intercepted queries are logged too');

  const c = await client('ic');
  t.teardown(() => c.end());
  t.equal((await c.query("SELECT 'parse-marker-' || $1::text AS m", ['x'])).rows[0].m, 'parse-marker-x');
  await pooler.waitForOutput('parse-marker-', 5000, from);
  const parsed = JSON.parse(pooler.output().slice(from).split('\n').find((l) => l.includes('parse-marker-')) ?? '{}') as Record<string, unknown>;
  t.equal(parsed.query, "SELECT 'parse-marker-' || $1::text AS m", 'an extended-protocol Parse is logged with its text');

  await sql('ta', "SELECT 'not-logged-marker'");
  await sql('ic', "SELECT 'after-marker'");
  await pooler.waitForOutput('after-marker', 5000, from);
  t.notMatch(pooler.output().slice(from), 'not-logged-marker', 'the global query_logger is disabled');
});

// ------------------------------------------------------------------ prewarmer

t.test('prewarmer: runs once on each new server connection', async (t) => {
  // Two clients in transactions at once force the pool's two connections open.
  const [a, b] = await Promise.all([client('ta'), client('ta')]);
  t.teardown(() => Promise.all([a.end(), b.end()]));
  await Promise.all([a.query('BEGIN'), b.query('BEGIN')]);
  const pidOf = async (c: pg.Client): Promise<number> => (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p as number;
  const pids = await Promise.all([pidOf(a), pidOf(b)]);
  await Promise.all([a.query('COMMIT'), b.query('COMMIT')]);
  t.not(pids[0], pids[1], 'two server connections');

  const c = await client('np');
  t.teardown(() => c.end());
  pids.push(await pidOf(c));

  const ic = await client('ic');
  t.teardown(() => ic.end());
  const icPid = await pidOf(ic);

  const rows = await main.query<{ pid: number; n: number }>(
    'SELECT pid, count(*)::int AS n FROM prewarm_log GROUP BY pid',
    [],
    'app',
  );
  const counts = new Map(rows.map((r) => [r.pid, r.n]));
  for (const p of pids) t.equal(counts.get(p), 1, `backend ${p} was prewarmed exactly once`);
  t.notOk(counts.has(icPid), "ic's own plugins have no prewarmer");
});
