// The pools of a config, one entry per (database, user): the servers behind
// it (Cluster), how its clients authenticate, and their session settings.
//
// Entries are immutable: `apply(config)` computes a new entry for every
// (database, user) and swaps the whole map. What must outlive a reload
// lives below the entry and is carried over: a member whose server did not
// move keeps its connection Pool (updated in place, so clients and
// connections carry on), its detected role and its ban; a cluster keeps its
// identity (clients waiting for a role probe stay woken). Sessions are
// rebound to the new entries by the pooler (ClientSession.rebind).

import type { Config, PoolConfig, UserConfig } from '../../config/types.js';
import type { Logger } from '../logger.js';
import type { ClientAuthMethod } from '../auth/login-entry.js';
import type { SessionSettings } from '../client/session-settings.js';
import type { EmbeddingProvider } from '../pgml/rewrite.js';
import { scramSecretFromPassword, type ScramSecret } from '../auth/scram-server.js';
import { hasAuthQuery, type AuthQueryTarget } from '../auth/auth-query.js';
import { buildQueryPlugins } from '../plugins/index.js';
import { shardingContext } from '../sharding/context.js';
import { Cluster, ClusterMember } from './cluster.js';
import { Pool } from './pool.js';
import type { PoolSettings } from './pool-settings.js';
import { poolSettings, type ResolveAddress } from './pool-settings.js';

/** How a pool's clients log in. */
export interface PoolAuth {
  /** The config's password for the user; null: auth_query (or none). */
  readonly password: string | null;
  /** Derived once per password: SCRAM key derivation is deliberately slow. */
  readonly scram: ScramSecret | null;
  readonly method: ClientAuthMethod;
  /**
   * auth_query: the server password a login revealed for a user the config
   * lists without one, or does not list (`listed` false: the entry was
   * created on demand); a stored md5 hash or SCRAM keys (see
   * auth/passthrough-credentials.ts). Null otherwise.
   */
  readonly passthrough: { readonly credential: string; readonly listed: boolean } | null;
}

export interface PoolEntry {
  /** The pool's name: the database clients ask for. */
  readonly poolName: string;
  readonly user: Readonly<UserConfig>;
  /** Every server of the pool (shards, primary and replicas), each with its own connections. */
  readonly cluster: Cluster;
  /** Shard 0's primary (or first server): where login learns server parameters. */
  readonly pool: Pool;
  readonly auth: PoolAuth;
  /** What sessions of this pool run with (ClientSession.rebind takes the entry as is). */
  readonly settings: Readonly<SessionSettings>;
}

/** What entries are built with besides the config. */
export interface RegistryDeps {
  /** Where a server lives once embedded backends are started. */
  resolve: ResolveAddress;
  /** For the query_logger plugin, plugin config warnings and mirrors. */
  log: Logger;
  /** Makes each server's connection Pool (the fleet's budgeted pools, pooler/fleet/fleet-pool.ts); `new Pool` when absent. */
  createPool?: (settings: PoolSettings) => Pool;
}

/** The map key of (database, user). */
export function poolKey(database: string, user: string): string {
  return `${database}\u0000${user}`;
}

/** config.pools[name], never an Object.prototype member for a client-chosen name. */
function ownPool(config: Config, name: string): PoolConfig | undefined {
  return Object.hasOwn(config.pools, name) ? config.pools[name] : undefined;
}

export class PoolRegistry {
  private entries: ReadonlyMap<string, PoolEntry> = new Map();
  private config: Config | null = null;
  private pgml: EmbeddingProvider | null = null;

  constructor(private readonly deps: RegistryDeps) {}

  get size(): number {
    return this.entries.size;
  }

  get(database: string, user: string): PoolEntry | undefined {
    return this.entries.get(poolKey(database, user));
  }

  all(): PoolEntry[] {
    return [...this.entries.values()];
  }

  /** Every server's pool of every entry: primaries and replicas. */
  memberPools(): Set<Pool> {
    return new Set(this.all().flatMap((e) => e.cluster.members.map((m) => m.pool)));
  }

  /**
   * Entries for `config` (pgml: the engine behind pgml.embed, null without
   * models). Returns the member pools no entry uses any more, for the
   * caller to close once sessions are rebound.
   */
  apply(config: Config, pgml: EmbeddingProvider | null): { removed: Pool[] } {
    const before = this.memberPools();
    const next = new Map<string, PoolEntry>();
    for (const [name, pc] of Object.entries(config.pools)) {
      for (const user of Object.values(pc.users)) {
        const key = poolKey(name, user.username);
        const old = this.entries.get(key);
        // A user listed without a password keeps what auth_query taught us.
        const credential = user.password === null ? (old?.auth.passthrough?.credential ?? null) : null;
        next.set(key, this.build(config, pgml, { name, pc, user, old, credential, listed: true }));
      }
    }
    // auth_query users the config does not list keep their pools while the
    // pool still has auth_query.
    for (const [key, old] of this.entries) {
      const p = old.auth.passthrough;
      if (!p || p.listed || next.has(key)) continue;
      const pc = ownPool(config, old.poolName);
      if (!pc || !hasAuthQuery(pc)) continue;
      next.set(key, this.build(config, pgml, { name: old.poolName, pc, user: passthroughUser(pc, old.user.username), old, credential: p.credential, listed: false }));
    }
    this.entries = next;
    this.config = config;
    this.pgml = pgml;
    // Member pools no new entry kept (server moved, pool or user removed).
    const kept = this.memberPools();
    return { removed: [...before].filter((p) => !kept.has(p)) };
  }

