// Plans a parsed SELECT for running on every shard at once (each holding a disjoint
// subset of the rows) so that merge.ts can turn the shards' results into the
// one result a single node holding all rows would give.
//
// The shard text is the client's, edited at byte locations:
// - ORDER BY / GROUP BY keys that are not output columns become hidden
//   output columns appended to the select list (`, (expr) AS __pglynx_hN`);
//   the merger sorts/groups on them and strips them;
// - avg(x) becomes sum(x) in place (named `avg`), plus a hidden count(x);
// - `LIMIT n OFFSET m` becomes `LIMIT n+m` (parameters: `LIMIT ($a::int8 +
//   $b::int8)`, NULL meaning no limit, as in Postgres); for aggregates it is
//   dropped unless the ORDER BY fixes the order of whole groups. The merger
//   applies the real OFFSET/LIMIT.
// - expressions over aggregates (select list, ORDER BY) and count/sum
//   (DISTINCT ...) become `(CASE WHEN false THEN expr END)`: a NULL of the
//   expression's type and name, never evaluated on a shard (no division by
//   one shard's zero count); each aggregate inside becomes a hidden column
//   (count(DISTINCT x) → array_agg(DISTINCT x)), and the merger evaluates
//   the expression on the combined values (agg-expr.ts, agg-eval.ts). This,
//   not a second round trip through Postgres, because the merge is one
//   synchronous step of the executor; the evaluator covers only operators
//   whose Postgres semantics it reproduces exactly (numeric scales, integer
//   overflow, round()), and the planner refuses the rest.
// - HAVING becomes `HAVING true OR (cond)` (the shards keep every partial
//   group); the merger applies cond to the combined groups.
//
// Unsupported (PlanError 0A000): avg(DISTINCT), aggregates other than
// count/sum/min/max/avg, functions/operators over aggregates other than
// arithmetic, ||, CASE, comparisons, AND/OR/NOT, IS NULL, round, abs, coalesce,
// nullif, greatest, least and casts to integer/numeric/float/text types,
// window functions, DISTINCT ON, grouping sets, set operations, FETCH ...
// WITH TIES, ORDER BY ... USING, locking clauses, `*` in aggregate queries.
// Known divergences: a GROUP BY name matching an output alias is taken as
// that alias (Postgres prefers an input column of that name); user-defined
// aggregates are not recognised; avg(real) is summed in float4 per shard;
// scalar subqueries run per shard; count/sum(DISTINCT x) moves every
// distinct x of each group from every shard to the pooler (memory grows with
// the number of distinct values); merging needs text results, C collation,
// DateStyle ISO and extra_float_digits >= 1.

import type { RawStmt, ScanToken } from '../router/sql-ast.js';
import { SqlText, type Item } from './sql-text.js';
import { limitValue, shardLimitClause, type LimitValue } from './plan-limit.js';
import type { AggKind, ColumnPlan, CrossShardPlan } from './plan-types.js';
import { aggregateOf, bareName, exprKey, implicitName, isStar, leafAggregate, needsComputing, PlanError, rejectUnsupported, type Node, type SelectStmt } from './plan-tree.js';
import { compileAggExpr, computedColumnName, mapColumns, type AggExpr, type LeafColumns } from './agg-expr.js';
import { quoteIdent } from '../router/sql-quote.js';

/** A select-list item: its expression and its alias. */
interface Target {
  val: Node;
  name: string | undefined;
}

type FuncCall = Extract<Node, { FuncCall: unknown }>['FuncCall'];

interface Col {
  hidden: boolean;
  agg: AggKind | null;
  /** Parse-tree JSON without locations (null: never matched). */
  key: string | null;
  /** Output name (visible columns). */
  name: string | null;
  countCol?: Col;
  /** Hidden: its select-list text; fromOrderBy: made for ORDER BY. */
  text?: string;
  fromOrderBy?: boolean;
  /** Evaluated by the merger; its column indices point into Planner.leaves. */
  computed?: AggExpr;
}


const NOT_A_SELECT = (): PlanError => new PlanError('0A000', 'not a single SELECT');

