// Loading pgcat.toml: parse, apply PgCat's defaults, validate.
//
// Every failure is a ConfigError whose message is one line naming the file,
// the dotted key and the reason, because that line is all an operator sees
// when the pooler refuses to start or to reload. Validation mirrors PgCat's
// (a file PgCat loads must load here) plus a few checks for mistakes that
// PgCat only discovers at runtime (port 0, gaps in shard numbers).

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import toml from 'toml';
import { GENERAL_DEFAULTS as G, POOL_DEFAULTS as P, USER_DEFAULTS as U } from './defaults.js';
import {
  AUTH_TYPES, DEFAULT_ROLES, LB_MODES, POOL_MODES, SERVER_ROLES, SHARDING_FUNCTIONS, UNKNOWN_PREFIX, reportKeys,
} from './keys.js';
import { isTable } from './toml-values.js';
import { Reader, typeName, type Path, type Table } from './reader.js';
import { parseModels, unknownModelKeys } from './models.js';
import { ConfigError } from './errors.js';
import type {
  Config, GeneralConfig, InterceptQuery, MirrorConfig, PluginsConfig, PoolConfig, ServerAddressConfig, ShardConfig,
  UserConfig,
} from './types.js';

const PGCAT_SECTIONS = new Set(['path', 'general', 'pools', 'plugins']);
const PGLITE_PREFIX = 'pglite:';
/** Units in flight on one server connection at most (pipeline_depth). */
const MAX_PIPELINE_DEPTH = 64;

function parseToml(text: string, file: string): Table {
  try {
    return toml.parse(text.replace(/^\uFEFF/, ''), { bigint: true }) as Table;
  } catch (e) {
    // peggy syntax errors carry `location` and `found`; the compiler's
    // semantic errors (duplicate keys, integer range) carry `line`/`column`.
    const err = e as {
      message?: string; line?: number; column?: number; found?: string | null;
      location?: { start: { line: number; column: number } };
    };
    const line = err.location?.start.line ?? err.line;
    const column = err.location?.start.column ?? err.column;
    let reason = String(err.message ?? e);
    if (err.location && 'found' in err) {
      const f = err.found;
      reason = f === null || f === undefined ? 'unexpected end of file'
        : /^[\r\n]/.test(f) ? 'unexpected end of line' : `unexpected ${JSON.stringify(f)}`;
    }
    const where = line === undefined ? '' : ` at line ${line}, column ${column ?? 1}`;
    throw new ConfigError(file, null, `TOML syntax error${where}: ${reason.replace(/\s*[\r\n]+\s*/g, ' ')}`);
  }
}

// Integer bounds that differ from "at least 0".
const GENERAL_INT_BOUNDS: Partial<Record<keyof GeneralConfig, [number, number]>> = {
  port: [0, 65535], prometheus_exporter_port: [0, 65535], worker_threads: [1, Number.MAX_SAFE_INTEGER],
  autoreload: [1, Number.MAX_SAFE_INTEGER],
  max_message_size: [1024, G.max_message_size],
  pipeline_depth: [1, MAX_PIPELINE_DEPTH],
  // Heartbeats every ttl/3 need a few ms of room; a day is surely a typo.
  fleet_lease_ttl_ms: [300, 86_400_000],
  fleet_redis_wait_ms: [1, 10_000],
  fleet_embedding_ttl_ms: [1000, Number.MAX_SAFE_INTEGER],
};

function readGeneral(r: Reader, raw: Table): GeneralConfig {
  const t = r.reqTable(raw, 'general', []);
  const p = ['general'];
  // Every optional key is read by the type of its default; the typed
  // defaults object is what guarantees that no key is forgotten.
  const values: Record<string, unknown> = {};
  for (const [key, def] of Object.entries(G) as [keyof GeneralConfig, unknown][]) {
    const [min, max] = GENERAL_INT_BOUNDS[key] ?? [0, Number.MAX_SAFE_INTEGER];
    if (key === 'admin_auth_type' || key === 'auth_type') values[key] = r.oneOf(t, key, p, AUTH_TYPES, G[key]);
    else if (key === 'autoreload') values[key] = r.optInt(t, key, p, min, max);
    else if (typeof def === 'number') values[key] = r.int(t, key, p, def, min, max);
    else if (typeof def === 'boolean') values[key] = r.bool(t, key, p, def);
    else if (typeof def === 'string') values[key] = r.str(t, key, p, def);
    else values[key] = r.optStr(t, key, p);
  }
  // PgCat has no default for these two: the admin database must be protected.
  values['admin_username'] = r.str(t, 'admin_username', p);
  values['admin_password'] = r.str(t, 'admin_password', p);
  const g = values as unknown as GeneralConfig;
  checkAuthQuery(r, g, p);
  if (g.redis_url !== null && !/^rediss?:\/\/[^/]/.test(g.redis_url)) {
    r.fail([...p, 'redis_url'], `expected redis://host:port/db (or rediss://), got ${JSON.stringify(g.redis_url)}`);
  }
  if (g.tls_certificate !== null && g.tls_private_key === null) {
    r.fail([...p, 'tls_private_key'], 'required when tls_certificate is set');
  }
  return g;
}

