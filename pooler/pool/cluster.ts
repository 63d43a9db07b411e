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

/**
 * Who hears of the bans, unbans and role changes decided in this process
 * (the fleet shares them with other poolers, pooler/fleet/shared-bans.ts).
 * Changes applied from another pooler pass `shared = false` and are not
 * reported again, so they never echo.
 */
export interface ClusterEvents {
  banned(member: ClusterMember, ms: number, reason: string): void;
  unbanned(member: ClusterMember): void;
  roleChanged(member: ClusterMember, role: 'primary' | 'replica'): void;
}

let clusterEvents: ClusterEvents | null = null;

/** One listener per process (the fleet); null removes it. */
export function setClusterEvents(events: ClusterEvents | null): void {
  clusterEvents = events;
}

export class ClusterMember {
  /** The role in effect: configured, or detected for `auto` servers. */
  role: 'primary' | 'replica';
  /** False for an `auto` server until its first probe result (its role is a guess). */
  roleKnown: boolean;
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
    this.roleKnown = configuredRole !== 'auto';
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
  private balancer: Balancer;
  /** Resolved (and replaced) at the next role-probe result that changes a role: one promise for every waiting client. */
  private rolesChanged: { promise: Promise<void>; resolve: () => void } | null = null;
  /** shards[s] = that shard's servers, in config order. */
  private shardList: readonly (readonly ClusterMember[])[];
  /** Every shard's servers in one list, kept with shardList (read at every checkout). */
  private memberList: readonly ClusterMember[];
  private settings: Readonly<ClusterOptions>;

  constructor(shards: readonly (readonly ClusterMember[])[], options: ClusterOptions) {
    this.shardList = shards;
    this.memberList = shards.flat();
    this.settings = options;
    this.balancer = new Balancer(options.loadBalancing);
  }

  get shards(): readonly (readonly ClusterMember[])[] {
    return this.shardList;
  }

  get options(): Readonly<ClusterOptions> {
    return this.settings;
  }

  /**
   * A reload's new members and options (pool/registry.ts). The cluster
   * keeps its identity so clients waiting on it for a role probe are not
   * stranded; members whose server did not change are passed in again.
   */
  reconfigure(shards: readonly (readonly ClusterMember[])[], options: ClusterOptions): void {
    this.shardList = shards;
    this.memberList = shards.flat();
    if (options.loadBalancing !== this.settings.loadBalancing) this.balancer = new Balancer(options.loadBalancing);
    this.settings = options;
  }

  get members(): readonly ClusterMember[] {
    return this.memberList;
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
    // A server whose role is not known yet may be the primary: not for a read pinned to replicas.
    const eligible = (m: ClusterMember): boolean =>
      !exclude?.has(m) && ((m.role === 'replica' && m.roleKnown) || role === 'any' || primaryReads);
    let candidates = servers.filter((m) => eligible(m) && (m.role === 'primary' || !m.banned));
    if (candidates.every((m) => m.role === 'primary')) {
      // Every replica banned: PgCat lifts the bans rather than refuse reads.
      const replicas = servers.filter((m) => m.role === 'replica' && !exclude?.has(m));
      if (replicas.length > 0 && replicas.every((m) => m.banned)) {
        // Local only: every other pooler judges its own replicas.
        for (const m of replicas) this.unban(m, false);
        candidates = servers.filter(eligible);
      }
    }
    // No replica left for a replica-only read: fail it, as PgCat does. An
    // operator who pins reads to replicas is protecting the primary.
    const i = this.balancer.pick(candidates);
    return i < 0 ? null : candidates[i];
  }

  /**
   * Whether a query for `role` on `shard` that choose() could not place may
   * find a server after the next probe: a server's role is not known yet
   * (start-up), or a primary is wanted and an `auto` server may be promoted
   * (failover in progress). With configured roles only, waiting cannot help.
   */
  mayFindLater(shard: number, role: RoleTarget): boolean {
    // Single-server clusters are not probed (role-probe.ts).
    if (this.members.length < 2) return false;
    const servers = this.shards[shard] ?? [];
    return servers.some((m) => !m.roleKnown || (role === 'primary' && m.configuredRole === 'auto'));
  }

  /** Resolves true at the next role change the probe reports, false after `ms`. */
  whenRolesChange(ms: number): Promise<boolean> {
    if (!this.rolesChanged) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.rolesChanged = { promise, resolve };
    }
    const changed = this.rolesChanged.promise;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), Math.max(0, ms))));
    return Promise.race([changed.then(() => true), timeout]).finally(() => clearTimeout(timer));
  }

  /**
   * The role probe's answer for `member`: its role in effect from now on (a
   * primary is never banned). Queries waiting for a role (start-up, a
   * promotion) look again.
   */
  roleDetected(member: ClusterMember, role: 'primary' | 'replica', shared = true): void {
    if (shared && member.roleKnown && member.role !== role) clusterEvents?.roleChanged(member, role);
    member.role = role;
    member.roleKnown = true;
    if (role === 'primary') member.bannedUntil = 0;
    const waiting = this.rolesChanged;
    this.rolesChanged = null;
    waiting?.resolve();
  }

  /**
   * choose(), or when nothing fits yet but may after the next probe
   * (mayFindLater), wait for probe results until `deadline` (performance.now()
   * clock; the checkout timeout). 'timeout' when the wait ran out.
   */
  async chooseWhenKnown(
    shard: number,
    role: RoleTarget,
    primaryReads: boolean,
    deadline: number,
    exclude?: Set<ClusterMember>,
  ): Promise<ClusterMember | null | 'timeout'> {
    for (;;) {
      const m = this.choose(shard, role, primaryReads, exclude);
      if (m || !this.mayFindLater(shard, role)) return m;
      if (!(await this.whenRolesChange(deadline - performance.now()))) return 'timeout';
      // Fresh roles: a server that just failed this query may be the one now.
      exclude?.clear();
    }
  }

  ban(member: ClusterMember, reason: string, ms = this.options.banTimeMs, shared = true): boolean {
    if (member.role === 'primary') return false;
    const wasBanned = member.banned;
    member.bannedUntil = Date.now() + ms;
    member.banReason = reason;
    if (!wasBanned) member.pool.purge(`server banned: ${reason}`);
    if (shared) clusterEvents?.banned(member, ms, reason);
    return true;
  }

  unban(member: ClusterMember, shared = true): void {
    const wasBanned = member.banned;
    member.bannedUntil = 0;
    member.banReason = '';
    if (shared && wasBanned) clusterEvents?.unbanned(member);
  }
}