/**
 * How to run a parsed text across shards, or why it cannot be (PlanError:
 * SQLSTATE and message). `stmts` null: the text does not parse (`parseError`
 * says why); `tokens` is the text's scan (called once the text is a SELECT).
 */
export function planSelect(
  stmts: readonly RawStmt[] | null,
  parseError: string | null,
  sql: string,
  tokens: () => readonly ScanToken[] | null,
): CrossShardPlan | PlanError {
  if (stmts === null) return new PlanError('42601', parseError ?? 'syntax error');
  const stmt = stmts.length === 1 ? stmts[0].stmt : undefined;
  if (!stmt || !('SelectStmt' in stmt)) return NOT_A_SELECT();
  const sel = stmt.SelectStmt;
  const bytes = Buffer.from(sql, 'utf8');
  const from = stmts[0].stmt_location ?? 0;
  const to = stmts[0].stmt_len ? from + stmts[0].stmt_len : bytes.length;
  try {
    rejectUnsupported(sel);
    const scanned = tokens();
    if (scanned === null) return new PlanError('42601', 'the statement text cannot be scanned');
    return new Planner(new SqlText(bytes, scanned, from, to), sel).plan();
  } catch (err) {
    if (err instanceof PlanError) return err;
    throw err;
  }
}

class Planner {
  private readonly visible: Col[] = [];
  private readonly hidden: Col[] = [];
  private readonly targets: Target[];
  private readonly hasStar: boolean;
  /** Leaf columns of computed expressions (resolved to indices at the end). */
  private readonly leaves: Col[] = [];
  private readonly leafColumns: LeafColumns = {
    aggregate: (node) => this.leaf(this.aggregateLeaf(node)),
    column: (node) => this.leaf(this.columnLeaf(node)),
  };

  constructor(private readonly text: SqlText, private readonly sel: SelectStmt) {
    this.targets = (sel.targetList ?? []).flatMap((t) => ('ResTarget' in t && t.ResTarget.val ? [{ val: t.ResTarget.val, name: t.ResTarget.name }] : []));
    this.hasStar = this.targets.some((t) => isStar(t.val));
  }

  plan(): CrossShardPlan {
    const { text, sel } = this;
    const select = text.find('SELECT');
    if (select < 0 || text.tokens[0].text === '(') throw new PlanError('0A000', 'cross-shard queries need a plain SELECT ... statement');
    const list = text.targetList(select);
    if (list.items.length !== this.targets.length) throw internal('select list');
    this.targets.forEach((t, i) => this.addTarget(t, list.items[i]));
    const listEnd = text.tokenAt(list.end);

    const groupBy = this.groupBy(listEnd);
    const orderBy = this.orderBy(listEnd);
    const having = sel.havingClause ? compileAggExpr(sel.havingClause, this.leafColumns) : undefined;
    if (having) this.neutraliseHaving(listEnd);
    const distinct = Array.isArray(sel.distinctClause);
    const all = [...this.visible, ...this.hidden];
    const aggregate = groupBy.length > 0 || having !== undefined || all.some((c) => c.agg !== null || c.computed);
    if (aggregate && this.hasStar) throw unsupported('* in the select list of aggregate queries');
    if (distinct && this.hidden.some((c) => c.fromOrderBy)) {
      throw new PlanError('42P10', 'for SELECT DISTINCT, ORDER BY expressions must appear in select list');
    }

    const limit = limitValue(sel.limitCount, 'LIMIT');
    const offset = limitValue(sel.limitOffset, 'OFFSET');
    this.rewriteLimit(limit, offset, !aggregate || (!having && pushableGroupOrder(groupBy, orderBy)), listEnd);

    if (this.hidden.length > 0) {
      const added = this.hidden.map((c, i) => `(${c.text}) AS __pglynx_h${i}`);
      text.insert(list.end, (this.targets.length ? ', ' : ' ') + added.join(', '));
    }

    const index = (c: Col | number): number => this.index(c);
    const columns = (this.hasStar ? this.hidden : all).map((c) => {
      const p: ColumnPlan = { hidden: c.hidden, agg: c.agg };
      if (c.countCol) p.avgCountColumn = index(c.countCol);
      if (c.computed) p.computed = this.resolve(c.computed);
      return p;
    });
    return {
      shardSql: text.result(),
      visibleCount: this.hasStar ? null : this.visible.length,
      columns,
      aggregate,
      groupBy: groupBy.map(index),
      orderBy: orderBy.map((k) => ({ column: index(k.col), desc: k.desc, nullsFirst: k.nullsFirst })),
      limit,
      offset,
      distinct,
      ...(having ? { having: this.resolve(having) } : {}),
    };
  }

