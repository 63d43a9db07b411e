// SHOW SERVERS and SHOW CLIENTS: one row per connection. SERVERS has
// PgBouncer's columns, its `link` naming the client's `client_id`; CLIENTS
// has PgCat's columns, types and order, admin console sessions included.

import type { ClientSession } from '../client/session.js';
import type { ServerConnection } from '../server/connection.js';
import type { ColumnSpec } from '../protocol/messages/rows.js';
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

const numeric = (name: string): ColumnSpec => ({ name, type: 'numeric' });

// PgCat's SHOW CLIENTS (src/admin.rs show_clients): these columns, this order, these types.
const CLIENT_COLUMNS = [
  text('client_id'), text('database'), text('user'), text('application_name'), text('state'),
  numeric('transaction_count'), numeric('query_count'), numeric('error_count'), numeric('age_seconds'),
  numeric('maxwait'), numeric('maxwait_us'),
];

export function showClients(ctx: AdminContext): AdminReply {
  const now = Date.now();
  const age = (since: number): number => Math.max(0, Math.floor((now - since) / 1000));
  const rows = ctx.clients().map((s): AdminValue[] => {
    const c = s.counters;
    // The longest wait so far, the one still running included (PgCat counts finished waits only).
    const [maxwait, maxwaitUs] = splitWait(Math.max(c.maxWaitUs / 1000, s.waitingMs));
    return [
      ptr(s.processId), s.identity.database, s.identity.user, applicationName(s), s.state,
      c.transactions, c.queries, c.errors, age(s.connectedAt), maxwait, maxwaitUs,
    ];
  });
  // As PgCat, the admin console's own sessions are clients too: idle, no traffic counted.
  for (const a of ctx.adminClients) {
    rows.push([ptr(a.processId), a.database, a.user, a.applicationName, 'idle', 0, 0, 0, age(a.connectedAt), 0, 0]);
  }
  return table(CLIENT_COLUMNS, rows);
}
