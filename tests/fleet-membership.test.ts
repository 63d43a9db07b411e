// A fleet of two PgLynx processes sharing one real redis-server (issue 15):
// each is a member with a heartbeat key that expires after
// fleet_lease_ttl_ms; SHOW FLEET and pglynx_fleet_* on either one list both,
// with the clients and server connections the other holds; a member that
// shuts down leaves at once, one killed with SIGKILL is dropped within the
// TTL. A bad redis_url stops start-up with a message naming the key.
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx, type PglynxProcess } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';
import { startRedis } from './harness/redis.js';
import { pollValue } from './harness/wait.js';

type Row = Record<string, string | null>;
const LEASE_TTL_MS = 1000;

const pg = await startPostgres({ t });
const redis = await startRedis({ t });

async function member(metricsPort?: number): Promise<PglynxProcess> {
  const port = await freePort();
  return startPglynx(
    configToml({
      port,
      general: {
        redis_url: redis.url,
        fleet_lease_ttl_ms: LEASE_TTL_MS,
        ...(metricsPort ? { enable_prometheus_exporter: true, prometheus_exporter_port: metricsPort } : {}),
      },
      pools: { app: { users: [{ username: 'postgres', password: 'x', pool_size: 4 }], shards: [primaryShard(pg)] } },
    }),
    { t, logLevel: 'info' },
  );
}

const metricsPort = await freePort();
const a = await member(metricsPort);
const b = await member();

const adminA = await pgClient({ port: a.port, user: 'admin', password: 'admin', database: 'pgcat' });
t.teardown(() => adminA.end());
const fleetOf = async (): Promise<Row[]> => (await adminA.query<Row>('SHOW FLEET')).rows;

t.test('SHOW FLEET lists both members, this one first, with what the other holds', async (t) => {
  // B holds one client in a transaction, so one server connection.
  const client = await pgClient({ port: b.port, user: 'postgres', password: 'x', database: 'app' });
  await client.query('BEGIN');
  await client.query('SELECT 1');
  const rows = await pollValue(fleetOf, (r) => r.length === 2 && r[1].clients === '1' && r[1].server_connections === '1', 3000);
  t.equal(rows.length, 2, 'two members');
  t.equal(rows[0].self, '1', 'A first');
  t.equal(rows[0].redis_connected, '1');
  t.equal(rows[0].port, String(a.port));
  t.equal(rows[1].self, '0');
  t.equal(rows[1].port, String(b.port), "B's row carries B's port");
  t.equal(rows[1].clients, '1', "B's client");
  t.equal(rows[1].server_connections, '1', "B's server connection");
  t.match(rows[1].member, new RegExp(`-${b.pid}-[0-9a-f]{6}$`), 'member id: host, pid, random');
  t.match(rows[1].started, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  await client.query('COMMIT');
  await client.end();
});

t.test('pglynx_fleet_* gauges carry a member label per member', async (t) => {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const clients = [...text.matchAll(/^pglynx_fleet_member_clients\{member="([^"]+)",host="[^"]*"\} (\d+)$/gm)];
  t.equal(clients.length, 2, 'one sample per member');
  t.match(text, /^pglynx_fleet_members 2$/m);
  t.match(text, /^pglynx_fleet_redis_connected 1$/m);
});

t.test('a member that shuts down leaves at once; one killed leaves within the lease TTL', async (t) => {
  const c = await member();
  let rows = await pollValue(fleetOf, (r) => r.length === 3, 3000);
  t.equal(rows.length, 3, 'C joined');
  await c.stop('SIGINT');
  rows = await pollValue(fleetOf, (r) => r.length === 2, 1000);
  t.equal(rows.length, 2, 'C left on shutdown, sooner than its TTL');

  const killedAt = Date.now();
  b.kill('SIGKILL');
  await b.exited;
  rows = await pollValue(fleetOf, (r) => r.length === 1, LEASE_TTL_MS + 2000);
  t.equal(rows.length, 1, 'B dropped');
  t.ok(Date.now() - killedAt <= LEASE_TTL_MS + LEASE_TTL_MS / 3 + 700, `B dropped within TTL + one beat (${Date.now() - killedAt} ms)`);
});

t.test('a redis_url that is not redis:// stops start-up, naming the key', async (t) => {
  const port = await freePort();
  await t.rejects(
    startPglynx(configToml({ port, general: { redis_url: 'http://nope' } }), { timeoutMs: 10_000 }),
    /general\.redis_url.*redis:\/\/host:port\/db/,
  );
});

t.test('without redis_url SHOW FLEET is one row: this pooler', async (t) => {
  const port = await freePort();
  const solo = await startPglynx(configToml({ port, pools: { app: { users: [{ username: 'postgres', password: 'x', pool_size: 1 }], shards: [primaryShard(pg)] } } }), { t });
  const admin = await pgClient({ port: solo.port, user: 'admin', password: 'admin', database: 'pgcat' });
  const rows = (await admin.query<Row>('SHOW FLEET')).rows;
  await admin.end();
  t.equal(rows.length, 1);
  t.match(rows[0], { member: '(no redis_url)', self: '1', redis_connected: '0' });
});
