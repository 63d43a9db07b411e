// Prometheus metrics of the fleet (`[general] redis_url`): each member's
// heartbeat as gauges labelled by member and host, as this pooler last
// read them, so one scrape of any member shows the whole fleet; and this
// member's own link and shared-cache counters. Nothing is registered
// values-wise without a fleet: the gauges stay empty.

import { Counter, Gauge, type Registry } from 'prom-client';
import type { FleetView } from './fleet.js';

const MEMBER_LABELS = ['member', 'host'];

export function registerFleetMetrics(registry: Registry, fleet: () => FleetView | null): () => void {
  const gauge = (name: string, help: string, labelNames: string[] = MEMBER_LABELS): Gauge<string> =>
    new Gauge({ name: `pglynx_fleet_${name}`, help, labelNames, registers: [registry] });
  const counter = (name: string, help: string): Counter<string> =>
    new Counter({ name: `pglynx_fleet_${name}`, help, registers: [registry] });
  const clients = gauge('member_clients', 'Client connections of each fleet member, as of its last heartbeat');
  const servers = gauge('member_server_connections', 'Server connections held by each fleet member, as of its last heartbeat');
  const lastSeen = gauge('member_last_seen_seconds', 'Seconds since each fleet member\'s last heartbeat was read (0 for this member)');
  const started = gauge('member_start_time_seconds', 'Start time of each fleet member, in seconds since the epoch');
  const members = gauge('members', 'Fleet members this pooler knows of, itself included', []);
  const connected = gauge('redis_connected', '1 when this pooler is connected to the fleet\'s Redis, else 0', []);
  const hits = counter('embedding_remote_hits_total', 'Embeddings found in the fleet cache (Redis) instead of computed here');
  const misses = counter('embedding_remote_misses_total', 'Embeddings asked of the fleet cache and not found there in time');
  const writes = counter('embedding_remote_writes_total', 'Embeddings computed here and written to the fleet cache');
  const bansOut = counter('bans_published_total', 'Bans, unbans and role changes this member sent to the fleet');
  const bansIn = counter('bans_applied_total', 'Bans, unbans and role changes from other members applied here');
  const all = [clients, servers, lastSeen, started, members, connected, hits, misses, writes, bansOut, bansIn];

  return () => {
    for (const m of all) m.reset();
    const f = fleet();
    if (!f) return;
    const now = Date.now();
    const list = f.members();
    for (const m of list) {
      const labels = { member: m.id, host: m.host };
      clients.set(labels, m.clients);
      servers.set(labels, m.serverConnections);
      lastSeen.set(labels, m.id === f.memberId ? 0 : Math.max(0, (now - m.seenAt) / 1000));
      started.set(labels, m.startedAt / 1000);
    }
    members.set(list.length);
    connected.set(f.connected ? 1 : 0);
    hits.inc(f.cache.remoteHits);
    misses.inc(f.cache.remoteMisses);
    writes.inc(f.cache.writes);
    bansOut.inc(f.bansPublished);
    bansIn.inc(f.bansReceived);
  };
}
