// LISTEN / UNLISTEN texts the pooler answers itself in transaction mode
// (pool/notify-hub.ts): a Query made only of them, read from the one parse.

import type { RawStmt } from './sql-ast.js';

/** One LISTEN (channel) or UNLISTEN (channel, or null for UNLISTEN *). */
export type ListenOp = { readonly listen: string } | { readonly unlisten: string | null };

/** The ops of a text, when every statement in it is LISTEN or UNLISTEN; null otherwise. */
export function listenOps(stmts: readonly RawStmt[]): ListenOp[] | null {
  if (stmts.length === 0) return null;
  const ops: ListenOp[] = [];
  for (const { stmt } of stmts) {
    if (stmt && 'ListenStmt' in stmt && stmt.ListenStmt.conditionname) ops.push({ listen: stmt.ListenStmt.conditionname });
    else if (stmt && 'UnlistenStmt' in stmt) ops.push({ unlisten: stmt.UnlistenStmt.conditionname ?? null });
    else return null;
  }
  return ops;
}
