// A transaction-mode client's SET / RESET are kept across its transactions
// and replayed on whichever server it borrows (issue 16, point 5; PgDog's
// behaviour), without DISCARD ALL: against a real Postgres 15, through
// node-postgres. Two servers and clients that hold them in turn make each
// statement land on either; another client never sees the values; what did
// not take effect (an error, SET LOCAL, SET inside a transaction block) is
// not kept; and the pooler's shared prepared statements survive.
import t from 'tap';
import type pg from 'pg';
import { primaryShard } from './harness/pool-config.js';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';

const db = await startPostgres({ users: [{ name: 'app', password: 'apppw' }], databases: [{ name: 'app', owner: 'app' }], t });
await db.query('CREATE SCHEMA kept AUTHORIZATION app', [], 'app');
await db.query('CREATE TABLE kept.t (v text); ALTER TABLE kept.t OWNER TO app', [], 'app');
await db.query("INSERT INTO kept.t VALUES ('from kept')", [], 'app');

const pooler = await startPglynx(
  configToml({
    port: await freePort(),
    pools: {
      app: {
        pool_mode: 'transaction',
        prepared_statements_cache_size: 100,
        users: [{ username: 'app', password: 'apppw', pool_size: 2 }],
        shards: [primaryShard(db, 'app')],
      },
    },
  }),
  { t },
);
const connect = (): Promise<pg.Client> => pgClient({ port: pooler.port, user: 'app', password: 'apppw', database: 'app' });

/** Runs `sql` while `others` each hold a server in a transaction of random length, so the pool's two servers take turns. */
async function amid<T>(others: pg.Client[], run: () => Promise<T>): Promise<T> {
  const held = others.map((o) => o.query(`SELECT pg_sleep(${(Math.random() * 0.004).toFixed(4)})`));
  const result = await run();
  await Promise.all(held);
  return result;
}

t.test('a SET is kept across transactions, on every server the client borrows', async (t) => {
  const client = await connect();
  const other = await connect();
  const hog = await connect();
  await client.query("SET search_path = kept, public");
  await client.query("SET work_mem = '7MB'");
  const pids = new Set<number>();
  let wrong = 0;
  for (let i = 0; i < 200; i++) {
    const r = await amid([hog], () => client.query("SELECT current_setting('search_path') AS path, current_setting('work_mem') AS mem, (SELECT v FROM t) AS v, pg_backend_pid() AS pid"));
    const row = r.rows[0] as { path: string; mem: string; v: string; pid: number };
    pids.add(row.pid);
    if (row.path !== 'kept, public' || row.mem !== '7MB' || row.v !== 'from kept') wrong += 1;
  }
  t.equal(wrong, 0, '200 statements all saw the client\'s search_path and work_mem');
  t.equal(pids.size, 2, 'on both servers');
  const seen = (await other.query("SELECT current_setting('search_path') AS path, current_setting('work_mem') AS mem")).rows[0];
  t.same(seen, { path: '"$user", public', mem: '4MB' }, 'another client sees the defaults');
  await client.query('RESET work_mem');
  const after = (await client.query("SELECT current_setting('work_mem') AS mem, current_setting('search_path') AS path")).rows[0];
  t.same(after, { mem: '4MB', path: 'kept, public' }, 'RESET of one parameter is kept too');
  await client.query('RESET ALL');
  t.same((await client.query("SELECT current_setting('search_path') AS path")).rows[0], { path: '"$user", public' }, 'RESET ALL forgets them');
  for (const c of [client, other, hog]) await c.end();
});

t.test('what did not take effect is not kept', async (t) => {
  const client = await connect();
  await t.rejects(client.query("SET work_mem = 'lots'"), { code: '22023' }, 'an invalid value fails');
  t.same((await client.query("SELECT current_setting('work_mem') AS mem")).rows[0], { mem: '4MB' }, 'and is not kept');
  await client.query("SET LOCAL work_mem = '9MB'"); // outside a transaction: a warning, no effect
  t.same((await client.query("SELECT current_setting('work_mem') AS mem")).rows[0], { mem: '4MB' }, 'SET LOCAL is not kept');
  await client.query('BEGIN');
  await client.query("SET work_mem = '11MB'");
  await client.query('ROLLBACK');
  t.same((await client.query("SELECT current_setting('work_mem') AS mem")).rows[0], { mem: '4MB' }, 'a SET rolled back is not kept');
  await client.end();
});

t.test('no DISCARD ALL: the pooler\'s prepared statements survive a SET', async (t) => {
  const client = await connect();
  const named = { name: 'by_v', text: 'SELECT v FROM kept.t WHERE v = $1', values: ['from kept'] };
  await client.query(named);
  await client.query("SET statement_timeout = '5s'");
  for (let i = 0; i < 20; i++) await client.query(named);
  t.same((await client.query("SELECT current_setting('statement_timeout') AS st")).rows[0], { st: '5s' }, 'the SET is kept');
  const prepared = await client.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'pglynx%'");
  t.ok((prepared.rows[0] as { n: number }).n >= 1, 'the server still has the pooler\'s prepared statement');
  await client.end();
});
