// Logins that reveal nothing and cannot hold the pooler (issue 11, points 5
// and 6), against a real Postgres 15:
// - an unknown user, an unknown pool and a pool user on the admin console
//   are challenged exactly like a real user (md5, or SCRAM with the same
//   salt on every attempt) and then get 28P01, as PgBouncer answers; the log
//   says the real reason; names echoed in errors and logs are cut to 63 bytes;
// - client_login_timeout closes a client that does not finish its login;
// - max_client_conn refuses the client past it with 53300, frees the slot
//   when a client leaves or times out, leaves room for the admin console,
//   and RELOAD changes it for new clients.
import type pg from 'pg';
import t from 'tap';
import { sleep } from './harness/wait.js';
import { primaryShard } from './harness/pool-config.js';
import { pgClient, psql } from './harness/clients.js';
import { configToml, startPglynx, type ConfigPool } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';
import { RawClient, RawServerError, errorFields, serialize } from './harness/raw-client.js';


const main = await startPostgres({
  auth: 'scram-sha-256',
  users: [{ name: 'app', password: 'apppw' }],
  databases: [{ name: 'app', owner: 'app' }],
  t,
});
const shards = [primaryShard(main, 'app')];
const appPool: ConfigPool = { pool_mode: 'transaction', users: [{ username: 'app', password: 'apppw', pool_size: 2 }], shards };

const LOGIN_TIMEOUT = 600;
const portA = await freePort();
const configA = (maxClientConn: number, loginTimeout = LOGIN_TIMEOUT): string =>
  configToml({ port: portA, general: { client_login_timeout: loginTimeout, max_client_conn: maxClientConn }, pools: { app: appPool } });
// info: the real reason of a failed login is logged at info.
const a = await startPglynx(configA(3), { t, logLevel: 'info' });
// SCRAM for users without their own auth_type: unknown users must get SCRAM too.
const portB = await freePort();
const b = await startPglynx(configToml({ port: portB, general: { auth_type: 'scram-sha-256' }, pools: { app: appPool } }), { t, logLevel: 'warn' });

interface Attempt {
  authCodes: number[];
  err: RawServerError | null;
}

/** A raw login (which answers the challenges it gets): the authentication requests seen and the error. */
async function rawLogin(port: number, user: string, database: string, password: string): Promise<Attempt> {
  const c = await RawClient.open('127.0.0.1', port);
  try {
    await c.login({ host: '127.0.0.1', port, user, database, password });
    return { authCodes: c.authCodes, err: null };
  } catch (err) {
    if (!(err instanceof RawServerError)) throw err;
    return { authCodes: c.authCodes, err };
  } finally {
    c.destroy();
  }
}

