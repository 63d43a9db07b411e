// The parse-tree types the pooler reads (libpg-query's, generated from
// Postgres's parsenodes.h) and the one cast from a typed node to the
// generic object shape that tree walks use. A node is wrapped by its type:
// { SelectStmt: { ... } }.

import type { InsertStmt, Node, RawStmt, ScanToken } from 'libpg-query';
import type { AstNode } from './ast-walk.js';

export type { InsertStmt, Node, RawStmt, ScanToken };

/** A statement's node type (`SelectStmt`, `InsertStmt`...). */
export function nodeType(node: Node): string {
  for (const key in node) return key;
  return '';
}

/** The node's fields under its type, as a plain object for walkers (the one untyped view). */
export function nodeBody(node: Node): AstNode {
  return (node as unknown as Record<string, AstNode>)[nodeType(node)] ?? {};
}

/** A node as a plain object (for walkers and code that reads fields by name). */
export function untyped(node: Node): AstNode {
  return node as unknown as AstNode;
}

/** The last part of a function's name, lower-cased (`pg_catalog.nextval` → `nextval`). */
export function functionName(funcname: readonly Node[] | undefined): string | undefined {
  const last = funcname?.[funcname.length - 1];
  return last && 'String' in last ? last.String.sval?.toLowerCase() : undefined;
}
