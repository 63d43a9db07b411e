// The top-level clauses of one SELECT located in its text, and byte-level
// edits of that text. libpg-query has no deparser, and its parse tree gives
// only start locations, so item extents come from the scanner's tokens:
// commas and clause keywords at parenthesis depth 0 of the statement (CTE
// bodies and subqueries are always parenthesised, so depth 0 is the main
// SELECT). All offsets are byte offsets into the UTF-8 text.

import type { ScanToken } from '../router/sql-ast.js';

export type { ScanToken };

export interface Token {
  start: number;
  end: number;
  text: string;
  /** Upper-case text when the token is a keyword (quoted identifiers are not). */
  keyword: string | null;
  /** Parenthesis/bracket depth (a bracket itself counts at the outer depth). */
  depth: number;
}

/** Inclusive token index range of one list item. */
export type Item = [first: number, last: number];

const TARGET_END = new Set(['FROM', 'INTO', 'WHERE', 'GROUP', 'HAVING', 'WINDOW', 'ORDER', 'LIMIT', 'OFFSET', 'FETCH', 'FOR', 'UNION', 'INTERSECT', 'EXCEPT']);
const GROUP_END = new Set(['HAVING', 'WINDOW', 'ORDER', 'LIMIT', 'OFFSET', 'FETCH', 'FOR', 'UNION', 'INTERSECT', 'EXCEPT']);
const ORDER_END = new Set(['LIMIT', 'OFFSET', 'FETCH', 'FOR']);
const HAVING_END = new Set(['WINDOW', 'ORDER', 'LIMIT', 'OFFSET', 'FETCH', 'FOR', 'UNION', 'INTERSECT', 'EXCEPT']);

export class SqlText {
  readonly tokens: Token[] = [];
  private readonly edits: { start: number; end: number; text: string }[] = [];

  /** `from`/`to`: the statement's byte range (scanSync covers the whole text). */
  constructor(readonly bytes: Buffer, scanned: readonly ScanToken[], from: number, to: number) {
    let depth = 0;
    for (const t of scanned) {
      if (t.start < from || t.start >= to || t.text === ';') continue;
      if (t.text === ')' || t.text === ']') depth--;
      this.tokens.push({ start: t.start, end: t.end, text: t.text, keyword: t.keywordKind ? t.text.toUpperCase() : null, depth });
      if (t.text === '(' || t.text === '[') depth++;
    }
  }

  text(start: number, end: number): string {
    return this.bytes.toString('utf8', start, end);
  }

  itemText([first, last]: Item): string {
    return this.text(this.tokens[first].start, this.tokens[last].end);
  }

  /** Index of the first depth-0 token at or after `from` that is keyword `kw` (-1: none). */
  find(kw: string, from = 0): number {
    for (let i = from; i < this.tokens.length; i++) {
      const t = this.tokens[i];
      if (t.depth === 0 && t.keyword === kw) return i;
    }
    return -1;
  }

  /** Index of the first token starting at or after byte `at`. */
  tokenAt(at: number): number {
    const i = this.tokens.findIndex((t) => t.start >= at);
    return i < 0 ? this.tokens.length : i;
  }

  /**
   * The select list after the SELECT keyword at `select`: its items and the
   * byte offset where it ends (after its last token).
   */
  targetList(select: number): { items: Item[]; end: number } {
    let from = select + 1;
    const kw = this.tokens[from]?.keyword;
    if (kw === 'ALL' || kw === 'DISTINCT') from++;
    const { items, next } = this.list(from, (t, prev) => t.keyword !== null && TARGET_END.has(t.keyword) && !(t.keyword === 'FROM' && prev?.keyword === 'DISTINCT'));
    return { items, end: this.tokens[next - 1]?.end ?? 0 };
  }

  /** Items of the depth-0 `GROUP BY` or `ORDER BY` clause after token `from` (null: no such clause). */
  clause(kw: 'GROUP' | 'ORDER', from: number): Item[] | null {
    for (let i = this.find(kw, from); i >= 0; i = this.find(kw, i + 1)) {
      if (this.tokens[i + 1]?.keyword !== 'BY') continue;
      let start = i + 2;
      const mod = this.tokens[start]?.keyword;
      if (kw === 'GROUP' && (mod === 'ALL' || mod === 'DISTINCT')) start++;
      const stops = kw === 'GROUP' ? GROUP_END : ORDER_END;
      return this.list(start, (t) => t.keyword !== null && stops.has(t.keyword)).items;
    }
    return null;
  }

  /** Byte range of the LIMIT/OFFSET/FETCH clauses (they end the statement), or null. */
  limitSection(from: number): [number, number] | null {
    for (let i = from; i < this.tokens.length; i++) {
      const t = this.tokens[i];
      if (t.depth === 0 && (t.keyword === 'LIMIT' || t.keyword === 'OFFSET' || t.keyword === 'FETCH')) {
        return [t.start, this.tokens[this.tokens.length - 1].end];
      }
    }
    return null;
  }

  /** Byte range of the condition of the depth-0 HAVING clause after token `from` (null: none). */
  havingRange(from: number): [number, number] | null {
    const i = this.find('HAVING', from);
    if (i < 0) return null;
    let j = i + 1;
    while (j < this.tokens.length && !(this.tokens[j].depth === 0 && HAVING_END.has(this.tokens[j].keyword ?? ''))) j++;
    return j > i + 1 ? [this.tokens[i + 1].start, this.tokens[j - 1].end] : null;
  }

  /**
   * Byte range of a function call starting at byte `start`: through its
   * closing parenthesis and any FILTER (...) after it (null: not found).
   */
  callRange(start: number): [number, number] | null {
    const first = this.tokens.findIndex((t) => t.start >= start);
    if (start < 0 || first < 0) return null;
    const close = (open: number): number => (open < 0 ? -1 : this.tokens.findIndex((t, k) => k > open && t.text === ')' && t.depth === this.tokens[open].depth));
    let end = close(this.tokens.findIndex((t, k) => k > first && t.text === '('));
    if (end >= 0 && this.tokens[end + 1]?.keyword === 'FILTER' && this.tokens[end + 2]?.text === '(') end = close(end + 2);
    return end < 0 ? null : [this.tokens[first].start, this.tokens[end].end];
  }

  /** Comma-separated depth-0 items from token `from` up to a stop token or the end. */
  private list(from: number, stop: (t: Token, prev: Token | undefined) => boolean): { items: Item[]; next: number } {
    const items: Item[] = [];
    let first = from;
    let i = from;
    for (; i < this.tokens.length; i++) {
      const t = this.tokens[i];
      if (t.depth !== 0) continue;
      if (stop(t, this.tokens[i - 1])) break;
      if (t.text === ',') {
        items.push([first, i - 1]);
        first = i + 1;
      }
    }
    if (i > first) items.push([first, i - 1]);
    return { items, next: i };
  }

  replace(start: number, end: number, text: string): void {
    this.edits.push({ start, end, text });
  }

  insert(at: number, text: string): void {
    this.edits.push({ start: at, end: at, text });
  }

  /** The text with every edit applied (edits must not overlap). */
  result(): string {
    const edits = [...this.edits].sort((a, b) => a.start - b.start || a.end - b.end);
    const parts: Buffer[] = [];
    let at = 0;
    for (const e of edits) {
      if (e.start < at) throw new Error('overlapping SQL edits');
      parts.push(this.bytes.subarray(at, e.start), Buffer.from(e.text, 'utf8'));
      at = e.end;
    }
    parts.push(this.bytes.subarray(at));
    return Buffer.concat(parts).toString('utf8');
  }
}
