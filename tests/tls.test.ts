// TLS on both sides of the pooler, with certificates made by openssl for the
// test: clients (psql sslmode=require / verify-full / disable, node-postgres
// with a CA) talk TLS to PgLynx, and PgLynx talks TLS to Postgres 15
// clusters that only accept hostssl (general.server_tls), verifying their
// certificates or not (general.verify_server_certificate).
//
// Two CAs: CA1 signs the pooler's first certificate and cluster sslA's;
// CA2 signs cluster sslB's and the pooler's certificate after the reload
// test. Pooler p1 verifies nothing; pooler p2 verifies and trusts CA1 only
// (through NODE_EXTRA_CA_CERTS, Node's way to add to its CA store).
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import t from 'tap';
import { sleep } from './harness/wait.js';
import { primaryShard } from './harness/pool-config.js';
import { pgClient, psql } from './harness/clients.js';
import { configToml, startPglynx, type ConfigPool } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres, type PgCluster } from './harness/postgres.js';
import { RawClient, cancelRequest, errorFields, sslRequest, startupPacket, types } from './harness/raw-client.js';

type TT = Parameters<Parameters<typeof t.test>[0]>[0];
const APP = { name: 'app', password: 'apppw' };

// ------------------------------------------------------------------ certificates

const isRoot = process.getuid?.() === 0;
const pgOwner = isRoot
  ? { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) }
  : null;
/** Postgres runs as the postgres OS user when we are root: its files must be its own. */
const giveToPostgres = (p: string): void => {
  if (pgOwner) chownSync(p, pgOwner.uid, pgOwner.gid);
};

