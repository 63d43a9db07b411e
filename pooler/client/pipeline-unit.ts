// Whether a client's batch may share a busy server connection with other
// clients' statements (pipelining, server/pipeline.ts). Decided from the
// one parse of each statement (router/parse.ts), never guessed: every
// statement must be an autocommit statement that opens no transaction,
// leaves no session state and is not COPY; reads only unless the pool's
// pipeline_writes says writes too. The batch must end on its own ReadyForQuery
// boundary (a Query or a Sync last), so the units behind it start clean.

import { Frontend } from '../protocol/codes.js';
import { MessageCursor } from '../protocol/cursor.js';
import { ProtocolError } from '../protocol/framer.js';
import { statementOf } from '../router/parse.js';
import type { ClientStatements } from '../prepared/statements.js';

const cursor = new MessageCursor();

/**
 * `bytes`: whole client messages. `statements`: the client's named
 * statements when the pool shares prepared statements (null otherwise:
 * a named statement then lives on one server only, so it never moves).
 */
export function mayPipeline(bytes: Buffer, statements: ClientStatements | null, writes: boolean): boolean {
  let last = 0;
  try {
    for (const m = cursor.over(bytes); m.next(); ) {
      last = m.type;
      switch (m.type) {
        case Frontend.Query:
        case Frontend.Parse:
          if (m.type === Frontend.Parse && m.isNamedParse() && !statements) return false;
          if (!allowed(m.sql(), writes)) return false;
          break;
        case Frontend.Bind: {
          const name = m.statementName();
          if (name === '' || name === null) break; // the unnamed statement: its Parse is in this batch (checked above)
          const def = statements?.get(name);
          if (!def) return false;
          const end = def.parseTail.indexOf(0);
          if (!allowed(def.parseTail.toString('utf8', 0, end < 0 ? def.parseTail.length : end), writes)) return false;
          break;
        }
        case Frontend.Describe:
        case Frontend.Execute:
        case Frontend.Sync:
          break;
        default:
          // Close (a statement's life), Flush (an open batch), FunctionCall, COPY: keep the server.
          return false;
      }
    }
  } catch (err) {
    if (err instanceof ProtocolError) return false;
    throw err;
  }
  return last === Frontend.Query || last === Frontend.Sync;
}

function allowed(sql: string, writes: boolean): boolean {
  const kind = statementOf(sql).pipelineKind;
  return kind === 'read' || (kind === 'write' && writes);
}
