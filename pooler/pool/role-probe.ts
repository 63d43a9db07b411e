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
//
// The probe connection is a ServerConnection opened with the member pool's
// own settings: server_tls, the DNS cache and the credentials its server
// connections use (an auth_query user's md5 hash or SCRAM keys included).
// It stays open between probes, so a probe costs one round trip.

import type { Logger } from '../logger.js';
import { ServerAuthError } from '../auth/server-auth.js';
import { ServerConnection } from '../server/connection.js';
import type { ServerOptions } from '../server/options.js';
import type { Cluster, ClusterMember } from './cluster.js';

/** How often auto servers are probed. */
export const ROLE_PROBE_INTERVAL_MS = 500;

const PROBE_SQL = 'SELECT pg_is_in_recovery()';

export class RoleProber {
  private readonly connections = new Map<ClusterMember, ServerConnection>();
  private readonly inFlight = new Set<ClusterMember>();
  private closed = false;

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
    for (const [m, conn] of this.connections) {
      if (!seen.has(m)) this.drop(m, conn, 'server no longer probed');
    }
  }

  private async probe(cluster: Cluster, m: ClusterMember, timeoutMs: number): Promise<void> {
    this.inFlight.add(m);
    let conn: ServerConnection | undefined;
    let timer: NodeJS.Timeout | undefined;
    // Judged on the settings the probe logs in with: a login may bring the
    // credential while this probe's own login is failing for the lack of it.
    const server = m.pool.settings.server;
    try {
      conn = this.connections.get(m) ?? (await this.open(m, server, timeoutMs));
      const probing = conn;
      timer = setTimeout(() => probing.close(`no answer within ${timeoutMs} ms`), timeoutMs);
      const rows = await conn.queryRows(PROBE_SQL);
      const recovery = rows[0]?.[0];
      if (recovery !== 't' && recovery !== 'f') throw new Error(`unexpected answer ${JSON.stringify(rows)}`);
      if (m.configuredRole === 'auto') this.setRole(cluster, m, recovery === 't' ? 'replica' : 'primary');
    } catch (err) {
      if (conn) this.drop(m, conn, 'probe failed');
      if (this.closed) return;
      if (err instanceof ServerAuthError && !server.password) {
        // Nothing to log in with yet (an auth_query user before any login):
        // not the server's fault. Its role stays unknown until a login
        // brings the credential.
        this.log.debug({ server: m.address, reason: err.message }, 'role probe waits for credentials');
        return;
      }
      const reason = `probe failed: ${(err as Error).message}`;
      if (m.configuredRole === 'auto') this.setRole(cluster, m, 'replica', reason);
      if (!m.banned && cluster.ban(m, reason)) this.log.warn({ server: m.address, reason }, 'server banned');
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(m);
    }
  }

  /** A probe connection like the pool's own (tls, lookup, credentials), bounded by the probe's timeout. */
  private async open(m: ClusterMember, server: ServerOptions, timeoutMs: number): Promise<ServerConnection> {
    const conn = await ServerConnection.connect({
      ...server,
      connectTimeout: timeoutMs,
      mirrors: undefined,
      startupParams: { ...server.startupParams, application_name: 'pglynx role probe' },
    });
    if (this.closed) {
      conn.close('role prober closed');
      throw new Error('role prober closed');
    }
    this.connections.set(m, conn);
    // Closed between probes (the server went away): the next probe opens another.
    conn.onClose(() => {
      if (this.connections.get(m) === conn) this.connections.delete(m);
    });
    return conn;
  }

  private drop(m: ClusterMember, conn: ServerConnection, reason: string): void {
    if (this.connections.get(m) === conn) this.connections.delete(m);
    conn.close(reason);
  }

  private setRole(cluster: Cluster, m: ClusterMember, role: 'primary' | 'replica', why?: string): void {
    if (m.role === role && m.roleKnown) return;
    if (m.role !== role) this.log.warn({ server: m.address, from: m.role, to: role, reason: why }, 'server role changed');
    cluster.roleDetected(m, role);
  }

  close(): void {
    this.closed = true;
    for (const conn of this.connections.values()) conn.close('pooler shutting down');
    this.connections.clear();
  }
}
