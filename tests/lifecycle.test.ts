// The pooler's lifecycle as an operator drives it, against a real Postgres 15:
// - SIGHUP reload: a pool resized under pgbench load loses no transaction,
//   added pools serve at once, removed pools fail their clients cleanly, an
//   invalid file changes nothing (and says why);
// - autoreload: an edited file applies without a signal;
// - SIGINT graceful shutdown: idle clients leave with 57P01, transactions in
//   flight finish, and what pgbench reports as done is exactly what the
//   database holds;
// - SIGTERM: out within about a second, open transactions or not.
import pg from 'pg';
import t from 'tap';
import { sleep } from './harness/wait.js';
import { primaryShard } from './harness/pool-config.js';
import { pgbench, pgClient, type PgbenchResult } from './harness/clients.js';
import { configToml, startPglynx, type PglynxProcess, type TomlValue } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';

type TT = Parameters<Parameters<typeof t.test>[0]>[0];

const APP = { name: 'app', password: 'apppw' };
const env = { PGPASSWORD: APP.password };

const cluster = await startPostgres({ auth: 'scram-sha-256', users: [APP], databases: [{ name: 'app', owner: 'app' }], t });
await cluster.query('CREATE TABLE t_life (x int)', [], 'app');
await cluster.query('ALTER TABLE t_life OWNER TO app', [], 'app');
// Straight to the server: the pooler under test is not needed to set up.
const init = await pgbench(['-i', '-s', '1', '-q', '-h', '127.0.0.1', '-p', String(cluster.port), '-U', APP.name, 'app'], env);
if (init.code !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);

/** pool name -> pool_size (database `app`) or pool_size and database; every pool logs in as user `app`. */
type Pools = Record<string, number | { size: number; database: string }>;

function config(port: number, pools: Pools, general: Record<string, TomlValue> = {}): string {
  return configToml({
    port,
    general: { connect_timeout: 5000, ...general },
    pools: Object.fromEntries(
      Object.entries(pools).map(([name, spec]) => {
        const { size, database } = typeof spec === 'number' ? { size: spec, database: 'app' } : spec;
        const pool = {
          pool_mode: 'transaction' as const,
          users: [{ username: APP.name, password: APP.password, pool_size: size }],
          shards: [primaryShard(cluster, database)],
        };
        return [name, pool];
      }),
    ),
  });
}

interface Pooler {
  proc: PglynxProcess;
  /** Write a new config (same port); `signal` sends SIGHUP and waits for the reload's log line. */
  reconfigure(pools: Pools | string, general?: Record<string, TomlValue>, signal?: boolean): Promise<void>;
}

async function startPooler(t: TT, pools: Pools, general: Record<string, TomlValue> = {}): Promise<Pooler> {
  const port = await freePort();
  const proc = await startPglynx(config(port, pools, general), { t, logLevel: 'info' });
  return {
    proc,
    async reconfigure(next, nextGeneral = general, signal = true) {
      const from = proc.output().length;
      proc.writeConfig(typeof next === 'string' ? next : config(port, next, nextGeneral));
      if (!signal) return;
      process.kill(proc.pid, 'SIGHUP');
      await proc.waitForOutput(/config reloaded|config reload rejected/, 10_000, from);
    },
  };
}

const connect = (p: Pooler, database = 'app'): Promise<pg.Client> =>
  pgClient({ host: p.proc.host, port: p.proc.port, user: APP.name, password: APP.password, database });

const benchArgs = (p: Pooler, ...args: string[]): string[] => [
  '-n', // no vacuum first: it would truncate pgbench_history
  ...args,
  '-h', p.proc.host, '-p', String(p.proc.port), '-U', APP.name, 'app',
];

/** Server connections of `app` on the cluster: every one of them is the pooler's. */
async function serverConnections(): Promise<number> {
  const [{ n }] = await cluster.query<{ n: string }>(
    "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'",
  );
  return Number(n);
}

