// The statements of a query text in a canonical form, from its scanner
// tokens: tokens lower-cased (ASCII), joined by one space, without
// comments. Two texts that differ only in case, spacing, comments or
// trailing semicolons have the same form (PgCat compares statements
// re-printed by its parser, lower-cased; this is the closest match without
// a SQL printer). Read by the intercept plugin.

import type { ScanToken } from '../router/sql-ast.js';

const COMMENT_TOKENS = new Set(['SQL_COMMENT', 'C_COMMENT']);

/** ASCII-only lower-casing, as PgCat normalises (non-ASCII letters keep their case). */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

export function canonicalFromTokens(tokens: readonly ScanToken[]): string[] {
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
