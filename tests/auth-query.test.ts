// auth_query passthrough against real Postgres 15 clusters: users the
// config does not list (or lists without a password) log in with the
// password the server stores, checked through the pooler's MD5 or SCRAM
// challenge, and are then served by a pool that logs into the server as
// them (with the stored md5 hash, or with the SCRAM ClientKey the client's
// proof revealed).
//
// Fixtures: an md5 cluster (password_encryption = md5, the PgCat docs'
// SECURITY DEFINER lookup function run by an unprivileged auth user, '$1'
// quoted as PgCat writes it) and a SCRAM cluster (the PgBouncer-style bare
// $1 against pg_shadow, run by a superuser, set in [general] and inherited).
import pg from 'pg';
import t from 'tap';
import { sleep } from './harness/wait.js';
import { primaryShard } from './harness/pool-config.js';
import { pgClient, psql } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres, type PgCluster } from './harness/postgres.js';
import { RawClient } from './harness/raw-client.js';
import { authQuerySql } from '../pooler/auth/auth-query-sql.js';
import { AuthQueryCache } from '../pooler/auth/auth-query-cache.js';
import type { AuthQueryTarget, StoredSecret } from '../pooler/auth/auth-query.js';

/** pooler/auth/auth-query-cache.ts AUTH_QUERY_CACHE_MS plus a margin. */
const CACHE_EXPIRY_MS = 1300;

const ALICE = { name: 'alice', password: 'alice pw' };
const OHARA = { name: "o'hara", password: "it's me" }; // a quote in the name: the query must quote it
const CAROL = { name: 'carol', password: 'carolpw' };
const BOB = { name: 'bob', password: 'bob pw' };
const DAVE = { name: 'dave', password: 'davepw' };
const NOPW = { name: 'nopw', password: 'nopwpw' };

const [md5c, scramc] = await Promise.all([
  startPostgres({ auth: 'md5', users: [ALICE, OHARA, CAROL, { name: 'lookup', password: 'lookuppw' }, { name: 'cfg', password: 'cfgpw' }], t }),
  startPostgres({
    auth: 'scram-sha-256',
    users: [BOB, DAVE, NOPW, { name: 'authq', password: 'authqpw', superuser: true }, { name: 'cfg', password: 'cfgpw' }],
    t,
  }),
]);
// The PgCat docs' way: only this function may read pg_shadow, and the auth user may only call it.
await md5c.query(`CREATE FUNCTION public.user_lookup(in i_username text, out uname text, out phash text)
  RETURNS record AS $$ SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = i_username $$
  LANGUAGE sql SECURITY DEFINER`);
await md5c.query('REVOKE ALL ON FUNCTION public.user_lookup(text) FROM public');
await md5c.query('GRANT EXECUTE ON FUNCTION public.user_lookup(text) TO lookup');

const shard = (c: PgCluster) => [primaryShard(c)];

const configText = configToml({
  port: await freePort(),
  general: {
    connect_timeout: 5000,
    auth_query: 'SELECT usename, passwd FROM pg_shadow WHERE usename = $1',
    auth_query_user: 'authq',
    auth_query_password: 'authqpw',
  },
  pools: {
    md5db: {
      pool_mode: 'transaction',
      auth_query: "SELECT * FROM public.user_lookup('$1')",
      auth_query_user: 'lookup',
      auth_query_password: 'lookuppw',
      users: [{ username: 'cfg', password: 'cfgpw', pool_size: 2 }],
      shards: shard(md5c),
    },
    scramdb: {
      pool_mode: 'transaction',
      // nopw is listed without a password: auth_query supplies it.
      users: [{ username: 'cfg', password: 'cfgpw', pool_size: 2 }, { username: NOPW.name, pool_size: 1 }],
      shards: shard(scramc),
    },
  },
});
const pooler = await startPglynx(configText, { t, logLevel: 'info' });

const connect = (database: string, user: string, password: string): Promise<pg.Client> =>
  pgClient({ host: pooler.host, port: pooler.port, database, user, password });

/** Log in and run `sql`; resolves with the first row or the error. */
async function attempt(
  database: string,
  user: string,
  password: string,
  sql = 'SELECT current_user AS u, session_user AS s',
): Promise<{ row: pg.QueryResultRow | null; err: (Error & { code?: string }) | null }> {
  try {
    const c = await connect(database, user, password);
    try {
      return { row: (await c.query(sql)).rows[0], err: null };
    } finally {
      await c.end().catch(() => {});
    }
  } catch (err) {
    return { row: null, err: err as Error & { code?: string } };
  }
}

