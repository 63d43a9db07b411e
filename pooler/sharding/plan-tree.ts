// Parse-tree questions for the cross-shard planner: which constructs it
// cannot merge, which select-list items are combinable aggregates, and
// expression identity (parse-tree JSON without locations). Nodes are
// libpg-query's typed JSON: { NodeType: { ...fields } }.

import type { AstNode } from '../router/ast-walk.js';
import { type Node, type NodeOf, wrapped } from '../router/sql-ast.js';

export type { Node };
export type SelectStmt = NodeOf<'SelectStmt'>;
type FuncCall = NodeOf<'FuncCall'>;

type AggKind = 'count' | 'sum' | 'min' | 'max' | 'avg';

/** The statement cannot be planned across shards (SQLSTATE and message for the client). */
export class PlanError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

const COMBINABLE = new Set<string>(['count', 'sum', 'min', 'max', 'avg']);

/** Built-in aggregates whose per-shard results cannot be combined. */
const OTHER_AGGREGATES = new Set([
  'array_agg', 'string_agg', 'json_agg', 'jsonb_agg', 'json_agg_strict', 'jsonb_agg_strict', 'json_object_agg', 'jsonb_object_agg',
  'json_objectagg', 'json_arrayagg', 'json_object_agg_strict', 'jsonb_object_agg_strict', 'json_object_agg_unique', 'jsonb_object_agg_unique',
  'bool_and', 'bool_or', 'every', 'bit_and', 'bit_or', 'bit_xor', 'stddev', 'stddev_pop', 'stddev_samp', 'variance', 'var_pop',
  'var_samp', 'covar_pop', 'covar_samp', 'corr', 'regr_avgx', 'regr_avgy', 'regr_count', 'regr_intercept', 'regr_r2', 'regr_slope',
  'regr_sxx', 'regr_sxy', 'regr_syy', 'percentile_cont', 'percentile_disc', 'mode', 'xmlagg', 'range_agg', 'range_intersect_agg',
  'any_value',
]);

function unsupported(what: string): PlanError {
  return new PlanError('0A000', `cross-shard queries do not support ${what}`);
}

/** Throws PlanError for statement-level constructs the merger cannot reproduce. */
export function rejectUnsupported(sel: SelectStmt): void {
  if (sel.op !== undefined && sel.op !== 'SETOP_NONE') throw unsupported('UNION, INTERSECT or EXCEPT');
  if (sel.valuesLists) throw unsupported('VALUES');
  if (sel.intoClause) throw unsupported('SELECT INTO');
  if (sel.lockingClause) throw unsupported('FOR UPDATE/SHARE');
  if (sel.windowClause) throw unsupported('window functions');
  if (sel.limitOption === 'LIMIT_OPTION_WITH_TIES') throw unsupported('FETCH ... WITH TIES');
  if (sel.distinctClause?.some((d) => Object.keys(d).length > 0)) throw unsupported('DISTINCT ON');
  const group = sel.groupClause ?? [];
  if (group.some((g) => 'GroupingSet' in g)) throw unsupported('GROUPING SETS, ROLLUP or CUBE');
}

function funcName(call: FuncCall): string {
  const last = call.funcname?.[call.funcname.length - 1];
  return last && 'String' in last ? (last.String.sval ?? '') : '';
}

/**
 * The combinable aggregate an expression is (count/sum/min/max/avg called
 * at its top), or null when it holds no aggregate. Throws PlanError for
 * window functions, DISTINCT/ordered aggregates, other aggregates and
 * expressions over aggregates.
 */
export function aggregateOf(val: Node): AggKind | null {
  const call = 'FuncCall' in val ? val.FuncCall : undefined;
  if (call && COMBINABLE.has(funcName(call)) && !call.over) {
    const name = funcName(call);
    if (call.agg_distinct) throw unsupported(`${name}(DISTINCT ...)`);
    if (call.agg_within_group) throw unsupported(`${name}() WITHIN GROUP`);
    if (call.agg_order) throw unsupported(`ORDER BY inside ${name}()`);
    const args = call.args ?? [];
    if (!(name === 'count' && call.agg_star) && args.length !== 1) throw unsupported(`${name}() with ${args.length} arguments`);
    for (const a of args) if (findAggregate(a)) throw new PlanError('42803', 'aggregate function calls cannot be nested');
    if (call.agg_filter) findAggregate(call.agg_filter);
    return name as AggKind;
  }
  const inner = findAggregate(val);
  if (inner === null) return null;
  if (COMBINABLE.has(inner)) throw unsupported(`expressions over aggregates (select ${inner}() itself)`);
  throw unsupported(`the aggregate ${inner}()`);
}

