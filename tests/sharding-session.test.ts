// A sharded pool's client keeps the session's guarantees that a one-shard
// client has: statement_timeout and idle_client_in_transaction_timeout fire,
// SHOW CLIENTS shows it active while a statement runs, and a graceful
// shutdown (SIGINT) lets its open transaction COMMIT before it is let go.
// Two real Postgres 15 shards; the query parser routes by t.id and sends
// key-less statements (pg_sleep) to default_shard.
import t from 'tap';
import { sleep } from './harness/wait.js';
import { primaryShard } from './harness/pool-config.js';
import pg from 'pg';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres, type PgCluster } from './harness/postgres.js';
import { freePort } from './harness/ports.js';


/** The next error a client emits (a FATAL while idle, a dropped socket). */
function nextError(c: pg.Client): Promise<Error & { code?: string }> {
  return new Promise((resolve) => {
    c.once('error', resolve);
    c.once('end', () => resolve(Object.assign(new Error('connection ended'), { code: 'END' })));
  });
}

async function errorOf(p: Promise<unknown>): Promise<(Error & { code?: string }) | null> {
  try {
    await p;
    return null;
  } catch (err) {
    return err as Error & { code?: string };
  }
}

const users = [{ name: 'app', password: 'pw' }];
const shards: PgCluster[] = [];
for (let i = 0; i < 2; i++) shards.push(await startPostgres({ auth: 'md5', users, t }));
for (const c of shards) await c.query('CREATE TABLE t (id bigint PRIMARY KEY, v text); ALTER TABLE t OWNER TO app');
const shardList = shards.map((c) => primaryShard(c));
const sharded = (statementTimeout: number) => ({
  pool_mode: 'transaction' as const,
  query_parser_enabled: true,
  automatic_sharding_key: 't.id',
  default_shard: 'shard_1',
  users: [{ username: 'app', password: 'pw', pool_size: 3, statement_timeout: statementTimeout }],
  shards: shardList,
});
const pooler = await startPglynx(
  configToml({
    port: await freePort(),
    general: { idle_client_in_transaction_timeout: 1500, shutdown_timeout: 10_000 },
    pools: { timed: sharded(500), plain: sharded(0) },
  }),
  { t, logLevel: 'warn' },
);
const connect = (database: string, applicationName = 'test'): Promise<pg.Client> =>
  pgClient({ port: pooler.port, user: 'app', password: 'pw', database, application_name: applicationName });

/** Rows of t on every shard. */
async function rowsOnShards(): Promise<string[]> {
  const all: string[] = [];
  for (const s of shards) for (const r of await s.query<{ id: string }>('SELECT id::text AS id FROM t ORDER BY id')) all.push(r.id);
  return all.sort();
}

t.test('statement_timeout fires on a sharded pool', async (t) => {
  const c = await connect('timed');
  t.teardown(() => c.end().catch(() => undefined));
  t.equal((await c.query('SELECT 1 + 1 AS two')).rows[0].two, 2, 'short statements run');
  const started = Date.now();
  const err = await errorOf(c.query('SELECT pg_sleep(5)'));
  t.equal(err?.code, '57014', `the client gets the timeout error (${err?.message})`);
  t.ok(Date.now() - started < 3000, `after ${Date.now() - started} ms, not after the 5 s sleep`);
  const again = await connect('timed');
  t.equal((await again.query('SELECT 2 AS n')).rows[0].n, 2, 'a new client is served');
  await again.end();
});

t.test('idle_client_in_transaction_timeout fires on a sharded pool (25P03) and the transaction is rolled back', async (t) => {
  const c = await connect('plain');
  const gone = nextError(c);
  await c.query('BEGIN');
  await c.query("INSERT INTO t (id, v) VALUES (1, 'idle')");
  t.same((await c.query('SELECT v FROM t WHERE id = 1')).rows, [{ v: 'idle' }], 'the transaction sees its row');
  const e = await Promise.race([gone, sleep(5000).then(() => null)]);
  t.equal(e?.code, '25P03', `the idle client is disconnected (${e?.message})`);
  await c.end().catch(() => undefined);
  t.same(await rowsOnShards(), [], 'its insert was rolled back');
});

t.test('the idle-in-transaction clock does not run while a statement runs', async (t) => {
  const c = await connect('plain');
  t.teardown(() => c.end().catch(() => undefined));
  await c.query('BEGIN');
  t.equal((await c.query('SELECT pg_sleep(2) AS s')).rowCount, 1, 'a 2 s statement inside a transaction outlives the 1.5 s idle timeout');
  await c.query('ROLLBACK');
});

t.test('SHOW CLIENTS shows a sharded client running a statement as active', async (t) => {
  const c = await connect('plain', 'sharded_sleeper');
  t.teardown(() => c.end().catch(() => undefined));
  const admin = await pgClient({ port: pooler.port, user: 'admin', password: 'admin', database: 'pgcat' });
  t.teardown(() => admin.end());
  const stateOf = async (): Promise<unknown> => {
    const r = await admin.query({ text: 'SHOW CLIENTS', queryMode: 'simple' } as pg.QueryConfig);
    return (r.rows as { application_name: string; state: string }[]).find((row) => row.application_name === 'sharded_sleeper')?.state;
  };
  t.equal(await stateOf(), 'idle', 'idle before');
  const running = c.query('SELECT pg_sleep(1)');
  await sleep(300);
  t.equal(await stateOf(), 'active', 'active while pg_sleep runs on a shard');
  await running;
  t.equal(await stateOf(), 'idle', 'idle after');
});

t.test('SIGINT: a sharded client in a transaction may COMMIT, then it is let go', async (t) => {
  const idle = await connect('plain');
  const busy = await connect('plain');
  await busy.query('BEGIN');
  await busy.query("INSERT INTO t (id, v) VALUES (10, 'a')");
  const idleGone = nextError(idle);
  const busyGone = nextError(busy);
  process.kill(pooler.pid, 'SIGINT');

  const e = await Promise.race([idleGone, sleep(3000).then(() => null)]);
  t.equal(e?.code, '57P01', `an idle sharded client gets 57P01 (${e?.message})`);
  await busy.query("INSERT INTO t (id, v) VALUES (11, 'b')");
  await busy.query('COMMIT');
  t.pass('the client in a transaction runs on and commits after SIGINT');
  const b = await Promise.race([busyGone, sleep(3000).then(() => null)]);
  t.equal(b?.code, '57P01', `then it is disconnected (${b?.message})`);
  t.same(await rowsOnShards(), ['10', '11'], 'both rows of the committed transaction are in');
  const code = await Promise.race([pooler.exited, sleep(5000).then(() => 'still running' as const)]);
  t.equal(code, 0, 'and the pooler exits with status 0');
  await Promise.all([idle.end(), busy.end()].map((p) => p.catch(() => undefined)));
});
