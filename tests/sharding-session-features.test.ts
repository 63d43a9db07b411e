// A sharded pool's client waits, counts and shows like a one-shard client
// (issue 12, one binding for one shard or many): while it waits for a
// shard's connection SHOW CLIENTS says `waiting` and SHOW POOLS counts it in
// cl_waiting / maxwait; afterwards SHOW STATS has its wait time and its
// transactions, SHOW CLIENTS its maxwait; and SHOW SERVERS names the client
// on the shard connection it is using. (statement_timeout,
// idle_client_in_transaction_timeout, SHOW CLIENTS `active` and the
// graceful drain of a sharded client are in sharding-session.test.ts; the
// admin SHUTDOWN drain is here.)
// Two real Postgres 15 shards, one connection each, so a second client waits.
import t from 'tap';
import pg from 'pg';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres, type PgCluster } from './harness/postgres.js';
import { freePort } from './harness/ports.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const users = [{ name: 'app', password: 'pw' }];
const shards: PgCluster[] = [];
for (let i = 0; i < 2; i++) shards.push(await startPostgres({ auth: 'md5', users, t }));
for (const c of shards) await c.query('CREATE TABLE t (id bigint PRIMARY KEY, v text); ALTER TABLE t OWNER TO app');
const pooler = await startPglynx(
  configToml({
    port: await freePort(),
    general: { shutdown_timeout: 10_000, connect_timeout: 5000 }, // connect_timeout is also the checkout timeout
    pools: {
      sharded: {
        pool_mode: 'transaction' as const,
        query_parser_enabled: true,
        automatic_sharding_key: 't.id',
        default_shard: 'shard_1',
        users: [{ username: 'app', password: 'pw', pool_size: 1 }],
        shards: shards.map((c) => ({ database: 'postgres', servers: [['127.0.0.1', c.port, 'primary'] as [string, number, 'primary']] })),
      },
    },
  }),
  { t, logLevel: 'warn' },
);
const connect = (applicationName: string): Promise<pg.Client> =>
  pgClient({ port: pooler.port, user: 'app', password: 'pw', database: 'sharded', application_name: applicationName });
const admin = await pgClient({ port: pooler.port, user: 'admin', password: 'admin', database: 'pgcat' });
t.teardown(() => admin.end().catch(() => undefined));

type Row = Record<string, unknown>;
const show = async (what: string): Promise<Row[]> => (await admin.query({ text: `SHOW ${what}`, queryMode: 'simple' } as pg.QueryConfig)).rows as Row[];
const clientRow = async (app: string): Promise<Row | undefined> => (await show('CLIENTS')).find((r) => r.application_name === app);
const poolRow = async (): Promise<Row | undefined> => (await show('POOLS')).find((r) => r.database === 'sharded');
/** SHOW STATS totals of the sharded pool, summed over its servers (one row per shard). */
async function stats(): Promise<{ xacts: number; waitUs: number; xactMs: number }> {
  const rows = (await show('STATS')).filter((r) => r.database === 'sharded');
  const sum = (k: string): number => rows.reduce((n, r) => n + Number(r[k]), 0);
  return { xacts: sum('total_xact_count'), waitUs: sum('total_wait_time'), xactMs: sum('total_xact_time') };
}