/** Highest serverConnections() seen every 50 ms until `until` settles. */
async function peakConnections(until: Promise<unknown>): Promise<number> {
  let done = false;
  void until.finally(() => (done = true));
  let peak = 0;
  while (!done) {
    peak = Math.max(peak, await serverConnections());
    await sleep(50);
  }
  return peak;
}

async function historyCount(): Promise<number> {
  const [{ n }] = await cluster.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_history', [], 'app');
  return Number(n);
}

/** The next error a node-postgres client emits (a FATAL while idle, a dropped socket). */
function nextError(c: pg.Client): Promise<Error & { code?: string }> {
  return new Promise((resolve) => {
    c.once('error', resolve);
    c.once('end', () => resolve(Object.assign(new Error('connection ended'), { code: 'END' })));
  });
}

async function pidOf(c: pg.Client): Promise<number> {
  return (await c.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0].p;
}

function describe(r: PgbenchResult): string {
  return `code ${r.code}, processed ${r.processed}, failed ${r.failed}\n${r.stdout.slice(-1500)}\n${r.stderr.slice(-1500)}`;
}

// ------------------------------------------------------------------ reload

t.test('SIGHUP: pool_size 2 -> 4 under pgbench -c 8 loses no transaction', async (t) => {
  await cluster.query('TRUNCATE pgbench_history', [], 'app');
  const p = await startPooler(t, { app: 2 });
  const bench = pgbench(benchArgs(p, '-c', '8', '-j', '2', '-T', '8'), env);
  const before = await peakConnections(sleep(2500));
  await p.reconfigure({ app: 4 });
  const after = await peakConnections(bench);
  const r = await bench;
  t.equal(r.code, 0, `pgbench exits 0 (${describe(r)})`);
  t.equal(r.failed ?? 0, 0, 'no failed transactions');
  t.ok((r.processed ?? 0) > 0, `${r.processed} transactions processed`);
  t.equal(await historyCount(), r.processed, 'every reported transaction is in pgbench_history');
  t.ok(before <= 2, `before the reload at most 2 server connections (${before})`);
  t.ok(after > 2 && after <= 4, `after it, more than 2 and at most 4 (${after})`);
  t.match(p.proc.output(), /config reloaded/, 'the reload is logged');
});

t.test('SIGHUP: an added pool serves at once; connected clients keep their server', async (t) => {
  const p = await startPooler(t, { app: 2 });
  const c = await connect(p);
  t.teardown(() => c.end());
  await c.query('BEGIN');
  await c.query('INSERT INTO t_life VALUES (1)');
  const pid = await pidOf(c);
  await p.reconfigure({ app: 2, added: 2 });
  const n = await connect(p, 'added');
  t.teardown(() => n.end());
  t.equal((await n.query('SELECT current_database() AS d')).rows[0].d, 'app', 'a new client uses the new pool');
  t.equal(await pidOf(c), pid, 'the client in a transaction is still on its server');
  await c.query('ROLLBACK');
  t.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'and goes on after it');
});

t.test('SIGHUP: a removed pool fails its clients cleanly; other pools are untouched', async (t) => {
  const p = await startPooler(t, { app: 2, doomed: 2 });
  const d = await connect(p, 'doomed');
  t.teardown(() => d.end().catch(() => {}));
  await d.query('SELECT 1');
  const a = await connect(p);
  t.teardown(() => a.end());
  await a.query('BEGIN');
  const pid = await pidOf(a);
  await p.reconfigure({ app: 2 });

  const started = Date.now();
  const next = await Promise.race([
    d.query('SELECT 1').then(
      () => 'answered' as const,
      (e: Error & { code?: string }) => e,
    ),
    sleep(5000).then(() => 'hang' as const),
  ]);
  t.ok(next instanceof Error, `the removed pool's client gets an error (${next instanceof Error ? `${next.code}: ${next.message}` : next})`);
  t.ok(Date.now() - started < 5000, 'without hanging');
  const again = await connect(p, 'doomed').then(
    (c) => c.end().then(() => null),
    (e: Error) => e,
  );
  t.match(again?.message ?? '', /password authentication failed/, 'new clients of the removed pool are refused (as an unknown pool: 28P01)');

  t.equal(await pidOf(a), pid, "the other pool's client keeps its transaction and server");
  await a.query('COMMIT');
  const b = await connect(p);
  t.teardown(() => b.end());
  t.equal((await b.query('SELECT 1 AS one')).rows[0].one, 1, 'and the other pool serves new clients');
});

