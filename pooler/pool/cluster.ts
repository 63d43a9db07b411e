// The servers behind one (pool, user): shards of a primary and replicas,
// each server with its own connection Pool. Chooses a server for a query
// (shard, role, load balancing) and keeps PgCat's ban rules: a replica that
// fails a health check or a connection attempt is skipped for ban_time;
// when every replica is banned the bans are lifted; the primary is never
// banned (there is nowhere else to send writes).

import type { LoadBalancingMode, ServerRole } from '../../config/types.js';
import { Balancer } from './balancer.js';
import type { Pool } from './pool.js';

/** Where a query may run. */
export type RoleTarget = 'primary' | 'replica' | 'any';

export class ClusterMember {
  /** The role in effect: configured, or detected for `auto` servers. */
  role: 'primary' | 'replica';
  bannedUntil = 0;
  banReason = '';

  constructor(
    public pool: Pool,
    readonly configuredRole: ServerRole,
    readonly shard: number,
    readonly index: number,
  ) {
    // An `auto` server counts as a replica until a probe says otherwise:
    // reads are safe anywhere, writes are not.
    this.role = configuredRole === 'primary' ? 'primary' : 'replica';
  }

  get address(): string {
    return `${this.pool.settings.server.host}:${this.pool.settings.server.port}`;
  }

  get banned(): boolean {
    return this.bannedUntil > Date.now();
  }

  /** Connections checked out from this server (for least-outstanding-connections). */
  get busy(): number {
    return this.pool.counters.active;
  }
}

export interface ClusterOptions {
  loadBalancing: LoadBalancingMode;
  banTimeMs: number;
  /** Replicas only take reads; with this on, the primary takes reads too. */
  primaryReadsEnabled: boolean;
}

export class Cluster {
  readonly balancer: Balancer;

  constructor(
    /** shards[s] = that shard's servers, in config order. */
    public shards: ClusterMember[][],
    public options: ClusterOptions,
  ) {
    this.balancer = new Balancer(options.loadBalancing);
  }

  get members(): ClusterMember[] {
    return this.shards.flat();
  }

  /** The shard's primary (configured or detected), if any. */
  primary(shard: number): ClusterMember | null {
    return this.shards[shard]?.find((m) => m.role === 'primary') ?? null;
  }

  /**
   * Choose a server for `role` on `shard`, skipping `exclude` (servers that
   * just failed this query). `replica` takes the primary too only with
   * `primaryReads` (PgCat's role None); null when none can take it.
   */
  choose(shard: number, role: RoleTarget, primaryReads = this.options.primaryReadsEnabled, exclude?: ReadonlySet<ClusterMember>): ClusterMember | null {
    const servers = this.shards[shard] ?? [];
    if (role === 'primary') {
      const p = servers.find((m) => m.role === 'primary' && !exclude?.has(m));
      return p ?? null;
    }
    const eligible = (m: ClusterMember): boolean =>
      !exclude?.has(m) && (m.role === 'replica' || role === 'any' || primaryReads);
    let candidates = servers.filter((m) => eligible(m) && (m.role === 'primary' || !m.banned));
    if (candidates.every((m) => m.role === 'primary')) {
      // Every replica banned: PgCat lifts the bans rather than refuse reads.
      const replicas = servers.filter((m) => m.role === 'replica' && !exclude?.has(m));
      if (replicas.length > 0 && replicas.every((m) => m.banned)) {
        for (const m of replicas) this.unban(m);
        candidates = servers.filter(eligible);
      }
    }
    // No replica left for a replica-only read: fail it, as PgCat does. An
    // operator who pins reads to replicas is protecting the primary.
    const i = this.balancer.pick(candidates);
    return i < 0 ? null : candidates[i];
  }

  ban(member: ClusterMember, reason: string, ms = this.options.banTimeMs): boolean {
    if (member.role === 'primary') return false;
    const wasBanned = member.banned;
    member.bannedUntil = Date.now() + ms;
    member.banReason = reason;
    if (!wasBanned) member.pool.purge(`server banned: ${reason}`);
    return true;
  }

  unban(member: ClusterMember): void {
    member.bannedUntil = 0;
    member.banReason = '';
  }

  /** The member whose address is host:port (admin BAN / UNBAN). */
  find(address: string): ClusterMember | null {
    return this.members.find((m) => m.address === address) ?? null;
  }
}
