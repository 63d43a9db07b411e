// Turns the config's pools and users into live Pool objects keyed by
// (database, user), and keeps them across reloads: a pool whose settings
// change is updated in place, so its clients and connections carry on.

import { sharedDnsCache } from './server/dns-cache.js';
import type { Config, PoolConfig, ServerAddressConfig, ShardConfig, UserConfig } from '../config/types.js';
import { Cluster, ClusterMember } from './pool/cluster.js';
import type { ClientAuthMethod } from './client/login.js';
import type { SessionSettings } from './client/session.js';
import { Pool, type PoolSettings } from './pool/pool.js';
import { scramSecretFromPassword, type ScramSecret } from './auth/scram-server.js';
import { isEmbeddedHost } from './embedded/pglite-backend.js';
import { buildQueryPlugins, prewarmQueries } from './plugins/index.js';
import type { Logger } from './logger.js';
import { NO_SERVER_TLS } from './tls/server.js';
import { hasAuthQuery, type AuthQueryTarget } from './auth/auth-query.js';
import { shardingContext } from './sharding/context.js';

/** Where a (pool, shard, server) lives once embedded backends are started. */
export type ResolveAddress = (host: string, port: number) => { host: string; port: number };

export interface PoolEntry {
  /** Every server of the pool (shards, primary and replicas), each with its own connections. */
  cluster: Cluster;
  /** Shard 0's primary (or first server): where login learns server parameters. */
  pool: Pool;
  poolName: string;
  user: UserConfig;
  session: SessionSettings;
  /** Derived once per password: SCRAM key derivation is deliberately slow. */
  scram: ScramSecret | null;
  authMethod: ClientAuthMethod;
  /**
   * auth_query: the server password a login revealed for a user the config
   * lists without one (a stored md5 hash or SCRAM keys, see
   * auth/passthrough-credentials.ts); null otherwise.
   */
  credential: string | null;
  /** Created on demand for an auth_query user the config does not list. */
  dynamic: boolean;
}

export function poolKey(database: string, user: string): string {
  return `${database}\u0000${user}`;
}

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

/** Build or update the pool map for a config; returns the pools that went away. */
export function reconcilePools(
  config: Config,
  current: Map<string, PoolEntry>,
  resolve: ResolveAddress,
  /** For the query_logger plugin and plugin config warnings. */
  log?: Logger,
): { pools: Map<string, PoolEntry>; removed: Pool[] } {
  // Clusters are updated in place below: note their pools first.
  const before = [...current.values()].flatMap((e) => e.cluster.members.map((m) => m.pool));
  const pools = new Map<string, PoolEntry>();
  for (const [name, pc] of Object.entries(config.pools)) {
    for (const user of Object.values(pc.users)) {
      const key = poolKey(name, user.username);
      const old = current.get(key);
      // A user listed without a password keeps what auth_query taught us.
      const credential = user.password === null ? (old?.credential ?? null) : null;
      pools.set(key, buildEntry(config, name, pc, user, old, resolve, log, credential, false));
    }
  }
  // auth_query users the config does not list keep their pools while the
  // pool still has auth_query.
  for (const [key, old] of current) {
    if (!old.dynamic || pools.has(key) || old.credential === null) continue;
    const pc = ownPool(config, old.poolName);
    if (!pc || !hasAuthQuery(pc)) continue;
    pools.set(key, buildEntry(config, old.poolName, pc, passthroughUser(pc, old.user.username), old, resolve, log, old.credential, true));
  }
  // Member pools no new entry kept (server moved, pool or user removed).
  const kept = new Set([...pools.values()].flatMap((e) => e.cluster.members.map((m) => m.pool)));
  const removed = before.filter((p) => !kept.has(p));
  return { pools, removed };
}

function buildEntry(
  config: Config,
  name: string,
  pc: PoolConfig,
  user: UserConfig,
  old: PoolEntry | undefined,
  resolve: ResolveAddress,
  log: Logger | undefined,
  credential: string | null,
  dynamic: boolean,
): PoolEntry {
  // auth_query users log into the server with what their login revealed.
  const serverUser = credential !== null && user.server_password === null ? { ...user, server_password: credential } : user;
  const samePassword = old && old.user.password === user.password;
  const scram = samePassword ? old.scram : user.password !== null ? scramSecretFromPassword(user.password) : null;
  const session: SessionSettings = {
    idleInTransactionTimeout: config.general.idle_client_in_transaction_timeout,
    statementTimeout: user.statement_timeout,
    plugins: buildQueryPlugins(config, name, pc, user.username, log),
    // Set by the pooler, which owns the engine (pooler.ts applyPools).
    pgml: null,
    routing: {
      queryParser: pc.query_parser_enabled,
      readWriteSplitting: pc.query_parser_read_write_splitting,
      defaultRole: pc.default_role,
      primaryReads: pc.primary_reads_enabled,
    },
    healthcheck: { delayMs: config.general.healthcheck_delay, timeoutMs: config.general.healthcheck_timeout },
    sharding: shardingContext(pc),
    checkoutFailureLimit: pc.checkout_failure_limit ?? 0,
    maxMessageSize: config.general.max_message_size,
  };
  const cluster = buildCluster(config, name, pc, serverUser, resolve, old?.cluster, credential !== null, log);
  const first = cluster.primary(0) ?? cluster.shards[0][0];
  return { cluster, pool: first.pool, poolName: name, user, session, scram, authMethod: user.auth_type ?? config.general.auth_type, credential, dynamic };
}

