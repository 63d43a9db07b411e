// The admin console (databases `pgcat` and `pgbouncer`) in front of a real
// Postgres 15: login rules, every command through psql and node-postgres,
// counters that move by exactly what clients did, client/server states while
// clients wait, PAUSE/RESUME around a running transaction, RELOAD (good and
// bad files) and SHUTDOWN.
import pg from 'pg';
import t from 'tap';
import { pollValue, sleep } from './harness/wait.js';
import { primaryShard } from './harness/pool-config.js';
import { pgClient, psql } from './harness/clients.js';
import { configToml, startPglynx, type ConfigPool } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';
import { TrafficStats } from '../pooler/stats/traffic.js';

type Row = Record<string, string | null>;

const APP = { username: 'app', password: 'apppw' };

const main = await startPostgres({
  auth: 'scram-sha-256',
  users: [{ name: 'app', password: 'apppw' }],
  databases: [{ name: 'app', owner: 'app' }],
  t,
});
await main.query('CREATE TABLE t_pause (x int)', [], 'app');
await main.query('ALTER TABLE t_pause OWNER TO app', [], 'app');

const shard = [primaryShard(main, 'app')];
const pool = (size: number, extra: Partial<ConfigPool> = {}): ConfigPool => ({
  pool_mode: 'transaction',
  users: [{ ...APP, pool_size: size }],
  shards: shard,
  ...extra,
});

const port = await freePort();
/** The pooler's config; `rlSize` is the pool size the RELOAD test changes. */
const config = (rlSize: number): string =>
  configToml({
    port,
    general: { connect_timeout: 5000 },
    pools: {
      stats: pool(2),
      busy: pool(1),
      // A short checkout timeout: waiting on a paused pool must outlast it.
      pz: pool(1, { connect_timeout: 300 }),
      // Prepared statements shared across servers: SHOW SERVERS counts the cache.
      rl: pool(rlSize, { prepared_statements_cache_size: 10 }),
      sess: pool(1, { pool_mode: 'session' }),
    },
  });
const pooler = await startPglynx(config(2), { t, logLevel: 'warn' });

const client = (database: string, o: Partial<pg.ClientConfig> = {}): Promise<pg.Client> =>
  pgClient({ host: pooler.host, port: pooler.port, user: APP.username, password: APP.password, database, ...o });
const admin = (database = 'pgcat', password = 'admin'): Promise<pg.Client> =>
  pgClient({ host: pooler.host, port: pooler.port, user: 'admin', password, database });
const adminPsql = (sql: string, db = 'pgcat') =>
  psql({ host: pooler.host, port: pooler.port, user: 'admin', password: 'admin', db, sql });

const adm = await admin();
t.teardown(() => adm.end());

async function show(what: string, c: pg.Client = adm): Promise<pg.QueryResult<Row>> {
  return c.query<Row>(`SHOW ${what}`);
}
/** The row of `what` whose `key` column is `value`. */
async function rowOf(what: string, key: string, value: string): Promise<Row> {
  const row = (await show(what)).rows.find((r) => r[key] === value);
  if (!row) throw new Error(`SHOW ${what} has no row with ${key} = ${value}`);
  return row;
}
const num = (row: Row, col: string): number => Number(row[col]);
const codeOf = async (p: Promise<unknown>): Promise<string | undefined> => {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
};
/** Whether `f` came true within `timeoutMs`. */
const pollFor = (f: () => Promise<boolean>, timeoutMs = 5000): Promise<boolean> => pollValue(f, Boolean, timeoutMs, 25);

// ------------------------------------------------------------------ login