const certDir = mkdtempSync(path.join(os.tmpdir(), 'pglynx-tls-'));
giveToPostgres(certDir);
t.teardown(() => rmSync(certDir, { recursive: true, force: true }));
const file = (name: string): string => path.join(certDir, name);
const openssl = (...args: string[]): void => {
  execFileSync('openssl', args, { cwd: certDir, stdio: 'pipe' });
};
// P-256 keys: generated in milliseconds, and every party here speaks ECDSA.
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function makeCa(name: string): void {
  openssl('req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=PgLynx test ${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
}

/** A server certificate for 127.0.0.1 and localhost, signed by `ca`. */
function makeLeaf(name: string, ca: string): void {
  writeFileSync(file(`${name}.ext`), [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '',
  ].join('\n'));
  openssl('req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=127.0.0.1');
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-set_serial', String(Date.now()),
    '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`);
  // Postgres refuses a key others can read, and one owned by someone else.
  chmodSync(file(`${name}.key`), 0o600);
  giveToPostgres(file(`${name}.key`));
  giveToPostgres(file(`${name}.crt`));
}

makeCa('ca1');
makeCa('ca2');
makeLeaf('pgA', 'ca1');
makeLeaf('pgB', 'ca2');
makeLeaf('poolerA', 'ca1');
makeLeaf('poolerB', 'ca2');
// The pooler's files, replaced in place by the reload test.
copyFileSync(file('poolerA.crt'), file('pooler.crt'));
copyFileSync(file('poolerA.key'), file('pooler.key'));
const CA1 = readFileSync(file('ca1.crt'), 'utf8');

// ------------------------------------------------------------------ clusters and poolers

// Local (unix socket) connections stay open for the harness; over TCP only TLS.
const HOSTSSL_ONLY = [
  'local     all all                trust',
  'hostssl   all all 127.0.0.1/32   scram-sha-256',
  'hostnossl all all 127.0.0.1/32   reject',
  '',
].join('\n');

async function sslCluster(leaf: string): Promise<PgCluster> {
  const c = await startPostgres({
    auth: 'scram-sha-256',
    users: [APP],
    databases: [{ name: 'app', owner: APP.name }],
    settings: { ssl: 'on', ssl_cert_file: file(`${leaf}.crt`), ssl_key_file: file(`${leaf}.key`) },
    t,
  });
  // Overwriting keeps the file's owner (postgres).
  writeFileSync(path.join(c.dataDir, 'pg_hba.conf'), HOSTSSL_ONLY);
  await c.query('SELECT pg_reload_conf()');
  return c;
}

const [plain, sslA, sslB] = await Promise.all([
  startPostgres({ auth: 'scram-sha-256', users: [APP], databases: [{ name: 'app', owner: APP.name }], t }),
  sslCluster('pgA'),
  sslCluster('pgB'),
]);

const pool = (c: PgCluster): ConfigPool => ({
  pool_mode: 'transaction',
  users: [{ username: APP.name, password: APP.password, pool_size: 3 }],
  shards: [primaryShard(c, 'app')],
});
const pools = { plain: pool(plain), ssla: pool(sslA), sslb: pool(sslB) };

const [p1, p2] = await Promise.all([
  startPglynx(
    configToml({
      port: await freePort(),
      general: { connect_timeout: 5000, tls_certificate: file('pooler.crt'), tls_private_key: file('pooler.key'), server_tls: true },
      pools,
    }),
    { t, logLevel: 'info' },
  ),
  startPglynx(
    configToml({ port: await freePort(), general: { connect_timeout: 5000, server_tls: true, verify_server_certificate: true }, pools }),
    { t, logLevel: 'info', env: { NODE_EXTRA_CA_CERTS: file('ca1.crt') } },
  ),
]);

const psqlVia = (port: number, db: string, sql: string, env: Record<string, string>, host = '127.0.0.1') =>
  psql({ host, port, user: APP.name, password: APP.password, db, sql, env: { PGGSSENCMODE: 'disable', ...env } });
const verifyFull = (root: string): Record<string, string> => ({ PGSSLMODE: 'verify-full', PGSSLROOTCERT: file(root) });

async function expectOne(t: TT, what: string, run: Promise<{ code: number | null; stdout: string; stderr: string }>): Promise<string> {
  const r = await run;
  t.equal(r.code, 0, `${what}: psql succeeds ${r.stderr.trim()}`);
  t.equal(r.stdout.split('\n')[0], '1', `${what}: SELECT 1 returns 1`);
  return r.stdout;
}

/** What pg_stat_ssl says about the server connection a query runs on. */
async function serverSsl(c: pg.Client): Promise<boolean> {
  const r = await c.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
  return r.rows[0].ssl;
}

// ------------------------------------------------------------------ fixtures are what they claim

t.test('the clusters accept only TLS over TCP', async (t) => {
  for (const [name, c] of [['sslA', sslA], ['sslB', sslB]] as const) {
    // pg_reload_conf() is asynchronous: give the postmaster a moment.
    let r = await psqlVia(c.port, 'app', 'SELECT 1', { PGSSLMODE: 'disable' });
    for (let i = 0; i < 50 && r.code === 0; i++) {
      await sleep(100);
      r = await psqlVia(c.port, 'app', 'SELECT 1', { PGSSLMODE: 'disable' });
    }
    t.not(r.code, 0, `${name}: plain text is rejected`);
    t.match(r.stderr, /no encryption|pg_hba/, `${name}: by pg_hba (${r.stderr.trim()})`);
    await expectOne(t, `${name} direct, sslmode=require`, psqlVia(c.port, 'app', 'SELECT 1', { PGSSLMODE: 'require' }));
  }
  await expectOne(t, 'sslA direct, verify-full with CA1', psqlVia(sslA.port, 'app', 'SELECT 1', verifyFull('ca1.crt')));
});

// ------------------------------------------------------------------ clients

t.test('psql: sslmode=require, verify-full and disable', async (t) => {
  await expectOne(t, 'require', psqlVia(p1.port, 'plain', 'SELECT 1', { PGSSLMODE: 'require' }));
  const info = await psqlVia(p1.port, 'plain', '\\conninfo', { PGSSLMODE: 'require' });
  t.match(info.stdout, /SSL connection \(protocol: TLSv1\.[23]/, `psql reports TLS: ${info.stdout.trim()}`);
  await expectOne(t, 'verify-full, host=localhost', psqlVia(p1.port, 'plain', 'SELECT 1', verifyFull('ca1.crt'), 'localhost'));
  await expectOne(t, 'verify-full, host=127.0.0.1', psqlVia(p1.port, 'plain', 'SELECT 1', verifyFull('ca1.crt')));
  await expectOne(t, 'verify-full over a TLS server connection', psqlVia(p1.port, 'ssla', 'SELECT 1', verifyFull('ca1.crt')));

  const wrongCa = await psqlVia(p1.port, 'plain', 'SELECT 1', verifyFull('ca2.crt'));
  t.not(wrongCa.code, 0, 'verify-full with a CA that did not sign the certificate fails');
  t.match(wrongCa.stderr, /certificate verify failed/, wrongCa.stderr.trim());

  await expectOne(t, 'disable', psqlVia(p1.port, 'plain', 'SELECT 1', { PGSSLMODE: 'disable' }));
  const plainInfo = await psqlVia(p1.port, 'plain', '\\conninfo', { PGSSLMODE: 'disable' });
  t.notMatch(plainInfo.stdout, /SSL connection/, 'sslmode=disable stays in plain text');
  await expectOne(t, 'prefer without pooler TLS', psqlVia(p2.port, 'ssla', 'SELECT 1', { PGSSLMODE: 'prefer' }));
  const required = await psqlVia(p2.port, 'ssla', 'SELECT 1', { PGSSLMODE: 'require' });
  t.not(required.code, 0, 'a pooler without tls_certificate still declines TLS');
});

t.test('node-postgres with ssl: { ca }', async (t) => {
  for (const host of ['127.0.0.1', 'localhost']) {
    const c = await pgClient({ host, port: p1.port, user: APP.name, password: APP.password, database: 'ssla', ssl: { ca: CA1 } });
    t.teardown(() => c.end());
    const stream = (c as unknown as { connection: { stream: { encrypted?: boolean } } }).connection.stream;
    t.equal(stream.encrypted, true, `${host}: the client socket is TLS`);
    t.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, `${host}: SELECT 1`);
    // A large reply crosses TLS on both sides (server and client), with backpressure.
    const rows = await c.query<{ s: string }>("SELECT repeat('y', 1000) AS s FROM generate_series(1, 20000)");
    t.equal(rows.rowCount, 20000, `${host}: 20 MB of rows come back whole`);
    t.ok(rows.rows.every((r) => r.s.length === 1000), `${host}: and intact`);
    // And a large request: a 4 MB parameter goes up and back.
    const echo = await c.query<{ n: number }>('SELECT length($1::text) AS n', ['z'.repeat(4 << 20)]);
    t.equal(echo.rows[0].n, 4 << 20, `${host}: a 4 MB parameter arrives whole`);
  }
  await t.rejects(
    pgClient({ port: p1.port, user: APP.name, password: APP.password, database: 'plain', ssl: { ca: readFileSync(file('ca2.crt'), 'utf8') } }),
    /certificate/,
    'a CA that did not sign the certificate is refused by the client',
  );
});

t.test('SSL negotiation on the wire', async (t) => {
  // CVE-2021-23214: a StartupMessage sent along with the SSLRequest was not
  // encrypted; it must not be read as if it had come through TLS.
  const injected = await RawClient.open(p1.host, p1.port);
  t.teardown(() => injected.destroy());
  injected.send(sslRequest(), startupPacket({ user: APP.name, database: 'plain' }));
  const got = await injected.readUntilClosed(5000);
  t.equal(types(got), 'E', 'pipelined bytes after SSLRequest: an ErrorResponse and the connection closes');
  t.equal(errorFields(got[0].body).get('C'), '08P01', `protocol violation (${errorFields(got[0].body).get('M')})`);

  // libpq's order: GSSENCRequest (declined), then SSLRequest (accepted).
  const gss = await RawClient.open(p1.host, p1.port);
  t.teardown(() => gss.destroy());
  const gssRequest = Buffer.alloc(8);
  gssRequest.writeInt32BE(8, 0);
  gssRequest.writeInt32BE(80877104, 4);
  gss.send(gssRequest);
  t.equal((await gss.readBytes(1)).toString('latin1'), 'N', "GSSENCRequest: 'N'");
  gss.send(sslRequest());
  t.equal((await gss.readBytes(1)).toString('latin1'), 'S', "then SSLRequest: 'S'");

  // A client that sends garbage instead of a ClientHello is dropped, and nobody else notices.
  gss.send(Buffer.from('this is not a TLS ClientHello\n'.repeat(4)));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([gss.closed, new Promise((r) => (timer = setTimeout(r, 5000)))]);
  clearTimeout(timer);
  t.notOk(gss.isOpen, 'a failed handshake closes the connection (within 5 s)');
  const half = net.connect({ host: p1.host, port: p1.port });
  half.on('error', () => {});
  half.write(sslRequest());
  await sleep(100);
  half.destroy(); // gone before the handshake
  await expectOne(t, 'the pooler carries on', psqlVia(p1.port, 'plain', 'SELECT 1', { PGSSLMODE: 'require' }));
});

// ------------------------------------------------------------------ servers

t.test('server_tls: TLS to servers that offer it, plain text otherwise', async (t) => {
  const c = (database: string): Promise<pg.Client> =>
    pgClient({ port: p1.port, user: APP.name, password: APP.password, database, ssl: { ca: CA1 } });
  for (const [db, want] of [['ssla', true], ['sslb', true], ['plain', false]] as const) {
    const client = await c(db);
    t.teardown(() => client.end());
    t.equal(await serverSsl(client), want, `${db}: pg_stat_ssl.ssl is ${want} through the pooler`);
  }
});

t.test('verify_server_certificate: a trusted certificate works, the rest is an error, not a hang', async (t) => {
  const c = (database: string): Promise<pg.Client> => pgClient({ port: p2.port, user: APP.name, password: APP.password, database });
  const ok = await c('ssla');
  t.teardown(() => ok.end());
  t.equal(await serverSsl(ok), true, 'CA1-signed server (CA1 in NODE_EXTRA_CA_CERTS), checked for 127.0.0.1: TLS');

  for (const [db, why] of [['sslb', /certificate/], ['plain', /does not support SSL/]] as const) {
    const started = Date.now();
    const err = await c(db).then(
      (client) => {
        void client.end();
        return null;
      },
      (e: Error & { code?: string }) => e,
    );
    t.ok(err, `${db}: the client gets an error`);
    t.match(err?.message ?? '', why, `${db}: ${err?.message}`);
    t.equal(err?.code, '08006', `${db}: SQLSTATE connection_failure`);
    t.ok(Date.now() - started < 5000, `${db}: in ${Date.now() - started} ms`);
  }
  const again = await c('ssla');
  t.teardown(() => again.end());
  t.equal((await again.query('SELECT 1 AS one')).rows[0].one, 1, 'the trusted pool still works');
});

t.test('CancelRequest reaches a TLS-only server (over plain text, as Postgres allows)', async (t) => {
  const c = await pgClient({ port: p1.port, user: APP.name, password: APP.password, database: 'ssla', ssl: { ca: CA1 } });
  t.teardown(() => c.end());
  const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
  const started = Date.now();
  const doomed = c.query('SELECT pg_sleep(10)').then(
    () => null,
    (e: Error & { code?: string }) => e,
  );
  for (let i = 0; i < 50; i++) {
    const rows = await sslA.query("SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(10)' AND state = 'active'");
    if (rows.length > 0) break;
    await sleep(100);
  }
  const s = net.connect({ host: p1.host, port: p1.port }, () => s.end(cancelRequest(processID, secretKey)));
  s.on('error', () => {});
  t.equal((await doomed)?.code, '57014', 'the query is cancelled');
  t.ok(Date.now() - started < 5000, `quickly (${Date.now() - started} ms)`);
  t.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'the client goes on');
});

