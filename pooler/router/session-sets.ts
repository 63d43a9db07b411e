// Plain SET / RESET statements a transaction-mode client may keep across
// transactions (PgDog's behaviour; PgCat resets them when the transaction
// ends). A text made only of such statements is read into SetOps: the
// client remembers them once they took effect, and they are replayed on
// whichever server it borrows next (client/session-sets.ts). Anything else
// that changes the session (SET LOCAL ends with its transaction anyway;
// SET ROLE, SESSION AUTHORIZATION, FROM CURRENT, set_config...) keeps the
// check-in reset of server/reset.ts.

import { trackedName } from '../server/params.js';
import type { Node, NodeOf, RawStmt } from './sql-ast.js';
import { quoteString } from './sql-quote.js';

/** One remembered change: a parameter set (value: its SQL text) or reset (null), or RESET ALL. */
export type SetOp = { readonly name: string; readonly value: string | null } | { readonly all: true };

/** Not kept: they change who the session is, or are per transaction. */
const NEVER_KEPT = new Set(['role', 'session_authorization', 'transaction', 'session characteristics', 'transaction_isolation', 'transaction_read_only', 'transaction_deferrable']);

/** The SetOps of a text, when every statement in it is one; null otherwise. */
export function sessionSets(stmts: readonly RawStmt[]): SetOp[] | null {
  if (stmts.length === 0) return null;
  const ops: SetOp[] = [];
  for (const { stmt } of stmts) {
    if (!stmt || !('VariableSetStmt' in stmt)) return null;
    const op = setOp(stmt.VariableSetStmt);
    if (!op) return null;
    ops.push(op);
  }
  return ops;
}

function setOp(body: NodeOf<'VariableSetStmt'>): SetOp | null {
  if (body.is_local) return null;
  if (body.kind === 'VAR_RESET_ALL') return { all: true };
  const name = body.name?.toLowerCase();
  // Reported parameters (application_name, TimeZone...) are followed through ParameterStatus already (server/params.ts).
  if (!name || NEVER_KEPT.has(name) || trackedName(name) !== null) return null;
  if (body.kind === 'VAR_RESET' || body.kind === 'VAR_SET_DEFAULT') return { name, value: null };
  if (body.kind !== 'VAR_SET_VALUE' || !body.args?.length) return null;
  const parts: string[] = [];
  for (const arg of body.args) {
    const text = constantText(arg);
    if (text === null) return null;
    parts.push(text);
  }
  return { name, value: parts.join(', ') };
}

/** A SET argument as SQL text Postgres reads back to the same value; null for anything but a plain constant. */
function constantText(arg: Node): string | null {
  if (!('A_Const' in arg)) return null;
  const c = arg.A_Const;
  if (c.sval) return quoteString(c.sval.sval ?? '');
  if (c.ival) return String(c.ival.ival ?? 0);
  if (c.fval?.fval !== undefined) return c.fval.fval;
  if (c.boolval) return c.boolval.boolval ? 'true' : 'false';
  return null;
}