  private resolve(e: AggExpr): AggExpr {
    return mapColumns(e, (k) => this.index(this.leaves[k]));
  }

  private leaf(c: Col): number {
    const i = this.leaves.indexOf(c);
    return i >= 0 ? i : this.leaves.push(c) - 1;
  }

  /** The column of an aggregate call inside a computed expression (shared when equal). */
  private aggregateLeaf(node: Node): Col {
    const kind = leafAggregate(node);
    const key = exprKey(node);
    const found = [...this.visible, ...this.hidden].find((c) => c.key === key && c.agg !== null);
    if (found) return found;
    const [start, end] = this.callRange(node);
    if (kind === 'avg') return this.hiddenFor(node, start, end, false);
    if (kind === 'count_distinct' || kind === 'sum_distinct') {
      return this.addHidden({ agg: kind, key, text: this.renamed(start, end, this.nameSpan(node), 'array_agg') });
    }
    return this.addHidden({ agg: kind, key, text: this.text.text(start, end) });
  }

  /** The column of a plain column reference (a group key) inside a computed expression. */
  private columnLeaf(node: Node): Col {
    const key = exprKey(node);
    const found = [...this.visible, ...this.hidden].find((c) => c.key === key && c.agg === null && !c.computed);
    if (found) return found;
    const fields = 'ColumnRef' in node ? (node.ColumnRef.fields ?? []) : [];
    const parts = fields.map((f) => {
      if (!('String' in f)) throw unsupported('* in expressions over aggregates');
      return quoteIdent(f.String.sval ?? '');
    });
    return this.addHidden({ agg: null, key, text: parts.join('.') });
  }

  /** Byte range of an aggregate call, through its closing parenthesis and any FILTER (...). */
  private callRange(node: Node): [number, number] {
    const range = this.text.callRange('FuncCall' in node ? (node.FuncCall.location ?? -1) : -1);
    if (!range) throw internal('aggregate call');
    return range;
  }

  /**
   * The shards must not filter partial groups: HAVING is evaluated after
   * merging. The shards get `HAVING true OR (cond)`, which Postgres folds to
   * true before running it, so its parameters keep the types the client's
   * statement gives them.
   */
  private neutraliseHaving(listEnd: number): void {
    const range = this.text.havingRange(listEnd);
    if (!range) throw internal('HAVING');
    this.text.replace(range[0], range[1], `true OR (${this.text.text(range[0], range[1])})`);
  }

  private index(c: Col | number): number {
    if (typeof c === 'number') return c;
    if (!c.hidden) {
      if (this.hasStar) throw internal('column after *');
      return this.visible.indexOf(c);
    }
    const h = this.hidden.indexOf(c);
    return this.hasStar ? h - this.hidden.length : this.visible.length + h;
  }

  private addTarget(t: Target, item: Item): void {
    const val = t.val;
    if (needsComputing(val)) {
      // The shards send a NULL of the expression's type (not evaluated: no
      // division by a shard's zero count); the merger computes the value.
      const computed = compileAggExpr(val, this.leafColumns);
      this.visible.push({ hidden: false, agg: null, key: exprKey(val), name: t.name ?? implicitName(val), computed });
      const [start, end] = this.exprRange(item, t.name !== undefined);
      const alias = t.name === undefined ? ` AS ${quoteIdent(computedColumnName(val))}` : '';
      this.text.replace(start, end, `(CASE WHEN false THEN ${this.text.text(start, end)} END)${alias}`);
      return;
    }
    const agg = aggregateOf(val);
    const col: Col = { hidden: false, agg, key: exprKey(val), name: t.name ?? implicitName(val) };
    this.visible.push(col);
    if (agg !== 'avg') return;
    // avg(x) → sum(x) AS avg here, count(x) hidden; the merger divides.
    const [start, end] = this.exprRange(item, t.name !== undefined);
    const name = this.nameSpan(val);
    this.text.replace(name[0], name[1], 'sum');
    if (t.name === undefined) this.text.insert(end, ' AS avg');
    col.countCol = this.addHidden({ agg: 'count', key: null, text: this.renamed(start, end, name, 'count') });
  }

