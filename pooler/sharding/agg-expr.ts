// Expressions over aggregates in a cross-shard SELECT (`round(avg(x), 2)`,
// `sum(x) / count(*)`, `avg(x)::int`, HAVING conditions): compiled from the
// parse tree into a small tree the pooler evaluates (agg-eval.ts) once the
// shards' partial aggregates are combined per group. Leaves are columns of
// the shard row: each aggregate call and each plain column reference gets
// one (the planner adds them as hidden columns). Only the operators and
// functions below are known; anything else is refused (0A000), so the
// merged value is always the one Postgres computes.

import { PlanError, type Node } from './plan-tree.js';

export type ArithOp = '+' | '-' | '*' | '/' | '%';
export type CompareOp = '=' | '<>' | '<' | '>' | '<=' | '>=';
export type CastTarget = 'int2' | 'int4' | 'int8' | 'numeric' | 'float4' | 'float8' | 'text';

export type AggExpr =
  | { col: number }
  | { int: bigint }
  | { numeric: string }
  | { text: string }
  | { bool: boolean }
  | { null: true }
  /** $n: the Bind value, as text (compared and computed as the other operand's type). */
  | { param: number }
  | { arith: ArithOp; left: AggExpr; right: AggExpr }
  | { negate: AggExpr }
  | { concat: [AggExpr, AggExpr] }
  /** CASE WHEN ... THEN ... [ELSE ...] END (a simple CASE x WHEN v: compiled to x = v). */
  | { case: [AggExpr, AggExpr][]; else: AggExpr }
  | { compare: CompareOp; left: AggExpr; right: AggExpr }
  | { and: AggExpr[] }
  | { or: AggExpr[] }
  | { not: AggExpr }
  | { isNull: AggExpr; negated: boolean }
  | { fn: 'round' | 'abs' | 'coalesce' | 'nullif' | 'greatest' | 'least'; args: AggExpr[] }
  | { cast: CastTarget; scale?: number; arg: AggExpr };

/** How the planner turns leaves into shard columns. */
export interface LeafColumns {
  /** An aggregate call (count/sum/min/max/avg, count/sum DISTINCT): its column. */
  aggregate(node: Node): number;
  /** A plain column reference (a group key): its column. */
  column(node: Node): number;
}

function unsupported(what: string): PlanError {
  return new PlanError('0A000', `cross-shard queries do not support ${what} in expressions over aggregates`);
}

const CASTS: Record<string, CastTarget> = {
  int2: 'int2', smallint: 'int2', int4: 'int4', int: 'int4', integer: 'int4', int8: 'int8', bigint: 'int8',
  numeric: 'numeric', decimal: 'numeric', float4: 'float4', real: 'float4', float8: 'float8', text: 'text',
};

const FUNCTIONS = new Set(['round', 'abs']);
const AGGREGATES = new Set(['count', 'sum', 'min', 'max', 'avg']);

const str = (n: Node | undefined): string => (n && 'String' in n ? (n.String.sval ?? '') : '');

