// Turns the config's pools and users into live Pool objects keyed by
// (database, user), and keeps them across reloads: a pool whose settings
// change is updated in place, so its clients and connections carry on.

import type { Config, PoolConfig, UserConfig } from '../config/types.js';
import type { ClientAuthMethod } from './client/login.js';
import type { SessionSettings } from './client/session.js';
import { Pool, type PoolSettings } from './pool/pool.js';
import { scramSecretFromPassword, type ScramSecret } from './auth/scram-server.js';
import { isEmbeddedHost } from './embedded/pglite-backend.js';

/** Where a (pool, shard, server) lives once embedded backends are started. */
export type ResolveAddress = (host: string, port: number) => { host: string; port: number };

export interface PoolEntry {
  pool: Pool;
  poolName: string;
  user: UserConfig;
  session: SessionSettings;
  /** Derived once per password: SCRAM key derivation is deliberately slow. */
  scram: ScramSecret | null;
  authMethod: ClientAuthMethod;
}

export function poolKey(database: string, user: string): string {
  return `${database}\u0000${user}`;
}

export function poolSettings(config: Config, name: string, pc: PoolConfig, user: UserConfig, resolve: ResolveAddress): PoolSettings {
  const g = config.general;
  const shard = pc.shards['0'] ?? Object.values(pc.shards)[0];
  // Issue scope: shard 0's primary; replicas and sharding route later.
  const server = shard.servers.find((s) => s.role === 'primary') ?? shard.servers[0];
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
    roundRobin: g.server_round_robin,
    prewarm: [],
    server: {
      host: addr.host,
      port: addr.port,
      database: shard.database,
      user: user.server_username ?? user.username,
      password: user.server_password ?? user.password,
      connectTimeout,
      keepAliveIdleMs: g.tcp_keepalives_idle * 1000,
    },
  };
}

/** Build or update the pool map for a config; returns the pools that went away. */
export function reconcilePools(
  config: Config,
  current: Map<string, PoolEntry>,
  resolve: ResolveAddress,
): { pools: Map<string, PoolEntry>; removed: PoolEntry[] } {
  const pools = new Map<string, PoolEntry>();
  for (const [name, pc] of Object.entries(config.pools)) {
    for (const user of Object.values(pc.users)) {
      const key = poolKey(name, user.username);
      const settings = poolSettings(config, name, pc, user, resolve);
      const old = current.get(key);
      const samePassword = old && old.user.password === user.password;
      const scram = samePassword ? old.scram : user.password !== null ? scramSecretFromPassword(user.password) : null;
      const session: SessionSettings = {
        idleInTransactionTimeout: config.general.idle_client_in_transaction_timeout,
        statementTimeout: user.statement_timeout,
        plugins: [],
      };
      let pool: Pool;
      if (old && sameServer(old.pool.settings, settings)) {
        pool = old.pool;
        pool.update(settings);
      } else {
        pool = new Pool(settings);
      }
      pools.set(key, { pool, poolName: name, user, session, scram, authMethod: user.auth_type ?? config.general.auth_type });
    }
  }
  const removed = [...current.entries()].filter(([k, e]) => pools.get(k)?.pool !== e.pool).map(([, e]) => e);
  return { pools, removed };
}

function sameServer(a: PoolSettings, b: PoolSettings): boolean {
  const x = a.server;
  const y = b.server;
  return x.host === y.host && x.port === y.port && x.database === y.database && x.user === y.user && x.password === y.password;
}