t.test('admin login: both database names, wrong password, non-admin users', async (t) => {
  for (const db of ['pgcat', 'pgbouncer']) {
    const c = await admin(db);
    t.match((await show('VERSION', c)).rows[0].version, /^PgLynx \d+\.\d+\.\d+/, `SHOW VERSION on ${db} (node-postgres)`);
    await c.end();
    const r = await adminPsql('SHOW VERSION', db);
    t.equal(r.code, 0, `psql on ${db} exits 0`);
    t.match(r.stdout, /^PgLynx /, `psql on ${db} prints the version`);
  }
  t.equal(await codeOf(admin('pgcat', 'wrong')), '28P01', 'a wrong admin password is 28P01');
  const bad = await psql({ host: pooler.host, port: pooler.port, user: 'admin', password: 'nope', db: 'pgbouncer', sql: 'SHOW POOLS' });
  t.not(bad.code, 0, 'psql with a wrong password fails');
  t.match(bad.stderr, /password authentication failed for user "admin"/);
  // A wrong password, not "no pool" (PgCat's 3D000): the login does not tell which names exist.
  t.equal(await codeOf(client('pgcat')), '28P01', 'a pool user cannot log in to the pgcat console');
  t.equal(await codeOf(client('pgbouncer')), '28P01', 'nor to the pgbouncer console');
});

// ------------------------------------------------------------------ parsing

const errorOf = (p: Promise<unknown>): Promise<{ code?: string; message?: string; severity?: string; detail?: string }> =>
  p.then(
    () => ({}),
    (err: { code?: string; message?: string; severity?: string; detail?: string }) => err,
  );

t.test('commands: case, trailing semicolons, unknown commands, SET, HELP', async (t) => {
  t.equal((await adm.query<Row>('sHoW vErSiOn;')).rows.length, 1, 'keywords are case-insensitive and may end with ;');
  // PgCat's own suite (tests/ruby/admin_spec.rb) sends these and expects
  // PG::SystemError (SQLSTATE 58000) with a message matching /Unsupported/.
  const pgcatBadCommands = ['SHOW ME THE MONEY', 'SHOW ME THE WAY', 'SHOW UP', 'SHOWTIME', 'HAMMER TIME', 'SHOWN TO BE TRUE', 'SHOW ', 'SHOW     ', 'SHOW 1', ';;;;;'];
  for (const sql of [...pgcatBadCommands, 'SELECT 1', 'SHOW NONSENSE', 'SHOW POOLS extra', 'DROP TABLE x', '']) {
    const err = await errorOf(adm.query(sql));
    t.equal(err.code, '58000', `"${sql}" is refused with PgCat's SQLSTATE 58000`);
    t.match(err.message, /^Unsupported (SHOW )?query against the admin database$/, `"${sql}": PgCat's message`);
    t.equal(err.severity, 'ERROR', 'the session goes on, so the severity is ERROR');
  }
  t.equal((await errorOf(adm.query('SHOW ME THE MONEY'))).message, 'Unsupported SHOW query against the admin database');
  t.equal((await errorOf(adm.query('HAMMER TIME'))).message, 'Unsupported query against the admin database');
  t.match((await errorOf(adm.query('SHOW POOLS extra'))).detail, /SHOW POOLS takes no arguments/, 'the DETAIL says what was wrong');
  t.equal(await codeOf(adm.query('PAUSE a b c')), '58000', 'a usage error is 58000 too');
  t.equal((await show('POOLS')).rows.length, 5, 'the session goes on after an error');

  const notices: string[] = [];
  const details: string[] = [];
  const onNotice = (n: { message?: string; detail?: string }): void => {
    notices.push(n.message ?? '');
    details.push(n.detail ?? '');
  };
  adm.on('notice', onNotice);
  await adm.query("SET application_name = 'x'");
  const help = await adm.query('SHOW HELP');
  adm.off('notice', onNotice);
  t.match(notices[0], /ignored/, 'SET is accepted with a NOTICE that it is ignored');
  t.equal(notices[1], 'Console usage', 'SHOW HELP sends a NOTICE "Console usage", as PgCat');
  for (const cmd of ['SHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION', 'SHOW LISTS|STATS', 'RELOAD', 'PAUSE', 'RESUME', 'SHUTDOWN']) {
    t.ok(details[1].includes(cmd), `HELP lists ${cmd} in the NOTICE's DETAIL`);
  }
  t.equal(help.command, 'SHOW', 'SHOW HELP completes with tag SHOW');

  const r = await adminPsql('show help; show pools;', 'pgbouncer');
  t.equal(r.code, 0, 'psql runs SHOW HELP and SHOW POOLS in one query');
  t.match(r.stderr, /NOTICE:\s+Console usage\nDETAIL:\s+\n\tSHOW HELP\|/, 'psql prints the HELP notice and its DETAIL');
  t.match(r.stdout, /^busy\|app\|transaction\|/m, 'and the pool rows');
  const err = await adminPsql('SHOW VERSION; BOGUS; SHOW POOLS');
  t.equal(err.code, 1, 'psql stops on the unknown command');
  t.match(err.stderr, /ERROR:\s+Unsupported query against the admin database\nDETAIL:\s+"BOGUS" is not an admin command/);
  t.match(err.stdout, /^PgLynx /, 'statements before the error ran');
});