/** Up to the SCRAM server-first message: its salt and iteration count; then a bad proof, answered with an error. */
async function scramFirst(port: number, user: string, database: string): Promise<{ salt: string; iterations: string; err: Map<string, string> }> {
  const c = await RawClient.open('127.0.0.1', port);
  try {
    c.send(serialize.startup({ user, database }));
    const sasl = await c.next();
    if (sasl.type !== 'R' || sasl.body.readInt32BE(0) !== 10) throw new Error(`expected AuthenticationSASL, got ${sasl.type} ${sasl.body.readInt32BE(0)}`);
    const nonce = 'abcdefghijklmnopqrstuvwx';
    c.send(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', `n,,n=*,r=${nonce}`));
    const cont = await c.next();
    if (cont.type !== 'R' || cont.body.readInt32BE(0) !== 11) throw new Error(`expected AuthenticationSASLContinue, got ${cont.type}`);
    const first = new Map(cont.body.toString('utf8', 4).split(',').map((kv) => [kv[0]!, kv.slice(2)] as [string, string]));
    const proof = Buffer.alloc(32, 7).toString('base64');
    c.send(serialize.sendSCRAMClientFinalMessage(`c=biws,r=${first.get('r')},p=${proof}`));
    const e = await c.next();
    if (e.type !== 'E') throw new Error(`expected ErrorResponse, got ${e.type}`);
    return { salt: first.get('s') ?? '', iterations: first.get('i') ?? '', err: errorFields(e.body) };
  } finally {
    c.destroy();
  }
}

const appClient = (port = portA, o: Partial<pg.ClientConfig> = {}): Promise<pg.Client> =>
  pgClient({ host: '127.0.0.1', port, user: 'app', password: 'apppw', database: 'app', ...o });
const failure = (p: Promise<pg.Client>): Promise<(Error & { code?: string }) | null> =>
  p.then(
    (c) => c.end().then(() => null),
    (e: Error & { code?: string }) => e,
  );

// ------------------------------------------------------------------ point 5

t.test('md5: an unknown user or pool is challenged, then told its password is wrong, as a known user with a wrong password', async (t) => {
  const wrong = await rawLogin(portA, 'app', 'app', 'nope');
  t.same(wrong.authCodes, [5], 'a known user with a wrong password gets an MD5 challenge');
  t.equal(wrong.err?.code, '28P01');
  t.equal(wrong.err?.fields.get('M'), 'password authentication failed for user "app"');
  for (const [user, database, what] of [
    ['ghost', 'app', 'an unknown user of a known pool'],
    ['app', 'appdb', 'a known user of an unknown pool'],
    ['ghost', 'nowhere', 'an unknown user of an unknown pool'],
    ['app', 'pgcat', 'a pool user on the pgcat admin console'],
    ['app', 'pgbouncer', 'a pool user on the pgbouncer admin console'],
  ]) {
    const r = await rawLogin(portA, user!, database!, 'apppw');
    t.same(r.authCodes, [5], `${what}: the same MD5 challenge`);
    t.equal(r.err?.code, '28P01', `${what}: 28P01`);
    t.equal(r.err?.fields.get('M'), `password authentication failed for user "${user}"`, `${what}: the same message`);
    t.equal(r.err?.fields.get('S'), 'FATAL');
  }
  const viaPsql = await psql({ host: '127.0.0.1', port: portA, user: 'ghost', password: 'x', db: 'appdb', sql: 'SELECT 1' });
  t.match(viaPsql.stderr, /password authentication failed for user "ghost"/, `psql: ${viaPsql.stderr.trim()}`);
  t.notMatch(viaPsql.stderr, /No pool configured|appdb/, 'naming no pool');
  const viaPg = await failure(appClient(portA, { user: 'ghost', database: 'appdb' }));
  t.equal(viaPg?.code, '28P01', `node-postgres: ${viaPg?.message}`);
  // The admin console still answers its own user.
  const adm = await pgClient({ host: '127.0.0.1', port: portA, user: 'admin', password: 'admin', database: 'pgcat' });
  t.ok((await adm.query('SHOW VERSION')).rows.length === 1, 'the admin user logs in to the console');
  await adm.end();
});

t.test('the log says why; names are cut to 63 bytes in errors and logs', async (t) => {
  const from = a.output().length;
  const long = `u${'x'.repeat(4500)}`;
  const r = await rawLogin(portA, long, `d${'y'.repeat(4500)}`, 'pw');
  t.equal(r.err?.code, '28P01');
  const m = r.err?.fields.get('M') ?? '';
  t.equal(m, `password authentication failed for user "u${'x'.repeat(62)}"`, 'the user name in the error is cut to 63 bytes');
  // Multi-byte names are cut on a character boundary.
  const wide = await rawLogin(portA, 'é'.repeat(100), 'app', 'pw');
  t.equal(wide.err?.fields.get('M'), `password authentication failed for user "${'é'.repeat(31)}"`, 'on a character boundary');
  await rawLogin(portA, 'ghost', 'appdb', 'pw');
  await a.waitForOutput(/no pool configured for database \\"appdb\\" and user \\"ghost\\".*client authentication failed/, 5000, from);
  await a.waitForOutput(/wrong password.*client authentication failed/, 5000, 0);
  const logged = a.output().slice(from);
  t.notMatch(logged, 'x'.repeat(64), 'no log line carries more than 63 bytes of the long user name');
  t.notMatch(logged, 'y'.repeat(64), 'nor of the long database name');
  t.pass('the real reason (no pool configured for database "appdb" and user "ghost") is in the log');
});

t.test('SCRAM: an unknown user gets the same exchange, with a salt that does not change between attempts', async (t) => {
  const known = await rawLogin(portB, 'app', 'app', 'apppw');
  t.equal(known.err, null, 'the known user logs in with SCRAM');
  t.same(known.authCodes, [10, 11, 12, 0]);
  const wrong = await rawLogin(portB, 'app', 'app', 'bad');
  t.same(wrong.authCodes, [10, 11], 'wrong password: SASL, SASLContinue, then the error');
  t.equal(wrong.err?.code, '28P01');
  const ghost = await rawLogin(portB, 'ghost', 'appdb', 'bad');
  t.same(ghost.authCodes, [10, 11], 'an unknown user and pool: the same steps');
  t.equal(ghost.err?.code, '28P01');
  t.equal(ghost.err?.fields.get('M'), 'password authentication failed for user "ghost"');

  const k1 = await scramFirst(portB, 'app', 'app');
  const k2 = await scramFirst(portB, 'app', 'app');
  const g1 = await scramFirst(portB, 'ghost', 'app');
  const g2 = await scramFirst(portB, 'ghost', 'app');
  const h1 = await scramFirst(portB, 'ghost2', 'app');
  t.equal(k1.salt, k2.salt, 'a known user: the same salt on every attempt');
  t.equal(g1.salt, g2.salt, 'an unknown user: the same salt on every attempt too');
  t.not(g1.salt, h1.salt, 'a salt of its own for each unknown user');
  t.equal(Buffer.from(g1.salt, 'base64').length, Buffer.from(k1.salt, 'base64').length, 'salts of the same length');
  t.equal(g1.iterations, k1.iterations, `the same iteration count (${k1.iterations})`);
  t.equal(g1.err.get('C'), '28P01');
  t.equal(k1.err.get('C'), '28P01');
});

// ------------------------------------------------------------------ point 6

/** Resolves when the server closes `c` (the elapsed ms), or rejects after `ms`. */
async function closedWithin(c: RawClient, ms: number): Promise<number> {
  const started = Date.now();
  await Promise.race([c.closed, sleep(ms).then(() => Promise.reject(new Error(`still open after ${ms} ms`)))]);
  return Date.now() - started;
}

t.test('client_login_timeout closes a client that sent 3 bytes of its startup packet', async (t) => {
  const c = await RawClient.open('127.0.0.1', portA);
  c.send(Buffer.from([0, 0, 0]));
  const elapsed = await closedWithin(c, 5000).catch((e: Error) => (t.fail(e.message), -1));
  c.destroy();
  t.ok(elapsed >= LOGIN_TIMEOUT - 100, `not before client_login_timeout (${elapsed} ms)`);
  t.ok(elapsed < LOGIN_TIMEOUT + 2000, `closed soon after client_login_timeout = ${LOGIN_TIMEOUT} ms (${elapsed} ms)`);

  // One that waits at the password request is closed too, and told why.
  const d = await RawClient.open('127.0.0.1', portA);
  d.send(serialize.startup({ user: 'app', database: 'app' }));
  const msgs = await d.readUntilClosed(5000);
  d.destroy();
  t.same(msgs.map((m) => m.type), ['R', 'E'], 'an MD5 request, then an error once the time is up');
  t.match(errorFields(msgs[1]!.body).get('M'), /client_login_timeout/);
});

t.test('max_client_conn: the client past it gets 53300; a slot frees when a client leaves or times out', async (t) => {
  const clients = [await appClient(), await appClient(), await appClient()];
  t.teardown(() => Promise.all(clients.map((c) => c.end().catch(() => {}))));
  const extra = await failure(appClient());
  t.equal(extra?.code, '53300', `node-postgres, the 4th client: ${extra?.code} ${extra?.message}`);
  t.equal(extra?.message, 'sorry, too many clients already');
  const viaPsql = await psql({ host: '127.0.0.1', port: portA, user: 'app', password: 'apppw', db: 'app', sql: 'SELECT 1' });
  t.not(viaPsql.code, 0, 'psql is refused');
  t.match(viaPsql.stderr, /sorry, too many clients already/, `psql says why: ${viaPsql.stderr.trim()}`);
  // Refused before any password exchange, right after the startup packet.
  const raw = await rawLogin(portA, 'app', 'app', 'apppw');
  t.same(raw.authCodes, [], 'no challenge');
  t.equal(raw.err?.code, '53300');

  // The operator still gets in.
  const adm = await pgClient({ host: '127.0.0.1', port: portA, user: 'admin', password: 'admin', database: 'pgcat' });
  t.equal((await adm.query('SHOW VERSION')).rows.length, 1, 'the admin console logs in past the limit');
  await adm.end();

  for (const c of clients) t.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'the clients inside are served');
  await clients.pop()!.end();
  let again: pg.Client | null = null;
  for (let i = 0; i < 20 && !again; i++) again = await appClient().catch(() => sleep(50).then(() => null));
  t.ok(again, 'once one left, a new client gets in');
  if (again) clients.push(again);
  await Promise.all(clients.splice(0).map((c) => c.end()));

  // Half-sent startup packets hold slots only until client_login_timeout.
  const silent = await Promise.all([0, 1, 2].map(() => RawClient.open('127.0.0.1', portA)));
  for (const s of silent) s.send(Buffer.from([0, 0, 0]));
  await sleep(100);
  t.equal((await failure(appClient()))?.code, '53300', 'three silent sockets fill the slots');
  await Promise.all(silent.map((s) => closedWithin(s, 5000).catch(() => -1)));
  for (const s of silent) s.destroy();
  const after = await failure(appClient());
  t.equal(after, null, `after client_login_timeout closed them, a client gets in (${after?.message ?? 'ok'})`);
});