  /** Whether logins for (database, user) go through the pool's auth_query. */
  usesAuthQuery(database: string, user: string): boolean {
    const e = this.get(database, user);
    if (e && e.auth.password !== null) return false;
    const pc = this.config ? ownPool(this.config, database) : undefined;
    return pc !== undefined && hasAuthQuery(pc);
  }

  /** Where to run pool `name`'s auth_query: its server (shard 0 primary), as auth_query_user. */
  authQueryTarget(name: string): AuthQueryTarget | null {
    const config = this.config;
    const pc = config ? ownPool(config, name) : undefined;
    if (!config || !pc || !hasAuthQuery(pc)) return null;
    const { server } = poolSettings(config, name, pc, Object.values(pc.users)[0]!, this.deps.resolve);
    return { server: { ...server, user: pc.auth_query_user!, password: pc.auth_query_password! }, query: pc.auth_query! };
  }

  /**
   * An auth_query user logged in with `credential`: keep the existing entry
   * when the credential is the same, else replace it (or create one for a
   * user the config does not list). Nothing when the pool lost its
   * auth_query meanwhile (reload) or the user now has a password.
   */
  learnCredential(database: string, username: string, credential: string): void {
    const config = this.config;
    const pc = config ? ownPool(config, database) : undefined;
    if (!config || !pc || !hasAuthQuery(pc)) return;
    const key = poolKey(database, username);
    const old = this.entries.get(key);
    if (old && old.auth.passthrough?.credential === credential) return;
    const listed = Object.values(pc.users).find((u) => u.username === username);
    if (listed && listed.password !== null) return;
    const entry = this.build(config, this.pgml, { name: database, pc, user: listed ?? passthroughUser(pc, username), old, credential, listed: listed !== undefined });
    this.entries = new Map(this.entries).set(key, entry);
  }

  private build(config: Config, pgml: EmbeddingProvider | null, e: EntrySource): PoolEntry {
    const { name, pc, user, old, credential } = e;
    // auth_query users log into the server with what their login revealed.
    const serverUser = credential !== null && user.server_password === null ? { ...user, server_password: credential } : user;
    const samePassword = old && old.user.password === user.password;
    const scram = samePassword ? old.auth.scram : user.password !== null ? scramSecretFromPassword(user.password) : null;
    const settings: SessionSettings = Object.freeze({
      idleInTransactionTimeout: config.general.idle_client_in_transaction_timeout,
      statementTimeout: user.statement_timeout,
      plugins: buildQueryPlugins(config, name, pc, user.username, this.deps.log),
      pgml,
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
    });
    const cluster = this.cluster(config, name, pc, serverUser, old?.cluster, credential !== null);
    const first = cluster.primary(0) ?? cluster.shards[0]![0]!;
    const auth: PoolAuth = Object.freeze({
      password: user.password,
      scram,
      method: user.auth_type ?? config.general.auth_type,
      passthrough: credential === null ? null : Object.freeze({ credential, listed: e.listed }),
    });
    return Object.freeze({ poolName: name, user, cluster, pool: first.pool, auth, settings });
  }

  /**
   * One member per configured server, shard by shard. A member whose server
   * is unchanged keeps its pool (updated in place) and its detected role and
   * ban; others get a new pool. An existing cluster takes the new members
   * (Cluster.reconfigure), so what waits on it is not stranded.
   */
  private cluster(config: Config, name: string, pc: PoolConfig, user: UserConfig, old: Cluster | undefined, ignorePassword: boolean): Cluster {
    const { resolve, log } = this.deps;
    const shardKeys = Object.keys(pc.shards).sort((a, b) => Number(a) - Number(b));
    const shards = shardKeys.map((key, s) =>
      pc.shards[key]!.servers.map((server, i) => {
        const settings = poolSettings(config, name, pc, user, resolve, { shard: pc.shards[key]!, server });
        const mirrors = pc.shards[key]!.mirrors.filter((m) => m.mirroring_target_index === i);
        if (mirrors.length > 0) {
          // Same database and credentials as the server mirrored (as PgCat); no mirrors of mirrors.
          const targets = mirrors.map((m) => ({ ...settings.server, ...resolve(m.host, m.port), mirrors: undefined }));
          settings.server.mirrors = { targets, log };
        }
        const prev = old?.shards[s]?.[i];
        if (prev && prev.configuredRole === server.role && sameServer(prev.pool.settings, settings, ignorePassword)) {
          prev.pool.update(settings);
          return prev;
        }
        return new ClusterMember(this.deps.createPool?.(settings) ?? new Pool(settings), server.role, s, i);
      }),
    );
    const options = {
      loadBalancing: pc.load_balancing_mode,
      banTimeMs: config.general.ban_time * 1000,
      primaryReadsEnabled: pc.primary_reads_enabled,
    };
    if (!old) return new Cluster(shards, options);
    old.reconfigure(shards, options);
    return old;
  }
}

interface EntrySource {
  name: string;
  pc: PoolConfig;
  user: UserConfig;
  old: PoolEntry | undefined;
  /** auth_query: what the user's login revealed; null otherwise. */
  credential: string | null;
  /** The config lists the user (false: created on demand for auth_query). */
  listed: boolean;
}

function sameServer(a: PoolSettings, b: PoolSettings, ignorePassword: boolean): boolean {
  const x = a.server;
  const y = b.server;
  return x.host === y.host && x.port === y.port && x.database === y.database && x.user === y.user && (ignorePassword || x.password === y.password);
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
