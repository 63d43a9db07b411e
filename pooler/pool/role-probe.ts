// Active server monitoring (beyond PgCat, as PgDog), for pools with more
// than one server: each server is asked `SELECT pg_is_in_recovery()` on a
// short interval over a connection of its own.
// - Role auto-detection: servers with role "auto" take the answer, so a
//   promoted standby takes writes and an old primary that comes back as a
//   standby takes reads, without a reload. One that cannot be asked counts
//   as a replica (reads can go elsewhere; writes must not go there).
// - A replica that fails the probe (refused, error, no answer within the
//   health check timeout) is banned at once: its pooled connections are
//   closed and in-flight reads move elsewhere, instead of waiting on a
//   server whose postmaster died under it.

import pg from 'pg';
import type { Logger } from '../logger.js';
import type { Cluster, ClusterMember } from './cluster.js';

/** How often auto servers are probed. */
export const ROLE_PROBE_INTERVAL_MS = 500;

export class RoleProber {
  private readonly clients = new Map<ClusterMember, pg.Client>();
  private readonly inFlight = new Set<ClusterMember>();

  constructor(private readonly log: Logger) {}

  /** Probe the members of multi-server clusters (skips those still answering the last probe). */
  tick(clusters: Iterable<Cluster>, timeoutMs: number): void {
    const seen = new Set<ClusterMember>();
    for (const cluster of clusters) {
      if (cluster.members.length < 2) continue;
      for (const m of cluster.members) {
        seen.add(m);
        if (!this.inFlight.has(m)) void this.probe(cluster, m, timeoutMs);
      }
    }
    for (const [m, c] of this.clients) {
      if (!seen.has(m)) {
        this.clients.delete(m);
        void c.end().catch(() => {});
      }
    }
  }

  private async probe(cluster: Cluster, m: ClusterMember, timeoutMs: number): Promise<void> {
    this.inFlight.add(m);
    try {
      let client = this.clients.get(m);
      if (!client) {
        const s = m.pool.settings.server;
        client = new pg.Client({
          host: s.host,
          port: s.port,
          database: s.database,
          user: s.user,
          password: s.password ?? undefined,
          connectionTimeoutMillis: timeoutMs,
          query_timeout: timeoutMs,
          application_name: 'pglynx role probe',
        });
        // A connection error between probes (the server went away) drops the client.
        const own = client;
        client.on('error', () => {
          if (this.clients.get(m) === own) this.clients.delete(m);
        });
        this.clients.set(m, client);
        await client.connect();
      }
      const r = await client.query<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery');
      if (m.configuredRole === 'auto') this.setRole(cluster, m, r.rows[0].recovery ? 'replica' : 'primary');
    } catch (err) {
      const stale = this.clients.get(m);
      this.clients.delete(m);
      void stale?.end().catch(() => {});
      const reason = `probe failed: ${(err as Error).message}`;
      if (m.configuredRole === 'auto') this.setRole(cluster, m, 'replica', reason);
      if (!m.banned && cluster.ban(m, reason)) this.log.warn({ server: m.address, reason }, 'server banned');
    } finally {
      this.inFlight.delete(m);
    }
  }

  private setRole(cluster: Cluster, m: ClusterMember, role: 'primary' | 'replica', why?: string): void {
    if (m.role === role && m.roleKnown) return;
    if (m.role !== role) this.log.warn({ server: m.address, from: m.role, to: role, reason: why }, 'server role changed');
    m.role = role;
    m.roleKnown = true;
    if (role === 'primary') m.bannedUntil = 0;
    // Queries waiting for a role (start-up, a promotion) look again.
    cluster.rolesChangedNow();
  }

  close(): void {
    for (const c of this.clients.values()) void c.end().catch(() => {});
    this.clients.clear();
  }
}