type AuthQuery = Pick<GeneralConfig, 'auth_query' | 'auth_query_user' | 'auth_query_password'>;

function checkAuthQuery(r: Reader, a: AuthQuery, path: Path): void {
  if (a.auth_query === null) return;
  if (a.auth_query_user === null) r.fail([...path, 'auth_query_user'], 'required when auth_query is set');
  if (a.auth_query_password === null) r.fail([...path, 'auth_query_password'], 'required when auth_query is set');
}

function readPlugins(r: Reader, t: Table, p: Path): PluginsConfig {
  const section = (name: string): [Table, Path] | null => {
    const s = r.table(t, name, p);
    return s === undefined ? null : [s, [...p, name]];
  };
  const list = (s: Table, key: string, sp: Path): string[] =>
    r.strArray(Object.hasOwn(s, key) ? s[key] : r.fail([...sp, key], 'required key is missing'), [...sp, key]);
  const ic = section('intercept');
  const ta = section('table_access');
  const ql = section('query_logger');
  const pw = section('prewarmer');
  return {
    intercept: ic && { enabled: r.bool(ic[0], 'enabled', ic[1]), queries: readQueries(r, ic[0], ic[1]) },
    table_access: ta && { enabled: r.bool(ta[0], 'enabled', ta[1]), tables: list(ta[0], 'tables', ta[1]) },
    query_logger: ql && { enabled: r.bool(ql[0], 'enabled', ql[1]) },
    prewarmer: pw && { enabled: r.bool(pw[0], 'enabled', pw[1]), queries: list(pw[0], 'queries', pw[1]) },
  };
}

function readQueries(r: Reader, intercept: Table, ip: Path): Record<string, InterceptQuery> {
  const qp = [...ip, 'queries'];
  const queries = r.reqTable(intercept, 'queries', ip);
  const out: Record<string, InterceptQuery> = {};
  for (const [name, v] of Object.entries(queries)) {
    const p = [...qp, name];
    const q = r.asTable(v, p);
    const rows = (key: string): string[][] => {
      const list = Object.hasOwn(q, key) ? q[key] : r.fail([...p, key], 'required key is missing');
      if (!Array.isArray(list)) return r.fail([...p, key], `expected array of arrays, got ${typeName(list)}`);
      return list.map((row, i) => r.strArray(row, [...p, key, String(i)]));
    };
    const schema = rows('schema').map((col, i): [string, string] =>
      col.length === 2 ? [col[0]!, col[1]!] : r.fail([...p, 'schema', String(i)], 'expected [column name, type]'),
    );
    out[name] = { query: r.str(q, 'query', p), schema, result: rows('result') };
  }
  return out;
}

/** One `[host, port, ...]` entry of `servers` or `mirrors` (a table form is accepted too). */
function readAddress(r: Reader, v: unknown, p: Path, third: string, form: string): [string, number, unknown] {
  let parts: unknown[];
  if (Array.isArray(v)) {
    if (v.length !== 3) r.fail(p, `expected ${form}, got an array of ${v.length} item(s)`);
    parts = v;
  } else if (isTable(v)) {
    parts = [v['host'], v['port'], v[third]];
  } else {
    return r.fail(p, `expected ${form}, got ${typeName(v)}`);
  }
  const [host, port, rest] = parts;
  if (typeof host !== 'string' || host === '') {
    r.fail(p, `expected ${form}: host must be a non-empty string, got ${typeName(host)}`);
  }
  if (typeof port !== 'bigint') r.fail(p, `expected ${form}: port must be an integer, got ${typeName(port)}`);
  if (host === PGLITE_PREFIX) r.fail(p, `${PGLITE_PREFIX} needs a data directory, e.g. "pglite:./.pglynx-data"`);
  // Port 0 would only fail at connect time; the embedded backend ignores it.
  const min = host.startsWith(PGLITE_PREFIX) ? 0 : 1;
  if (port < BigInt(min) || port > 65535n) r.fail(p, `port must be between ${min} and 65535, got ${port}`);
  return [host, Number(port), rest];
}

