// PgCat's automatic sharding (`automatic_sharding_key = "table.column"`):
// the sharding key values a parsed statement is restricted to.
//
// - SELECT/UPDATE/DELETE: conditions on the key column in WHERE (and in the
//   ON of inner joins): `col = v`, `v = col`, `col IN (...)`, `col = ANY(...)`
//   where v is a constant or $n. AND keeps the narrowest condition; OR
//   counts only when every branch is a key condition (their union).
// - INSERT ... VALUES: each row's key and its text span, so a multi-row
//   INSERT can be split into one statement per shard (insertForRows in keys.ts).
//
// The column may be qualified by the table, its alias, or schema.table, or
// unqualified when the table is in FROM. Names compare case-insensitively
// (the config loader drops quotes). Pure: router/parse.ts parses once and
// memoises the answer per statement text and key.

import type { InsertStmt, Node, RawStmt, ScanToken } from '../router/sql-ast.js';
import { parseArrayLiteral } from './array-literal.js';

/** A key value: constant text, a scalar $n, or an array $n (`= ANY($n)`), resolved at Bind. */
export type KeyValue = { readonly text: string } | { readonly param: number } | { readonly paramArray: number };

export interface InsertRow {
  /** The row's key; null when not known before execution (an expression, DEFAULT, NULL, no column list). */
  readonly key: KeyValue | null;
  /** The row's `( ... )` in the statement text (JS string indices, end exclusive). */
  readonly start: number;
  readonly end: number;
}

export type ShardingKeys =
  /** No usable key condition (or unparseable, several statements, WITH): all shards. */
  | { readonly kind: 'none' }
  /**
   * Only rows whose key is one of `values` are touched. Empty: none can be
   * (`col = NULL`), or a single-shard INSERT with no splittable VALUES.
   */
  | { readonly kind: 'keys'; readonly values: readonly KeyValue[] }
  /** INSERT ... VALUES: rows in order; `valuesStart..valuesEnd` spans all rows (after the VALUES keyword). */
  | { readonly kind: 'insert'; readonly rows: readonly InsertRow[]; readonly valuesStart: number; readonly valuesEnd: number };

export type InsertKeys = Extract<ShardingKeys, { kind: 'insert' }>;

const NONE: ShardingKeys = { kind: 'none' };
const SINGLE_SHARD: ShardingKeys = { kind: 'keys', values: [] };

/** Which column is the sharding key (from `automatic_sharding_key`). */
export interface KeySpec {
  /** Lower-case table name, or null for "column" / "*.column" (any table). */
  readonly table: string | null;
  readonly column: string;
}

interface Relation {
  name: string;
  alias: string | null;
}

/** The spec of an `automatic_sharding_key` value (`table.column`, `column`, `*.column`). */
export function keySpec(automaticShardingKey: string): KeySpec {
  const parts = automaticShardingKey.replaceAll('"', '').toLowerCase().split('.');
  const column = parts[parts.length - 1];
  const table = parts.length >= 2 ? parts[parts.length - 2] : null;
  return { table: table === '*' ? null : table, column };
}

/**
 * The sharding keys of a parsed text (`stmts` null: it does not parse).
 * `tokens` is called only for a multi-row INSERT (its rows' spans).
 */
export function findShardingKeys(stmts: readonly RawStmt[] | null, sql: string, tokens: () => readonly ScanToken[] | null, spec: KeySpec): ShardingKeys {
  if (stmts === null || stmts.length !== 1 || !stmts[0].stmt) return NONE;
  const stmt = stmts[0].stmt;
  if ('SelectStmt' in stmt) {
    const s = stmt.SelectStmt;
    if (s.withClause || s.valuesLists || (s.op && s.op !== 'SETOP_NONE')) return NONE;
    return restrict(spec, s.fromClause ?? [], s.whereClause);
  }
  if ('UpdateStmt' in stmt) {
    const s = stmt.UpdateStmt;
    if (s.withClause || !s.relation) return NONE;
    return restrict(spec, [{ RangeVar: s.relation }, ...(s.fromClause ?? [])], s.whereClause);
  }
  if ('DeleteStmt' in stmt) {
    const s = stmt.DeleteStmt;
    if (s.withClause || !s.relation) return NONE;
    return restrict(spec, [{ RangeVar: s.relation }, ...(s.usingClause ?? [])], s.whereClause);
  }
  if ('InsertStmt' in stmt) return insertKeys(sql, tokens, stmt.InsertStmt, spec);
  return NONE;
}

/** Keys of a SELECT/UPDATE/DELETE: FROM items and WHERE clause. */
function restrict(spec: KeySpec, from: Node[], where: Node | undefined): ShardingKeys {
  const relations: Relation[] = [];
  const conditions: Node[] = [];
  collectFrom(from, true, relations, conditions);
  if (where) conditions.push(where);
  const isKey = (n: Node): boolean => isKeyColumn(n, spec, relations);
  let best: KeyValue[] | null = null;
  for (const c of conditions) {
    const values = constraint(c, isKey);
    if (values !== null && (best === null || values.length < best.length)) best = values;
  }
  return best === null ? NONE : { kind: 'keys', values: best };
}