  /** Byte range of a select-list item's expression (without its alias). */
  private exprRange([first, last]: Item, aliased: boolean): [number, number] {
    const toks = this.text.tokens;
    if (aliased) {
      last--;
      if (toks[last]?.keyword === 'AS') last--;
    }
    return [toks[first].start, toks[last].end];
  }

  /** Byte range of a call's function name (up to its opening parenthesis). */
  private nameSpan(node: Node): [number, number] {
    const call: FuncCall | undefined = 'FuncCall' in node ? node.FuncCall : undefined;
    const start = call?.location ?? -1;
    if (start < 0) throw internal('aggregate call');
    const toks = this.text.tokens;
    const open = toks.findIndex((t) => t.start >= start && t.text === '(');
    if (open <= 0) throw internal('aggregate call');
    return [start, toks[open - 1].end];
  }

  private renamed(start: number, end: number, name: [number, number], to: string): string {
    return this.text.text(start, name[0]) + to + this.text.text(name[1], end);
  }

  private addHidden(c: Omit<Col, 'hidden' | 'name'>): Col {
    const col: Col = { hidden: true, name: null, ...c };
    this.hidden.push(col);
    return col;
  }

  /** A hidden column for an expression (an aggregate one combines like a visible one). */
  private hiddenFor(node: Node, start: number, end: number, fromOrderBy: boolean): Col {
    const key = exprKey(node);
    const agg = aggregateOf(node);
    if (agg !== 'avg') return this.addHidden({ agg, key, text: this.text.text(start, end), fromOrderBy });
    const name = this.nameSpan(node);
    const countCol = this.addHidden({ agg: 'count', key: null, text: this.renamed(start, end, name, 'count') });
    return this.addHidden({ agg: 'avg', key, text: this.renamed(start, end, name, 'sum'), countCol, fromOrderBy });
  }

  private byPosition(node: Node, clause: string): number | null {
    const c = 'A_Const' in node ? node.A_Const : undefined;
    if (!c?.ival) return null;
    const k = c.ival.ival ?? 0;
    if (!this.hasStar && (k < 1 || k > this.visible.length)) {
      throw new PlanError('42P10', `${clause} position ${k} is not in select list`);
    }
    return k - 1;
  }

  /** The output column a bare name refers to (optionally only non-aggregates). */
  private byName(node: Node, plainOnly = false): Col | undefined {
    const name = bareName(node);
    return name === undefined ? undefined : this.visible.find((c) => c.name === name && !(plainOnly && (c.agg || c.computed)));
  }

  private groupBy(listEnd: number): Col[] {
    const nodes = this.sel.groupClause ?? [];
    if (nodes.length === 0) return [];
    const items = this.text.clause('GROUP', listEnd);
    if (items?.length !== nodes.length) throw internal('GROUP BY');
    const out: Col[] = [];
    nodes.forEach((node, i) => {
      const pos = this.byPosition(node, 'GROUP BY');
      let col: Col | undefined;
      if (pos !== null) {
        if (this.hasStar) throw unsupported('GROUP BY position with * in the select list');
        col = this.visible[pos];
      } else {
        const key = exprKey(node);
        col = this.visible.find((c) => c.key === key) ?? this.byName(node, true) ?? this.hidden.find((c) => c.key === key);
        col ??= this.addHidden({ agg: null, key, text: this.text.itemText(items[i]) });
      }
      if (col.agg !== null || col.computed) throw new PlanError('42803', 'aggregate functions are not allowed in GROUP BY');
      if (!out.includes(col)) out.push(col);
    });
    return out;
  }

