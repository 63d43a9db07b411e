// The catalogue of pgcat.toml keys: every key PgCat knows, the values its
// enum keys accept, which keys PgLynx implements, and the report of keys in
// a file that PgLynx ignores.
//
// Reporting (Config.unsupported):
// - a PgCat key PgLynx does not act on yet is listed by its dotted path,
//   e.g. `general.healthcheck_delay`; a whole subtree with nothing
//   implemented under it is listed once by its root, e.g. `plugins` or
//   `pools.sharded_db.shards.0.mirrors`;
// - a key that is not a PgCat key at all (most likely a typo) is listed with
//   the prefix `unknown:`, e.g. `unknown:general.prot`. `unknownKeys()`
//   returns those without the prefix. Unknown keys never fail the load:
//   PgCat itself ignores them, and a drop-in must load what PgCat loads.

import type {
  AuthType, Config, DefaultRole, GeneralConfig, LoadBalancingMode, PoolConfig, PoolMode, ServerRole, ShardConfig,
  ShardingFunction, UserConfig,
} from './types.js';
import { formatPath, isTable } from './toml-values.js';

/** A key whose value is read as a whole (a scalar, an array, or an opaque table). */
export const LEAF = 'leaf';
/** A node of the key tree: a leaf, or a table of known children ('*' = any name). */
export type KeyNode = typeof LEAF | { readonly [key: string]: KeyNode };

export const GENERAL_KEYS: Readonly<Record<keyof GeneralConfig, KeyNode>> = {
  host: LEAF,
  port: LEAF,
  enable_prometheus_exporter: LEAF,
  prometheus_exporter_port: LEAF,
  connect_timeout: LEAF,
  idle_timeout: LEAF,
  server_lifetime: LEAF,
  idle_client_in_transaction_timeout: LEAF,
  healthcheck_timeout: LEAF,
  healthcheck_delay: LEAF,
  shutdown_timeout: LEAF,
  max_message_size: LEAF,
  client_login_timeout: LEAF,
  max_client_conn: LEAF,
  ban_time: LEAF,
  log_client_connections: LEAF,
  log_client_disconnections: LEAF,
  autoreload: LEAF,
  worker_threads: LEAF,
  tcp_keepalives_idle: LEAF,
  tcp_keepalives_count: LEAF,
  tcp_keepalives_interval: LEAF,
  tcp_user_timeout: LEAF,
  server_round_robin: LEAF,
  dns_cache_enabled: LEAF,
  dns_max_ttl: LEAF,
  tls_certificate: LEAF,
  tls_private_key: LEAF,
  server_tls: LEAF,
  verify_server_certificate: LEAF,
  admin_username: LEAF,
  admin_password: LEAF,
  admin_auth_type: LEAF,
  auth_type: LEAF,
  validate_config: LEAF,
  prepared_statements: LEAF,
  prepared_statements_cache_size: LEAF,
  server_reset_query_always: LEAF,
  pipeline_depth: LEAF,
  pipeline_writes: LEAF,
  pipeline_max_wait_ms: LEAF,
  redis_url: LEAF,
  fleet_lease_ttl_ms: LEAF,
  fleet_redis_wait_ms: LEAF,
  fleet_embedding_ttl_ms: LEAF,
  auth_query: LEAF,
  auth_query_user: LEAF,
  auth_query_password: LEAF,
};

export const USER_KEYS: Readonly<Record<keyof UserConfig, KeyNode>> = {
  username: LEAF,
  password: LEAF,
  auth_type: LEAF,
  server_username: LEAF,
  server_password: LEAF,
  pool_size: LEAF,
  min_pool_size: LEAF,
  pool_mode: LEAF,
  statement_timeout: LEAF,
  server_lifetime: LEAF,
  connect_timeout: LEAF,
  idle_timeout: LEAF,
};

export const SHARD_KEYS: Readonly<Record<keyof ShardConfig, KeyNode>> = {
  database: LEAF,
  servers: LEAF,
  mirrors: LEAF,
};

/** `[plugins]` at the top level and `[pools.<name>.plugins]` share this shape. */
export const PLUGIN_KEYS: KeyNode = {
  intercept: {
    enabled: LEAF,
    queries: { '*': { query: LEAF, schema: LEAF, result: LEAF } },
  },
  table_access: { enabled: LEAF, tables: LEAF },
  query_logger: { enabled: LEAF },
  prewarmer: { enabled: LEAF, queries: LEAF },
};