/**
 * Tables in FROM (for name resolution), and join conditions that restrict
 * every output row: ON of inner joins not under the nullable side of an
 * outer join.
 */
function collectFrom(items: Node[], restricting: boolean, relations: Relation[], conditions: Node[]): void {
  for (const item of items) {
    if ('RangeVar' in item) {
      const r = item.RangeVar;
      relations.push({ name: (r.relname ?? '').toLowerCase(), alias: r.alias?.aliasname?.toLowerCase() ?? null });
    } else if ('JoinExpr' in item) {
      const j = item.JoinExpr;
      const type = j.jointype ?? 'JOIN_INNER';
      if (restricting && type === 'JOIN_INNER' && j.quals) conditions.push(j.quals);
      const left = restricting && (type === 'JOIN_INNER' || type === 'JOIN_LEFT');
      const right = restricting && (type === 'JOIN_INNER' || type === 'JOIN_RIGHT');
      if (j.larg) collectFrom([j.larg], left, relations, conditions);
      if (j.rarg) collectFrom([j.rarg], right, relations, conditions);
    }
  }
}

function isKeyColumn(node: Node, spec: KeySpec, relations: Relation[]): boolean {
  if (!('ColumnRef' in node)) return false;
  const names: string[] = [];
  for (const f of node.ColumnRef.fields ?? []) {
    if (!('String' in f)) return false; // t.*
    names.push((f.String.sval ?? '').toLowerCase());
  }
  if (names.length === 0 || names[names.length - 1] !== spec.column) return false;
  if (spec.table === null) return true;
  if (names.length === 1) return relations.some((r) => r.name === spec.table);
  // t.col: t is the alias, or the table when it has none; schema.t.col: the table.
  const q = names[names.length - 2];
  if (q !== spec.table && names.length > 2) return false;
  return relations.some((r) => r.name === spec.table && (names.length > 2 ? r.alias === null : (r.alias ?? r.name) === q));
}

/** Key values a condition restricts rows to, or null when it does not. */
function constraint(node: Node, isKey: (n: Node) => boolean): KeyValue[] | null {
  if ('BoolExpr' in node) {
    const args = (node.BoolExpr.args ?? []).map((a) => constraint(a, isKey));
    if (node.BoolExpr.boolop === 'AND_EXPR') {
      let best: KeyValue[] | null = null;
      for (const a of args) if (a !== null && (best === null || a.length < best.length)) best = a;
      return best;
    }
    if (node.BoolExpr.boolop === 'OR_EXPR' && args.length > 0 && args.every((a) => a !== null)) {
      return (args as KeyValue[][]).flat();
    }
    return null;
  }
  if (!('A_Expr' in node)) return null;
  const e = node.A_Expr;
  const op = e.name?.[e.name.length - 1];
  if (!op || !('String' in op) || op.String.sval !== '=' || !e.lexpr || !e.rexpr) return null;
  switch (e.kind) {
    case 'AEXPR_OP': {
      const [col, value] = isKey(e.lexpr) ? [e.lexpr, e.rexpr] : [e.rexpr, e.lexpr];
      if (!isKey(col)) return null;
      const v = scalar(value);
      return v === undefined ? null : v === 'null' ? [] : [v];
    }
    case 'AEXPR_IN':
      return isKey(e.lexpr) && 'List' in e.rexpr ? scalars(e.rexpr.List.items ?? []) : null;
    case 'AEXPR_OP_ANY':
      return isKey(e.lexpr) ? arrayValues(e.rexpr) : null;
    default:
      return null;
  }
}

/** A constant or $n; 'null' for NULL; undefined for anything else. */
function scalar(node: Node): KeyValue | 'null' | undefined {
  if ('TypeCast' in node) return node.TypeCast.arg ? scalar(node.TypeCast.arg) : undefined;
  if ('ParamRef' in node) return node.ParamRef.number ? { param: node.ParamRef.number } : undefined;
  if (!('A_Const' in node)) return undefined;
  const c = node.A_Const;
  if (c.isnull) return 'null';
  if (c.ival) return { text: String(c.ival.ival ?? 0) }; // 0 is an empty Integer
  if (c.fval) return { text: c.fval.fval ?? '' }; // beyond int32, or not an integer
  if (c.sval) return { text: c.sval.sval ?? '' };
  return undefined; // booleans, bit strings
}