  private orderBy(listEnd: number): { col: Col | number; desc: boolean; nullsFirst: boolean }[] {
    const nodes = (this.sel.sortClause ?? []).flatMap((n) => ('SortBy' in n && n.SortBy.node ? [{ ...n.SortBy, node: n.SortBy.node }] : []));
    if (nodes.length === 0) return [];
    const items = this.text.clause('ORDER', listEnd);
    if (items?.length !== nodes.length) throw internal('ORDER BY');
    return nodes.map((sb, i) => {
      const dir = sb.sortby_dir;
      if (dir === 'SORTBY_USING') throw unsupported('ORDER BY ... USING');
      const desc = dir === 'SORTBY_DESC';
      const nulls = sb.sortby_nulls;
      const nullsFirst = nulls === 'SORTBY_NULLS_DEFAULT' ? desc : nulls === 'SORTBY_NULLS_FIRST';
      const node = sb.node;
      const pos = this.byPosition(node, 'ORDER BY');
      if (pos !== null) return { col: this.hasStar ? pos : this.visible[pos], desc, nullsFirst };
      const [start, end] = this.sortExprRange(items[i], dir !== 'SORTBY_DEFAULT', nulls !== 'SORTBY_NULLS_DEFAULT');
      const key = exprKey(node);
      let col: Col | undefined;
      if (!this.hasStar) col = this.byName(node) ?? this.visible.find((c) => c.key === key);
      col ??= this.hidden.find((c) => c.key === key);
      if (!col && this.hasStar) {
        // An alias of an item next to `*`: sort on a copy of that item's expression.
        const aliased = this.aliasedTarget(node);
        if (aliased) col = this.hiddenFor(aliased, ...this.exprRangeOfTarget(aliased), true);
      }
      if (!col && needsComputing(node)) {
        const text = `CASE WHEN false THEN ${this.text.text(start, end)} END`;
        col = this.addHidden({ agg: null, key, text, fromOrderBy: true, computed: compileAggExpr(node, this.leafColumns) });
      }
      col ??= this.hiddenFor(node, start, end, true);
      return { col, desc, nullsFirst };
    });
  }

  private aliasedTarget(node: Node): Node | undefined {
    const name = bareName(node);
    const t = name === undefined ? undefined : this.targets.find((x) => x.name === name);
    return t?.val;
  }

  private exprRangeOfTarget(val: Node): [number, number] {
    const i = this.targets.findIndex((t) => t.val === val);
    const list = this.text.targetList(this.text.find('SELECT'));
    return this.exprRange(list.items[i], true);
  }

  /** Byte range of an ORDER BY item without ASC/DESC and NULLS FIRST/LAST. */
  private sortExprRange([first, last]: Item, hasDir: boolean, hasNulls: boolean): [number, number] {
    const toks = this.text.tokens;
    if (hasNulls) {
      if (toks[last - 1]?.keyword !== 'NULLS') throw internal('NULLS FIRST/LAST');
      last -= 2;
    }
    if (hasDir) {
      if (toks[last]?.keyword !== 'ASC' && toks[last]?.keyword !== 'DESC') throw internal('ASC/DESC');
      last--;
    }
    if (last < first) throw internal('ORDER BY item');
    return [toks[first].start, toks[last].end];
  }

  private rewriteLimit(limit: LimitValue, offset: LimitValue, pushable: boolean, listEnd: number): void {
    if (limit === null && offset === null) return;
    const section = this.text.limitSection(listEnd);
    if (!section) throw internal('LIMIT/OFFSET');
    const clause = shardLimitClause(limit, offset, pushable);
    if (clause !== null) this.text.replace(section[0], section[1], clause);
  }
}

/**
 * Per-shard LIMIT on grouped rows is safe only when the sort fixes the order
 * of whole groups: a leading run of ORDER BY keys covering every group key.
 */
function pushableGroupOrder(groupBy: Col[], orderBy: { col: Col | number }[]): boolean {
  if (groupBy.length === 0) return false;
  const covered = new Set<Col>();
  for (const k of orderBy) {
    if (typeof k.col === 'number' || !groupBy.includes(k.col)) return false;
    covered.add(k.col);
    if (covered.size === groupBy.length) return true;
  }
  return false;
}

function unsupported(what: string): PlanError {
  return new PlanError('0A000', `cross-shard queries do not support ${what}`);
}

function internal(what: string): PlanError {
  return new PlanError('XX000', `cross-shard planner could not locate the ${what} in the statement text`);
}
