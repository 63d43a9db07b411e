// What one server's connection Pool runs with, from the config: sizes and
// timeouts (user over pool over general), the server's address once
// embedded backends are resolved, credentials, TLS and the DNS cache.

import type { Config, PoolConfig, PoolMode, ServerAddressConfig, ShardConfig, UserConfig } from '../../config/types.js';
import { sharedDnsCache } from '../server/dns-cache.js';
import { isEmbeddedHost } from '../embedded/pglite-backend.js';
import { prewarmQueries } from '../plugins/index.js';
import { NO_SERVER_TLS } from '../tls/server.js';
import type { ServerOptions } from '../server/options.js';

/** What one Pool runs with (replaced whole on reload: Pool.update). */
export interface PoolSettings {
  /** Pool name as clients give it (the `database` startup parameter). */
  name: string;
  user: string;
  mode: PoolMode;
  size: number;
  minSize: number;
  /** How long a client may wait for a connection (PgCat uses connect_timeout). */
  checkoutTimeout: number;
  idleTimeout: number;
  serverLifetime: number;
  /** Undo SET / PREPARE left by clients in transaction mode (PgCat's cleanup_server_connections). */
  cleanupConnections: boolean;
  /** server_reset_query_always: the full reset at every check-in in transaction mode, whatever was seen. */
  resetAlways: boolean;
  /** Reuse the least recently used idle connection instead of the most recent. */
  roundRobin: boolean;
  /** Statements run on every new server connection before first use (PgCat's prewarmer plugin). */
  prewarm: string[];
  /** Prepared statements per server connection in transaction mode; 0 disables renaming. */
  preparedCacheSize: number;
  /** Pipelining (pipeline.ts): units per server connection at most (1: off), whether writes may be, and the wait bound in ms. */
  pipeline: PipelineSettings;
  server: ServerOptions;
}

export interface PipelineSettings {
  depth: number;
  writes: boolean;
  maxWaitMs: number;
}

/** Where a (pool, shard, server) lives once embedded backends are started. */
export type ResolveAddress = (host: string, port: number) => { host: string; port: number };

/** Shard 0's primary, or its first server. */
function defaultServer(pc: PoolConfig): { shard: ShardConfig; server: ServerAddressConfig } {
  const shard = pc.shards['0'] ?? Object.values(pc.shards)[0];
  return { shard, server: shard.servers.find((s) => s.role === 'primary') ?? shard.servers[0] };
}

export function poolSettings(
  config: Config,
  name: string,
  pc: PoolConfig,
  user: UserConfig,
  resolve: ResolveAddress,
  where: { shard: ShardConfig; server: ServerAddressConfig } = defaultServer(pc),
): PoolSettings {
  const g = config.general;
  const { shard, server } = where;
  const addr = resolve(server.host, server.port);
  const connectTimeout = user.connect_timeout ?? pc.connect_timeout ?? g.connect_timeout;
  return {
    name,
    user: user.username,
    mode: user.pool_mode ?? pc.pool_mode,
    // PGlite runs every socket on one shared session: more than one server
    // connection would interleave clients' extended batches (see embedded/).
    size: isEmbeddedHost(server.host) ? 1 : user.pool_size,
    minSize: isEmbeddedHost(server.host) ? Math.min(1, user.min_pool_size) : user.min_pool_size,
    checkoutTimeout: connectTimeout,
    idleTimeout: user.idle_timeout ?? pc.idle_timeout ?? g.idle_timeout,
    serverLifetime: user.server_lifetime ?? pc.server_lifetime ?? g.server_lifetime,
    cleanupConnections: pc.cleanup_server_connections,
    resetAlways: pc.server_reset_query_always,
    roundRobin: g.server_round_robin,
    prewarm: prewarmQueries(config, pc),
    // PgCat >= 1.2 enables it per pool by cache size; 1.1 with general.prepared_statements.
    preparedCacheSize: pc.prepared_statements_cache_size ?? (g.prepared_statements ? g.prepared_statements_cache_size : 0),
    // Transaction mode only (a session-mode client keeps its server), and not
    // on the embedded backend (one shared session: see size above).
    pipeline: {
      depth: (user.pool_mode ?? pc.pool_mode) === 'transaction' && !isEmbeddedHost(server.host) ? pc.pipeline_depth : 1,
      writes: pc.pipeline_writes,
      maxWaitMs: pc.pipeline_max_wait_ms,
    },
    server: {
      host: addr.host,
      port: addr.port,
      database: shard.database,
      user: user.server_username ?? user.username,
      password: user.server_password ?? user.password,
      connectTimeout,
      keepAliveIdleMs: g.tcp_keepalives_idle * 1000,
      lookup: g.dns_cache_enabled ? sharedDnsCache(g.dns_max_ttl).lookup : undefined,
      // The embedded backend is in-process over loopback and speaks no TLS.
      tls: isEmbeddedHost(server.host) ? NO_SERVER_TLS : { enabled: g.server_tls, verify: g.verify_server_certificate },
    },
  };
}