export function compileAggExpr(node: Node, leaves: LeafColumns): AggExpr {
  const c = (n: Node | undefined): AggExpr => {
    if (!n) throw unsupported('an empty operand');
    return compileAggExpr(n, leaves);
  };
  if ('FuncCall' in node) {
    const call = node.FuncCall;
    const name = str(call.funcname?.[call.funcname.length - 1]).toLowerCase();
    const schema = call.funcname && call.funcname.length > 1 ? str(call.funcname[0]) : 'pg_catalog';
    if (schema === 'pg_catalog' && AGGREGATES.has(name) && !call.over) return { col: leaves.aggregate(node) };
    if (schema !== 'pg_catalog' || !FUNCTIONS.has(name) || call.over || call.agg_star || call.agg_distinct) throw unsupported(`the function ${name}()`);
    return { fn: name as 'round' | 'abs', args: (call.args ?? []).map((a) => c(a)) };
  }
  if ('CoalesceExpr' in node) return { fn: 'coalesce', args: (node.CoalesceExpr.args ?? []).map((a) => c(a)) };
  if ('MinMaxExpr' in node) {
    const m = node.MinMaxExpr;
    return { fn: m.op === 'IS_GREATEST' ? 'greatest' : 'least', args: (m.args ?? []).map((a) => c(a)) };
  }
  if ('ColumnRef' in node) return { col: leaves.column(node) };
  if ('A_Const' in node) {
    const k = node.A_Const;
    if (k.isnull) return { null: true };
    if (k.ival) return { int: BigInt(k.ival.ival ?? 0) };
    if (k.fval?.fval !== undefined) return /^-?\d+$/.test(k.fval.fval) ? { int: BigInt(k.fval.fval) } : { numeric: k.fval.fval };
    if (k.sval) return { text: k.sval.sval ?? '' };
    if (k.boolval) return { bool: k.boolval.boolval === true };
    throw unsupported('this constant');
  }
  if ('TypeCast' in node) {
    const cast = node.TypeCast;
    const names = cast.typeName?.names ?? [];
    const target = CASTS[str(names[names.length - 1]).toLowerCase()];
    if (!target || cast.typeName?.arrayBounds) throw unsupported('casts other than to integer, numeric, float or text types');
    const mods = cast.typeName?.typmods ?? [];
    const arg = c(cast.arg);
    if (target !== 'numeric' || mods.length === 0) return { cast: target, arg };
    const scaleNode = mods[1];
    const scale = scaleNode && 'A_Const' in scaleNode ? (scaleNode.A_Const.ival?.ival ?? 0) : 0;
    return { cast: 'numeric', scale, arg };
  }
  if ('A_Expr' in node) {
    const e = node.A_Expr;
    const op = str(e.name?.[e.name.length - 1]);
    if (e.kind === 'AEXPR_NULLIF') return { fn: 'nullif', args: [c(e.lexpr), c(e.rexpr)] };
    const list = e.rexpr && 'List' in e.rexpr ? (e.rexpr.List.items ?? []).map((x) => c(x)) : null;
    if ((e.kind === 'AEXPR_BETWEEN' || e.kind === 'AEXPR_NOT_BETWEEN') && list?.length === 2) {
      // As Postgres's transformAExprBetween: x >= a AND x <= b, NOT: x < a OR x > b.
      const x = c(e.lexpr);
      if (e.kind === 'AEXPR_BETWEEN') return { and: [{ compare: '>=', left: x, right: list[0] }, { compare: '<=', left: x, right: list[1] }] };
      return { or: [{ compare: '<', left: x, right: list[0] }, { compare: '>', left: x, right: list[1] }] };
    }
    if (e.kind === 'AEXPR_IN' && list && (op === '=' || op === '<>')) {
      const x = c(e.lexpr);
      const each = list.map((v): AggExpr => ({ compare: op, left: x, right: v }));
      return op === '=' ? { or: each } : { and: each };
    }
    if (e.kind !== 'AEXPR_OP' || (e.name?.length ?? 0) !== 1) throw unsupported(`the operator ${op || e.kind}`);
    if (!e.lexpr) {
      if (op === '-') return { negate: c(e.rexpr) };
      if (op === '+') return c(e.rexpr);
      throw unsupported(`the prefix operator ${op}`);
    }
    if (op === '+' || op === '-' || op === '*' || op === '/' || op === '%') return { arith: op, left: c(e.lexpr), right: c(e.rexpr) };
    if (op === '||') return { concat: [c(e.lexpr), c(e.rexpr)] };
    if (op === '!=') return { compare: '<>', left: c(e.lexpr), right: c(e.rexpr) };
    if (op === '=' || op === '<>' || op === '<' || op === '>' || op === '<=' || op === '>=') return { compare: op, left: c(e.lexpr), right: c(e.rexpr) };
    throw unsupported(`the operator ${op}`);
  }
  if ('BoolExpr' in node) {
    const b = node.BoolExpr;
    const args = (b.args ?? []).map((a) => c(a));
    if (b.boolop === 'AND_EXPR') return { and: args };
    if (b.boolop === 'OR_EXPR') return { or: args };
    return { not: args[0] };
  }
  if ('ParamRef' in node) return { param: node.ParamRef.number ?? 0 };
  if ('CaseExpr' in node) {
    const k = node.CaseExpr;
    const subject = k.arg ? c(k.arg) : null;
    const whens = (k.args ?? []).map((w): [AggExpr, AggExpr] => {
      if (!('CaseWhen' in w)) throw unsupported('this CASE');
      const cond = c(w.CaseWhen.expr);
      return [subject ? { compare: '=', left: subject, right: cond } : cond, c(w.CaseWhen.result)];
    });
    return { case: whens, else: k.defresult ? c(k.defresult) : { null: true } };
  }
  if ('NullTest' in node) return { isNull: c(node.NullTest.arg), negated: node.NullTest.nulltesttype === 'IS_NOT_NULL' };
  throw unsupported(`the expression ${Object.keys(node)[0] ?? ''}`);
}

/** FigureColname for the select-list items the planner computes (the shard text gets it as an alias). */
export function computedColumnName(node: Node): string {
  if ('FuncCall' in node) return str(node.FuncCall.funcname?.[node.FuncCall.funcname.length - 1]);
  if ('CoalesceExpr' in node) return 'coalesce';
  if ('CaseExpr' in node) return 'case';
  if ('MinMaxExpr' in node) return node.MinMaxExpr.op === 'IS_GREATEST' ? 'greatest' : 'least';
  if ('A_Expr' in node && node.A_Expr.kind === 'AEXPR_NULLIF') return 'nullif';
  if ('TypeCast' in node) {
    const cast = node.TypeCast;
    const inner = cast.arg ? computedColumnName(cast.arg) : '?column?';
    if (inner !== '?column?') return inner;
    const names = cast.typeName?.names ?? [];
    return str(names[names.length - 1]) || '?column?';
  }
  return '?column?';
}

/** The expression with every column index mapped (the planner compiles with placeholders). */
export function mapColumns(e: AggExpr, f: (col: number) => number): AggExpr {
  const m = (x: AggExpr): AggExpr => mapColumns(x, f);
  if ('col' in e) return { col: f(e.col) };
  if ('arith' in e) return { ...e, left: m(e.left), right: m(e.right) };
  if ('compare' in e) return { ...e, left: m(e.left), right: m(e.right) };
  if ('negate' in e) return { negate: m(e.negate) };
  if ('concat' in e) return { concat: [m(e.concat[0]), m(e.concat[1])] };
  if ('case' in e) return { case: e.case.map(([w, r]): [AggExpr, AggExpr] => [m(w), m(r)]), else: m(e.else) };
  if ('and' in e) return { and: e.and.map(m) };
  if ('or' in e) return { or: e.or.map(m) };
  if ('not' in e) return { not: m(e.not) };
  if ('isNull' in e) return { ...e, isNull: m(e.isNull) };
  if ('fn' in e) return { ...e, args: e.args.map(m) };
  if ('cast' in e) return { ...e, arg: m(e.arg) };
  return e;
}
