// A fleet of PgLynx poolers sharing state through Redis (`[general]
// redis_url`): membership and the fleet view, bans and roles, the
// embedding cache as a second level. One Fleet per pooler process, started
// with it and left at shutdown. Nothing here is on the path of a query
// except the bounded cache lookup (embedding-cache.ts).

import type { GeneralConfig } from '../../config/types.js';
import type { Engine } from '../../engine/engine.js';
import type { Logger } from '../logger.js';
import type { Cluster } from '../pool/cluster.js';
import type { EmbeddingProvider } from '../pgml/rewrite.js';
import type { Pool } from '../pool/pool.js';
import type { PoolSettings } from '../pool/pool-settings.js';
import { ConnectionBudgets } from './budgets.js';
import { FleetPool } from './fleet-pool.js';
import { FleetEmbeddings, type FleetCacheCounters } from './embedding-cache.js';
import { Membership, newMemberId, type MemberState } from './membership.js';
import { RedisLink, redactUrl } from './redis-link.js';
import { SharedBans } from './shared-bans.js';

/** What the fleet reads from its pooler. */
export interface FleetHost {
  /** The port clients connect to. */
  port(): number;
  /** Logged-in client connections. */
  clients(): number;
  /** Server connections open now, every pool summed. */
  serverConnections(): number;
  /** Every (pool, user) cluster, for bans and roles shared by address. */
  clusters(): Cluster[];
}

/** What the admin console and the exporter see of the fleet. */
export interface FleetView {
  readonly memberId: string;
  /** Both Redis connections are up. */
  readonly connected: boolean;
  /** This member first (live), then the others as of the last heartbeat. */
  members(): MemberState[];
  readonly cache: Readonly<FleetCacheCounters>;
  /** Ban, unban and role messages sent to and applied from other members. */
  readonly bansPublished: number;
  readonly bansReceived: number;
}

export class Fleet implements FleetView {
  readonly memberId = newMemberId();
  private readonly link: RedisLink;
  private readonly membership: Membership;
  private readonly bans: SharedBans;
  private readonly budgets: ConnectionBudgets;
  private embeddings: FleetEmbeddings | null = null;
  private readonly cacheCounters: FleetCacheCounters = { remoteHits: 0, remoteMisses: 0, writes: 0 };

  private constructor(
    private readonly general: GeneralConfig,
    url: string,
    host: FleetHost,
    private readonly log: Logger,
  ) {
    this.link = new RedisLink(url, log);
    this.membership = new Membership(this.memberId, this.link, general.fleet_lease_ttl_ms, host.port, () => ({
      clients: host.clients(),
      serverConnections: host.serverConnections(),
      remoteCacheHits: this.cache.remoteHits,
    }));
    this.bans = new SharedBans(this.memberId, this.link, host.clusters, log);
    this.budgets = new ConnectionBudgets(this.memberId, this.link, general.fleet_lease_ttl_ms, () => this.membership.members().map((m) => m.id));
  }

  /** Null when no redis_url is configured. Never waits for Redis: it connects in the background. */
  static start(general: GeneralConfig, host: FleetHost, log: Logger): Fleet | null {
    if (general.redis_url === null) return null;
    const fleet = new Fleet(general, general.redis_url, host, log);
    fleet.bans.start();
    fleet.membership.start();
    fleet.budgets.start();
    log.info({ member: fleet.memberId, redis: redactUrl(general.redis_url) }, 'fleet: joining');
    return fleet;
  }

  get connected(): boolean {
    return this.link.connected;
  }

  members(): MemberState[] {
    return this.membership.members();
  }

  get cache(): Readonly<FleetCacheCounters> {
    return this.embeddings?.counters ?? this.cacheCounters;
  }

  get bansPublished(): number {
    return this.bans.published;
  }

  get bansReceived(): number {
    return this.bans.received;
  }

  /** A server's connection Pool whose connections hold leases of the fleet's budget (pool_size across members). */
  createPool(settings: PoolSettings): Pool {
    return new FleetPool(settings, this.budgets);
  }

  /** The engine behind the fleet's embedding cache (one wrapper, kept across reloads). */
  embeddingProvider(engine: Engine): EmbeddingProvider {
    this.embeddings ??= new FleetEmbeddings(engine, this.link, this.general.fleet_redis_wait_ms, this.general.fleet_embedding_ttl_ms);
    return this.embeddings;
  }

  async close(): Promise<void> {
    this.bans.stop();
    this.budgets.stop();
    await this.membership.leave();
    await this.link.close();
    this.log.info({ member: this.memberId }, 'fleet: left');
  }
}