// ------------------------------------------------------------------ views

t.test('SHOW CONFIG, DATABASES, USERS, LISTS', async (t) => {
  const cfg = await show('CONFIG');
  t.same(cfg.fields.map((f) => f.name), ['key', 'value', 'default', 'changeable']);
  const byKey = new Map(cfg.rows.map((r) => [r.key, r]));
  t.same(byKey.get('port'), { key: 'port', value: String(port), default: '5432', changeable: 'no' }, 'port: value, default, not changeable');
  t.same(byKey.get('connect_timeout'), { key: 'connect_timeout', value: '5000', default: '1000', changeable: 'yes' });
  t.equal(byKey.get('admin_password')?.value, '********', 'the admin password is not shown');
  t.equal(byKey.get('autoreload')?.value, '', 'unset values are empty');
  const viaPsql = await adminPsql('SHOW CONFIG');
  t.match(viaPsql.stdout, /^idle_timeout\|600000\|600000\|yes$/m, 'psql sees the same rows');

  const dbs = await show('DATABASES');
  t.same(dbs.fields.map((f) => f.name), [
    'name', 'host', 'port', 'database', 'force_user', 'pool_size', 'min_pool_size', 'reserve_pool',
    'pool_mode', 'max_connections', 'current_connections', 'paused', 'disabled',
  ]);
  const busy = dbs.rows.find((r) => r.name === 'busy_shard_0_primary');
  t.match(busy, {
    host: '127.0.0.1', port: String(main.port), database: 'app', force_user: 'app', pool_size: '1',
    min_pool_size: '0', reserve_pool: '0', pool_mode: 'transaction', max_connections: '1', paused: '0', disabled: '0',
  }, 'one row per pool, named as PgCat names addresses');
  t.equal(dbs.rows.find((r) => r.name === 'sess_shard_0_primary')?.pool_mode, 'session');

  const users = await show('USERS');
  t.same(users.fields.map((f) => f.name), ['name', 'pool_mode']);
  t.equal(users.rows.length, 5, 'one row per pool user');
  t.ok(users.rows.some((r) => r.name === 'app' && r.pool_mode === 'session'));

  const lists = await show('LISTS');
  t.same(lists.rows.map((r) => r.list), [
    'databases', 'users', 'pools', 'free_clients', 'used_clients', 'login_clients',
    'free_servers', 'used_servers', 'dns_names', 'dns_zones', 'dns_queries', 'dns_pending',
  ]);
  const items = new Map(lists.rows.map((r) => [r.list, Number(r.items)]));
  t.equal(items.get('databases'), 5);
  t.equal(items.get('users'), 1);
  t.equal(items.get('pools'), 5);
  t.equal(items.get('used_clients'), 0, 'no client is connected (admin sessions are not pool clients)');
  t.equal(items.get('used_servers'), 0, 'no server is checked out');
});

// ------------------------------------------------------------------ counters