export const POOL_KEYS: Readonly<Record<keyof PoolConfig, KeyNode>> = {
  pool_mode: LEAF,
  load_balancing_mode: LEAF,
  default_role: LEAF,
  query_parser_enabled: LEAF,
  query_parser_max_length: LEAF,
  query_parser_read_write_splitting: LEAF,
  primary_reads_enabled: LEAF,
  connect_timeout: LEAF,
  idle_timeout: LEAF,
  server_lifetime: LEAF,
  checkout_failure_limit: LEAF,
  sharding_function: LEAF,
  automatic_sharding_key: LEAF,
  sharding_key_regex: LEAF,
  shard_id_regex: LEAF,
  regex_search_limit: LEAF,
  default_shard: LEAF,
  auth_query: LEAF,
  auth_query_user: LEAF,
  auth_query_password: LEAF,
  cleanup_server_connections: LEAF,
  server_reset_query_always: LEAF,
  pipeline_depth: LEAF,
  pipeline_writes: LEAF,
  pipeline_max_wait_ms: LEAF,
  log_client_parameter_status_changes: LEAF,
  prepared_statements_cache_size: LEAF,
  plugins: PLUGIN_KEYS,
  users: { '*': USER_KEYS },
  shards: { '*': SHARD_KEYS },
};

/**
 * The whole file. `path` is a PgCat key too (PgCat overwrites it with the
 * real file path, so setting it has no effect there either). `models` is
 * PgLynx's own section for the engine (Config.models); config/models.ts
 * knows its keys and reports typos in it (unknownModelKeys).
 */
export const CONFIG_KEYS: KeyNode = {
  path: LEAF,
  general: GENERAL_KEYS,
  plugins: PLUGIN_KEYS,
  pools: { '*': POOL_KEYS },
  models: LEAF,
};

/**
 * Dotted key patterns PgLynx implements; `*` matches one path segment.
 * The pooler team adds a pattern here when a key starts to have an effect.
 */
export const IMPLEMENTED: Set<string> = new Set([
  // Ignored by PgCat as well, so there is nothing left to implement.
  'path',
  'general.host',
  'general.port',
  'general.enable_prometheus_exporter',
  'general.prometheus_exporter_port',
  'general.connect_timeout',
  'general.idle_timeout',
  'general.server_lifetime',
  'general.idle_client_in_transaction_timeout',
  'general.shutdown_timeout',
  'general.max_message_size',
  'general.client_login_timeout',
  'general.max_client_conn',
  'general.log_client_connections',
  'general.log_client_disconnections',
  'general.admin_username',
  'general.admin_password',
  'general.admin_auth_type',
  'general.auth_type',
  'general.tcp_keepalives_idle',
  'general.tcp_keepalives_count',
  'general.tcp_keepalives_interval',
  'general.worker_threads',
  'general.validate_config',
  'general.autoreload',
  'general.ban_time',
  'general.healthcheck_delay',
  'general.healthcheck_timeout',
  'pools.*.load_balancing_mode',
  'pools.*.default_role',
  'pools.*.query_parser_enabled',
  'pools.*.query_parser_read_write_splitting',
  'pools.*.primary_reads_enabled',
  'general.dns_cache_enabled',
  'general.dns_max_ttl',
  'general.server_round_robin',
  'general.prepared_statements',
  'general.prepared_statements_cache_size',
  'pools.*.prepared_statements_cache_size',
  'pools.*.checkout_failure_limit',
  'general.auth_query',
  'general.auth_query_user',
  'general.auth_query_password',
  'general.tls_certificate',
  'general.tls_private_key',
  'general.server_tls',
  'general.verify_server_certificate',
  'pools.*.pool_mode',
  'pools.*.connect_timeout',
  'pools.*.idle_timeout',
  'pools.*.server_lifetime',
  'pools.*.cleanup_server_connections',
  'general.server_reset_query_always',
  'pools.*.server_reset_query_always',
  'general.pipeline_depth',
  'general.pipeline_writes',
  'general.pipeline_max_wait_ms',
  'general.redis_url',
  'general.fleet_lease_ttl_ms',
  'general.fleet_redis_wait_ms',
  'general.fleet_embedding_ttl_ms',
  'pools.*.pipeline_depth',
  'pools.*.pipeline_writes',
  'pools.*.pipeline_max_wait_ms',
  'pools.*.auth_query',
  'pools.*.auth_query_user',
  'pools.*.auth_query_password',
  'pools.*.users',
  'pools.*.users.*.*',
  'pools.*.shards',
  'pools.*.shards.*.database',
  'pools.*.shards.*.servers',
  'pools.*.shards.*.mirrors',
  'pools.*.sharding_function',
  'pools.*.automatic_sharding_key',
  'pools.*.sharding_key_regex',
  'pools.*.shard_id_regex',
  'pools.*.regex_search_limit',
  'pools.*.default_shard',
  // Every plugin and key under them (pooler/plugins/).
  'plugins',
  'pools.*.plugins',
  // The model engine (schema in config/models.ts).
  'models',
]);