t.test('SIGHUP: a pool pointed at another database runs every later transaction there', async (t) => {
  const p = await startPooler(t, { app: 1 });
  const a = await connect(p);
  t.teardown(() => a.end());
  await a.query('BEGIN');
  t.equal((await a.query('SELECT current_database() AS d')).rows[0].d, 'app', 'before: database app');
  await p.reconfigure({ app: { size: 1, database: 'postgres' } });
  t.equal((await a.query('SELECT current_database() AS d')).rows[0].d, 'app', 'the open transaction finishes where it started');
  await a.query('COMMIT');
  const where = async (c: pg.Client): Promise<string> => (await c.query('SELECT current_database() AS d')).rows[0].d as string;
  t.equal(await where(a), 'postgres', "the same client's next transaction runs on the new database");
  const b = await connect(p);
  t.teardown(() => b.end());
  t.equal(await where(b), 'postgres', "a new client's too");
  const [{ n }] = await cluster.query<{ n: string }>(
    "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'app' AND datname = 'app' AND backend_type = 'client backend'",
  );
  t.equal(Number(n), 0, 'no server connection to the old database is left');
});

t.test('SIGHUP with an invalid config: the old one keeps serving, the reason is logged', async (t) => {
  const p = await startPooler(t, { app: 2 });
  const c = await connect(p);
  t.teardown(() => c.end());
  /** The log line of the rejected reload (JSON: the reason is its `err`). */
  const rejection = async (text: string): Promise<string> => {
    const from = p.proc.output().length;
    await p.reconfigure(text);
    return p.proc.output().slice(from).split('\n').find((l) => l.includes('config reload rejected')) ?? '(no rejection logged)';
  };
  t.match(await rejection('[general\nport = '), /TOML syntax error/, 'a syntax error: rejected, with the reason');
  const badValue = config(p.proc.port, { app: 2 }).replace('pool_size = 2', 'pool_size = 0');
  t.match(await rejection(badValue), /pools\.app\.users\.0\.pool_size: must be at least 1/, 'an invalid value: rejected, naming the key');
  t.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'the connected client is served');
  const n = await connect(p);
  t.teardown(() => n.end());
  t.equal((await n.query('SELECT 1 AS one')).rows[0].one, 1, 'new clients log in with the old config');
});

t.test('autoreload = 500: an edited file applies without a signal', async (t) => {
  const general = { autoreload: 500 };
  const p = await startPooler(t, { app: 2 }, general);
  // mtime must differ from the file the pooler started with.
  await sleep(50);
  const from = p.proc.output().length;
  await p.reconfigure({ app: 2, later: 2 }, general, false);
  const started = Date.now();
  await p.proc.waitForOutput('config reloaded', 5000, from);
  t.ok(Date.now() - started < 3000, `picked up in ${Date.now() - started} ms`);
  const c = await connect(p, 'later');
  t.teardown(() => c.end());
  t.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'the pool from the edited file serves');
});

// ------------------------------------------------------------------ shutdown

t.test('SIGINT during pgbench -c 10: what pgbench reports done is exactly what the database holds', async (t) => {
  await cluster.query('TRUNCATE pgbench_history', [], 'app');
  const p = await startPooler(t, { app: 5 });
  const bench = pgbench(benchArgs(p, '-c', '10', '-j', '2', '-T', '20'), env);
  await sleep(3000);
  const started = Date.now();
  process.kill(p.proc.pid, 'SIGINT');
  const code = await p.proc.exited;
  t.ok(Date.now() - started < 5000, `the pooler exits in ${Date.now() - started} ms`);
  t.equal(code, 0, 'with status 0');
  const r = await bench;
  t.comment(`pgbench: ${describe(r)}`);
  t.ok(r.processed !== undefined && r.processed > 0, `pgbench printed its summary (${r.processed} processed)`);
  t.equal(await historyCount(), r.processed, 'pgbench_history holds exactly the transactions pgbench counts as processed');
  t.ok(Date.now() - started < 15_000, 'pgbench did not run on to -T 20');
});

