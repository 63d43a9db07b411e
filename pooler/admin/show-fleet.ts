// SHOW FLEET: the poolers sharing this one's Redis (`[general] redis_url`),
// this one first, as of the last heartbeat. Answered from memory: the
// console never waits on Redis. Without a fleet: one row, this pooler.

import type { AdminContext, AdminReply } from './context.js';
import { flag, int, table, text, timestamp } from './format.js';

const FLEET_COLUMNS = [
  text('member'), text('host'), int('port'), text('started'), int('clients'), int('server_connections'),
  text('last_seen'), int('self'), int('redis_connected'), int('embedding_remote_hits'),
];

export function showFleet(ctx: AdminContext): AdminReply {
  const fleet = ctx.fleet?.() ?? null;
  if (!fleet) {
    const servers = ctx.pools().reduce((n, e) => n + e.cluster.members.reduce((k, m) => k + m.pool.counters.total, 0), 0);
    const now = Date.now();
    return table(FLEET_COLUMNS, [['(no redis_url)', '', null, timestamp(ctx.startedAt), ctx.clients().length, servers, timestamp(now), 1, 0, 0]]);
  }
  const connected = flag(fleet.connected);
  const rows = fleet.members().map((m) => [
    m.id, m.host, m.port, timestamp(m.startedAt), m.clients, m.serverConnections,
    timestamp(m.seenAt), flag(m.id === fleet.memberId), m.id === fleet.memberId ? connected : null, m.remoteCacheHits,
  ]);
  return table(FLEET_COLUMNS, rows);
}