function readShard(r: Reader, t: Table, p: Path): ShardConfig {
  const database = r.str(t, 'database', p);
  const rawServers = Object.hasOwn(t, 'servers') ? t['servers'] : r.fail([...p, 'servers'], 'required key is missing');
  if (!Array.isArray(rawServers)) {
    r.fail([...p, 'servers'], `expected array of [host, port, role], got ${typeName(rawServers)}`);
  }
  if (rawServers.length === 0) r.fail([...p, 'servers'], 'shard has no servers');
  const seen = new Set<string>();
  const servers = rawServers.map((v, i): ServerAddressConfig => {
    const sp = [...p, 'servers', String(i)];
    const [host, port, role] = readAddress(r, v, sp, 'role', '[host, port, role]');
    if (typeof role !== 'string') {
      return r.fail(sp, `expected [host, port, role]: role must be a string, got ${typeName(role)}`);
    }
    if (/^mirror$/i.test(role)) {
      r.fail(sp, 'role "mirror" is not supported in servers; list mirrors in mirrors = [[host, port, server_index]]');
    }
    if (!Object.hasOwn(SERVER_ROLES, role)) r.unknownValue(sp, role, SERVER_ROLES, 'role');
    const id = `${host}:${port}:${SERVER_ROLES[role]}`;
    if (seen.has(id)) r.fail(sp, `duplicate server ${host}:${port}`);
    seen.add(id);
    return { host, port, role: SERVER_ROLES[role]! };
  });
  if (servers.filter((s) => s.role === 'primary').length > 1) r.fail([...p, 'servers'], 'more than one primary');
  const rawMirrors = Object.hasOwn(t, 'mirrors') ? t['mirrors'] : [];
  if (!Array.isArray(rawMirrors)) {
    r.fail([...p, 'mirrors'], `expected array of [host, port, server_index], got ${typeName(rawMirrors)}`);
  }
  const mirrors = rawMirrors.map((v, i): MirrorConfig => {
    const mp = [...p, 'mirrors', String(i)];
    const form = '[host, port, server_index]';
    const [host, port, index] = readAddress(r, v, mp, 'mirroring_target_index', form);
    if (typeof index !== 'bigint') {
      r.fail(mp, `expected ${form}: server_index must be an integer, got ${typeName(index)}`);
    }
    if (index < 0n || index >= BigInt(servers.length)) {
      r.fail(mp, `server_index ${index} does not exist (the shard has ${servers.length} server(s))`);
    }
    return { host, port, mirroring_target_index: Number(index) };
  });
  return { database, servers, mirrors };
}

function readShards(r: Reader, pool: Table, p: Path): Record<string, ShardConfig> {
  const sp = [...p, 'shards'];
  const t = r.reqTable(pool, 'shards', p);
  const names = Object.keys(t);
  if (names.length === 0) r.fail(sp, 'pool has no shards');
  for (const n of names) {
    if (!/^(0|[1-9][0-9]*)$/.test(n)) r.fail([...sp, n], 'shards must be numbered 0, 1, 2, ...');
  }
  // PgCat indexes shards by position, so a gap would silently shift them.
  const out: Record<string, ShardConfig> = {};
  for (let i = 0; i < names.length; i++) {
    const n = String(i);
    if (!Object.hasOwn(t, n)) r.fail(sp, `shards must be numbered 0 to ${names.length - 1} without gaps; ${n} is missing`);
    out[n] = readShard(r, r.asTable(t[n], [...sp, n]), [...sp, n]);
  }
  return out;
}

function readUsers(r: Reader, pool: Table, p: Path): Record<string, UserConfig> {
  const up = [...p, 'users'];
  const t = r.reqTable(pool, 'users', p);
  if (Object.keys(t).length === 0) r.fail(up, 'pool has no users');
  const out: Record<string, UserConfig> = {};
  const names = new Set<string>();
  for (const [key, v] of Object.entries(t)) {
    const q = [...up, key];
    const u = r.asTable(v, q);
    const username = r.str(u, 'username', q);
    if (username === '') r.fail([...q, 'username'], 'must not be empty');
    // The pool is keyed by (pool, username): a second entry would replace the first.
    if (names.has(username)) {
      r.fail([...q, 'username'], `duplicate username ${JSON.stringify(username)} in this pool`);
    }
    names.add(username);
    const poolSize = r.int(u, 'pool_size', q, undefined, 1);
    const minPoolSize = r.int(u, 'min_pool_size', q, U.min_pool_size);
    if (minPoolSize > poolSize) r.fail([...q, 'min_pool_size'], `${minPoolSize} is larger than pool_size ${poolSize}`);
    out[key] = {
      username,
      password: r.optStr(u, 'password', q),
      auth_type: r.optOneOf(u, 'auth_type', q, AUTH_TYPES),
      server_username: r.optStr(u, 'server_username', q),
      server_password: r.optStr(u, 'server_password', q),
      pool_size: poolSize,
      min_pool_size: minPoolSize,
      pool_mode: r.optOneOf(u, 'pool_mode', q, POOL_MODES),
      statement_timeout: r.int(u, 'statement_timeout', q, U.statement_timeout),
      server_lifetime: r.optInt(u, 'server_lifetime', q),
      connect_timeout: r.optInt(u, 'connect_timeout', q),
      idle_timeout: r.optInt(u, 'idle_timeout', q),
    };
  }
  return out;
}

