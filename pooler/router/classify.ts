// Read/write classification of client SQL (query_parser_read_write_splitting:
// reads may go to replicas, everything else to the primary; when in doubt,
// the primary), the session state a text leaves, and a lone DEALLOCATE: each
// read from the text's one parse (router/parse.ts, statement-kind.ts).

import { statementOf } from './parse.js';
import type { Deallocation, QueryKind } from './statement-kind.js';

export type { Deallocation, QueryKind } from './statement-kind.js';

/** Read or write, by statement text. */
export function classify(sql: string): QueryKind {
  return statementOf(sql).kind;
}

/** What session state the statements of `sql` leave on the server (Dirty bits; 0: none). */
export function sessionState(sql: string): number {
  return statementOf(sql).sessionState;
}

/** The text is exactly one DEALLOCATE [PREPARE] name | ALL (null otherwise). */
export function deallocation(sql: string): Deallocation | null {
  return statementOf(sql).deallocation;
}
