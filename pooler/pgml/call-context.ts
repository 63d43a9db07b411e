// Where a pgml call stands in its statement, for the calls whose
// replacement depends on it:
// - pgml.transform_stream is answered by the pooler itself (stream.ts), so
//   its statement must be nothing but the call: `SELECT pgml.transform_stream(...)`
//   or `SELECT * FROM pgml.transform_stream(...)`, with an optional alias;
//   the answer's one column is named as Postgres would name it.
// - pgml.infer in FROM becomes a subquery, which Postgres 15 accepts only
//   with an alias: the rewrite adds `AS infer` unless the call has one.

import type { AstNode } from '../router/ast-walk.js';
import { walkAst } from '../router/ast-walk.js';
import { type Node, type RawStmt, wrapped } from '../router/sql-ast.js';
import { PgmlError } from './pgml-error.js';

const STREAM_SHAPE =
  'pgml.transform_stream must be the whole statement, as `SELECT pgml.transform_stream(...)` or `SELECT * FROM pgml.transform_stream(...)`: the pooler answers it itself, row by row as tokens are generated';

/** Locations of the function calls that are RangeFunctions in FROM, with whether each has an alias. */
export function fromFunctions(stmts: readonly RawStmt[]): Map<number, boolean> {
  const out = new Map<number, boolean>();
  walkAst(stmts, (node: AstNode) => {
    const rf = wrapped(node, 'RangeFunction');
    if (!rf) return;
    for (const f of rf.functions ?? []) {
      const items = 'List' in f ? (f.List.items ?? []) : [];
      const call = items[0] && 'FuncCall' in items[0] ? items[0].FuncCall : undefined;
      if (call?.location !== undefined) out.set(call.location, rf.alias !== undefined);
    }
  });
  return out;
}

/**
 * The result column's name of a statement that is only the
 * transform_stream call at `location`; throws 0A000 for any other shape.
 */
export function streamColumn(stmts: readonly RawStmt[], location: number): string {
  const only = stmts.length === 1 ? stmts[0]!.stmt : undefined;
  const select = only && 'SelectStmt' in only ? only.SelectStmt : undefined;
  if (!select || select.op !== 'SETOP_NONE') throw new PgmlError('0A000', STREAM_SHAPE);
  const extra: (keyof typeof select)[] = ['distinctClause', 'intoClause', 'whereClause', 'groupClause', 'havingClause', 'windowClause', 'valuesLists', 'sortClause', 'limitOffset', 'limitCount', 'lockingClause', 'withClause'];
  if (extra.some((k) => select[k] !== undefined)) throw new PgmlError('0A000', STREAM_SHAPE);
  const targets = select.targetList ?? [];
  const target = targets.length === 1 && 'ResTarget' in targets[0]! ? targets[0].ResTarget : undefined;
  if (!target) throw new PgmlError('0A000', STREAM_SHAPE);
  const from = select.fromClause ?? [];
  if (from.length === 0) {
    // SELECT pgml.transform_stream(...) [AS name]
    if (!isCallAt(target.val, location)) throw new PgmlError('0A000', STREAM_SHAPE);
    return target.name ?? 'transform_stream';
  }
  // SELECT * FROM pgml.transform_stream(...) [AS alias [(column)]]
  const star = target.val && 'ColumnRef' in target.val ? target.val.ColumnRef.fields : undefined;
  const rf = from.length === 1 && 'RangeFunction' in from[0]! ? from[0].RangeFunction : undefined;
  const fns = rf?.functions ?? [];
  const first = fns.length === 1 && 'List' in fns[0]! ? fns[0].List.items?.[0] : undefined;
  if (!star || star.length !== 1 || !('A_Star' in star[0]!) || target.name || !rf || rf.lateral || rf.ordinality || rf.is_rowsfrom || !isCallAt(first, location)) {
    throw new PgmlError('0A000', STREAM_SHAPE);
  }
  const colnames = rf.alias?.colnames ?? [];
  const col = colnames[0] && 'String' in colnames[0] ? colnames[0].String.sval : undefined;
  return col ?? rf.alias?.aliasname ?? 'transform_stream';
}

function isCallAt(node: Node | undefined, location: number): boolean {
  return node !== undefined && 'FuncCall' in node && node.FuncCall.location === location;
}
