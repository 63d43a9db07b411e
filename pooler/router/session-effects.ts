// What session state the statements of one text leave on a server
// connection beyond their transaction, read from the parse tree (every
// statement of a multi-statement Query, and state changed from inside an
// expression: set_config(..., false), pg_advisory_lock, nextval...). The
// answer is Dirty bits (server/reset.ts): the check-in reset undoes only
// those. Errs on the side of "dirty": a needless reset costs one round trip,
// a missed one hands a client another client's role or locks.

import { walkAst, type AstNode } from './ast-walk.js';
import { functionName, type Node, type NodeOf, type RawStmt, wrapped } from './sql-ast.js';
import { Dirty } from '../server/reset.js';

/** DECLARE ... WITH HOLD (parsenodes.h CURSOR_OPT_HOLD): the cursor outlives the transaction. */
const CURSOR_OPT_HOLD = 0x20;

/** Session-level advisory locks (the _xact_ ones end with the transaction; unlocking leaves nothing). */
const ADVISORY_LOCKS = new Set(['pg_advisory_lock', 'pg_advisory_lock_shared', 'pg_try_advisory_lock', 'pg_try_advisory_lock_shared']);
/** They set the session's currval/lastval of a sequence. */
const SEQUENCE_WRITERS = new Set(['nextval', 'setval']);
/** set_config's is_local argument, spelled as true. */
const TRUE_WORDS = new Set(['t', 'true', 'on', 'y', 'yes', '1']);

/** Dirty bits for the parsed statements of one text. */
export function sessionEffects(stmts: readonly RawStmt[]): number {
  let dirt = 0;
  for (const { stmt } of stmts) if (stmt) dirt |= statementEffects(stmt);
  return dirt;
}

function statementEffects(stmt: Node): number {
  let dirt = 0;
  if ('VariableSetStmt' in stmt) dirt |= variableSet(stmt.VariableSetStmt);
  else if ('PrepareStmt' in stmt) dirt |= Dirty.Statements;
  else if ('ListenStmt' in stmt) dirt |= Dirty.Listen;
  else if ('DeclareCursorStmt' in stmt) {
    if ((stmt.DeclareCursorStmt.options ?? 0) & CURSOR_OPT_HOLD) dirt |= Dirty.Cursors;
  } else if ('LoadStmt' in stmt) dirt |= Dirty.Other;
  // What an anonymous block does (SET, set_config, advisory locks, temp
  // tables, sequences) is invisible from here: reset everything.
  else if ('DoStmt' in stmt) return Dirty.Other;
  walkAst(stmt, (node) => {
    dirt |= nodeEffects(node);
  });
  return dirt;
}

function variableSet(body: NodeOf<'VariableSetStmt'>): number {
  const name = body.name;
  // SET TRANSACTION / SET LOCAL end with the transaction; a pg_temp search
  // path may still have created temp objects (the walk sees 'pg_temp').
  if (body.is_local || name === 'TRANSACTION') return 0;
  // RESET ALL keeps role and session authorization (GUC_NO_RESET_ALL); only
  // DISCARD ALL (SET SESSION AUTHORIZATION DEFAULT) undoes the latter.
  if (name === 'session_authorization' && body.kind !== 'VAR_RESET') return Dirty.Other;
  return Dirty.Params;
}

function nodeEffects(node: AstNode): number {
  let dirt = 0;
  // CREATE TEMP TABLE / VIEW / SEQUENCE, SELECT INTO TEMP, anything in pg_temp.
  if (node.relpersistence === 't' || isTempSchema(node.schemaname) || isTempSchema(node.sval)) dirt |= Dirty.Temp;
  // UPDATE pg_settings SET setting = ... is set_config(name, value, false).
  if (node.relname === 'pg_settings') dirt |= Dirty.Params;
  const call = wrapped(node, 'FuncCall');
  if (call) {
    const name = functionName(call.funcname);
    if (name === 'set_config') dirt |= setConfig(call.args ?? []);
    else if (name && ADVISORY_LOCKS.has(name)) dirt |= Dirty.Advisory;
    else if (name && SEQUENCE_WRITERS.has(name)) dirt |= Dirty.Sequences;
  }
  return dirt;
}

function isTempSchema(name: unknown): boolean {
  return typeof name === 'string' && name.startsWith('pg_temp');
}

/** set_config(name, value, is_local): session state unless is_local is plainly true. */
function setConfig(args: readonly Node[]): number {
  const local = args[2] && 'A_Const' in args[2] ? args[2].A_Const : undefined;
  if (local) {
    if (local.boolval?.boolval === true) return 0;
    if (local.sval?.sval !== undefined && TRUE_WORDS.has(local.sval.sval.trim().toLowerCase())) return 0;
    if (local.ival?.ival !== undefined && local.ival.ival !== 0) return 0;
  }
  const setting = args[0] && 'A_Const' in args[0] ? args[0].A_Const.sval?.sval?.toLowerCase() : undefined;
  // Anything but a literal name may be session_authorization too.
  if (setting === undefined || setting === 'session_authorization') return Dirty.Other;
  return Dirty.Params;
}
