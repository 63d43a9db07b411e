// SHOW SERVERS and SHOW CLIENTS: one row per connection, in PgCat's
// columns, types and order. SERVERS goes on with PgBouncer's columns
// (address, times, `ptr` / `link`: a server's `link` is its client's
// `client_id`); CLIENTS lists the admin console sessions too, as PgCat.

import type { ClientSession } from '../client/session.js';
import type { ServerConnection } from '../server/connection.js';
import type { ColumnSpec } from '../protocol/messages/rows.js';
import type { AdminContext, AdminReply, AdminValue } from './context.js';
import { flag, int, ptr, serverState, splitWait, table, text, timestamp } from './format.js';
import { memberAddresses } from '../pool/member-addresses.js';

const numeric = (name: string): ColumnSpec => ({ name, type: 'numeric' });

const SERVER_COLUMNS = [
  // PgCat's (src/admin.rs show_servers).
  text('server_id'), text('database_name'), text('user'), text('address_id'), text('application_name'), text('state'),
  numeric('transaction_count'), numeric('query_count'), numeric('bytes_sent'), numeric('bytes_received'), numeric('age_seconds'),
  numeric('prepare_cache_hit'), numeric('prepare_cache_miss'), numeric('prepare_cache_eviction'), numeric('prepare_cache_size'),
  // PgBouncer's, less those PgCat has; then whether the server is banned.
  text('type'), text('database'), text('addr'), int('port'), text('local_addr'), int('local_port'),
  text('connect_time'), text('request_time'), int('wait'), int('wait_us'), int('close_needed'),
  text('ptr'), text('link'), int('remote_pid'), text('tls'), text('banned'),
  // PgLynx's: units on the connection now (the running one and those queued behind it: pipeline_depth), and in all.
  int('pipeline_depth'), int('pipelined'),
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
  for (const s of ctx.clients()) {
    if (s.server) linked.set(s.server, s);
    for (const conn of s.shardServers()) linked.set(conn, s);
  }
  const config = ctx.config();
  const now = Date.now();
  const rows: AdminValue[][] = [];
  // Every server of every pool (shards, primary and replicas), each row
  // with its server's ban (BAN, failed health checks and probes).
  for (const e of ctx.pools()) {
    for (const { member, name } of memberAddresses(config, e)) {
      const { pool, banned } = member;
      const lifetime = pool.settings.serverLifetime;
      for (const conn of pool.connections) {
        const client = linked.get(conn);
        const c = conn.counters;
        const cache = conn.prepared?.statements;
        rows.push([
          ptr(conn.id), e.poolName, e.user.username, name, client ? applicationName(client) : '', serverState(pool, conn),
          c.transactions, c.queries, c.sent, c.received, Math.max(0, Math.floor((now - conn.createdAt) / 1000)),
          cache?.hits ?? 0, cache?.misses ?? 0, cache?.evicted ?? 0, cache?.size ?? 0,
          'S', e.poolName, conn.options.host, conn.options.port, plainAddress(conn.localAddress), conn.localPort,
          timestamp(conn.createdAt),
          // A server has no requests of its own: its client's last one, else when it last went back to the pool.
          timestamp(client ? client.lastRequestAt : conn.idleSince),
          0, 0,
          // Past server_lifetime: closed when next released or checked out.
          flag(lifetime > 0 && now - conn.createdAt > lifetime),
          ptr(conn.id), client ? ptr(client.processId) : null, conn.processId, '',
          String(banned),
          conn.pending > 0 ? (conn.pipeline?.depth ?? 1) : 0, conn.pipeline?.queuedTotal ?? 0,
        ]);
      }
    }
  }
  return table(SERVER_COLUMNS, rows);
}

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