t.test('RELOAD applies new max_client_conn and client_login_timeout to new clients', async (t) => {
  const clients = [await appClient(), await appClient(), await appClient()];
  t.teardown(() => Promise.all(clients.map((c) => c.end().catch(() => {}))));
  t.equal((await failure(appClient()))?.code, '53300', 'the 4th is refused with max_client_conn = 3');
  a.writeConfig(configA(4, 300));
  const adm = await pgClient({ host: '127.0.0.1', port: portA, user: 'admin', password: 'admin', database: 'pgcat' });
  await adm.query('RELOAD');
  await adm.end();
  const fourth = await appClient();
  clients.push(fourth);
  t.equal((await fourth.query('SELECT 1 AS one')).rows[0].one, 1, 'with max_client_conn = 4 the 4th gets in');
  await Promise.all(clients.splice(0).map((c) => c.end()));
  const c = await RawClient.open('127.0.0.1', portA);
  c.send(Buffer.from([0, 0, 0]));
  const elapsed = await closedWithin(c, 5000).catch(() => -1);
  c.destroy();
  t.ok(elapsed >= 200 && elapsed < 550, `the new client_login_timeout (300 ms) applies (closed after ${elapsed} ms)`);
});

t.test('unlimited by default, as PgCat', async (t) => {
  const clients: pg.Client[] = [];
  t.teardown(() => Promise.all(clients.map((c) => c.end().catch(() => {}))));
  for (let i = 0; i < 6; i++) clients.push(await appClient(portB));
  t.equal(clients.length, 6, 'six clients on a pooler without max_client_conn');
});
