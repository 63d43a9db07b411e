// Depth-first visit of every object node of a libpg-query parse tree.

export type AstNode = Record<string, unknown>;

export function walkAst(value: unknown, visit: (node: AstNode) => void): void {
  if (Array.isArray(value)) {
    for (const v of value) walkAst(v, visit);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  visit(value as AstNode);
  for (const v of Object.values(value as AstNode)) walkAst(v, visit);
}