// ------------------------------------------------------------------ reload (last: it changes p1's certificate)

t.test('reload: new certificate files for new clients', async (t) => {
  const kept = await pgClient({ port: p1.port, user: APP.name, password: APP.password, database: 'plain', ssl: { ca: CA1 } });
  t.teardown(() => kept.end());

  // A broken key is rejected; the loaded certificate keeps serving.
  let from = p1.output().length;
  writeFileSync(file('pooler.key'), 'not a key\n');
  p1.kill('SIGHUP');
  await p1.waitForOutput('config reload rejected', 10_000, from);
  t.pass('a reload with an unusable key is rejected');
  await expectOne(t, 'CA1 still verifies', psqlVia(p1.port, 'plain', 'SELECT 1', verifyFull('ca1.crt')));

  from = p1.output().length;
  copyFileSync(file('poolerB.crt'), file('pooler.crt'));
  copyFileSync(file('poolerB.key'), file('pooler.key'));
  p1.kill('SIGHUP');
  await p1.waitForOutput('config reloaded', 10_000, from);
  await expectOne(t, 'after reload, CA2 verifies', psqlVia(p1.port, 'plain', 'SELECT 1', verifyFull('ca2.crt'), 'localhost'));
  const old = await psqlVia(p1.port, 'plain', 'SELECT 1', verifyFull('ca1.crt'));
  t.not(old.code, 0, `after reload, CA1 no longer verifies: ${old.stderr.trim()}`);
  t.equal((await kept.query('SELECT 1 AS one')).rows[0].one, 1, 'a client connected before the reload carries on');
});
