// Turns the `[plugins]` / `[pools.<name>.plugins]` config into what the pool
// and the client sessions run: the prewarm statements of new server
// connections, and the query plugins of each (pool, user).
//
// PgCat's rules, kept here:
// - a pool's own `plugins` table replaces the global one as a whole (they
//   are not merged plugin by plugin);
// - the query plugins (query_logger, intercept, table_access) only run in
//   pools with query_parser_enabled = true, because PgCat runs them on its
//   parser's output; the prewarmer runs in every pool;
// - order: query_logger, then intercept, then table_access; a disabled
//   plugin does nothing.

import type { Config, PluginsConfig, PoolConfig } from '../../config/types.js';
import { createLogger, type Logger } from '../logger.js';
import { InterceptPlugin } from './intercept.js';
import { QueryLoggerPlugin } from './query-logger.js';
import { TableAccessPlugin } from './table-access.js';
import type { QueryContext, QueryPlugin } from './types.js';

export function effectivePlugins(config: Config, pc: PoolConfig): PluginsConfig | null {
  return pc.plugins ?? config.plugins;
}

/** Statements run on every new server connection of the pool (the prewarmer). */
export function prewarmQueries(config: Config, pc: PoolConfig): string[] {
  const prewarmer = effectivePlugins(config, pc)?.prewarmer;
  return prewarmer?.enabled ? [...prewarmer.queries] : [];
}

function hasQueryPlugins(p: PluginsConfig): boolean {
  return Boolean(p.query_logger?.enabled || p.intercept?.enabled || p.table_access?.enabled);
}

// Pools already warned about, so reloads do not repeat the warning.
const warnedNoParser = new Set<string>();

let fallbackLog: Logger | null = null;

/**
 * The query plugins of one (pool, user). `log` is the process logger; the
 * fallback (same level source as the CLI default) is for callers that do
 * not pass one.
 */
export function buildQueryPlugins(config: Config, poolName: string, pc: PoolConfig, user: string, log?: Logger): QueryPlugin[] {
  const p = effectivePlugins(config, pc);
  if (!p || !hasQueryPlugins(p)) return [];
  const logger = log ?? (fallbackLog ??= createLogger(process.env.PGLYNX_LOG_LEVEL ?? 'info'));
  if (!pc.query_parser_enabled) {
    // Only reachable through the global [plugins]: the loader rejects a
    // pool's own plugins without the parser. Say so, since a table_access
    // that silently does nothing is a security surprise.
    if (!warnedNoParser.has(poolName)) {
      warnedNoParser.add(poolName);
      logger.warn({ pool: poolName }, 'global query plugins are not run in this pool: it has query_parser_enabled = false (as in PgCat)');
    }
    return [];
  }
  const ctx: QueryContext = { database: poolName, user };
  const plugins: QueryPlugin[] = [];
  if (p.query_logger?.enabled) plugins.push(new QueryLoggerPlugin(logger));
  if (p.intercept?.enabled) {
    const intercept = InterceptPlugin.build(p.intercept.queries, ctx, logger);
    if (intercept) plugins.push(intercept);
  }
  if (p.table_access?.enabled) {
    const tableAccess = TableAccessPlugin.build(p.table_access.tables);
    if (tableAccess) plugins.push(tableAccess);
  }
  return plugins;
}
