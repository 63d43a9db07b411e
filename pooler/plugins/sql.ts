// What the query plugins need to know about a Query's text, read from its
// one parse and scan (router/parse.ts): plugins run synchronously on the
// client's hot path, and the statement keeps every answer, so a text sent
// again costs one Map lookup.

import { statementOf } from '../router/parse.js';
import type { Relation } from '../router/relations.js';

export type { Relation } from '../router/relations.js';

/**
 * The statements of a query text in a canonical form (plugins/canonical.ts):
 * tokens, lower-cased (ASCII), joined by one space, without comments. Null
 * when the text cannot be tokenised.
 */
export function canonicalStatements(sql: string): readonly string[] | null {
  return statementOf(sql).canonicalStatements;
}

/**
 * Every table-like name the query refers to (router/relations.ts), as
 * Postgres resolves identifiers. Null when the text does not parse.
 */
export function relationsOf(sql: string): readonly Relation[] | null {
  return statementOf(sql).relations;
}
