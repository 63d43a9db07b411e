// Pooling behaviour in front of real Postgres 15 clusters: what a client
// leaves behind never reaches the next one, the pool heals when servers die,
// waiting is FIFO and bounded, connections age out, timeouts fire, and both
// sides of authentication work.
//
// Shared fixtures: one SCRAM cluster for most tests plus md5 / cleartext /
// trust clusters for server auth; pooler 1 (md5 client auth, many small
// pools) and pooler 2 (general settings under test: auth_type and
// idle_client_in_transaction_timeout).
import pg from 'pg';
import t from 'tap';
import { pollValue as pollUntil, sleep } from './harness/wait.js';
import { primaryShard } from './harness/pool-config.js';
import { pgClient, psql } from './harness/clients.js';
import { configToml, startPglynx, type ConfigPool, type ConfigUser } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres, type PgCluster } from './harness/postgres.js';
import { RawClient, RawServerError, errorFields, msg, types } from './harness/raw-client.js';

type TT = Parameters<Parameters<typeof t.test>[0]>[0];

const APP = { username: 'app', password: 'apppw' };
const SRV = { name: 'srv', password: 'srvpw' };

// ------------------------------------------------------------------ fixtures

const [main, md5c, cleartext, trust] = await Promise.all([
  startPostgres({
    auth: 'scram-sha-256',
    users: [
      { name: 'app', password: 'apppw' },
      { name: 'idle_u', password: 'idlepw' },
      { name: 'life_u', password: 'lifepw' },
      SRV,
    ],
    databases: [{ name: 'app', owner: 'app' }],
    t,
  }),
  startPostgres({ auth: 'md5', users: [SRV], t }),
  startPostgres({ auth: 'password', users: [SRV], t }),
  startPostgres({ auth: 'trust', users: [SRV], t }),
]);
for (const table of ['t_dirty', 't_copy', 't_ext', 't_itx']) {
  await main.query(`CREATE TABLE ${table} (x int)`, [], 'app');
  await main.query(`ALTER TABLE ${table} OWNER TO app`, [], 'app');
}

const on = (c: PgCluster, database = 'app') => [primaryShard(c, database)];
const pool = (mode: 'transaction' | 'session', user: ConfigUser, extra: Partial<ConfigPool> = {}, cluster = main, db = 'app'): ConfigPool => ({
  pool_mode: mode,
  users: [user],
  shards: on(cluster, db),
  ...extra,
});
const serverAuthUser = { username: 'cli', password: 'clipw', server_username: SRV.name, server_password: SRV.password, pool_size: 2 };

const pooler = await startPglynx(
  configToml({
    port: await freePort(),
    general: { connect_timeout: 5000 },
    pools: {
      tx1: pool('transaction', { ...APP, pool_size: 1 }),
      sess1: pool('session', { ...APP, pool_size: 1 }),
      heal: pool('transaction', { ...APP, pool_size: 2 }),
      fifo: pool('transaction', { ...APP, pool_size: 1 }, { connect_timeout: 10_000 }),
      cot: pool('transaction', { ...APP, pool_size: 1 }, { connect_timeout: 500 }),
      idle: pool('transaction', {
        username: 'idle',
        password: 'idlepw',
        server_username: 'idle_u',
        pool_size: 5,
        min_pool_size: 2,
        idle_timeout: 1000,
      }),
      life: pool('transaction', {
        ...APP,
        server_username: 'life_u',
        server_password: 'lifepw',
        pool_size: 1,
        server_lifetime: 1000,
      }),
      stmt: pool('transaction', { ...APP, pool_size: 2, statement_timeout: 500 }),
      badsrv: pool('transaction', { ...APP, pool_size: 1, server_password: 'wrong' }),
      auth_scram: pool('transaction', serverAuthUser, {}, main, 'postgres'),
      auth_md5: pool('transaction', serverAuthUser, {}, md5c, 'postgres'),
      auth_password: pool('transaction', serverAuthUser, {}, cleartext, 'postgres'),
      auth_trust: pool('transaction', serverAuthUser, {}, trust, 'postgres'),
      scram_user: pool('transaction', { ...APP, pool_size: 1, auth_type: 'scram-sha-256' }),
    },
  }),
  { t, logLevel: 'warn' },
);