function readPool(r: Reader, t: Table, p: Path, general: GeneralConfig): PoolConfig {
  const os = (k: keyof PoolConfig & string): string | null => r.optStr(t, k, p);
  const b = (k: keyof PoolConfig & string, d: boolean): boolean => r.bool(t, k, p, d);
  const pluginsTable = r.table(t, 'plugins', p);
  const pool: PoolConfig = {
    pool_mode: r.oneOf(t, 'pool_mode', p, POOL_MODES, P.pool_mode),
    load_balancing_mode: r.oneOf(t, 'load_balancing_mode', p, LB_MODES, P.load_balancing_mode),
    default_role: r.oneOf(t, 'default_role', p, DEFAULT_ROLES, P.default_role),
    query_parser_enabled: b('query_parser_enabled', P.query_parser_enabled),
    query_parser_max_length: r.optInt(t, 'query_parser_max_length', p),
    query_parser_read_write_splitting: b('query_parser_read_write_splitting', P.query_parser_read_write_splitting),
    primary_reads_enabled: b('primary_reads_enabled', P.primary_reads_enabled),
    connect_timeout: r.optInt(t, 'connect_timeout', p),
    idle_timeout: r.optInt(t, 'idle_timeout', p),
    server_lifetime: r.optInt(t, 'server_lifetime', p),
    checkout_failure_limit: r.optInt(t, 'checkout_failure_limit', p, 0),
    sharding_function: r.oneOf(t, 'sharding_function', p, SHARDING_FUNCTIONS, P.sharding_function),
    automatic_sharding_key: os('automatic_sharding_key'),
    sharding_key_regex: os('sharding_key_regex'),
    shard_id_regex: os('shard_id_regex'),
    regex_search_limit: r.int(t, 'regex_search_limit', p, P.regex_search_limit),
    default_shard: r.str(t, 'default_shard', p, P.default_shard),
    // PgCat copies unset auth_query settings from [general] at load time.
    auth_query: os('auth_query') ?? general.auth_query,
    auth_query_user: os('auth_query_user') ?? general.auth_query_user,
    auth_query_password: os('auth_query_password') ?? general.auth_query_password,
    cleanup_server_connections: b('cleanup_server_connections', P.cleanup_server_connections),
    server_reset_query_always: b('server_reset_query_always', general.server_reset_query_always),
    pipeline_depth: r.int(t, 'pipeline_depth', p, general.pipeline_depth, 1, MAX_PIPELINE_DEPTH),
    pipeline_writes: b('pipeline_writes', general.pipeline_writes),
    pipeline_max_wait_ms: r.int(t, 'pipeline_max_wait_ms', p, general.pipeline_max_wait_ms),
    log_client_parameter_status_changes: b('log_client_parameter_status_changes', P.log_client_parameter_status_changes),
    prepared_statements_cache_size: r.optInt(t, 'prepared_statements_cache_size', p),
    plugins: pluginsTable === undefined ? P.plugins : readPlugins(r, pluginsTable, [...p, 'plugins']),
    users: readUsers(r, t, p),
    shards: readShards(r, t, p),
  };
  validatePool(r, pool, p);
  return pool;
}

