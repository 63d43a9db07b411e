// The pooler's own server connections (the role probe, auth_query) are
// opened like the pool's: over server_tls, and logged in with the
// credentials the pool's server connections use, an auth_query user's SCRAM
// keys included. Two Postgres 15 clusters, each with both servers of the
// pools (role "auto", so a query for the primary needs a probe answer):
// - database "app" accepts only TLS over TCP (hostssl; plain text rejected);
// - database "ptdb" also accepts plain text, so only the credentials are
//   under test there.
// "pat" is in no config: an auth_query login teaches the pooler his SCRAM
// keys, which must then serve the probe of his pools too (his verifier is
// the same on both clusters, as a replica's would be).
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import t from 'tap';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx, type ConfigPool } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres, type PgCluster } from './harness/postgres.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const APP = { name: 'app', password: 'apppw' };
const PAT = { name: 'pat', password: 'pat pw' };
const AUTHQ = { name: 'authq', password: 'authqpw', superuser: true };
const PROBE_APP = 'pglynx role probe';

// A self-signed certificate for the clusters (the pooler does not verify it here; tls.test.ts covers verification).
const certDir = mkdtempSync(path.join(os.tmpdir(), 'pglynx-probe-tls-'));
t.teardown(() => rmSync(certDir, { recursive: true, force: true }));
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
  '-keyout', 'pg.key', '-out', 'pg.crt', '-days', '2', '-subj', '/CN=127.0.0.1'], { cwd: certDir, stdio: 'pipe' });
chmodSync(path.join(certDir, 'pg.key'), 0o600);
if (process.getuid?.() === 0) {
  // Postgres runs as the postgres OS user when we are root: its key must be its own.
  const id = (flag: string): number => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }));
  for (const p of [certDir, path.join(certDir, 'pg.key'), path.join(certDir, 'pg.crt')]) chownSync(p, id('-u'), id('-g'));
}

const HBA = [
  'local     all  all                trust',
  'hostssl   all  all 127.0.0.1/32   scram-sha-256',
  'host      ptdb all 127.0.0.1/32   scram-sha-256',
  'hostnossl all  all 127.0.0.1/32   reject',
  '',
].join('\n');

async function cluster(users: { name: string; password: string; superuser?: boolean }[]): Promise<PgCluster> {
  const c = await startPostgres({
    auth: 'scram-sha-256',
    users,
    databases: [{ name: 'app', owner: APP.name }, { name: 'ptdb', owner: APP.name }],
    settings: { ssl: 'on', ssl_cert_file: path.join(certDir, 'pg.crt'), ssl_key_file: path.join(certDir, 'pg.key') },
    t,
  });
  writeFileSync(path.join(c.dataDir, 'pg_hba.conf'), HBA);
  await c.query('SELECT pg_reload_conf()');
  return c;
}

const [a, b] = await Promise.all([cluster([APP, AUTHQ, PAT]), cluster([APP, AUTHQ])]);
const [{ verifier }] = await a.query<{ verifier: string }>('SELECT rolpassword AS verifier FROM pg_authid WHERE rolname = $1', [PAT.name]);
await b.query(`CREATE ROLE pat LOGIN PASSWORD '${verifier}'`);

/** Both clusters, both role auto (both are primaries); default_role primary: a query waits for a probe to find one. */
const pool = (database: string, extra: Partial<ConfigPool> = {}): ConfigPool => ({
  pool_mode: 'transaction',
  default_role: 'primary',
  users: [{ username: APP.name, password: APP.password, pool_size: 2 }],
  shards: [{ database, servers: [['127.0.0.1', a.port, 'auto'], ['127.0.0.1', b.port, 'auto']] }],
  ...extra,
});
const authQuery = {
  auth_query: 'SELECT usename, passwd FROM pg_shadow WHERE usename = $1',
  auth_query_user: AUTHQ.name,
  auth_query_password: AUTHQ.password,
};
const pooler = await startPglynx(
  configToml({
    port: await freePort(),
    general: { server_tls: true, connect_timeout: 3000, ban_time: 60 },
    pools: { app: pool('app', authQuery), ptdb: pool('ptdb', authQuery) },
  }),
  { t, logLevel: 'info' },
);

const connect = (database: string, user = APP): Promise<pg.Client> =>
  pgClient({ port: pooler.port, user: user.name, password: user.password, database, query_timeout: 10_000 });