const psqlAs = (database: string, user: string, password: string, sql = 'SELECT current_user') =>
  psql({ host: pooler.host, port: pooler.port, user, password, db: database, sql });

/** Server backends of `user` on cluster `c` (pg_stat_activity). */
/** The authentication requests a raw login with a wrong password gets before its error. */
async function challenges(database: string, user: string): Promise<number[]> {
  const c = await RawClient.open(pooler.host, pooler.port);
  try {
    await c.login({ host: pooler.host, port: pooler.port, database, user, password: 'not the password' });
  } catch {
    // 28P01, expected
  }
  c.destroy();
  return c.authCodes;
}

async function backendsOf(c: PgCluster, user: string): Promise<number> {
  const [{ n }] = await c.query<{ n: string }>(
    "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend'",
    [user],
  );
  return Number(n);
}

t.test('authQuerySql: the user name becomes one quoted literal, in both PgCat and PgBouncer spellings', async (t) => {
  t.equal(authQuerySql("SELECT * FROM f('$1')", "o'hara"), "SELECT * FROM f('o''hara')", "PgCat's quoted '$1'");
  t.equal(authQuerySql('SELECT a, b FROM t WHERE u = $1', 'bob'), "SELECT a, b FROM t WHERE u = 'bob'", "PgBouncer's bare $1");
  t.equal(authQuerySql('SELECT $1, $10', 'x'), "SELECT 'x', $10", '$10 is not $1');
  t.equal(authQuerySql('SELECT $1', 'a\\b'), "SELECT  E'a\\\\b'", 'a backslash makes an E string with the backslash doubled');
  const sql = authQuerySql('SELECT $1', "x' OR '1'='1");
  t.equal(sql, "SELECT 'x'' OR ''1''=''1'", 'quotes cannot end the literal');
  const [{ v }] = await scramc.query<{ v: string }>(authQuerySql('SELECT $1 AS v', "a'b\\c"));
  t.equal(v, "a'b\\c", 'Postgres reads the literal back as the name');
});

t.test('fixtures: each cluster stores the kind of secret under test', async (t) => {
  const secret = (c: PgCluster, role: string) =>
    c.query<{ p: string }>('SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1', [role]).then((r) => r[0].p);
  t.match(await secret(md5c, ALICE.name), /^md5[0-9a-f]{32}$/, 'md5 cluster: md5 hashes');
  t.match(await secret(scramc, BOB.name), /^SCRAM-SHA-256\$/, 'SCRAM cluster: SCRAM verifiers');
});

for (const [label, database, user] of [
  ['md5', 'md5db', ALICE],
  ['SCRAM', 'scramdb', BOB],
] as const) {
  t.test(`${label}: a user the config does not list logs in with the server's password`, async (t) => {
    const pq = await psqlAs(database, user.name, user.password);
    t.equal(pq.code, 0, `psql logs in (${pq.stderr.trim()})`);
    t.equal(pq.stdout.trim(), user.name, 'psql: the query runs as that user');

    const { row, err } = await attempt(database, user.name, user.password);
    t.error(err, 'node-postgres logs in');
    t.same(row, { u: user.name, s: user.name }, 'node-postgres: current_user and session_user are that user');

    // Several server connections, each logged in as the user on its own (pool_size 2 from the pool's first user).
    const a = await connect(database, user.name, user.password);
    const b = await connect(database, user.name, user.password);
    t.teardown(() => Promise.all([a.end(), b.end()]));
    await Promise.all([a.query('BEGIN'), b.query('BEGIN')]);
    const pids = await Promise.all([a, b].map(async (c) => (await c.query('SELECT pg_backend_pid() AS p, current_user AS u')).rows[0]));
    await Promise.all([a.query('COMMIT'), b.query('COMMIT')]);
    t.not(pids[0].p, pids[1].p, 'two clients in transactions use two server connections');
    t.same(pids.map((r) => r.u), [user.name, user.name], 'both run as the user');

    // Cut every server connection: the pool logs in again without any client password.
    await (label === 'md5' ? md5c : scramc).query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [user.name]);
    await sleep(100);
    const again = await a.query('SELECT current_user AS u').then((r) => r.rows[0].u as string, (e: Error) => `error: ${e.message}`);
    t.comment(`first query after the cut: ${again}`);
    const { row: after, err: afterErr } = await attempt(database, user.name, user.password);
    t.error(afterErr, 'after the server connections died, a new client still gets served');
    t.same(after, { u: user.name, s: user.name }, 'by a fresh server connection logged in as the user');
  });

  t.test(`${label}: wrong password and unknown user get 28P01`, async (t) => {
    const wrong = await attempt(database, user.name, 'not the password');
    t.equal(wrong.err?.code, '28P01', `node-postgres, wrong password: 28P01 (${wrong.err?.message})`);
    const wrongPsql = await psqlAs(database, user.name, 'not the password');
    t.not(wrongPsql.code, 0, 'psql, wrong password: fails');
    t.match(wrongPsql.stderr, /password authentication failed/, 'with the password error');

    const unknown = await attempt(database, 'nobody_here', 'whatever');
    t.equal(unknown.err?.code, '28P01', `node-postgres, unknown user: 28P01 like a wrong password (${unknown.err?.message})`);
    const unknownPsql = await psqlAs(database, 'nobody_here', 'whatever');
    t.match(unknownPsql.stderr, /password authentication failed/, 'psql, unknown user: the same error');
    // The same challenge as the pool's known users (SCRAM on the SCRAM server), not always md5.
    const known = await challenges(database, user.name);
    t.same(await challenges(database, 'nobody_here'), known, `unknown user: the same authentication requests as a known one (${known.join(',')})`);

    const { err } = await attempt(database, user.name, user.password);
    t.error(err, 'the right password still works afterwards');
  });
}