t.test('SIGINT: idle clients get 57P01; a transaction in flight may COMMIT, then its client is let go', async (t) => {
  await cluster.query('TRUNCATE t_life', [], 'app');
  const p = await startPooler(t, { app: 2 }, { shutdown_timeout: 10_000 });
  const idle = await connect(p);
  const busy = await connect(p);
  await busy.query('BEGIN');
  await busy.query('INSERT INTO t_life VALUES (1)');
  const idleGone = nextError(idle);
  const busyGone = nextError(busy);
  process.kill(p.proc.pid, 'SIGINT');

  const e = await Promise.race([idleGone, sleep(3000).then(() => null)]);
  t.equal(e?.code, '57P01', `the idle client gets 57P01 (${e?.message})`);
  const refused = await connect(p).then(
    (c) => c.end().then(() => null),
    (err: Error) => err,
  );
  t.ok(refused instanceof Error, `new clients are refused (${refused?.message})`);

  await busy.query('INSERT INTO t_life VALUES (2)');
  await busy.query('COMMIT');
  t.pass('the client in a transaction runs on and commits after SIGINT');
  const b = await Promise.race([busyGone, sleep(3000).then(() => null)]);
  t.ok(b !== null, `then it is disconnected (${b?.code}: ${b?.message})`);
  const [{ n }] = await cluster.query<{ n: string }>('SELECT count(*) AS n FROM t_life', [], 'app');
  t.equal(Number(n), 2, 'both rows of the committed transaction are in');
  const code = await Promise.race([p.proc.exited, sleep(5000).then(() => 'still running' as const)]);
  t.equal(code, 0, 'and the pooler exits with status 0');
});

t.test('SIGINT: a transaction that does not end is cut at shutdown_timeout', async (t) => {
  await cluster.query('TRUNCATE t_life', [], 'app');
  const p = await startPooler(t, { app: 2 }, { shutdown_timeout: 1000 });
  const c = await connect(p);
  await c.query('BEGIN');
  await c.query('INSERT INTO t_life VALUES (5)');
  const gone = nextError(c);
  const started = Date.now();
  process.kill(p.proc.pid, 'SIGINT');
  await p.proc.exited;
  const ms = Date.now() - started;
  t.ok(ms >= 900 && ms < 3000, `the pooler waited for shutdown_timeout, then exited (${ms} ms)`);
  const e = await Promise.race([gone, sleep(2000).then(() => null)]);
  t.equal(e?.code, '57P01', `the client is told why (${e?.message})`);
  for (let i = 0; i < 100 && (await serverConnections()) > 0; i++) await sleep(50);
  const [{ n }] = await cluster.query<{ n: string }>('SELECT count(*) AS n FROM t_life', [], 'app');
  t.equal(Number(n), 0, 'its transaction did not commit');
});

t.test('SIGTERM: out within a second with a transaction open, which is not committed', async (t) => {
  await cluster.query('TRUNCATE t_life', [], 'app');
  const p = await startPooler(t, { app: 2 });
  const c = await connect(p);
  await c.query('BEGIN');
  await c.query('INSERT INTO t_life VALUES (99)');
  const gone = nextError(c);
  const started = Date.now();
  process.kill(p.proc.pid, 'SIGTERM');
  await p.proc.exited;
  const ms = Date.now() - started;
  t.ok(ms < 1500, `exited in ${ms} ms`);
  const e = await Promise.race([gone, sleep(2000).then(() => null)]);
  t.ok(e !== null, `the client is disconnected (${e?.code}: ${e?.message})`);
  // The server notices the closed connection and rolls back.
  for (let i = 0; i < 100 && (await serverConnections()) > 0; i++) await sleep(50);
  const [{ n }] = await cluster.query<{ n: string }>('SELECT count(*) AS n FROM t_life', [], 'app');
  t.equal(Number(n), 0, 'the open transaction did not commit');
});
