// What the query plugins need to know about a Query's text, from the real
// Postgres parser and scanner (libpg-query, compiled to WASM).
//
// Plugins run synchronously on the client's hot path, so:
// - the WASM module is loaded once, when this module is first imported (a
//   top-level await: the pools, which import the plugins, are only built
//   after it resolves, so a parse is never attempted before it is ready);
// - results are cached by query text, because applications send the same
//   few texts over and over and a parse costs tens of microseconds.

import { loadModule, parseSync, scanSync } from 'libpg-query';
import { memoizeByText } from '../util/text-cache.js';

await loadModule();

const CACHE_ENTRIES = 1024;

// ------------------------------------------------------------ statements

const COMMENT_TOKENS = new Set(['SQL_COMMENT', 'C_COMMENT']);

/** ASCII-only lower-casing, as PgCat normalises (non-ASCII letters keep their case). */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

function splitStatements(sql: string): string[] | null {
  let tokens;
  try {
    tokens = scanSync(sql).tokens;
  } catch {
    // An unterminated quote or comment: nothing can match it.
    return null;
  }
  const statements: string[] = [];
  let current: string[] = [];
  for (const tok of tokens) {
    if (COMMENT_TOKENS.has(tok.tokenName)) continue;
    if (tok.text === ';') {
      if (current.length > 0) statements.push(current.join(' '));
      current = [];
    } else {
      current.push(asciiLower(tok.text));
    }
  }
  if (current.length > 0) statements.push(current.join(' '));
  return statements;
}

const statementsByText = memoizeByText<string[] | null>(CACHE_ENTRIES, splitStatements);

/**
 * The statements of a query text in a canonical form: tokens, lower-cased
 * (ASCII), joined by one space, without comments. Two texts that differ only
 * in case, spacing, comments or trailing semicolons have the same form
 * (PgCat compares statements re-printed by its parser, lower-cased; this is
 * the closest match without a SQL printer). Null when the text cannot be
 * tokenised.
 */
export function canonicalStatements(sql: string): readonly string[] | null {
  return statementsByText(sql);
}

// ------------------------------------------------------------- relations

export interface Relation {
  schema: string | null;
  name: string;
}

// DROP lists its objects as qualified names rather than RangeVars.
const DROPPED_RELATIONS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE']);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** [schema.]name from a DROP object: a List of String nodes. */
function dropName(obj: unknown): Relation | null {
  const items = isObject(obj) && isObject(obj['List']) ? obj['List']['items'] : null;
  if (!Array.isArray(items)) return null;
  const parts = items.map((i) => (isObject(i) && isObject(i['String']) ? i['String']['sval'] : undefined));
  if (parts.length === 0 || parts.some((p) => typeof p !== 'string')) return null;
  const names = parts as string[];
  return { schema: names.length > 1 ? names[names.length - 2]! : null, name: names[names.length - 1]! };
}

function collectRelations(node: unknown, out: Relation[]): void {
  if (Array.isArray(node)) {
    for (const child of node) collectRelations(child, out);
    return;
  }
  if (!isObject(node)) return;
  // A RangeVar, whether wrapped ({RangeVar: {...}} in FROM lists) or bare
  // (InsertStmt.relation, UpdateStmt.relation, CopyStmt.relation...).
  if (typeof node['relname'] === 'string') {
    out.push({ schema: typeof node['schemaname'] === 'string' ? node['schemaname'] : null, name: node['relname'] });
  }
  const drop = node['DropStmt'];
  if (isObject(drop) && DROPPED_RELATIONS.has(String(drop['removeType'])) && Array.isArray(drop['objects'])) {
    for (const obj of drop['objects']) {
      const rel = dropName(obj);
      if (rel) out.push(rel);
    }
  }
  for (const child of Object.values(node)) {
    if (typeof child === 'object') collectRelations(child, out);
  }
}

function parseRelations(sql: string): Relation[] | null {
  let tree;
  try {
    tree = parseSync(sql);
  } catch {
    // Not valid SQL (or empty): the server will say so; there is nothing to check.
    return null;
  }
  const out: Relation[] = [];
  collectRelations(tree.stmts ?? [], out);
  return out;
}

const relationsByText = memoizeByText<Relation[] | null>(CACHE_ENTRIES, parseRelations);

/**
 * Every table-like name the query refers to (FROM, JOIN, subqueries, CTE
 * bodies, INSERT/UPDATE/DELETE targets, COPY, TRUNCATE, LOCK, DDL...), as
 * Postgres resolves identifiers: unquoted names folded to lower case. CTE
 * names are included too (they look like tables to the parser). Null when
 * the text does not parse.
 */
export function relationsOf(sql: string): readonly Relation[] | null {
  return relationsByText(sql);
}
