// Where the session asks a pool's query plugins about what a client sent:
// the text of a simple Query (every plugin), and the statement text of each
// extended-protocol Parse (the plugins that check Parse: query_logger and
// table_access). The first plugin with a verdict decides, in config order.
//
// A batch's Parses are judged once, up front, so the pooler's answer to
// deferred Parses (prepared/answer.ts) and the forwarding loop read the same
// verdicts and query_logger logs each Parse once.

import { Frontend } from '../protocol/codes.js';
import { MessageCursor } from '../protocol/cursor.js';
import type { ErrorVerdict, PluginVerdict, QueryContext, QueryPlugin } from './types.js';

export function judgeQuery(plugins: readonly QueryPlugin[], sql: string, ctx: QueryContext): PluginVerdict {
  for (const plugin of plugins) {
    const verdict = plugin.onQuery(sql, ctx);
    if (verdict) return verdict;
  }
  return null;
}

/**
 * The refused Parses of a framed batch (`messages`: type, start, end
 * triples), by the offset where each starts; null when none is refused.
 */
export function judgeParses(plugins: readonly QueryPlugin[], buffer: Buffer, messages: readonly number[], ctx: QueryContext): Map<number, ErrorVerdict> | null {
  let refused: Map<number, ErrorVerdict> | null = null;
  for (const m = new MessageCursor().frames(buffer, messages); m.next(); ) {
    if (m.type !== Frontend.Parse) continue;
    const start = m.start;
    let sql: string;
    try {
      sql = m.sql();
    } catch {
      continue; // malformed: the server answers it
    }
    for (const plugin of plugins) {
      if (!plugin.checksParse) continue;
      const verdict = plugin.onQuery(sql, ctx);
      if (!verdict) continue;
      // A canned reply has no meaning for a Parse (intercept does not check Parse).
      if (verdict.kind === 'error') (refused ??= new Map()).set(start, verdict);
      break;
    }
  }
  return refused;
}