// Accepted values of the enum keys: every spelling PgCat's serde aliases
// accept, mapped to PgLynx's one name ('round_robin', 'auto' and
// 'scram-sha-256' are PgLynx additions).
export const POOL_MODES: Readonly<Record<string, PoolMode>> = {
  transaction: 'transaction', Transaction: 'transaction', session: 'session', Session: 'session',
};
export const LB_MODES: Readonly<Record<string, LoadBalancingMode>> = {
  random: 'random', Random: 'random', loc: 'loc', LOC: 'loc', least_outstanding_connections: 'loc',
  LeastOutstandingConnections: 'loc', round_robin: 'round_robin',
};
export const DEFAULT_ROLES: Readonly<Record<string, DefaultRole>> = {
  any: 'any', replica: 'replica', primary: 'primary',
};
export const SERVER_ROLES: Readonly<Record<string, ServerRole>> = {
  primary: 'primary', Primary: 'primary', replica: 'replica', Replica: 'replica', auto: 'auto',
};
export const SHARDING_FUNCTIONS: Readonly<Record<string, ShardingFunction>> = {
  pg_bigint_hash: 'pg_bigint_hash', PgBigintHash: 'pg_bigint_hash', sha1: 'sha1', Sha1: 'sha1',
};
export const AUTH_TYPES: Readonly<Record<string, AuthType>> = {
  md5: 'md5', MD5: 'md5', trust: 'trust', Trust: 'trust', 'scram-sha-256': 'scram-sha-256',
};

export const UNKNOWN_PREFIX = 'unknown:';

function matches(pattern: readonly string[], path: readonly string[], prefixOnly: boolean): boolean {
  if (prefixOnly ? pattern.length <= path.length : pattern.length !== path.length) return false;
  return path.every((seg, i) => pattern[i] === '*' || pattern[i] === seg);
}

function implemented(path: readonly string[]): 'self' | 'below' | 'no' {
  let below = false;
  for (const p of IMPLEMENTED) {
    const pattern = p.split('.');
    if (matches(pattern, path, false)) return 'self';
    if (matches(pattern, path, true)) below = true;
  }
  return below ? 'below' : 'no';
}

/**
 * Walks a parsed (already validated) pgcat.toml and returns, in file order,
 * the unsupported key paths and the `unknown:`-prefixed unknown ones.
 */
export function reportKeys(raw: Record<string, unknown>): string[] {
  const out: string[] = [];
  // `reported` is true once an ancestor was listed as unsupported, so only
  // unknown keys are still looked for below it.
  const walk = (value: unknown, node: KeyNode, path: string[], reported: boolean): void => {
    let nowReported = reported;
    if (!reported && path.length > 0) {
      const state = implemented(path);
      if (state === 'no') {
        out.push(formatPath(path));
        nowReported = true;
      }
    }
    if (node === LEAF || !isTable(value)) return;
    for (const [key, child] of Object.entries(value)) {
      // hasOwn: a key named like an Object.prototype member is still unknown.
      const childNode = Object.hasOwn(node, key) ? node[key] : node['*'];
      if (childNode === undefined) out.push(UNKNOWN_PREFIX + formatPath([...path, key]));
      else walk(child, childNode, [...path, key], nowReported);
    }
  };
  walk(raw, CONFIG_KEYS, [], false);
  return out;
}

/** Keys in the file that are not PgCat keys (without the `unknown:` prefix). */
export function unknownKeys(config: Pick<Config, 'unsupported'>): string[] {
  return config.unsupported
    .filter((k) => k.startsWith(UNKNOWN_PREFIX))
    .map((k) => k.slice(UNKNOWN_PREFIX.length));
}

// Keys already warned about in this process, so a reload does not repeat them.
const warned = new Set<string>();

/** Logs each unsupported or unknown key, and each load warning, once per process. */
export function logUnsupported(
  config: Pick<Config, 'path' | 'unsupported' | 'warnings'>,
  log: { warn(obj: object, msg: string): void },
): void {
  for (const warning of config.warnings ?? []) {
    if (warned.has(warning)) continue;
    warned.add(warning);
    log.warn({ file: config.path }, warning);
  }
  for (const entry of config.unsupported) {
    if (warned.has(entry)) continue;
    warned.add(entry);
    if (entry.startsWith(UNKNOWN_PREFIX)) {
      const key = entry.slice(UNKNOWN_PREFIX.length);
      log.warn({ file: config.path, key }, `${key}: not a PgCat config key (typo?); ignored`);
    } else {
      log.warn({ file: config.path, key: entry }, `${entry}: not implemented by PgLynx yet; ignored`);
    }
  }
}
