// SHOW SERVERS and SHOW CLIENTS: one row per connection, in PgBouncer's
// columns, with `ptr` / `link` pairing each client with its server.

import type { ClientSession } from '../client/session.js';
import type { ServerConnection } from '../server/connection.js';
import type { AdminContext, AdminReply, AdminValue } from './context.js';
import { flag, int, ptr, serverState, splitWait, table, text, timestamp } from './format.js';

const CONNECTION_COLUMNS = [
  text('type'), text('user'), text('database'), text('state'),
  text('addr'), int('port'), text('local_addr'), int('local_port'),
  text('connect_time'), text('request_time'), int('wait'), int('wait_us'), int('close_needed'),
  text('ptr'), text('link'), int('remote_pid'), text('tls'), text('application_name'),
];

/** Node reports IPv4 peers of a dual-stack socket as ::ffff:a.b.c.d; PgBouncer shows a.b.c.d. */
function plainAddress(addr: string | undefined): string {
  if (!addr) return '';
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

/** The application_name the client has now (SET follows), else the one it logged in with. */
function applicationName(s: ClientSession): string {
  return s.params.get('application_name') ?? s.identity.applicationName;
}

export function showServers(ctx: AdminContext): AdminReply {
  const linked = new Map<ServerConnection, ClientSession>();
  for (const s of ctx.clients()) if (s.server) linked.set(s.server, s);
  const now = Date.now();
  const rows: AdminValue[][] = [];
  // Every server of every pool (shards, primary and replicas), each row
  // with its server's ban (BAN, failed health checks and probes).
  for (const e of ctx.pools()) {
    for (const { pool, banned } of e.cluster.members) {
      const lifetime = pool.settings.serverLifetime;
      for (const conn of pool.connections) {
        const client = linked.get(conn);
        rows.push([
          'S', conn.options.user, e.poolName, serverState(pool, conn),
          conn.options.host, conn.options.port, plainAddress(conn.localAddress), conn.localPort,
          timestamp(conn.createdAt),
          // A server has no requests of its own: its client's last one, else when it last went back to the pool.
          timestamp(client ? client.lastRequestAt : conn.idleSince),
          0, 0,
          // Past server_lifetime: closed when next released or checked out.
          flag(lifetime > 0 && now - conn.createdAt > lifetime),
          ptr(conn.id), client ? ptr(client.processId) : null, conn.processId,
          '', client ? applicationName(client) : '',
          String(banned),
        ]);
      }
    }
  }
  return table([...CONNECTION_COLUMNS, text('banned')], rows);
}

export function showClients(ctx: AdminContext): AdminReply {
  const rows = ctx.clients().map((s): AdminValue[] => {
    const [wait, waitUs] = splitWait(s.waitingMs);
    return [
      'C', s.identity.user, s.identity.database, s.state,
      plainAddress(s.identity.remoteAddress), s.identity.remotePort, plainAddress(s.socket.localAddress), s.socket.localPort ?? 0,
      timestamp(s.connectedAt), timestamp(s.lastRequestAt), wait, waitUs, 0,
      // Clients are known by the process id they were given at login (BackendKeyData).
      // remote_pid is only known for Unix-socket peers, and PgLynx listens on TCP.
      ptr(s.processId), s.server ? ptr(s.server.id) : null, 0,
      '', applicationName(s),
    ];
  });
  return table(CONNECTION_COLUMNS, rows);
}
