// Every table-like name a parsed text refers to (FROM, JOIN, subqueries,
// CTE bodies, INSERT/UPDATE/DELETE targets, COPY, TRUNCATE, LOCK, DDL...),
// as Postgres resolves identifiers: unquoted names folded to lower case.
// CTE names are included too (they look like tables to the parser). Read by
// the table_access plugin and by sharding (a SELECT without tables).

import type { RawStmt } from './sql-ast.js';

export interface Relation {
  schema: string | null;
  name: string;
}

// DROP lists its objects as qualified names rather than RangeVars.
const DROPPED_RELATIONS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE']);

export function relationsIn(stmts: readonly RawStmt[]): Relation[] {
  const out: Relation[] = [];
  collect(stmts, out);
  return out;
}

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

function collect(node: unknown, out: Relation[]): void {
  if (Array.isArray(node)) {
    for (const child of node) collect(child, out);
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
    if (typeof child === 'object') collect(child, out);
  }
}
