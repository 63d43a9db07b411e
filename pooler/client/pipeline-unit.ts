// Whether a client's batch may share a busy server connection with other
// clients' statements (pipelining, server/pipeline.ts). Decided from the
// one parse of each statement (router/parse.ts), never guessed: every
// statement must be an autocommit statement that opens no transaction,
// leaves no session state and is not COPY; reads only unless the pool's
// pipeline_writes says writes too. The batch must end on its own ReadyForQuery
// boundary (a Query or a Sync last), so the units behind it start clean.
// A text known to run past pipeline_max_wait_ms (pool/slow-statements.ts)
// is not pipelined either: nobody should wait behind it.

import { Frontend } from '../protocol/codes.js';
import { MessageCursor } from '../protocol/cursor.js';
import { ProtocolError } from '../protocol/framer.js';
import { statementOf } from '../router/parse.js';
import { WRITING_FUNCTIONS } from '../router/statement-kind.js';
import type { ClientStatements } from '../prepared/statements.js';
import type { SlowStatements } from '../pool/slow-statements.js';

const cursor = new MessageCursor();

/**
 * `bytes`: whole client messages. `statements`: the client's named
 * statements when the pool shares prepared statements (null otherwise:
 * a named statement then lives on one server only, so it never moves).
 * `slow`: the pool's texts known to run long.
 */
export function mayPipeline(bytes: Buffer, statements: ClientStatements | null, writes: boolean, slow: SlowStatements): boolean {
  let last = 0;
  /** Statements named by a Parse of this batch (already judged). */
  let parsed: string[] | null = null;
  try {
    for (const m = cursor.over(bytes); m.next(); ) {
      last = m.type;
      switch (m.type) {
        case Frontend.Query:
        case Frontend.Parse:
          if (m.type === Frontend.Parse && m.isNamedParse()) {
            if (!statements) return false;
            (parsed ??= []).push(m.statementName()!);
          }
          if (!allowed(m.sql(), writes, slow)) return false;
          break;
        case Frontend.Bind: {
          const name = m.statementName();
          if (name === '' || name === null || parsed?.includes(name)) break; // parsed in this batch: judged above
          const sql = namedText(name, statements);
          if (sql === null || !allowed(sql, writes, slow)) return false;
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

/**
 * The text a unit's run time is kept under: its first statement's (a
 * Query's, a Parse's, or a Bind's named statement's). Null when there is none.
 */
export function unitKey(bytes: Buffer, statements: ClientStatements | null): string | null {
  try {
    const m = cursor.over(bytes);
    if (!m.next()) return null;
    if (m.type === Frontend.Query || m.type === Frontend.Parse) return m.sql();
    if (m.type === Frontend.Bind) {
      const name = m.statementName();
      return name ? namedText(name, statements) : null;
    }
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
  }
  return null;
}

/** The text of a client's named statement, from the shared cache. */
function namedText(name: string, statements: ClientStatements | null): string | null {
  const def = statements?.get(name);
  if (!def) return null;
  const end = def.parseTail.indexOf(0);
  return def.parseTail.toString('utf8', 0, end < 0 ? def.parseTail.length : end);
}

function allowed(sql: string, writes: boolean, slow: SlowStatements): boolean {
  if (slow.has(sql)) return false;
  if (plainRead(sql)) return true;
  const kind = statementOf(sql).pipelineKind;
  return kind === 'read' || (kind === 'write' && writes);
}

const SELECT_FIRST = /^\s*select\s/i;
/**
 * Words that may make a SELECT write, lock rows, or leave session state:
 * the writing functions of the classifier, FOR UPDATE/SHARE, SELECT INTO,
 * data-modifying words, and what client/session-state.ts looks for
 * (temp objects, advisory locks, set_config, pg_settings). A match only
 * sends the text to the parser.
 */
const MAY_WRITE = new RegExp(
  `\\b(?:for|into|insert|update|delete|merge|temp|temporary|pg_temp|set_config|pg_settings|${[...WRITING_FUNCTIONS].join('|')})\\b|advisory`,
  'i',
);

/**
 * A single SELECT that the parser would call a read with no session
 * state, told from its text alone. Simple-protocol clients put their
 * values in the text (pgbench -S: every text is new), and a parse of each
 * would cost more than the round trip pipelining saves; anything less
 * plain goes to the parser (cached per text).
 */
export function plainRead(sql: string): boolean {
  if (!SELECT_FIRST.test(sql)) return false;
  const semi = sql.indexOf(';');
  if (semi >= 0 && sql.slice(semi + 1).trim() !== '') return false; // several statements (or a ';' in a literal)
  return !MAY_WRITE.test(sql);
}