/**
 * Whether a select-list or ORDER BY item must be computed by the merger:
 * an expression over combinable aggregates, or a DISTINCT aggregate.
 */
export function needsComputing(val: Node): boolean {
  const call = 'FuncCall' in val ? val.FuncCall : undefined;
  if (call && COMBINABLE.has(funcName(call)) && !call.over) return call.agg_distinct === true;
  const inner = findAggregate(val);
  return inner !== null && COMBINABLE.has(inner);
}

/**
 * The combined kind of an aggregate call that is a leaf of a computed
 * expression (DISTINCT allowed for count/sum; min/max ignore it).
 */
export function leafAggregate(val: Node): AggKind | 'count_distinct' | 'sum_distinct' {
  const call = 'FuncCall' in val ? val.FuncCall : undefined;
  if (!call || !COMBINABLE.has(funcName(call))) throw unsupported('this aggregate');
  const name = funcName(call);
  if (!call.agg_distinct) {
    const kind = aggregateOf(val);
    if (kind === null) throw unsupported('this aggregate');
    return kind;
  }
  if (call.agg_order || call.agg_within_group) throw unsupported(`ORDER BY inside ${name}()`);
  const args = call.args ?? [];
  if (args.length !== 1) throw unsupported(`${name}(DISTINCT ...) with ${args.length} arguments`);
  if (findAggregate(args[0])) throw new PlanError('42803', 'aggregate function calls cannot be nested');
  if (name === 'count') return 'count_distinct';
  if (name === 'sum') return 'sum_distinct';
  if (name === 'min' || name === 'max') return name;
  throw unsupported(`${name}(DISTINCT ...)`);
}

/** Name of the first aggregate call inside (subqueries excluded); throws for window functions. */
function findAggregate(node: unknown): string | null {
  if (Array.isArray(node)) {
    for (const n of node) {
      const found = findAggregate(n);
      if (found) return found;
    }
    return null;
  }
  if (node === null || typeof node !== 'object') return null;
  const n = node as AstNode;
  if (n.GroupingFunc) throw unsupported('GROUPING()');
  const call = wrapped(n, 'FuncCall');
  if (call) {
    if (call.over) throw unsupported('window functions');
    const name = funcName(call);
    if (COMBINABLE.has(name) || OTHER_AGGREGATES.has(name) || call.agg_within_group || call.agg_star || call.agg_distinct || call.agg_order) {
      return name;
    }
  }
  for (const [k, v] of Object.entries(n)) {
    if (k === 'subselect') continue; // a subquery's aggregates are its own
    const found = findAggregate(v);
    if (found) return found;
  }
  return null;
}

/** Identity of an expression: its parse tree without source locations. */
export function exprKey(node: Node): string {
  return JSON.stringify(node, (k, v: unknown) => (k === 'location' ? undefined : v));
}

/** The column name Postgres gives an unaliased select-list item (FigureColname), where it matters. */
export function implicitName(val: Node): string | null {
  if ('ColumnRef' in val) return stringOf(val.ColumnRef.fields?.[val.ColumnRef.fields.length - 1]);
  if ('FuncCall' in val) return funcName(val.FuncCall) || null;
  if ('TypeCast' in val) {
    const cast = val.TypeCast;
    const inner = cast.arg ? implicitName(cast.arg) : null;
    const names = cast.typeName?.names ?? [];
    return inner ?? stringOf(names[names.length - 1]);
  }
  return null;
}

/** The text of a String node (a name part); null for anything else. */
function stringOf(node: Node | undefined): string | null {
  return node && 'String' in node ? (node.String.sval ?? null) : null;
}

/** `*` or `t.*`. */
export function isStar(val: Node): boolean {
  const fields = 'ColumnRef' in val ? val.ColumnRef.fields : undefined;
  return fields !== undefined && fields.length > 0 && 'A_Star' in fields[fields.length - 1];
}

/** The name of a one-part column reference (`x`, not `t.x`). */
export function bareName(node: Node): string | undefined {
  const fields = 'ColumnRef' in node ? node.ColumnRef.fields : undefined;
  return fields?.length === 1 ? (stringOf(fields[0]) ?? undefined) : undefined;
}