function validatePool(r: Reader, pool: PoolConfig, p: Path): void {
  if (pool.query_parser_read_write_splitting && !pool.query_parser_enabled) {
    r.fail([...p, 'query_parser_read_write_splitting'], 'requires query_parser_enabled = true');
  }
  if (pool.plugins !== null && !pool.query_parser_enabled) {
    r.fail([...p, 'plugins'], 'plugins require query_parser_enabled = true');
  }
  for (const key of ['sharding_key_regex', 'shard_id_regex'] as const) {
    const source = pool[key];
    if (source === null) continue;
    try {
      new RegExp(source);
    } catch (e) {
      r.fail([...p, key], `invalid regular expression: ${(e as Error).message}`);
    }
  }
  if (pool.automatic_sharding_key !== null) {
    // Quotes are dropped so quoted and bare identifiers compare equal, as in PgCat.
    const key = pool.automatic_sharding_key.replaceAll('"', '');
    if (key.split('.').length !== 2) {
      r.fail([...p, 'automatic_sharding_key'], `must be table.column, got ${JSON.stringify(key)}`);
    }
    pool.automatic_sharding_key = key;
  }
  const shardCount = Object.keys(pool.shards).length;
  const ds = /^shard_([0-9]+)$/.exec(pool.default_shard);
  if (ds) {
    if (Number(ds[1]) >= shardCount) {
      r.fail([...p, 'default_shard'], `${pool.default_shard} does not exist (the pool has ${shardCount} shard(s))`);
    }
  } else if (!['random', 'random_healthy', 'fail'].includes(pool.default_shard)) {
    const v = JSON.stringify(pool.default_shard);
    r.fail([...p, 'default_shard'], `unknown default_shard ${v}; expected shard_<n>, random, random_healthy or fail`);
  }
  checkAuthQuery(r, pool, p);
  const authQuery = pool.auth_query !== null && pool.auth_query_user !== null && pool.auth_query_password !== null;
  for (const [key, user] of Object.entries(pool.users)) {
    if (user.password === null && !authQuery) {
      r.fail([...p, 'users', key, 'password'], 'required unless the pool sets auth_query');
    }
  }
}

/** BigInt integers become numbers where exact, and tables plain objects, so `extra` is easy to consume. */
function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) && BigInt(Number(v)) === v ? Number(v) : v;
  if (Array.isArray(v)) return v.map(plain);
  if (isTable(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/** Parses pgcat.toml text; `path` is used for messages and Config.path. */
export function parseConfig(text: string, path: string): Config {
  const file = resolve(path);
  const r = new Reader(file);
  const raw = parseToml(text, file);
  r.optStr(raw, 'path', []);
  const general = readGeneral(r, raw);
  const pluginsTable = r.table(raw, 'plugins', []);
  const plugins = pluginsTable === undefined ? null : readPlugins(r, pluginsTable, ['plugins']);
  const poolsTable = r.reqTable(raw, 'pools', []);
  const pools: Record<string, PoolConfig> = {};
  for (const [name, v] of Object.entries(poolsTable)) {
    pools[name] = readPool(r, r.asTable(v, ['pools', name]), ['pools', name], general);
  }
  const rawModels = Object.hasOwn(raw, 'models') ? raw['models'] : undefined;
  const models = parseModels(rawModels, file);
  const extra: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(raw)) if (!PGCAT_SECTIONS.has(key)) extra[key] = plain(v);
  // `models` is a leaf in the key catalogue; typos inside it are found by the engine's own key list.
  const unsupported = [...reportKeys(raw), ...unknownModelKeys(rawModels).map((k) => UNKNOWN_PREFIX + k)];
  const warnings = preparedStatementsWarnings(raw, general, pools);
  return { path: file, general, plugins, pools, models, extra, unsupported, ...(warnings.length > 0 ? { warnings } : {}) };
}

/**
 * PgCat 1.1 turns the cache on with [general] prepared_statements = true
 * only; its prepared_statements_cache_size alone does nothing (PgCat 1.2
 * ignores both [general] keys and reads the pool's size). A file that sets
 * the size without the switch most likely meant to turn the cache on.
 */
function preparedStatementsWarnings(raw: Table, general: GeneralConfig, pools: Record<string, PoolConfig>): string[] {
  const rawGeneral = raw['general'] as Table;
  if (general.prepared_statements || !Object.hasOwn(rawGeneral, 'prepared_statements_cache_size')) return [];
  if (general.prepared_statements_cache_size === 0) return [];
  const affected = Object.keys(pools).filter((name) => pools[name].prepared_statements_cache_size === null);
  if (affected.length === 0) return [];
  return [
    `general.prepared_statements_cache_size = ${general.prepared_statements_cache_size} without general.prepared_statements = true: ` +
      `prepared statements stay off (as in PgCat) for pool(s) ${affected.join(', ')}; ` +
      'set general.prepared_statements = true, or pools.<name>.prepared_statements_cache_size',
  ];
}

function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'file not found';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return String((e as Error).message ?? e);
}

/** Reads and parses a pgcat.toml; throws ConfigError with a one-line message. */
export async function loadConfig(path: string): Promise<Config> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, null, `cannot read config file: ${describeFsError(e).replace(/[\r\n]+/g, ' ')}`);
  }
  return parseConfig(text, file);
}
