// tcp_keepalives_idle on client connections. On Linux the pooler sets it on
// the listening socket, which accepted sockets inherit (no setsockopt per
// connection); the first socket accepted after a start or a RELOAD that
// changed it gets it set on its own. Checked in /proc/net/tcp: the pooler's
// end of each client connection has its keepalive timer armed ("tr" 2) for
// at most the configured idle time, or no timer once RELOAD turned it off.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { sleep } from './harness/wait.js';
import { primaryShard } from './harness/pool-config.js';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx, type ConfigPool } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';
import { RawClient } from './harness/raw-client.js';

if (process.platform !== 'linux') {
  t.plan(0, 'reads /proc/net/tcp (Linux)');
  process.exit(0);
}

const main = await startPostgres({ users: [{ name: 'app', password: 'apppw' }], databases: [{ name: 'app', owner: 'app' }], t });
const pool: ConfigPool = { pool_mode: 'transaction', users: [{ username: 'app', password: 'apppw', pool_size: 1 }], shards: [primaryShard(main, 'app')] };
const port = await freePort();
const config = (idle: number): string => configToml({ port, general: { tcp_keepalives_idle: idle }, pools: { app: pool } });
const pglynx = await startPglynx(config(7), { t, logLevel: 'warn' });

/** The pooler's end of the connection from client port `clientPort`: its timer kind and seconds left, from /proc/net/tcp. */
function poolerEnd(clientPort: number): { timer: number; secondsLeft: number } | null {
  const hex = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || !f[1]!.endsWith(`:${hex(port)}`) || !f[2]!.endsWith(`:${hex(clientPort)}`)) continue;
    const [timer, when] = f[5]!.split(':');
    return { timer: parseInt(timer!, 16), secondsLeft: parseInt(when!, 16) / 100 }; // clock ticks (USER_HZ 100)
  }
  return null;
}

async function connections(n: number): Promise<RawClient[]> {
  const clients: RawClient[] = [];
  for (let i = 0; i < n; i++) clients.push(await RawClient.open('127.0.0.1', port));
  await sleep(200); // accepted by the pooler
  return clients;
}

t.test('every client connection gets tcp_keepalives_idle, the first and the inherited ones', async (t) => {
  const clients = await connections(3);
  t.teardown(() => clients.forEach((c) => c.destroy()));
  for (const c of clients) {
    const end = poolerEnd(c.socket.localPort!);
    t.equal(end?.timer, 2, `keepalive timer armed on the pooler's end (client port ${c.socket.localPort})`);
    t.ok(end && end.secondsLeft > 0 && end.secondsLeft <= 7, `due within tcp_keepalives_idle = 7 s (${end?.secondsLeft} s)`);
  }
});

t.test('RELOAD to tcp_keepalives_idle = 0 turns it off for new clients, then 3 s turns it on', async (t) => {
  const reload = async (idle: number): Promise<void> => {
    pglynx.writeConfig(config(idle));
    const adm = await pgClient({ host: '127.0.0.1', port, user: 'admin', password: 'admin', database: 'pgcat' });
    await adm.query('RELOAD');
    await adm.end();
  };
  await reload(0);
  const off = await connections(3);
  t.teardown(() => off.forEach((c) => c.destroy()));
  for (const c of off) t.equal(poolerEnd(c.socket.localPort!)?.timer, 0, `no keepalive timer (client port ${c.socket.localPort})`);
  await reload(3);
  const on = await connections(3);
  t.teardown(() => on.forEach((c) => c.destroy()));
  for (const c of on) {
    const end = poolerEnd(c.socket.localPort!);
    t.equal(end?.timer, 2, `keepalive timer armed again (client port ${c.socket.localPort})`);
    t.ok(end && end.secondsLeft > 0 && end.secondsLeft <= 3, `due within 3 s (${end?.secondsLeft} s)`);
  }
});