t.test('SHOW STATS moves by exactly the 100 queries a client ran', async (t) => {
  const c = await client('stats');
  t.teardown(() => c.end());
  const statsRow = (): Promise<Row> => rowOf('STATS', 'database', 'stats');
  const before = await statsRow();
  t.same((await show('STATS')).fields.map((f) => f.name), [
    'instance', 'database', 'user',
    'total_xact_count', 'total_query_count', 'total_received', 'total_sent',
    'total_xact_time', 'total_query_time', 'total_wait_time', 'total_errors',
    'avg_xact_count', 'avg_query_count', 'avg_recv', 'avg_sent', 'avg_errors',
    'avg_xact_time', 'avg_query_time', 'avg_wait_time',
  ]);
  for (let i = 0; i < 100; i++) await c.query('SELECT 1');
  const after = await statsRow();
  const delta = (col: string): number => num(after, col) - num(before, col);
  t.equal(after.instance, 'stats_shard_0_primary');
  t.equal(after.user, 'app');
  t.equal(delta('total_query_count'), 100, 'total_query_count moved by exactly 100');
  t.equal(delta('total_xact_count'), 100, 'total_xact_count moved by exactly 100');
  // PgCat's direction: sent = to Postgres (the 100 Query messages, 14 bytes each), received = from it.
  t.equal(delta('total_sent'), 100 * 14, 'total_sent counts exactly the Query messages sent on');
  t.ok(delta('total_received') > 0, 'total_received moved');
  t.ok(delta('total_query_time') > 0, 'total_query_time (ms, summed before truncating) moved');
  // Each total is truncated to whole ms, so their deltas may differ by 1 the other way.
  t.ok(delta('total_xact_time') + 1 >= delta('total_query_time'), 'transactions last at least as long as their queries');
  t.equal(delta('total_errors'), 0);
});

t.test("SHOW STATS times in PgCat's units: queries and transactions in ms, waits in µs", async (t) => {
  // pool `busy` has one server: b waits while a sleeps 300 ms.
  const a = await client('busy');
  const b = await client('busy');
  t.teardown(() => Promise.all([a.end(), b.end()]));
  const statsRow = (): Promise<Row> => rowOf('STATS', 'database', 'busy');
  const before = await statsRow();
  const sleeping = a.query('SELECT pg_sleep(0.3)');
  t.ok(await pollFor(async () => num(await rowOf('POOLS', 'database', 'busy'), 'sv_active') === 1), 'a holds the server');
  await b.query('SELECT 1');
  await sleeping;
  const after = await statsRow();
  const delta = (col: string): number => num(after, col) - num(before, col);
  t.equal(delta('total_query_count'), 2);
  t.ok(delta('total_query_time') >= 290 && delta('total_query_time') < 1000, `total_query_time is ms: ${delta('total_query_time')} for a 300 ms sleep`);
  t.ok(delta('total_xact_time') >= 290 && delta('total_xact_time') < 1000, `total_xact_time is ms: ${delta('total_xact_time')}`);
  t.ok(delta('total_wait_time') >= 100_000 && delta('total_wait_time') < 1_000_000, `total_wait_time is µs: ${delta('total_wait_time')} for a wait of ~300 ms`);
});

t.test("avg_wait_time is PgCat's: µs waited per second of the 15 s period", async (t) => {
  const stats = new TrafficStats();
  const start = Date.now();
  stats.roll(start);
  stats.totals.xactCount += 3;
  stats.totals.waitTimeUs += 1_500_000;
  stats.roll(start + 15_000);
  t.equal(stats.averages.waitTimeUs, 100_000, '1.5 s of waits over 15 s: 100000 µs per second (not per transaction)');
});

// ------------------------------------------------------------------ states

