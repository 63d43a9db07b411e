// PgCat's query_logger plugin: every Query a client sends, and the statement
// text of every extended-protocol Parse (as PgCat logs them), is logged at
// info with its pool and user.
//
//   [pools.<name>.plugins.query_logger]         (or [plugins.query_logger])
//   enabled = true
//
// It runs before the other plugins, as in PgCat, so intercepted and refused
// queries are logged too. PgCat logs its parser's re-printed statements;
// the text is logged here as the client sent it (which also covers text that
// does not parse).

import type { Logger } from '../logger.js';
import type { PluginVerdict, QueryContext, QueryPlugin } from './types.js';

export class QueryLoggerPlugin implements QueryPlugin {
  readonly name = 'query_logger';
  readonly checksParse = true;

  constructor(private readonly log: Logger) {}

  onQuery(sql: string, ctx: QueryContext): PluginVerdict {
    // Runs on every Query: skip building the log object when info is off.
    if (this.log.isLevelEnabled('info')) this.log.info({ pool: ctx.database, user: ctx.user, query: sql.trim() }, 'query');
    return null;
  }
}