const pooler2 = await startPglynx(
  configToml({
    port: await freePort(),
    general: { connect_timeout: 5000, auth_type: 'scram-sha-256', idle_client_in_transaction_timeout: 500 },
    pools: { app: pool('transaction', { ...APP, pool_size: 2 }) },
  }),
  { t, logLevel: 'warn' },
);

const client = (database: string, o: Partial<pg.ClientConfig> = {}): Promise<pg.Client> =>
  pgClient({ host: pooler.host, port: pooler.port, user: APP.username, password: APP.password, database, ...o });
const client2 = (o: Partial<pg.ClientConfig> = {}): Promise<pg.Client> =>
  pgClient({ host: pooler2.host, port: pooler2.port, user: APP.username, password: APP.password, database: 'app', ...o });
const raw = (database: string): Promise<RawClient> =>
  RawClient.connect({ host: pooler.host, port: pooler.port, user: APP.username, password: APP.password, database });

/** Cuts a node-postgres client's socket without a Terminate, like a crashed client. */
function crash(c: pg.Client): void {
  c.on('error', () => {});
  (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
}

async function count(table: string): Promise<number> {
  const [{ n }] = await main.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`, [], 'app');
  return Number(n);
}


const backends = async (where: string, params: unknown[] = []): Promise<number> => {
  const [{ n }] = await main.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND ${where}`,
    params,
  );
  return Number(n);
};

async function runningQuery(pattern: string): Promise<number> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const rows = await main.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()",
      [pattern],
    );
    if (rows.length > 0) return rows[0].pid;
    if (Date.now() > deadline) throw new Error(`no backend runs ${pattern}`);
    await sleep(25);
  }
}

