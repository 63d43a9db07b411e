// Read/write classification of client SQL with the real Postgres parser
// (libpg-query), for query_parser_read_write_splitting: reads may go to
// replicas, everything else to the primary. When in doubt: primary.
//
// Cached by statement text (applications send the same few texts).

import { walkAst, type AstNode } from './ast-walk.js';
import { loadModule, parseSync } from 'libpg-query';
import { memoizeByText } from '../util/text-cache.js';
import { sessionEffects } from './session-effects.js';
import { ALL_DIRTY } from '../server/reset.js';

await loadModule();

export type QueryKind =
  /** May run on a replica. */
  | 'read'
  /** Must run on the primary. */
  | 'write'
  /** Opens an explicit transaction: primary, unless it is read only. */
  | 'begin'
  | 'begin_read_only';

type Node = AstNode;

/** Functions that change state even inside a SELECT. */
const WRITING_FUNCTIONS = new Set([
  'nextval', 'setval', 'pg_advisory_lock', 'pg_advisory_xact_lock', 'pg_try_advisory_lock', 'pg_try_advisory_xact_lock',
  'pg_advisory_lock_shared', 'pg_advisory_xact_lock_shared', 'pg_notify', 'set_config', 'lo_create', 'lo_import',
  'lo_unlink', 'lo_from_bytea', 'lo_put', 'txid_current', 'pg_current_xact_id', 'pg_switch_wal', 'pg_create_restore_point',
]);

/** Statements that only read, whatever they contain. */
const READ_STATEMENTS = new Set(['VariableShowStmt']);

/** A lone DEALLOCATE statement: of every prepared statement, or of one by name. */
export type Deallocation = { all: true } | { all: false; name: string };

/** What the pooler reads from a statement text, from one parse. */
interface Analysis {
  kind: QueryKind;
  deallocation: Deallocation | null;
  /** Session state the text leaves on the server beyond its transaction: Dirty bits (server/reset.ts). */
  sessionState: number;
}

/** Remembered by text: the parse is the cost, and every reader shares it. */
const analyze: (sql: string) => Analysis = memoizeByText(4096, analyzeUncached);

/** Read or write, by statement text. */
export function classify(sql: string): QueryKind {
  return analyze(sql).kind;
}

/** What session state the statements of `sql` leave on the server (Dirty bits; 0: none). */
export function sessionState(sql: string): number {
  return analyze(sql).sessionState;
}

/** The text is exactly one DEALLOCATE [PREPARE] name | ALL (null otherwise). */
export function deallocation(sql: string): Deallocation | null {
  return analyze(sql).deallocation;
}

function analyzeUncached(sql: string): Analysis {
  let stmts: { stmt: Node }[];
  try {
    stmts = (parseSync(sql) as { stmts?: { stmt: Node }[] }).stmts ?? [];
  } catch {
    // Unparseable: the primary will say what is wrong; whatever part of it
    // runs there (another server version's grammar) is not seen: reset all.
    return { kind: 'write', deallocation: null, sessionState: ALL_DIRTY };
  }
  const sessionState = sessionEffects(stmts);
  if (stmts.length === 0) return { kind: 'read', deallocation: null, sessionState };
  if (stmts.length === 1) return { kind: classifyStatement(stmts[0].stmt), deallocation: deallocationOf(stmts[0].stmt), sessionState };
  // Several statements in one Query: a read only if every one is.
  const kinds = stmts.map(({ stmt }) => classifyStatement(stmt));
  return { kind: kinds.every((k) => k === 'read' || k === 'begin_read_only') ? 'read' : 'write', deallocation: null, sessionState };
}

function deallocationOf(stmt: Node): Deallocation | null {
  const d = stmt.DeallocateStmt as { name?: string; isall?: boolean } | undefined;
  if (!d) return null;
  // libpg-query (PG 17 grammar) says isall; older trees leave the name out.
  return d.isall || d.name === undefined ? { all: true } : { all: false, name: d.name };
}

function classifyStatement(stmt: Node): QueryKind {
  const [type, body] = Object.entries(stmt)[0] as [string, Node];
  switch (type) {
    case 'SelectStmt':
      return selectWrites(body) ? 'write' : 'read';
    case 'ExplainStmt': {
      const analyze = ((body.options as Node[] | undefined) ?? []).some((o) => (o.DefElem as Node | undefined)?.defname === 'analyze');
      return analyze ? classifyStatement(body.query as Node) : 'read';
    }
    case 'TransactionStmt': {
      const kind = body.kind as string;
      if (kind !== 'TRANS_STMT_BEGIN' && kind !== 'TRANS_STMT_START') return 'read'; // COMMIT, ROLLBACK...: wherever the transaction is
      return readOnlyOption(body.options) ? 'begin_read_only' : 'begin';
    }
    case 'VariableSetStmt':
      // SET TRANSACTION READ ONLY keeps a transaction where it is.
      if (body.name === 'TRANSACTION' && readOnlyOption(body.args)) return 'read';
      return 'write';
    default:
      return READ_STATEMENTS.has(type) ? 'read' : 'write';
  }
}

function readOnlyOption(options: unknown): boolean {
  return ((options as Node[] | undefined) ?? []).some((o) => {
    const d = o.DefElem as { defname?: string; arg?: { A_Const?: { ival?: { ival?: number } } } } | undefined;
    return d?.defname === 'transaction_read_only' && d.arg?.A_Const?.ival?.ival === 1;
  });
}

/** FOR UPDATE/SHARE, SELECT INTO, data-modifying CTEs, writing functions. */
function selectWrites(select: Node): boolean {
  if (select.intoClause) return true;
  let writes = false;
  walkAst(select, (node) => {
    if (writes) return;
    if (node.lockingClause) writes = true;
    else if (node.InsertStmt || node.UpdateStmt || node.DeleteStmt || node.MergeStmt) writes = true;
    else if (node.FuncCall) {
      const names = (node.FuncCall as { funcname?: { String?: { sval?: string } }[] }).funcname ?? [];
      const name = names[names.length - 1]?.String?.sval?.toLowerCase();
      if (name && WRITING_FUNCTIONS.has(name)) writes = true;
    }
  });
  return writes;
}
