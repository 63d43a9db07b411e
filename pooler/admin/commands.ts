// Admin console commands: PgCat's set (itself PgBouncer's), read from one
// statement of a simple query. Keywords are case-insensitive; arguments
// (database and user names) keep their case.

import { ban, showBans, unban } from './bans.js';
import { ADMIN_REFUSED, AdminError, UNSUPPORTED, UNSUPPORTED_SHOW, type AdminContext, type AdminReply } from './context.js';
import { ignoreSet, pause, reload, resume, shutdown } from './control.js';
import { flag, int, table, text } from './format.js';
import { showConfig, showDatabases, showUsers } from './show-config.js';
import { showFleet } from './show-fleet.js';
import { showLists, showPools } from './show-pools.js';
import { showClients, showServers } from './show-servers-clients.js';
import { showStats } from './show-stats.js';

type Show = (ctx: AdminContext) => AdminReply;

const SHOW: Record<string, Show> = {
  help: showHelp,
  config: showConfig,
  databases: showDatabases,
  pools: showPools,
  clients: showClients,
  servers: showServers,
  users: showUsers,
  version: showVersion,
  lists: showLists,
  stats: showStats,
  models: showModels,
  bans: showBans,
  fleet: showFleet,
};

// SHOW MODELS: one row per engine slot (model instance). Averages and rates
// are text with fixed decimals: int8 columns cannot carry fractions. Cache
// figures are per model, repeated on each of its instances. The last seven
// columns are a generation slot's (NULL on embedding rows); its running
// sequences and queued prompts are in_flight and queue_depth.
const MODEL_COLUMNS = [
  text('model'), int('instance'), int('loaded'), int('queue_depth'), int('calls'), text('avg_batch_size'),
  int('avg_latency_us'), int('p99_latency_us'), int('errors'), text('cache_hit_rate'),
  text('state'), int('in_flight'), int('batches'), int('restarts'), int('dims'), int('cache_hits'), int('cache_misses'),
  int('tokens'), text('tokens_per_s'), text('decode_batch_size'), int('ttft_p50_us'), int('ttft_p99_us'), int('itl_p50_us'), int('itl_p99_us'),
];

function showModels(ctx: AdminContext): AdminReply {
  const rows = (ctx.engine()?.stats() ?? []).map((s) => {
    const g = s.generation;
    return [
      s.model, s.instance, flag(s.loaded), s.queueDepth, s.calls, s.avgBatchSize.toFixed(2),
      Math.round(s.avgLatencyUs), Math.round(s.p99LatencyUs), s.errors, s.cacheHitRate.toFixed(4),
      s.state, s.inFlight, s.batches, s.restarts, s.dims, s.cacheHits, s.cacheMisses,
      ...(g
        ? [g.tokens, g.tokensPerSecond.toFixed(1), g.decodeBatchSize.toFixed(2), Math.round(g.ttftP50Us), Math.round(g.ttftP99Us), Math.round(g.itlP50Us), Math.round(g.itlP99Us)]
        : [null, null, null, null, null, null, null]),
    ];
  });
  return table(MODEL_COLUMNS, rows);
}

function showVersion(ctx: AdminContext): AdminReply {
  return table([text('version')], [[`PgLynx ${ctx.version}`]]);
}

// PgCat's layout: the NOTICE says "Console usage", its DETAIL the commands.
const USAGE = [
  '',
  'SHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION',
  'SHOW LISTS|STATS|MODELS|BANS|FLEET',
  'SET key = arg',
  'RELOAD',
  'PAUSE [<db>[, <user>]]',
  'RESUME [<db>[, <user>]]',
  'BAN <host>[:<port>] [<seconds>]',
  'UNBAN <host>[:<port>]',
  'SHUTDOWN',
].join('\n\t');

function showHelp(): AdminReply {
  return { tag: 'SHOW', notice: 'Console usage', noticeDetail: USAGE };
}

/** Splits `VERB rest...` once; a trailing `;` (psql's habit) is dropped. */
function split(sql: string): [string, string] {
  const statement = sql.trim().replace(/[;\s]+$/, '');
  const m = /^(\S+)\s*([\s\S]*)$/.exec(statement);
  return m ? [m[1].toLowerCase(), m[2]] : ['', ''];
}

function noArguments(verb: string, rest: string, message = UNSUPPORTED): void {
  if (rest.length > 0) throw new AdminError(ADMIN_REFUSED, message, `${verb} takes no arguments`);
}

export async function runAdminCommand(sql: string, ctx: AdminContext): Promise<AdminReply> {
  const [verb, rest] = split(sql);
  switch (verb) {
    case 'show': {
      const [what, extra] = split(rest);
      const handler = Object.prototype.hasOwnProperty.call(SHOW, what) ? SHOW[what] : undefined;
      if (!handler) {
        throw new AdminError(ADMIN_REFUSED, UNSUPPORTED_SHOW, `"SHOW ${rest}" is not an admin command; SHOW HELP lists them`);
      }
      noArguments(`SHOW ${what.toUpperCase()}`, extra, UNSUPPORTED_SHOW);
      return handler(ctx);
    }
    case 'reload':
      noArguments('RELOAD', rest);
      return reload(ctx);
    case 'pause':
      return pause(ctx, rest);
    case 'resume':
      return resume(ctx, rest);
    case 'ban':
      return ban(ctx, rest);
    case 'unban':
      return unban(ctx, rest);
    case 'shutdown':
      noArguments('SHUTDOWN', rest);
      return shutdown(ctx);
    case 'set':
      return ignoreSet();
    default:
      throw new AdminError(ADMIN_REFUSED, UNSUPPORTED, `"${sql.trim()}" is not an admin command; SHOW HELP lists them`);
  }
}
