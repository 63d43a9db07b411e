// The shape of a loaded pgcat.toml, after defaults are applied.
//
// Names follow PgCat's config.rs one to one (snake_case keys), so an operator
// can read a key in the TOML and find it here. Durations are milliseconds
// unless the name says otherwise (ban_time is seconds, as in PgCat).

import type { ModelConfig } from './models.js';

export type PoolMode = 'transaction' | 'session';
export type LoadBalancingMode = 'random' | 'loc' | 'round_robin';
export type DefaultRole = 'any' | 'replica' | 'primary';
export type ServerRole = 'primary' | 'replica' | 'auto';
export type ShardingFunction = 'pg_bigint_hash' | 'sha1';
/** PgCat accepts `md5` and `trust`; `scram-sha-256` is PgLynx's addition. */
export type AuthType = 'md5' | 'scram-sha-256' | 'trust';

export interface GeneralConfig {
  host: string;
  port: number;
  enable_prometheus_exporter: boolean;
  prometheus_exporter_port: number;
  connect_timeout: number;
  idle_timeout: number;
  server_lifetime: number;
  idle_client_in_transaction_timeout: number;
  healthcheck_timeout: number;
  healthcheck_delay: number;
  shutdown_timeout: number;
  /** Largest client message in bytes (PgLynx; Postgres's own limit is 1 GiB). A longer one closes the client with 08P01 as soon as its header arrives. */
  max_message_size: number;
  /** PgBouncer's client_login_timeout, in ms as PgCat's timeouts: a client not logged in by then is closed (0: no limit). */
  client_login_timeout: number;
  /** PgBouncer's max_client_conn: client connections held at once; 0 (the default, as PgCat has no limit) means no limit. */
  max_client_conn: number;
  ban_time: number;
  log_client_connections: boolean;
  log_client_disconnections: boolean;
  autoreload: number | null;
  worker_threads: number;
  tcp_keepalives_idle: number;
  tcp_keepalives_count: number;
  tcp_keepalives_interval: number;
  tcp_user_timeout: number;
  server_round_robin: boolean;
  dns_cache_enabled: boolean;
  dns_max_ttl: number;
  tls_certificate: string | null;
  tls_private_key: string | null;
  server_tls: boolean;
  verify_server_certificate: boolean;
  admin_username: string;
  admin_password: string;
  admin_auth_type: AuthType;
  /** Default client auth for users without their own `auth_type` (PgLynx; PgBouncer's auth_type). */
  auth_type: AuthType;
  validate_config: boolean;
  prepared_statements: boolean;
  prepared_statements_cache_size: number;
  /** PgBouncer's server_reset_query_always: transaction mode resets every server at check-in (DISCARD ALL), seen changes or not. */
  server_reset_query_always: boolean;
  auth_query: string | null;
  auth_query_user: string | null;
  auth_query_password: string | null;
  /** PgLynx: independent autocommit units sent on one busy server connection before its replies return, when the pool is saturated (1: off). */
  pipeline_depth: number;
  /** PgLynx: autocommit writes may be pipelined too (reads only otherwise). */
  pipeline_writes: boolean;
  /** PgLynx: a unit is not queued behind one that has run longer than this (ms). */
  pipeline_max_wait_ms: number;
  /** PgLynx: `redis://host:port/db` of the Redis a fleet of poolers shares (bans, roles, embedding cache, fleet view); null: no fleet. */
  redis_url: string | null;
  /** PgLynx: a fleet member unseen for this long (ms) has left; its heartbeat is renewed every third of it. */
  fleet_lease_ttl_ms: number;
  /** PgLynx: how long (ms) a query may wait on Redis for an embedding before computing it. */
  fleet_redis_wait_ms: number;
  /** PgLynx: how long (ms) an embedding stays in the fleet's Redis cache. */
  fleet_embedding_ttl_ms: number;
}

export interface ServerAddressConfig {
  /** Host name, IP, or `pglite:<data dir>` for the embedded backend. */
  host: string;
  port: number;
  role: ServerRole;
}

export interface MirrorConfig {
  host: string;
  port: number;
  /** Index into the shard's `servers` list of the server this mirrors. */
  mirroring_target_index: number;
}

export interface ShardConfig {
  database: string;
  servers: ServerAddressConfig[];
  mirrors: MirrorConfig[];
}

export interface UserConfig {
  username: string;
  password: string | null;
  /** How this user authenticates to the pooler (PgCat's `auth_type`). */
  auth_type: AuthType | null;
  server_username: string | null;
  server_password: string | null;
  pool_size: number;
  min_pool_size: number;
  /** Overrides the pool's mode for this user when set. */
  pool_mode: PoolMode | null;
  statement_timeout: number;
  server_lifetime: number | null;
  connect_timeout: number | null;
  idle_timeout: number | null;
}

export interface InterceptQuery {
  query: string;
  schema: [string, string][];
  result: string[][];
}

export interface PluginsConfig {
  intercept: { enabled: boolean; queries: Record<string, InterceptQuery> } | null;
  table_access: { enabled: boolean; tables: string[] } | null;
  query_logger: { enabled: boolean } | null;
  prewarmer: { enabled: boolean; queries: string[] } | null;
}

export interface PoolConfig {
  pool_mode: PoolMode;
  load_balancing_mode: LoadBalancingMode;
  default_role: DefaultRole;
  query_parser_enabled: boolean;
  query_parser_max_length: number | null;
  query_parser_read_write_splitting: boolean;
  primary_reads_enabled: boolean;
  connect_timeout: number | null;
  idle_timeout: number | null;
  server_lifetime: number | null;
  /** PgCat 1.2: checkout failures after which a client is disconnected; null or 0: never. */
  checkout_failure_limit: number | null;
  sharding_function: ShardingFunction;
  automatic_sharding_key: string | null;
  sharding_key_regex: string | null;
  shard_id_regex: string | null;
  regex_search_limit: number;
  /** `shard_<n>`, `random`, `random_healthy` or `fail`. */
  default_shard: string;
  auth_query: string | null;
  auth_query_user: string | null;
  auth_query_password: string | null;
  cleanup_server_connections: boolean;
  /** As general.server_reset_query_always, for this pool (unset: the general value). */
  server_reset_query_always: boolean;
  /** As general.pipeline_depth / pipeline_writes / pipeline_max_wait_ms, for this pool (unset: the general value). */
  pipeline_depth: number;
  pipeline_writes: boolean;
  pipeline_max_wait_ms: number;
  log_client_parameter_status_changes: boolean;
  prepared_statements_cache_size: number | null;
  plugins: PluginsConfig | null;
  /** Keyed by user section name (PgCat keys users by "0", "1", ...). */
  users: Record<string, UserConfig>;
  /** Keyed by shard number as a string ("0", "1", ...). */
  shards: Record<string, ShardConfig>;
}

export interface Config {
  /** Absolute path of the file this was loaded from. */
  path: string;
  general: GeneralConfig;
  plugins: PluginsConfig | null;
  pools: Record<string, PoolConfig>;
  /** `[models.<name>]`: models the engine loads (PgLynx's own section; config/models.ts). */
  models: Record<string, ModelConfig>;
  /** Sections other than PgCat's, kept verbatim (`models` is also parsed into `models`). */
  extra: Record<string, unknown>;
  /** Dotted key paths present in the file that PgLynx does not implement yet. */
  unsupported: string[];
  /** Settings that load but do not do what they seem to (logged with `unsupported`). */
  warnings?: string[];
}