/** The elements of `= ANY(...)`: '{...}', ARRAY[...], or $n. */
function arrayValues(node: Node): KeyValue[] | null {
  if ('TypeCast' in node) return node.TypeCast.arg ? arrayValues(node.TypeCast.arg) : null;
  if ('ParamRef' in node) return node.ParamRef.number ? [{ paramArray: node.ParamRef.number }] : null;
  if ('A_Const' in node) {
    if (node.A_Const.isnull) return [];
    const items = node.A_Const.sval ? parseArrayLiteral(node.A_Const.sval.sval ?? '') : null;
    return items === null ? null : items.map((text) => ({ text }));
  }
  if ('A_ArrayExpr' in node) return scalars(node.A_ArrayExpr.elements ?? []);
  return null;
}

/** The values of a list of constants or $n, NULLs dropped; null if any is something else. */
function scalars(nodes: Node[]): KeyValue[] | null {
  const out: KeyValue[] = [];
  for (const n of nodes) {
    const v = scalar(n);
    if (v === undefined) return null;
    if (v !== 'null') out.push(v);
  }
  return out;
}

/** INSERT: each VALUES row's key and span. */
function insertKeys(sql: string, tokens: () => readonly ScanToken[] | null, s: InsertStmt, spec: KeySpec): ShardingKeys {
  const rel = s.relation;
  if (!rel || s.withClause) return NONE;
  if (spec.table !== null && (rel.relname ?? '').toLowerCase() !== spec.table) return NONE;
  const sel = s.selectStmt && 'SelectStmt' in s.selectStmt ? s.selectStmt.SelectStmt : undefined;
  const lists = sel?.valuesLists;
  // DEFAULT VALUES, INSERT ... SELECT: one statement, one shard.
  if (!sel || !lists || lists.length === 0 || sel.withClause || sel.sortClause || sel.limitCount || sel.limitOffset) return SINGLE_SHARD;
  const col = (s.cols ?? []).findIndex(
    (c) => 'ResTarget' in c && (c.ResTarget.name ?? '').toLowerCase() === spec.column && !c.ResTarget.indirection,
  );
  if (col < 0 && spec.table === null) return NONE; // "column" spec: a table without the key column
  const rows: Node[][] = lists.map((l) => ('List' in l ? (l.List.items ?? []) : []));
  const spans = rowSpans(sql, tokens(), rows);
  if (spans === null) return SINGLE_SHARD; // never seen; refuse to split rather than guess
  return {
    kind: 'insert',
    rows: rows.map((items, i) => {
      const v = col >= 0 && items[col] ? scalar(items[col]) : undefined;
      return { key: v === undefined || v === 'null' ? null : v, start: spans[2 * i], end: spans[2 * i + 1] };
    }),
    valuesStart: spans[0],
    valuesEnd: spans[spans.length - 1],
  };
}

/**
 * Start and end (JS string indices) of each VALUES row, flattened. Parse
 * locations are UTF-8 byte offsets and lists carry none, so the rows are
 * found with the scanner: from the VALUES keyword before row 0's first
 * node, balanced parentheses separated by commas.
 */
function rowSpans(sql: string, tokens: readonly ScanToken[] | null, rows: Node[][]): number[] | null {
  const first = minLocation(rows[0]);
  if (first === Infinity || tokens === null) return null;
  let i = -1;
  for (let j = 0; j < tokens.length && tokens[j].start < first; j++) {
    if (tokens[j].keywordKind !== 0 && tokens[j].text.toUpperCase() === 'VALUES') i = j;
  }
  if (i < 0) return null;
  const bytes: number[] = [];
  let depth = 0;
  for (i++; i < tokens.length && bytes.length < 2 * rows.length; i++) {
    const t = tokens[i];
    if (t.text === '(') {
      if (depth++ === 0) bytes.push(t.start);
    } else if (t.text === ')') {
      if (--depth === 0) bytes.push(t.end);
      if (depth < 0) return null;
    } else if (depth === 0 && t.text !== ',') {
      return null;
    }
  }
  return bytes.length === 2 * rows.length ? toCharIndices(sql, bytes) : null;
}

function minLocation(value: unknown): number {
  if (Array.isArray(value)) return value.reduce((m: number, v) => Math.min(m, minLocation(v)), Infinity);
  if (value === null || typeof value !== 'object') return Infinity;
  let min = Infinity;
  for (const [k, v] of Object.entries(value)) {
    if (k === 'location' && typeof v === 'number' && v >= 0) min = Math.min(min, v);
    else if (typeof v === 'object') min = Math.min(min, minLocation(v));
  }
  return min;
}

/** UTF-8 byte offsets (ascending, on character boundaries) to JS string indices. */
function toCharIndices(sql: string, bytes: number[]): number[] {
  if (Buffer.byteLength(sql) === sql.length) return bytes; // ASCII
  const out: number[] = [];
  let b = 0;
  for (let i = 0; out.length < bytes.length; ) {
    while (out.length < bytes.length && bytes[out.length] <= b) out.push(i);
    if (i >= sql.length) break;
    const c = sql.codePointAt(i) ?? 0;
    b += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    i += c > 0xffff ? 2 : 1;
  }
  return out;
}