t.test('md5: a user name with a quote reaches the auth_query quoted', async (t) => {
  const { row, err } = await attempt('md5db', OHARA.name, OHARA.password);
  t.error(err, "o'hara logs in");
  t.same(row, { u: OHARA.name, s: OHARA.name }, "and runs as o'hara");
  const injection = await attempt('md5db', "x') UNION SELECT 'cfg', passwd FROM pg_shadow WHERE usename = 'cfg' --", 'cfgpw');
  t.equal(injection.err?.code, '28P01', `a user name carrying SQL is only a name (${injection.err?.message})`);
});

t.test('a user listed without a password authenticates through auth_query', async (t) => {
  const { row, err } = await attempt('scramdb', NOPW.name, NOPW.password);
  t.error(err, 'nopw logs in with the password the server stores');
  t.same(row, { u: NOPW.name, s: NOPW.name }, 'and runs as nopw');
  const wrong = await attempt('scramdb', NOPW.name, 'bad');
  t.equal(wrong.err?.code, '28P01', 'a wrong password fails');
  const cfg = await attempt('scramdb', 'cfg', 'cfgpw');
  t.error(cfg.err, 'a user with a configured password logs in as before');
});

t.test('a user dropped on the server cannot log in any more', async (t) => {
  t.error((await attempt('md5db', CAROL.name, CAROL.password)).err, 'carol logs in');
  await md5c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [CAROL.name]);
  await md5c.query('DROP OWNED BY carol');
  await md5c.query('DROP ROLE carol');
  await sleep(CACHE_EXPIRY_MS);
  const { err } = await attempt('md5db', CAROL.name, CAROL.password);
  t.equal(err?.code, '28P01', `after DROP ROLE: 28P01 (${err?.message})`);
});

t.test('SCRAM: a password changed on the server applies to logins and to new server connections', async (t) => {
  t.error((await attempt('scramdb', DAVE.name, DAVE.password)).err, 'dave logs in with the old password');
  await scramc.query("ALTER ROLE dave PASSWORD 'dave new'");
  await scramc.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [DAVE.name]);
  await sleep(CACHE_EXPIRY_MS);
  const old = await attempt('scramdb', DAVE.name, DAVE.password);
  t.equal(old.err?.code, '28P01', 'the old password fails');
  const { row, err } = await attempt('scramdb', DAVE.name, 'dave new');
  t.error(err, 'the new password works, and the pool logs into the server with the new keys');
  t.same(row, { u: DAVE.name, s: DAVE.name }, 'as dave');
  t.ok((await backendsOf(scramc, DAVE.name)) >= 1, 'dave has a server connection');
});

