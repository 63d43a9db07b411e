// Config views: SHOW CONFIG ([general] settings), SHOW DATABASES (each
// server a pool connects to, with its sizes) and SHOW USERS.

import { GENERAL_DEFAULTS } from '../../config/defaults.js';
import { GENERAL_KEYS } from '../../config/keys.js';
import type { GeneralConfig } from '../../config/types.js';
import type { AdminContext, AdminReply } from './context.js';
import { flag, int, table, text } from './format.js';
import { memberAddresses } from '../pool/member-addresses.js';

/** Settings a RELOAD does not apply: they take effect on restart. */
const RESTART_ONLY = new Set<keyof GeneralConfig>([
  'host', 'port', 'worker_threads', 'enable_prometheus_exporter', 'prometheus_exporter_port',
  'redis_url', 'fleet_lease_ttl_ms', 'fleet_redis_wait_ms', 'fleet_embedding_ttl_ms',
]);
/** Never shown in clear, not even to the admin: consoles get logged and screen-shared (a redis_url may carry a password). */
const SECRETS = new Set<keyof GeneralConfig>(['admin_password', 'auth_query_password', 'redis_url']);

function show(value: unknown): string {
  return value === null || value === undefined ? '' : String(value);
}

export function showConfig(ctx: AdminContext): AdminReply {
  const general = ctx.config().general;
  // GENERAL_KEYS lists every [general] key in PgCat's order.
  const rows = (Object.keys(GENERAL_KEYS) as (keyof GeneralConfig)[]).map((key) => {
    const value = general[key];
    const hasDefault = Object.prototype.hasOwnProperty.call(GENERAL_DEFAULTS, key);
    const dflt = hasDefault ? show(GENERAL_DEFAULTS[key as keyof typeof GENERAL_DEFAULTS]) : '-';
    const shown = SECRETS.has(key) && value !== null ? '********' : show(value);
    return [key, shown, dflt, RESTART_ONLY.has(key) ? 'no' : 'yes'];
  });
  return table([text('key'), text('value'), text('default'), text('changeable')], rows);
}

const DATABASES_COLUMNS = [
  text('name'), text('host'), int('port'), text('database'), text('force_user'),
  int('pool_size'), int('min_pool_size'), int('reserve_pool'), text('pool_mode'),
  int('max_connections'), int('current_connections'), int('paused'), int('disabled'),
];

export function showDatabases(ctx: AdminContext): AdminReply {
  const config = ctx.config();
  // As PgCat: one row per server of each pool (every shard, primary and replicas).
  const rows = ctx.pools().flatMap((e) =>
    memberAddresses(config, e).map((a) => {
      const pool = a.member.pool;
      const s = pool.settings;
      // force_user: the role the pooler logs in to Postgres as (server_username, else the user).
      // No reserve pool: pool_size is also the connection cap. disabled: banned, as PgCat.
      return [
        a.name, a.host, a.port, a.database, s.server.user,
        s.size, s.minSize, 0, s.mode,
        s.size, pool.counters.total, flag(pool.isPaused), flag(a.member.banned),
      ];
    }),
  );
  return table(DATABASES_COLUMNS, rows);
}

export function showUsers(ctx: AdminContext): AdminReply {
  // As PgCat: one row per pool user, with the mode that user's pool runs in.
  const rows = ctx.pools().map((e) => [e.user.username, e.pool.settings.mode]);
  return table([text('name'), text('pool_mode')], rows);
}