async function pid(c: pg.Client): Promise<number> {
  return (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
}

/** A connect-and-query attempt; resolves with the error (or null) and how long it took. */
async function attempt(cfg: pg.ClientConfig, sql = 'SELECT 1'): Promise<{ err: (Error & { code?: string }) | null; ms: number }> {
  const started = Date.now();
  try {
    const c = await pgClient(cfg);
    try {
      await c.query(sql);
    } finally {
      await c.end().catch(() => {});
    }
    return { err: null, ms: Date.now() - started };
  } catch (err) {
    return { err: err as Error & { code?: string }, ms: Date.now() - started };
  }
}

// ------------------------------------------------------------------ no dirty state

t.test('transaction mode: a client gone mid-transaction leaves nothing behind', async (t) => {
  const a = await client('tx1');
  await a.query('BEGIN');
  await a.query('INSERT INTO t_dirty VALUES (1)');
  const aPid = await pid(a);
  crash(a);

  const b = await client('tx1');
  t.teardown(() => b.end());
  const r = await b.query(
    `SELECT (SELECT count(*) FROM t_dirty)::int AS n, txid_current_if_assigned() IS NULL AS no_xid,
            now() = statement_timestamp() AS fresh, pg_backend_pid() AS pid`,
  );
  const row = r.rows[0];
  t.equal(row.n, 0, "client B does not see A's uncommitted row");
  t.ok(row.no_xid, "B's first statement is not inside A's transaction (no xid assigned)");
  t.ok(row.fresh, "B's first statement starts its own transaction (now() = statement_timestamp())");
  t.comment(`server ${row.pid === aPid ? 'reused' : 'replaced'} (A had ${aPid}, B got ${row.pid})`);
  t.equal(await count('t_dirty'), 0, 'the row never committed');
  t.equal(
    await pollUntil(() => backends("state LIKE 'idle in transaction%'"), (n) => n === 0, 3000),
    0,
    'no backend is left idle in transaction',
  );
});

t.test('a client gone in the middle of COPY FROM STDIN', async (t) => {
  const c = await raw('tx1');
  c.send(msg.query('COPY t_copy FROM STDIN'));
  t.equal(types(await c.readMessages('G')), 'G', 'CopyInResponse');
  c.send(msg.copyData('1\n2\n3\n'), msg.copyData('4\n5\n'));
  await sleep(100);
  c.destroy();

  const b = await client('tx1');
  t.teardown(() => b.end());
  const r = await b.query('SELECT count(*)::int AS n FROM t_copy');
  t.equal(r.rows[0].n, 0, 'the next client on the pool works and sees no copied rows');
  t.equal(
    await pollUntil(() => backends("query LIKE 'COPY t_copy%' AND state <> 'idle'"), (n) => n === 0, 3000),
    0,
    'the abandoned COPY is not running on any server',
  );
  t.equal(await count('t_copy'), 0, 'no rows were committed');
});

t.test('PgCat SQL behind a query in the same write is answered after it', async (t) => {
  const c = await raw('tx1');
  t.teardown(() => c.destroy());
  c.send(msg.query('SELECT 1'), msg.query("SET SERVER ROLE TO 'primary'"));
  const replies = await c.readUntilReady(2);
  t.equal(types(replies), 'TDCZEZ', "SELECT 1's rows first, then the refusal of the pipelined PgCat command");
  t.equal(types(await c.query("SET SERVER ROLE TO 'primary'")), 'CZ', 'alone, the command is answered');
});

t.test('a client gone in the middle of an extended-protocol batch (no Sync)', async (t) => {
  const c = await raw('tx1');
  c.send(msg.parse('INSERT INTO t_ext VALUES (42)'), msg.bind(), msg.execute(), msg.flush());
  t.equal(types(await c.readMessages('C')), '12C', 'the INSERT ran (ParseComplete, BindComplete, CommandComplete)');
  c.destroy();

  const b = await client('tx1');
  t.teardown(() => b.end());
  const r = await b.query('SELECT count(*)::int AS n, txid_current_if_assigned() IS NULL AS no_xid FROM t_ext');
  t.equal(r.rows[0].n, 0, 'the next client works and sees no row');
  t.ok(r.rows[0].no_xid, 'and is not inside the abandoned implicit transaction');
  t.equal(
    await pollUntil(() => backends("state LIKE 'idle in transaction%'"), (n) => n === 0, 3000),
    0,
    'no backend is left idle in transaction',
  );
  t.equal(await count('t_ext'), 0, 'no row was committed');
});

t.test('session mode: DISCARD ALL between clients of one server', async (t) => {
  const a = await client('sess1');
  await a.query('SET search_path = foo');
  await a.query('PREPARE p AS SELECT 1');
  await a.query('CREATE TEMP TABLE tmp_a (x int)');
  await a.query('LISTEN some_channel');
  await a.query("SET statement_timeout = '7s'");
  const aPid = await pid(a);
  await a.end();

  const b = await client('sess1');
  t.teardown(() => b.end());
  t.equal(await pid(b), aPid, 'client B gets the same backend (pool_size 1)');
  const r = await b.query(
    `SELECT current_setting('search_path') AS sp, current_setting('statement_timeout') AS st,
            (SELECT count(*) FROM pg_prepared_statements)::int AS prepared,
            to_regclass('tmp_a') IS NULL AS no_temp,
            (SELECT count(*) FROM pg_listening_channels())::int AS listening`,
  );
  t.same(
    r.rows[0],
    { sp: '"$user", public', st: '0', prepared: 0, no_temp: true, listening: 0 },
    'search_path, statement_timeout, prepared statements, temp tables and LISTEN are back to defaults',
  );
});

t.test('transaction mode: SET outside a transaction is cleaned up for the next client', async (t) => {
  const a = await client('tx1');
  await a.query("SET statement_timeout = '1s'");
  await a.query('SET search_path = foo');
  const aPid = await pid(a);
  await a.end();

  const b = await client('tx1');
  t.teardown(() => b.end());
  t.equal(await pid(b), aPid, 'client B gets the same server (pool_size 1)');
  const r = await b.query("SELECT current_setting('statement_timeout') AS st, current_setting('search_path') AS sp");
  t.same(r.rows[0], { st: '0', sp: '"$user", public' }, 'and sees the default statement_timeout and search_path');
});

// ------------------------------------------------------------------ servers dying

t.test('a server that dies mid-query: error, not a hang; the pool heals', async (t) => {
  const c = await client('heal');
  t.teardown(() => c.end().catch(() => {}));
  let started = Date.now();
  // Caught at once: the rejection arrives while the test is still busy killing the backend.
  const doomed = c.query('SELECT pg_sleep(10)').then(
    () => null,
    (e: Error & { code?: string }) => e,
  );
  let victim = await runningQuery('SELECT pg_sleep(10)%');
  await main.query('SELECT pg_terminate_backend($1)', [victim]);
  const err = await Promise.race([doomed, sleep(5000).then(() => 'hang' as const)]);
  t.ok(err instanceof Error, `the client gets an error (${err instanceof Error ? `${err.code}: ${err.message}` : String(err)})`);
  t.ok(Date.now() - started < 5000, `promptly (${Date.now() - started} ms)`);
  const same = await c.query('SELECT 1 AS one').then(
    (r) => `works (${r.rows[0].one})`,
    (e: Error) => `fails: ${e.message}`,
  );
  t.comment(`the same node-postgres client afterwards: ${same}`);

  // The same on the wire: one ErrorResponse for the one Query, then ReadyForQuery or a close.
  const rc = await raw('heal');
  t.teardown(() => rc.destroy());
  started = Date.now();
  rc.send(msg.query('SELECT pg_sleep(10)'));
  victim = await runningQuery('SELECT pg_sleep(10)%');
  await main.query('SELECT pg_terminate_backend($1)', [victim]);
  const reply = await rc.readMessages('Z', 5000).catch((e: Error) => e);
  if (reply instanceof Error) {
    t.notOk(rc.isOpen, `no ReadyForQuery: then the connection must be closed (${reply.message})`);
  } else {
    const errs = reply.filter((m) => m.type === 'E').map((m) => errorFields(m.body));
    t.equal(
      errs.length,
      1,
      `exactly one ErrorResponse before ReadyForQuery (got "${types(reply)}": ${errs.map((f) => `${f.get('S')} ${f.get('C')} ${f.get('M')}`).join(' | ')})`,
    );
    t.equal(types(await rc.query('SELECT 1')), 'TDCZ', 'the raw client goes on with another server');
  }

  const d = await client('heal');
  t.teardown(() => d.end());
  t.equal((await d.query('SELECT 1 AS one')).rows[0].one, 1, 'a new client runs a query');

  // Idle pooled connections killed behind the pooler's back are not handed out.
  const e = await client('heal');
  t.teardown(() => e.end());
  await Promise.all([d.query('BEGIN'), e.query('BEGIN')]);
  await Promise.all([d.query('SELECT 1'), e.query('SELECT 1')]);
  await Promise.all([d.query('COMMIT'), e.query('COMMIT')]);
  const killed = await main.query<{ n: string }>(
    "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE usename = 'app' AND datname = 'app' AND state = 'idle' AND pid <> pg_backend_pid()",
  );
  t.ok(Number(killed[0].n) >= 1, `killed ${killed[0].n} idle server connection(s)`);
  await sleep(200);
  const both = await Promise.all([d.query('SELECT 2 AS two'), e.query('SELECT 2 AS two')]);
  t.same(
    both.map((r) => r.rows[0].two),
    [2, 2],
    'queries after idle servers were killed succeed on fresh connections',
  );
});

// ------------------------------------------------------------------ waiting

t.test('clients wait FIFO for the only server connection', async (t) => {
  const [a, b, c, d] = await Promise.all([client('fifo'), client('fifo'), client('fifo'), client('fifo')]);
  t.teardown(() => Promise.all([a, b, c, d].map((x) => x.end())));
  await a.query('BEGIN');
  await a.query('SELECT 1');
  const order: string[] = [];
  const waiting: Promise<unknown>[] = [];
  for (const [name, cl] of [['B', b], ['C', c], ['D', d]] as const) {
    waiting.push(cl.query(`SELECT '${name}' AS who`).then((r) => order.push(r.rows[0].who)));
    await sleep(100);
  }
  await sleep(100);
  t.same(order, [], 'nobody runs while A holds the connection');
  await a.query('COMMIT');
  await Promise.all(waiting);
  t.same(order, ['B', 'C', 'D'], 'after A commits they run in arrival order');
});

t.test('checkout timeout: a waiting client gets 53300, then recovers', async (t) => {
  const a = await client('cot');
  const b = await client('cot');
  t.teardown(() => Promise.all([a.end(), b.end()]));
  await a.query('BEGIN');
  await a.query('SELECT 1');
  const started = Date.now();
  await t.rejects(b.query('SELECT 1'), { code: '53300' }, 'the waiting query fails with SQLSTATE 53300');
  const waited = Date.now() - started;
  t.ok(waited >= 400 && waited < 2000, `after about connect_timeout = 500 ms (${waited} ms)`);
  await a.query('COMMIT');
  t.equal((await b.query('SELECT 1 AS one')).rows[0].one, 1, 'the same client runs a query once A has committed');
});

// ------------------------------------------------------------------ connection lifetimes

t.test('min_pool_size and idle_timeout', async (t) => {
  const idleU = () => backends("usename = 'idle_u'");
  const warm = await pollUntil(idleU, (n) => n === 2, 5000);
  t.equal(warm, 2, 'min_pool_size = 2: two server connections open with no client ever connected');

  const clients = await Promise.all(
    Array.from({ length: 5 }, () =>
      pgClient({ host: pooler.host, port: pooler.port, user: 'idle', password: 'idlepw', database: 'idle' }),
    ),
  );
  t.teardown(() => Promise.all(clients.map((c) => c.end().catch(() => {}))));
  await Promise.all(clients.map((c) => c.query('BEGIN')));
  await Promise.all(clients.map((c) => c.query('SELECT 1')));
  t.equal(await idleU(), 5, 'five concurrent transactions use five server connections');
  await Promise.all(clients.map((c) => c.query('COMMIT')));
  const released = Date.now();
  t.equal(await idleU(), 5, 'released connections stay open at first');
  const settled = await pollUntil(idleU, (n) => n <= 2, 6000);
  t.equal(settled, 2, `idle_timeout = 1000 ms closes the extra connections down to min_pool_size (${Date.now() - released} ms)`);
  await sleep(1500);
  t.equal(await idleU(), 2, 'and min_pool_size connections stay');
});

t.test('server_lifetime replaces old connections', async (t) => {
  const c = await client('life');
  t.teardown(() => c.end());
  const first = await pid(c);
  t.equal(await pid(c), first, 'back-to-back transactions reuse the connection');
  // A little over the lifetime: the connection must not be handed out again,
  // whether or not periodic upkeep has run since it expired.
  await sleep(1200);
  const later = await pid(c);
  t.not(later, first, `a transaction 1.2 s later gets a new backend (server_lifetime = 1000 ms; ${first} -> ${later})`);
  const gone = await pollUntil(() => backends("usename = 'life_u'"), (n) => n === 0, 4000);
  t.equal(gone, 0, 'an expired idle connection is closed without any client activity');
});

// ------------------------------------------------------------------ timeouts

t.test('statement_timeout (per user)', async (t) => {
  const c = await client('stmt');
  t.teardown(() => c.end().catch(() => {}));
  const started = Date.now();
  await t.rejects(c.query('SELECT pg_sleep(5)'), { code: '57014' }, 'pg_sleep(5) fails with SQLSTATE 57014');
  const took = Date.now() - started;
  t.ok(took >= 400 && took < 2000, `after about 500 ms (${took} ms)`);
  const d = await client('stmt');
  t.teardown(() => d.end());
  t.equal((await d.query('SELECT 1 AS one')).rows[0].one, 1, 'the pool still serves');
});

t.test('idle_client_in_transaction_timeout', async (t) => {
  const bystander = await client2();
  const a = await client2();
  t.teardown(() => Promise.all([bystander.end(), a.end().catch(() => {})]));
  const errors: (Error & { code?: string })[] = [];
  const gone = new Promise<number>((resolve) => {
    a.on('error', (e: Error & { code?: string }) => errors.push(e));
    a.on('end', () => resolve(Date.now()));
  });
  await a.query('BEGIN');
  await a.query('INSERT INTO t_itx VALUES (1)');
  const idleSince = Date.now();
  const ended = await Promise.race([gone, sleep(4000).then(() => null)]);
  t.ok(ended !== null, 'the client idle in a transaction is disconnected');
  if (ended !== null) t.ok(ended - idleSince >= 400 && ended - idleSince < 2500, `after about 500 ms (${ended - idleSince} ms)`);
  t.equal(errors[0]?.code, '25P03', `with SQLSTATE 25P03 (${errors[0]?.message})`);
  t.equal(await pollUntil(() => count('t_itx'), (n) => n === 0, 2000), 0, 'its transaction was rolled back');
  t.equal(
    await pollUntil(() => backends("state LIKE 'idle in transaction%'"), (n) => n === 0, 3000),
    0,
    'no server is left idle in transaction',
  );
  t.equal((await bystander.query('SELECT 1 AS one')).rows[0].one, 1, 'an idle client outside a transaction is unaffected');
  await bystander.query('BEGIN');
  await bystander.query('SELECT pg_sleep(0.3)');
  await bystander.query('SELECT pg_sleep(0.3)');
  t.equal((await bystander.query('COMMIT')).command, 'COMMIT', 'a busy transaction is not cut');
});

// ------------------------------------------------------------------ server authentication

t.test('a server login that fails reaches the client as an error, not a hang', async (t) => {
  const { err, ms } = await attempt({ host: pooler.host, port: pooler.port, user: APP.username, password: APP.password, database: 'badsrv' });
  t.ok(err, `the client gets an error (${err?.message})`);
  t.ok(err?.code, `an ErrorResponse with a SQLSTATE (${err?.code})`);
  t.ok(ms < 5000, `promptly (${ms} ms)`);
  const again = await attempt({ host: pooler.host, port: pooler.port, user: APP.username, password: APP.password, database: 'badsrv' });
  t.ok(again.err?.code, `a second attempt fails the same way (${again.err?.code})`);
  const ok = await client('tx1');
  t.equal((await ok.query('SELECT 1 AS one')).rows[0].one, 1, 'other pools are unaffected');
  await ok.end();
});

t.test('server auth methods, with server_username/server_password', async (t) => {
  for (const [dbName, method] of [
    ['auth_scram', 'scram-sha-256'],
    ['auth_md5', 'md5'],
    ['auth_password', 'password (cleartext)'],
    ['auth_trust', 'trust'],
  ]) {
    const r = await attempt({ host: pooler.host, port: pooler.port, user: 'cli', password: 'clipw', database: dbName }, 'SELECT 1');
    t.equal(r.err, null, `${method}: client cli logs in and queries (${r.err?.message ?? 'ok'})`);
    const c = await pgClient({ host: pooler.host, port: pooler.port, user: 'cli', password: 'clipw', database: dbName }).catch(() => null);
    if (!c) continue;
    const who = await c.query('SELECT current_user AS u');
    t.equal(who.rows[0].u, 'srv', `${method}: the server session runs as server_username`);
    await c.end();
  }
});

// ------------------------------------------------------------------ client authentication

t.test('client auth (md5, the default)', async (t) => {
  const ok = await psql({ host: pooler.host, port: pooler.port, user: 'app', password: 'apppw', db: 'tx1', sql: 'SELECT 1' });
  t.equal(ok.code, 0, `psql with the right password: ${ok.stderr}`);
  const rc = await raw('tx1');
  t.same(rc.authCodes, [5, 0], 'the pooler asks for MD5 (AuthenticationMD5Password, then Ok)');
  rc.destroy();

  const wrong = await attempt({ host: pooler.host, port: pooler.port, user: 'app', password: 'nope', database: 'tx1' });
  t.equal(wrong.err?.code, '28P01', `wrong password: 28P01 (${wrong.err?.message})`);
  const wrongPsql = await psql({ host: pooler.host, port: pooler.port, user: 'app', password: 'nope', db: 'tx1', sql: 'SELECT 1' });
  t.not(wrongPsql.code, 0, 'psql with a wrong password fails');
  t.match(wrongPsql.stderr, /password authentication failed/, 'with the message');

  const noDb = await attempt({ host: pooler.host, port: pooler.port, user: 'app', password: 'apppw', database: 'nope' });
  // As PgBouncer (not PgCat's 3D000): an unknown pool or user looks like a wrong password.
  t.equal(noDb.err?.code, '28P01', 'unknown database: 28P01');
  t.equal(noDb.err?.message, 'password authentication failed for user "app"');
  const noUser = await attempt({ host: pooler.host, port: pooler.port, user: 'ghost', password: 'apppw', database: 'tx1' });
  t.equal(noUser.err?.code, '28P01', 'unknown user: 28P01');
  t.equal(noUser.err?.message, 'password authentication failed for user "ghost"');
});

/** Client-side SCRAM through a pooler: AuthenticationSASL on the wire, psql and node-postgres in, wrong password out. */
async function scramLogin(t: TT, host: string, port: number, database: string): Promise<void> {
  let rc: RawClient | null = null;
  try {
    rc = await RawClient.connect({ host, port, user: 'app', password: 'apppw', database });
  } catch (err) {
    t.fail(`raw SCRAM login: ${(err as Error).message}`);
  }
  t.equal(rc?.authCodes[0], 10, `the pooler sends AuthenticationSASL (auth codes ${rc?.authCodes.join(',')})`);
  t.same(rc?.saslMechanisms, ['SCRAM-SHA-256'], 'offering SCRAM-SHA-256');
  t.same(rc?.authCodes, [10, 11, 12, 0], 'SASL, SASLContinue, SASLFinal, Ok');
  if (rc) t.equal(types(await rc.query('SELECT 1')), 'TDCZ', 'and the session works');
  rc?.destroy();

  const ok = await psql({ host, port, user: 'app', password: 'apppw', db: database, sql: 'SELECT 1' });
  t.equal(ok.code, 0, `psql logs in: ${ok.stderr}`);
  const pgOk = await attempt({ host, port, user: 'app', password: 'apppw', database });
  t.equal(pgOk.err, null, `node-postgres logs in (${pgOk.err?.message ?? 'ok'})`);
  const wrong = await attempt({ host, port, user: 'app', password: 'bad', database });
  t.equal(wrong.err?.code, '28P01', `wrong password: 28P01 (${wrong.err?.message})`);
  const wrongPsql = await psql({ host, port, user: 'app', password: 'bad', db: database, sql: 'SELECT 1' });
  t.not(wrongPsql.code, 0, `psql with a wrong password fails: ${wrongPsql.stderr.trim()}`);
  try {
    await RawClient.connect({ host, port, user: 'app', password: 'bad', database });
    t.fail('raw login with a wrong password succeeded');
  } catch (err) {
    t.equal((err as RawServerError).code, '28P01', `raw SCRAM with a wrong password: 28P01 (${(err as Error).message})`);
  }
}

t.test('client auth with auth_type = "scram-sha-256" for the user', (t) => scramLogin(t, pooler.host, pooler.port, 'scram_user'));

t.test('client auth with auth_type = "scram-sha-256" in [general]', (t) => scramLogin(t, pooler2.host, pooler2.port, 'app'));
