// The parse-tree types the pooler reads (libpg-query's, generated from
// Postgres's parsenodes.h) and the casts between them and the generic
// object shape that tree walks see, kept here so that readers of the tree
// get typed nodes. A node is wrapped by its type: { SelectStmt: { ... } }.

import type { InsertStmt, Node, RawStmt, ScanToken } from 'libpg-query';
import type { AstNode } from './ast-walk.js';

export type { InsertStmt, Node, RawStmt, ScanToken };

/** A statement's node type (`SelectStmt`, `InsertStmt`...). */
export function nodeType(node: Node): string {
  for (const key in node) return key;
  return '';
}

/** Every node type name (`FuncCall`, `A_Const`...). */
export type NodeTag = Node extends infer N ? (N extends unknown ? keyof N : never) : never;
/** The fields of a node of type `T`. */
export type NodeOf<T extends NodeTag> = Extract<Node, Record<T, unknown>>[T];

/**
 * The typed body of a walked object when it is a node of type `tag`
 * (`{ FuncCall: {...} }` → the FuncCall), else undefined.
 */
export function wrapped<T extends NodeTag>(node: AstNode, tag: T): NodeOf<T> | undefined {
  return node[tag] as NodeOf<T> | undefined;
}

/** The last part of a function's name, lower-cased (`pg_catalog.nextval` → `nextval`). */
export function functionName(funcname: readonly Node[] | undefined): string | undefined {
  const last = funcname?.[funcname.length - 1];
  return last && 'String' in last ? last.String.sval?.toLowerCase() : undefined;
}