/**
 * One member per configured server, shard by shard. A member whose server
 * is unchanged keeps its pool (updated in place) and its detected role and
 * ban; others get a new pool.
 */
function buildCluster(
  config: Config,
  name: string,
  pc: PoolConfig,
  user: UserConfig,
  resolve: ResolveAddress,
  old: Cluster | undefined,
  ignorePassword: boolean,
  log?: Logger,
): Cluster {
  const shardKeys = Object.keys(pc.shards).sort((a, b) => Number(a) - Number(b));
  const shards = shardKeys.map((key, s) =>
    pc.shards[key].servers.map((server, i) => {
      const settings = poolSettings(config, name, pc, user, resolve, { shard: pc.shards[key], server });
      const mirrors = pc.shards[key].mirrors.filter((m) => m.mirroring_target_index === i);
      if (mirrors.length > 0) {
        // Same database and credentials as the server mirrored (as PgCat); no mirrors of mirrors.
        const targets = mirrors.map((m) => ({ ...settings.server, ...resolve(m.host, m.port), mirrors: undefined }));
        settings.server.mirrors = { targets, log: log ?? null };
      }
      const prev = old?.shards[s]?.[i];
      if (prev && prev.configuredRole === server.role && sameServer(prev.pool.settings, settings, ignorePassword)) {
        prev.pool.update(settings);
        return prev;
      }
      return new ClusterMember(new Pool(settings), server.role, s, i);
    }),
  );
  const options = {
    loadBalancing: pc.load_balancing_mode,
    banTimeMs: config.general.ban_time * 1000,
    primaryReadsEnabled: pc.primary_reads_enabled,
  };
  if (old) {
    old.shards = shards;
    old.options = options;
    old.balancer.mode = options.loadBalancing;
    return old;
  }
  return new Cluster(shards, options);
}

function sameServer(a: PoolSettings, b: PoolSettings, ignorePassword = false): boolean {
  const x = a.server;
  const y = b.server;
  return x.host === y.host && x.port === y.port && x.database === y.database && x.user === y.user && (ignorePassword || x.password === y.password);
}

/** config.pools[name], never an Object.prototype member for a client-chosen name. */
function ownPool(config: Config, name: string): PoolConfig | undefined {
  return Object.hasOwn(config.pools, name) ? config.pools[name] : undefined;
}

/**
 * An auth_query user the config does not list borrows the pool's first
 * user's settings (pool_size, pool_mode, timeouts; PgBouncer would use its
 * default_pool_size), but keeps no idle connections warm: there may be many
 * such users.
 */
function passthroughUser(pc: PoolConfig, username: string): UserConfig {
  const template = Object.values(pc.users)[0]!;
  return { ...template, username, password: null, auth_type: null, server_username: null, server_password: null, min_pool_size: 0 };
}

/** Whether logins for (database, user) go through the pool's auth_query. */
export function usesAuthQuery(config: Config, database: string, entry: PoolEntry | undefined): boolean {
  if (entry && !entry.dynamic && entry.user.password !== null) return false;
  const pc = ownPool(config, database);
  return pc !== undefined && hasAuthQuery(pc);
}

/** Where to run pool `name`'s auth_query: its server (shard 0 primary), as auth_query_user. */
export function authQueryTarget(config: Config, name: string, resolve: ResolveAddress): AuthQueryTarget | null {
  const pc = ownPool(config, name);
  if (!pc || !hasAuthQuery(pc)) return null;
  const { server } = poolSettings(config, name, pc, Object.values(pc.users)[0]!, resolve);
  return { server: { ...server, user: pc.auth_query_user!, password: pc.auth_query_password! }, query: pc.auth_query! };
}

/**
 * The pool entry of an auth_query user who just logged in with `credential`:
 * the existing one, updated when the credential changed, or a new one.
 * Null when the pool lost its auth_query meanwhile (reload).
 */
export function passthroughEntry(
  config: Config,
  name: string,
  username: string,
  credential: string,
  current: Map<string, PoolEntry>,
  resolve: ResolveAddress,
  log?: Logger,
): PoolEntry | null {
  const pc = ownPool(config, name);
  if (!pc || !hasAuthQuery(pc)) return null;
  const old = current.get(poolKey(name, username));
  if (old && old.credential === credential) return old;
  const listed = Object.values(pc.users).find((u) => u.username === username);
  if (listed && listed.password !== null) return null;
  return buildEntry(config, name, pc, listed ?? passthroughUser(pc, username), old, resolve, log, credential, !listed);
}