t.test('SHOW POOLS / CLIENTS / SERVERS while one client holds a transaction and one waits', async (t) => {
  const a = await client('busy', { application_name: 'holder' });
  const b = await client('busy', { application_name: 'waiter' });
  t.teardown(() => Promise.all([a.end(), b.end()]));
  await a.query('BEGIN');
  const aPid = (await a.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  const bQuery = b.query<{ x: number }>('SELECT 2 AS x');
  const busyPool = (): Promise<Row> => rowOf('POOLS', 'database', 'busy');
  t.ok(await pollFor(async () => num(await busyPool(), 'cl_waiting') === 1), 'the second client shows as waiting');
  await sleep(20);
  const p = await busyPool();
  t.match(p, { user: 'app', pool_mode: 'transaction', cl_idle: '0', cl_active: '1', cl_waiting: '1', cl_cancel_req: '0',
    sv_active: '1', sv_idle: '0', sv_used: '0', sv_tested: '0', sv_login: '0' });
  t.ok(num(p, 'maxwait') * 1e6 + num(p, 'maxwait_us') > 0, 'maxwait counts the waiting client');

  const clients = (await show('CLIENTS')).rows.filter((r) => r.database === 'busy');
  const holder = clients.find((r) => r.application_name === 'holder')!;
  const waiter = clients.find((r) => r.application_name === 'waiter')!;
  t.match(holder, { user: 'app', state: 'active', maxwait: '0', error_count: '0' });
  t.match(waiter, { state: 'waiting' });
  t.ok(num(waiter, 'maxwait') * 1e6 + num(waiter, 'maxwait_us') > 0, 'the waiter has waited (the wait still running counts)');
  const servers = (await show('SERVERS')).rows.filter((r) => r.database === 'busy');
  t.equal(servers.length, 1, 'pool_size 1: one server');
  t.match(servers[0], { type: 'S', user: 'app', state: 'active', addr: '127.0.0.1', port: String(main.port),
    remote_pid: String(aPid), banned: 'false', application_name: 'holder', close_needed: '0' });
  t.equal(servers[0].link, holder.client_id, "the server's link is the holder's client_id");

  await a.query('COMMIT');
  t.equal((await bQuery).rows[0].x, 2, 'the waiter runs once the transaction ends');
  t.match(await busyPool(), { cl_idle: '2', cl_active: '0', cl_waiting: '0', sv_active: '0', sv_idle: '1', maxwait: '0', maxwait_us: '0' });
  const idleServer = (await show('SERVERS')).rows.find((r) => r.database === 'busy');
  t.match(idleServer, { state: 'idle', link: null, application_name: '' });
});

t.test("SHOW CLIENTS: PgCat's columns, per-client counts, the admin sessions listed", async (t) => {
  const c1 = await client('stats', { application_name: 'app0' });
  const c2 = await client('stats', { application_name: 'app1' });
  let c1Open = true;
  t.teardown(() => Promise.all([c1Open ? c1.end() : null, c2.end()]));
  // PgCat's tests/ruby/stats_spec.rb: 7 queries, of which 4 transactions.
  for (const c of [c1, c2]) {
    for (const sql of ['SELECT 1', 'SELECT 2', 'SELECT 3', 'BEGIN', 'SELECT 4', 'SELECT 5', 'COMMIT']) await c.query(sql);
  }
  const r = await show('CLIENTS');
  t.same(r.fields.map((f) => [f.name, f.dataTypeID]), [
    ['client_id', 25], ['database', 25], ['user', 25], ['application_name', 25], ['state', 25],
    ['transaction_count', 1700], ['query_count', 1700], ['error_count', 1700], ['age_seconds', 1700],
    ['maxwait', 1700], ['maxwait_us', 1700],
  ], "PgCat's columns, order and types (text, numeric)");
  t.equal(r.rows.length, 3, 'two pool clients and this admin session');
  for (const name of ['app0', 'app1']) {
    const row = r.rows.find((x) => x.application_name === name)!;
    t.match(row, { database: 'stats', user: 'app', state: 'idle', transaction_count: '4', query_count: '7', error_count: '0', maxwait: '0' }, `${name}: 7 queries, 4 transactions`);
    t.match(row.client_id, /^0x[0-9A-F]{8}$/, "client_id as PgCat prints it ({:#010X})");
    t.ok(num(row, 'age_seconds') >= 0 && num(row, 'age_seconds') < 60, 'age_seconds');
  }
  const admins = r.rows.filter((x) => x.database === 'pgcat');
  t.equal(admins.length, 1, 'the admin session is listed, as PgCat lists it');
  t.match(admins[0], { user: 'admin', state: 'idle', transaction_count: '0', query_count: '0', client_id: /^0x[0-9A-F]{8}$/ });

  const second = await admin('pgbouncer');
  const both = (await show('CLIENTS')).rows.filter((x) => x.user === 'admin').map((x) => x.database).sort();
  t.same(both, ['pgbouncer', 'pgcat'], 'a second admin session (pgbouncer) is listed under its database');
  await second.end();
  t.ok(await pollFor(async () => (await show('CLIENTS')).rows.filter((x) => x.user === 'admin').length === 1), 'and leaves the list when it disconnects');
  c1Open = false;
  await c1.end();
  t.ok(await pollFor(async () => (await show('CLIENTS')).rows.length === 2), 'a pool client leaves the list when it disconnects');
});

t.test("SHOW SERVERS: PgCat's columns first, per-server traffic and prepared-statement cache", async (t) => {
  const r0 = await show('SERVERS');
  t.same(r0.fields.slice(0, 15).map((f) => [f.name, f.dataTypeID]), [
    ['server_id', 25], ['database_name', 25], ['user', 25], ['address_id', 25], ['application_name', 25], ['state', 25],
    ['transaction_count', 1700], ['query_count', 1700], ['bytes_sent', 1700], ['bytes_received', 1700], ['age_seconds', 1700],
    ['prepare_cache_hit', 1700], ['prepare_cache_miss', 1700], ['prepare_cache_eviction', 1700], ['prepare_cache_size', 1700],
  ], "PgCat's columns, order and types");
  const sum = async (db: string, col: string): Promise<number> =>
    (await show('SERVERS')).rows.filter((x) => x.database_name === db).reduce((n, x) => n + num(x, col), 0);

  const c = await client('stats');
  await c.query('SELECT 0'); // a server exists before the counting starts
  const before = { q: await sum('stats', 'query_count'), x: await sum('stats', 'transaction_count'), s: await sum('stats', 'bytes_sent'), r: await sum('stats', 'bytes_received') };
  for (let i = 0; i < 50; i++) await c.query('SELECT 1');
  await c.query('BEGIN');
  await c.query('SELECT 2');
  await c.query('COMMIT');
  t.equal((await sum('stats', 'query_count')) - before.q, 53, 'query_count: one per Query');
  t.equal((await sum('stats', 'transaction_count')) - before.x, 51, 'transaction_count: 50 autocommit + one BEGIN..COMMIT');
  t.ok((await sum('stats', 'bytes_sent')) - before.s >= 50 * 14, 'bytes_sent counts what went to Postgres');
  t.ok((await sum('stats', 'bytes_received')) - before.r > 50 * 14, 'bytes_received counts what came back');
  const row = (await show('SERVERS')).rows.find((x) => x.database_name === 'stats')!;
  t.match(row, { user: 'app', address_id: 'stats_shard_0_primary', state: 'idle', type: 'S', database: 'stats', banned: 'false' });
  t.match(row.server_id, /^0x[0-9A-F]{8}$/);
  t.equal(row.server_id, row.ptr, 'server_id is PgBouncer\'s ptr too');
  await c.end();

  const p = await client('rl');
  t.teardown(() => p.end());
  for (let i = 0; i < 3; i++) await p.query({ name: 'q', text: 'SELECT $1::int AS x', values: [i] });
  t.ok((await sum('rl', 'prepare_cache_miss')) >= 1, 'the first use of a statement on a server is a miss');
  t.ok((await sum('rl', 'prepare_cache_hit')) >= 2, 'later uses are hits');
  t.ok((await sum('rl', 'prepare_cache_size')) >= 1, 'the server holds it');
  t.equal(await sum('rl', 'prepare_cache_eviction'), 0, 'nothing evicted (cache of 10)');
});

t.test('SHOW CLIENTS counts the queries and transactions of a sharded pool\'s client too', async (t) => {
  // Two shards (databases app and postgres of one cluster): the executor path, not a direct server.
  const p4 = await startPglynx(
    configToml({
      port: await freePort(),
      pools: {
        sh: {
          pool_mode: 'transaction',
          query_parser_enabled: true,
          automatic_sharding_key: 't.id',
          users: [{ ...APP, pool_size: 1 }],
          shards: ['app', 'postgres'].map((database) => primaryShard(main, database)),
        },
      },
    }),
    { t, logLevel: 'warn' },
  );
  const c = await pgClient({ host: p4.host, port: p4.port, user: APP.username, password: APP.password, database: 'sh', application_name: 'sharded' });
  const a = await pgClient({ host: p4.host, port: p4.port, user: 'admin', password: 'admin', database: 'pgcat' });
  t.teardown(() => Promise.all([c.end(), a.end()]));
  for (const sql of ['SELECT 1', 'SELECT 2', 'SELECT 3', 'BEGIN', 'SELECT 4', 'SELECT 5', 'COMMIT']) await c.query(sql);
  const row = (await a.query<Row>('SHOW CLIENTS')).rows.find((r) => r.application_name === 'sharded');
  t.match(row, { database: 'sh', query_count: '7', transaction_count: '4' }, '7 queries, 4 transactions');
});

// ------------------------------------------------------------------ PAUSE / RESUME

t.test('PAUSE waits for the running transaction; new queries wait until RESUME', async (t) => {
  const a = await client('pz');
  const b = await client('pz');
  t.teardown(() => Promise.all([a.end(), b.end()]));
  let aDone = false;
  const aTx = a.query('BEGIN; INSERT INTO t_pause VALUES (1); SELECT pg_sleep(1); COMMIT').then(() => (aDone = true));
  t.ok(await pollFor(async () => num(await rowOf('POOLS', 'database', 'pz'), 'sv_active') === 1), 'the transaction is running');
  const started = Date.now();
  await adm.query('PAUSE pz');
  t.comment(`PAUSE took ${Date.now() - started} ms`);
  // The server commits before it answers COMMIT, and the pooler releases the
  // connection only on that answer: a row visible now proves PAUSE waited.
  const rows = Number((await main.query<{ n: string }>('SELECT count(*) AS n FROM t_pause', [], 'app'))[0].n);
  t.equal(rows, 1, 'PAUSE returned after the running transaction committed');
  await aTx;
  t.ok(aDone, 'and that transaction succeeded');
  t.equal((await rowOf('DATABASES', 'name', 'pz_shard_0_primary')).paused, '1', 'SHOW DATABASES shows the pool paused');

  let bResult: unknown = null;
  const bQuery = b.query<{ x: number }>('SELECT 3 AS x').then((r) => (bResult = r.rows[0].x), (e: Error) => (bResult = e));
  await sleep(1000); // over three times the pool's 300 ms checkout timeout
  t.equal(bResult, null, 'a query on the paused pool waits, it does not fail');
  t.equal((await rowOf('POOLS', 'database', 'pz')).cl_waiting, '1');
  const resumed = await adm.query('RESUME pz');
  t.equal(resumed.command, 'RESUME');
  await bQuery;
  t.equal(bResult, 3, 'after RESUME the waiting query runs');
  t.equal((await rowOf('DATABASES', 'name', 'pz_shard_0_primary')).paused, '0');

  // Whole-pooler and (db, user) forms; nothing is checked out, so PAUSE returns at once.
  await adm.query('PAUSE');
  t.ok((await show('DATABASES')).rows.every((r) => r.paused === '1'), 'PAUSE with no argument pauses every pool');
  await adm.query('RESUME');
  t.ok((await show('DATABASES')).rows.every((r) => r.paused === '0'), 'RESUME with no argument resumes them');
  t.equal((await adm.query('PAUSE stats, app')).command, 'PAUSE');
  t.equal((await rowOf('DATABASES', 'name', 'stats_shard_0_primary')).paused, '1', 'PAUSE db, user');
  t.equal((await rowOf('DATABASES', 'name', 'busy_shard_0_primary')).paused, '0', 'other pools keep running');
  await adm.query('RESUME "stats",app');
  t.equal((await rowOf('DATABASES', 'name', 'stats_shard_0_primary')).paused, '0', 'RESUME db,user (quoted identifier)');
  // PgCat's words and SQLSTATE (its admin_spec.rb expects PG::SystemError for PAUSE foo / PAUSE foo,bar).
  t.match(await errorOf(adm.query('PAUSE nosuchdb')), { code: '58000', message: 'No pool configured for database: nosuchdb' }, 'PAUSE of an unknown pool fails');
  t.match(await errorOf(adm.query('PAUSE foo,bar')), { code: '58000', message: 'No pool configured for database: foo, user: bar' });
  t.match(await errorOf(adm.query('RESUME stats, nobody')), { code: '58000', message: 'No pool configured for database: stats, user: nobody' }, 'RESUME of an unknown user fails');
});

// ------------------------------------------------------------------ RELOAD

t.test('RELOAD applies a new pool_size; an invalid file is refused and the old config serves', async (t) => {
  const rlRow = (): Promise<Row> => rowOf('DATABASES', 'name', 'rl_shard_0_primary');
  t.equal((await rlRow()).pool_size, '2');
  pooler.writeConfig(config(5));
  t.equal((await adm.query('RELOAD')).command, 'RELOAD');
  t.match(await rlRow(), { pool_size: '5', max_connections: '5' }, 'SHOW DATABASES shows the new size');

  pooler.writeConfig('[general]\nport = "not a number"\n');
  const err = await adm.query('RELOAD').then(() => null, (e: Error & { code?: string }) => e);
  t.equal(err?.code, 'F0000', 'RELOAD of an invalid file fails with F0000');
  t.match(err?.message, /RELOAD failed.*previous configuration/);
  t.equal((await rlRow()).pool_size, '5', 'the previous config is still shown');
  const c = await client('rl');
  t.equal((await c.query<{ x: number }>('SELECT 4 AS x')).rows[0].x, 4, 'and still serves clients');
  await c.end();
  const viaPsql = await adminPsql('RELOAD');
  t.equal(viaPsql.code, 1, 'psql sees the error too');
  t.match(viaPsql.stderr, /ERROR:\s+RELOAD failed/);
  pooler.writeConfig(config(5));
  t.equal((await adminPsql('RELOAD')).code, 0, 'a valid file reloads again');
});

// ------------------------------------------------------------------ SHUTDOWN

t.test('SHUTDOWN stops the pooler gracefully', async (t) => {
  const p2 = await startPglynx(configToml({ port: await freePort(), pools: { one: pool(1) } }), { t, logLevel: 'warn' });
  const c = await pgClient({ host: p2.host, port: p2.port, user: 'admin', password: 'admin', database: 'pgbouncer' });
  const r = await c.query('SHUTDOWN');
  t.equal(r.command, 'SHUTDOWN', 'SHUTDOWN is acknowledged');
  t.same(r.rows, [{ success: 't' }], "with PgCat's one row: success = t");
  const code = await Promise.race([p2.exited, sleep(10_000).then(() => 'timeout')]);
  t.equal(code, 0, 'the process exits with 0');
  await Promise.race([c.end().catch(() => {}), sleep(1000)]);
});

t.test('during a graceful shutdown the admin console stays open, as PgCat', async (t) => {
  // PgCat's tests/python/test_pgcat.py: with a transaction still running
  // after SIGINT, a new admin login works and so does an open admin
  // session; a new pool client is refused.
  const p3 = await startPglynx(configToml({ port: await freePort(), general: { shutdown_timeout: 10_000 }, pools: { one: pool(1) } }), { t, logLevel: 'warn' });
  const login = (database: string, user: string, password: string): Promise<pg.Client> =>
    pgClient({ host: p3.host, port: p3.port, user, password, database });
  const tx = await login('one', APP.username, APP.password);
  tx.on('error', () => undefined);
  const open = await login('pgcat', 'admin', 'admin');
  open.on('error', () => undefined);
  await tx.query('BEGIN');
  await tx.query('SELECT 1');
  process.kill(p3.pid, 'SIGINT');
  await sleep(300);
  t.equal((await open.query<Row>('SHOW DATABASES')).rows.length, 1, 'an open admin session still answers');
  const late = await login('pgbouncer', 'admin', 'admin');
  late.on('error', () => undefined);
  t.equal((await late.query<Row>('SHOW DATABASES')).rows[0].name, 'one_shard_0_primary', 'a new admin login is let in');
  t.equal(await codeOf(login('one', APP.username, APP.password)), '57P01', 'a new pool client is refused');
  await tx.query('COMMIT').catch(() => undefined);
  const code = await Promise.race([p3.exited, sleep(10_000).then(() => 'timeout')]);
  t.equal(code, 0, 'the pooler exits once the transaction is done');
  await Promise.all([tx, open, late].map((c) => Promise.race([c.end().catch(() => undefined), sleep(500)])));
});