t.test('md5: a password changed on the server works at once: a mismatch fetches the secret again (PgCat)', async (t) => {
  await md5c.query("CREATE ROLE erin LOGIN PASSWORD 'erin pw'");
  t.error((await attempt('md5db', 'erin', 'erin pw')).err, 'erin logs in: her secret is cached');
  await md5c.query("ALTER ROLE erin PASSWORD 'erin new'");
  // Her server connections must log in again, with the new hash.
  await md5c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', ['erin']);
  const { row, err } = await attempt('md5db', 'erin', 'erin new');
  t.error(err, 'the new password works without waiting for the cache to expire');
  t.same(row, { u: 'erin', s: 'erin' }, 'served by a server connection logged in with the new hash');
  t.equal((await attempt('md5db', 'erin', 'erin pw')).err?.code, '28P01', 'the old password fails');
  t.equal((await attempt('md5db', 'erin', 'not it')).err?.code, '28P01', 'a wrong password still fails');
  const pq = await psqlAs('md5db', 'erin', 'erin new');
  t.equal(pq.stdout.trim(), 'erin', `psql logs in with the new password (${pq.stderr.trim()})`);
});

t.test('SCRAM: a changed password is refetched on the first mismatch, so the next login succeeds', async (t) => {
  await scramc.query("CREATE ROLE gina LOGIN PASSWORD 'gina pw'");
  t.error((await attempt('scramdb', 'gina', 'gina pw')).err, 'gina logs in: her verifier is cached');
  await scramc.query("ALTER ROLE gina PASSWORD 'gina new'");
  // The proof was computed with the old verifier's salt: it cannot be checked against the new one.
  t.equal((await attempt('scramdb', 'gina', 'gina new')).err?.code, '28P01', 'the first login with the new password fails');
  const { row, err } = await attempt('scramdb', 'gina', 'gina new');
  t.error(err, 'the next one succeeds without waiting for the cache to expire');
  t.equal(row?.u, 'gina');
});

t.test('AuthQueryCache: refetches after a mismatch are shared and limited to one per user per cache lifetime', async (t) => {
  let fetches = 0;
  const fetch = async (): Promise<StoredSecret | null> => {
    fetches += 1;
    await sleep(20);
    return { kind: 'md5', hash: `md5${'0'.repeat(31)}${fetches % 10}` };
  };
  const quiet = { warn: () => {}, error: () => {} };
  const cache = new AuthQueryCache(quiet as never, fetch, 200);
  const target = { server: {} as AuthQueryTarget['server'], query: 'q' };
  await cache.lookup(target, 'db', 'u');
  t.equal(fetches, 1, 'a login fetches once');
  await Promise.all(Array.from({ length: 10 }, () => cache.refresh(target, 'db', 'u')));
  t.equal(fetches, 2, 'ten concurrent mismatches share one refetch');
  for (let i = 0; i < 10; i++) {
    await cache.lookup(target, 'db', 'u');
    await cache.refresh(target, 'db', 'u');
  }
  t.equal(fetches, 2, 'more wrong passwords before expiry: no more auth queries');
  await sleep(250);
  await cache.lookup(target, 'db', 'u');
  await cache.refresh(target, 'db', 'u');
  await cache.refresh(target, 'db', 'u');
  t.equal(fetches, 4, 'after expiry: one regular fetch and one refetch');
  t.not(await cache.lookup(target, 'db', 'other'), null, 'other users are not limited by it');
  t.equal(fetches, 5);
});

t.test('reload keeps the pools of auth_query users', async (t) => {
  const c = await connect('scramdb', BOB.name, BOB.password);
  t.teardown(() => c.end());
  await c.query('BEGIN');
  const before = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p as number;
  const from = pooler.output().length;
  pooler.writeConfig(configText.replace('connect_timeout = 5000', 'connect_timeout = 6000'));
  process.kill(pooler.pid, 'SIGHUP');
  await pooler.waitForOutput('config reloaded', 10_000, from);
  const inside = (await c.query('SELECT pg_backend_pid() AS p, current_user AS u')).rows[0];
  await c.query('COMMIT');
  t.same(inside, { p: before, u: BOB.name }, 'the open transaction carries on on its server connection');
  const { row, err } = await attempt('scramdb', BOB.name, BOB.password);
  t.error(err, 'a new client of the same user logs in after the reload');
  t.equal(row?.u, BOB.name, 'and runs as bob');
});

t.test('the auth_query user may log in like any user', async (t) => {
  // authq's own secret comes back from its auth_query like anyone's: it may log in as a user.
  const { row, err } = await attempt('scramdb', 'authq', 'authqpw');
  t.error(err, 'authq logs in through auth_query');
  t.equal(row?.u, 'authq', 'as authq');
  t.notMatch(pooler.output(), /auth_query failed/, 'no auth_query failed along the way');
  t.notMatch(pooler.output(), /auth_query\w*: not implemented/, 'the auth_query keys count as implemented');
});