t.test('a sharded client waiting for a shard connection is waiting, and its wait is counted', async (t) => {
  const holder = await connect('holder');
  const waiter = await connect('waiter');
  t.teardown(() => Promise.all([holder, waiter].map((c) => c.end().catch(() => undefined))));
  const before = await stats();
  // Key-less statements go to default_shard, whose one connection the holder keeps for 1.5 s.
  const held = holder.query('SELECT pg_sleep(1.5)');
  await sleep(300);
  const waited = waiter.query('SELECT 1 AS one');
  await sleep(500);
  t.equal((await clientRow('holder'))?.state, 'active', 'the holder is active');
  t.equal((await clientRow('waiter'))?.state, 'waiting', 'SHOW CLIENTS: the client waiting for the shard connection is waiting');
  const pool = await poolRow();
  t.equal(Number(pool?.cl_waiting), 1, 'SHOW POOLS counts it in cl_waiting');
  t.equal(Number(pool?.cl_active), 1, 'and the holder in cl_active');
  t.ok(Number(pool?.maxwait) * 1e6 + Number(pool?.maxwait_us) >= 300_000, `SHOW POOLS maxwait runs (${pool?.maxwait} s ${pool?.maxwait_us} µs)`);
  await held;
  t.equal((await waited).rows[0].one, 1, 'the waiter runs once the connection is free');
  const row = await clientRow('waiter');
  t.equal(row?.state, 'idle', 'then it is idle');
  const maxwaitUs = Number(row?.maxwait) * 1e6 + Number(row?.maxwait_us);
  t.ok(maxwaitUs >= 500_000, `SHOW CLIENTS maxwait keeps its wait (${maxwaitUs} µs)`);
  const after = await stats();
  t.ok(after.waitUs - before.waitUs >= 500_000, `SHOW STATS total_wait_time counts it (${after.waitUs - before.waitUs} µs)`);
});

t.test('SHOW STATS counts a sharded pool\'s transactions and their time', async (t) => {
  const c = await connect('counted');
  t.teardown(() => c.end().catch(() => undefined));
  const before = await stats();
  await c.query('SELECT pg_sleep(0.2)');
  await c.query('BEGIN');
  await c.query("INSERT INTO t (id, v) VALUES (1, 'a'), (2, 'b')");
  await c.query('SELECT count(*) FROM t');
  await c.query('COMMIT');
  const after = await stats();
  t.equal(after.xacts - before.xacts, 2, 'an autocommit statement and a transaction: two transactions');
  t.ok(after.xactMs - before.xactMs >= 200, `their time is counted (${after.xactMs - before.xactMs} ms)`);
  const row = await clientRow('counted');
  t.equal(Number(row?.transaction_count), 2, 'SHOW CLIENTS transaction_count agrees');
});

t.test('SHOW SERVERS names the sharded client on the shard connection it uses', async (t) => {
  const c = await connect('sharded_user');
  t.teardown(() => c.end().catch(() => undefined));
  await c.query('BEGIN');
  await c.query('SELECT v FROM t WHERE id = 1');
  const servers = (await show('SERVERS')).filter((r) => r.database === 'sharded');
  t.equal(servers.filter((r) => r.application_name === 'sharded_user').length, 1, 'the connection its transaction holds is shown as its');
  await c.query('COMMIT');
});

t.test('admin SHUTDOWN: a sharded client in a transaction may COMMIT, then it is let go', async (t) => {
  const busy = await connect('busy');
  await busy.query('BEGIN');
  await busy.query("INSERT INTO t (id, v) VALUES (10, 'a')");
  const gone = new Promise<string | undefined>((resolve) => {
    busy.once('error', (e: Error & { code?: string }) => resolve(e.code));
    busy.once('end', () => resolve('END'));
  });
  await admin.query({ text: 'SHUTDOWN', queryMode: 'simple' } as pg.QueryConfig).catch(() => undefined);
  await sleep(300);
  await busy.query("INSERT INTO t (id, v) VALUES (11, 'b')");
  await busy.query('COMMIT');
  t.pass('the transaction runs on and commits after SHUTDOWN');
  t.equal(await Promise.race([gone, sleep(3000).then(() => 'still connected')]), '57P01', 'then the client is let go with 57P01');
  const rows: string[] = [];
  for (const s of shards) for (const r of await s.query<{ id: string }>('SELECT id::text AS id FROM t WHERE id >= 10')) rows.push(r.id);
  t.same(rows.sort(), ['10', '11'], 'both rows are in');
  const code = await Promise.race([pooler.exited, sleep(5000).then(() => 'still running' as const)]);
  t.equal(code, 0, 'the pooler exits with status 0');
  await busy.end().catch(() => undefined);
});
