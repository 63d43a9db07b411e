// PgCat's defaults, taken from the `#[serde(default = ...)]` attributes of
// PgCat's src/config.rs (not from its example pgcat.toml, whose values are
// examples, not defaults). A key absent from the file gets the value below.
//
// Keys that PgCat requires (no serde default) have no entry here; the loader
// reports them as missing: general.admin_username, general.admin_password,
// pools.<p>.users, pools.<p>.shards, users' username and pool_size, shards'
// database and servers, and every field of a declared plugin.
//
// `null` means "not set here": the pooler falls back at runtime from user to
// pool to general (connect_timeout, idle_timeout, server_lifetime, pool_mode).

import type { GeneralConfig, PoolConfig, UserConfig } from './types.js';

type Required_ = 'admin_username' | 'admin_password';

export const GENERAL_DEFAULTS: Readonly<Omit<GeneralConfig, Required_>> = Object.freeze({
  host: '0.0.0.0',
  // PgCat's code default is 5432 (its example file uses 6432).
  port: 5432,
  // Option<bool> in PgCat; unset means disabled.
  enable_prometheus_exporter: false,
  prometheus_exporter_port: 9930,
  connect_timeout: 1000,
  idle_timeout: 600_000,
  server_lifetime: 3_600_000,
  idle_client_in_transaction_timeout: 0,
  healthcheck_timeout: 1000,
  healthcheck_delay: 30_000,
  shutdown_timeout: 60_000,
  // Postgres refuses any message over 1 GiB (MaxAllocSize).
  max_message_size: 0x3fffffff,
  // PgLynx (PgBouncer's keys; PgCat has neither). PgBouncer's 60 s, in ms.
  client_login_timeout: 60_000,
  // No limit, as PgCat: a drop-in must not refuse clients PgCat accepted.
  max_client_conn: 0,
  ban_time: 60,
  log_client_connections: false,
  log_client_disconnections: false,
  // Milliseconds between config file checks; unset disables autoreload.
  autoreload: null,
  worker_threads: 4,
  // Seconds; PgCat enables keepalives so dead servers are noticed in ~30 s.
  tcp_keepalives_idle: 5,
  tcp_keepalives_count: 5,
  tcp_keepalives_interval: 5,
  tcp_user_timeout: 10_000,
  // PgCat's comment says false, but its default function returns true.
  server_round_robin: true,
  dns_cache_enabled: false,
  dns_max_ttl: 30,
  tls_certificate: null,
  tls_private_key: null,
  server_tls: false,
  verify_server_certificate: false,
  admin_auth_type: 'md5',
  // PgLynx: users without their own auth_type use this one.
  auth_type: 'md5',
  validate_config: true,
  // PgCat 1.1 kept these in [general]; later versions moved the cache size
  // to each pool. Both are still accepted so older files keep loading.
  prepared_statements: false,
  // PgBouncer's server_reset_query_always (PgLynx; PgCat has no such key).
  server_reset_query_always: false,
  prepared_statements_cache_size: 500,
  auth_query: null,
  auth_query_user: null,
  auth_query_password: null,
  // PgLynx's pipelining (off by default: PgCat's behaviour). The wait bound
  // is benchmarks/README.md's pick: pgbench -S statements take ~0.1 ms.
  pipeline_depth: 1,
  pipeline_writes: false,
  pipeline_max_wait_ms: 1,
  // PgLynx's fleet (issue 15): off unless a Redis is named. A member that
  // misses a few heartbeats (every ttl/3) is gone within seconds; a query
  // waits 20 ms at most for Redis (a round trip on a LAN is well under 1 ms).
  redis_url: null,
  fleet_lease_ttl_ms: 5000,
  fleet_redis_wait_ms: 20,
  fleet_embedding_ttl_ms: 3_600_000,
});

export const POOL_DEFAULTS: Readonly<Omit<PoolConfig, 'users' | 'shards'>> = Object.freeze({
  pool_mode: 'transaction',
  load_balancing_mode: 'random',
  default_role: 'any',
  query_parser_enabled: false,
  query_parser_max_length: null,
  query_parser_read_write_splitting: false,
  primary_reads_enabled: false,
  connect_timeout: null,
  idle_timeout: null,
  server_lifetime: null,
  checkout_failure_limit: null,
  sharding_function: 'pg_bigint_hash',
  automatic_sharding_key: null,
  sharding_key_regex: null,
  shard_id_regex: null,
  // Option<usize> in PgCat; the query router uses 1000 when unset.
  regex_search_limit: 1000,
  default_shard: 'shard_0',
  // Unset pool values are copied from [general] at load time, as PgCat does.
  auth_query: null,
  auth_query_user: null,
  auth_query_password: null,
  cleanup_server_connections: true,
  // Unset in a pool: general.server_reset_query_always (copied at load time).
  server_reset_query_always: false,
  // Unset in a pool: the [general] values (copied at load time).
  pipeline_depth: 1,
  pipeline_writes: false,
  pipeline_max_wait_ms: 1,
  log_client_parameter_status_changes: false,
  // PgCat ≥ 1.2 defaults this to 0 (disabled) at parse time. It stays null
  // here so a PgCat 1.1 file with [general] prepared_statements = true keeps
  // its cache: effective size = pool value ?? (general.prepared_statements ?
  // general.prepared_statements_cache_size : 0).
  prepared_statements_cache_size: null,
  plugins: null,
});

export const USER_DEFAULTS: Readonly<Omit<UserConfig, 'username' | 'pool_size'>> = Object.freeze({
  // Absent is allowed only when the pool has an auth_query (validated).
  password: null,
  // null: general.auth_type applies.
  auth_type: null,
  server_username: null,
  server_password: null,
  min_pool_size: 0,
  pool_mode: null,
  statement_timeout: 0,
  server_lifetime: null,
  connect_timeout: null,
  idle_timeout: null,
});