/** Both clusters are primaries: the probe may name either first. */
const onEither = (user: string): RegExp => new RegExp(`^${user} on (${a.port}|${b.port})$`);

/** Where a query for the primary runs, or the error it gets. */
async function primaryPort(database: string, user = APP): Promise<string> {
  const c = await connect(database, user);
  try {
    const r = await c.query<{ port: number; u: string }>('SELECT inet_server_port() AS port, current_user AS u');
    return `${r.rows[0].u} on ${r.rows[0].port}`;
  } catch (err) {
    return `${(err as { code?: string }).code}: ${(err as Error).message}`;
  } finally {
    await c.end().catch(() => undefined);
  }
}

t.test('fixtures: database app refuses plain text, ptdb accepts it', async (t) => {
  const plain = (database: string) =>
    pgClient({ port: a.port, user: APP.name, password: APP.password, database, ssl: false }).then(
      (c) => c.end().then(() => 'connected'),
      (e: Error) => e.message,
    );
  let app = await plain('app');
  for (let i = 0; i < 50 && app === 'connected'; i++) {
    await sleep(100); // pg_reload_conf() is asynchronous
    app = await plain('app');
  }
  t.match(app, /no encryption/, `app: ${app}`);
  t.equal(await plain('ptdb'), 'connected', 'ptdb: plain text logs in');
});

t.test('the role probe runs over server_tls', async (t) => {
  t.match(await primaryPort('app'), onEither('app'), 'a query for the primary finds one on a TLS-only database');
  const probes = await a.query<{ ssl: boolean; datname: string }>(
    'SELECT s.ssl, a.datname FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1',
    [PROBE_APP],
  );
  t.ok(probes.some((p) => p.datname === 'app'), 'a probe connection to database app is open');
  t.ok(probes.every((p) => p.ssl), 'every probe connection is TLS');
  t.notMatch(pooler.output(), /server banned|probe failed/, 'no probe failed, no server banned');
});

t.test('the probe keeps its connection between probes', async (t) => {
  const pids = async (): Promise<number[]> =>
    (await b.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid', [PROBE_APP])).map((r) => r.pid);
  const before = await pids();
  await sleep(1200); // two probe rounds at least
  t.ok(before.length > 0, `probe connections on cluster b: ${before.length}`);
  t.same(await pids(), before, 'the same backends answer the later probes');
});

t.test("auth_query over server_tls, then the probe with the user's SCRAM keys", async (t) => {
  // auth_query runs on database app (TLS only) as authq; pat's pools then need a primary.
  t.match(await primaryPort('app', PAT), onEither('pat'), 'pat logs in through auth_query and finds the primary');
  t.match(await primaryPort('ptdb', PAT), onEither('pat'), 'on ptdb too (plain text allowed: only the credentials matter)');
  const probes = await b.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND usename = $2', [
    PROBE_APP,
    PAT.name,
  ]);
  t.ok(Number(probes[0].n) >= 1, `cluster b has probe connections logged in as pat (${probes[0].n})`);
  t.notMatch(pooler.output(), /server banned|probe failed/, 'no probe failed, no server banned');
});

t.test('a listed user without a password is not probed (nor its servers banned) before its first login', async (t) => {
  // Nothing has logged in as "nopw" yet: its pools have no credential to probe with.
  // pat's verifier: nopw's password is pat's.
  const nopw = { name: 'nopw', password: PAT.password };
  await Promise.all([a, b].map((c) => c.query(`CREATE ROLE nopw LOGIN PASSWORD '${verifier}'`)));
  const from = pooler.output().length;
  const cfg = configToml({
    port: pooler.port,
    general: { server_tls: true, connect_timeout: 3000, ban_time: 60 },
    pools: {
      app: pool('app', authQuery),
      ptdb: pool('ptdb', { ...authQuery, users: [{ username: APP.name, password: APP.password, pool_size: 2 }, { username: nopw.name, pool_size: 1 }] }),
    },
  });
  pooler.writeConfig(cfg);
  process.kill(pooler.pid, 'SIGHUP');
  await pooler.waitForOutput('config reloaded', 10_000, from);
  await sleep(1200);
  t.notMatch(pooler.output().slice(from), /server banned|probe failed/, 'no probe failure, no ban while no credential is known');
  t.match(await primaryPort('ptdb', nopw), onEither('nopw'), 'after the login, the probe finds the primary');
  t.notMatch(pooler.output().slice(from), /server banned|probe failed/, 'and bans no server');
});
