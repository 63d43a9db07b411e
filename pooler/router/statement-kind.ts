// Read/write classification of parsed statements, for
// query_parser_read_write_splitting: reads may go to replicas, everything
// else to the primary. When in doubt: primary. Also what a text does to
// transactions and prepared statements. Pure functions of the parse tree
// (router/parse.ts parses once and keeps the answers).

import { walkAst } from './ast-walk.js';
import { functionName, nodeType, type Node, type RawStmt, wrapped } from './sql-ast.js';

export type QueryKind =
  /** May run on a replica. */
  | 'read'
  /** Must run on the primary. */
  | 'write'
  /** Opens an explicit transaction: primary, unless it is read only. */
  | 'begin'
  | 'begin_read_only';

/** A lone DEALLOCATE statement: of every prepared statement, or of one by name. */
export type Deallocation = { all: true } | { all: false; name: string };

/** Functions that change state even inside a SELECT. */
export const WRITING_FUNCTIONS: ReadonlySet<string> = new Set([
  'nextval', 'setval', 'pg_advisory_lock', 'pg_advisory_xact_lock', 'pg_try_advisory_lock', 'pg_try_advisory_xact_lock',
  'pg_advisory_lock_shared', 'pg_advisory_xact_lock_shared', 'pg_notify', 'set_config', 'lo_create', 'lo_import',
  'lo_unlink', 'lo_from_bytea', 'lo_put', 'txid_current', 'pg_current_xact_id', 'pg_switch_wal', 'pg_create_restore_point',
]);

/** Read or write for the statements of one text (an empty text reads; several read only if each does). */
export function kindOf(stmts: readonly RawStmt[]): QueryKind {
  if (stmts.length === 0) return 'read';
  if (stmts.length === 1) return stmts[0].stmt ? statementKind(stmts[0].stmt) : 'write';
  for (const { stmt } of stmts) {
    const kind = stmt ? statementKind(stmt) : 'write';
    if (kind !== 'read' && kind !== 'begin_read_only') return 'write';
  }
  return 'read';
}

/** The text is exactly one DEALLOCATE [PREPARE] name | ALL (null otherwise). */
export function deallocationOf(stmts: readonly RawStmt[]): Deallocation | null {
  const stmt = stmts.length === 1 ? stmts[0].stmt : undefined;
  if (!stmt || !('DeallocateStmt' in stmt)) return null;
  const d = stmt.DeallocateStmt;
  // libpg-query (PG 17 grammar) says isall; older trees leave the name out.
  return d.isall || d.name === undefined ? { all: true } : { all: false, name: d.name };
}

/** Some statement of the text drops prepared statements: DEALLOCATE, DISCARD ALL. */
export function dropsPrepared(stmts: readonly RawStmt[]): boolean {
  return stmts.some(({ stmt }) => stmt !== undefined && ('DeallocateStmt' in stmt || ('DiscardStmt' in stmt && stmt.DiscardStmt.target === 'DISCARD_ALL')));
}

function statementKind(stmt: Node): QueryKind {
  if ('SelectStmt' in stmt) return selectWrites(stmt) ? 'write' : 'read';
  if ('ExplainStmt' in stmt) {
    const e = stmt.ExplainStmt;
    const analyze = (e.options ?? []).some((o) => 'DefElem' in o && o.DefElem.defname === 'analyze');
    return analyze && e.query ? statementKind(e.query) : 'read';
  }
  if ('TransactionStmt' in stmt) {
    const t = stmt.TransactionStmt;
    if (t.kind !== 'TRANS_STMT_BEGIN' && t.kind !== 'TRANS_STMT_START') return 'read'; // COMMIT, ROLLBACK...: wherever the transaction is
    return readOnlyOption(t.options) ? 'begin_read_only' : 'begin';
  }
  if ('VariableSetStmt' in stmt) {
    // SET TRANSACTION READ ONLY keeps a transaction where it is.
    const s = stmt.VariableSetStmt;
    return s.name === 'TRANSACTION' && readOnlyOption(s.args) ? 'read' : 'write';
  }
  return 'VariableShowStmt' in stmt ? 'read' : 'write';
}

function readOnlyOption(options: readonly Node[] | undefined): boolean {
  return (options ?? []).some((o) => {
    if (!('DefElem' in o) || o.DefElem.defname !== 'transaction_read_only') return false;
    const arg = o.DefElem.arg;
    return arg !== undefined && 'A_Const' in arg && arg.A_Const.ival?.ival === 1;
  });
}

/** FOR UPDATE/SHARE, SELECT INTO, data-modifying CTEs, writing functions. */
function selectWrites(stmt: Extract<Node, { SelectStmt: unknown }>): boolean {
  if (stmt.SelectStmt.intoClause) return true;
  let writes = false;
  walkAst(stmt.SelectStmt, (node) => {
    if (writes) return;
    if (node.lockingClause) writes = true;
    else if (node.InsertStmt || node.UpdateStmt || node.DeleteStmt || node.MergeStmt) writes = true;
    else {
      const name = functionName(wrapped(node, 'FuncCall')?.funcname);
      if (name && WRITING_FUNCTIONS.has(name)) writes = true;
    }
  });
  return writes;
}

/**
 * The text leaves a transaction block open: a BEGIN / START TRANSACTION not
 * followed by COMMIT, ROLLBACK or PREPARE TRANSACTION in the same text.
 */
export function opensTransaction(stmts: readonly RawStmt[]): boolean {
  let open = false;
  for (const { stmt } of stmts) {
    if (!stmt || !('TransactionStmt' in stmt)) continue;
    const kind = stmt.TransactionStmt.kind;
    if (kind === 'TRANS_STMT_BEGIN' || kind === 'TRANS_STMT_START') open = true;
    else if (kind === 'TRANS_STMT_COMMIT' || kind === 'TRANS_STMT_ROLLBACK' || kind === 'TRANS_STMT_PREPARE') open = false;
  }
  return open;
}

/**
 * Statements that never share a busy server connection with other clients'
 * statements (pipelining), whatever else is true of them: transaction
 * control, COPY, cursors, SQL-level prepared statements, LISTEN, locks and
 * anything SET-like belong to one session or one transaction.
 */
const NEVER_PIPELINED = new Set([
  'TransactionStmt', 'CopyStmt', 'VariableSetStmt', 'DeclareCursorStmt', 'ClosePortalStmt', 'FetchStmt', 'PrepareStmt',
  'ExecuteStmt', 'DeallocateStmt', 'DiscardStmt', 'ListenStmt', 'UnlistenStmt', 'LockStmt', 'CallStmt', 'DoStmt',
]);

/**
 * Whether a text may be pipelined (client/pipeline-unit.ts): 'read' or
 * 'write' when each of its statements is an autocommit statement that
 * leaves nothing on the session (the caller also checks sessionEffects),
 * null when it must keep a server to itself.
 */
export function pipelineKind(stmts: readonly RawStmt[]): 'read' | 'write' | null {
  if (stmts.length === 0) return null;
  for (const { stmt } of stmts) {
    if (!stmt || NEVER_PIPELINED.has(nodeType(stmt))) return null;
  }
  return kindOf(stmts) === 'read' ? 'read' : 'write';
}
