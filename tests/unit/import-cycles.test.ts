// Import structure of the project's own .ts files, read with the TypeScript
// parser (no Postgres, no build):
// - no import cycles: every strongly connected group of files is listed with
//   one cycle through it;
// - config/ depends on nothing of the pooler or the engine.
//
// Edge rule: every static `import ... from`, `export ... from`, `import x =
// require()` and dynamic `import()` of a relative path is an edge, type-only
// imports included. A type-only cycle is erased at run time but still ties
// two modules' designs together (neither can be read, moved or tested
// alone), and it is what farm-studio reports.

import t from 'tap';
import ts from 'typescript';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SKIP = new Set(['node_modules', 'dist', '.git', 'coverage', '.tap']);

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    if (SKIP.has(d.name) || d.name.startsWith('.')) return [];
    const path = join(dir, d.name);
    if (d.isDirectory()) return tsFiles(path);
    return d.name.endsWith('.ts') && !d.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Relative module specifiers a file imports or re-exports (statically or dynamically). */
function specifiers(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      out.push(node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const e = node.moduleReference.expression;
      if (ts.isStringLiteral(e)) out.push(e.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteralLike(arg)) out.push(arg.text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      out.push(node.argument.literal.text); // import('./x.js').T in a type position
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out.filter((s) => s.startsWith('./') || s.startsWith('../'));
}

/** The project file a relative specifier names (NodeNext: `./x.js` is `./x.ts`), or null. */
function resolveSpecifier(from: string, spec: string): string | null {
  const base = resolve(dirname(from), spec);
  const candidates = [base.replace(/\.js$/, '.ts'), base.replace(/\.mjs$/, '.mts'), `${base}.ts`, join(base, 'index.ts'), base];
  return candidates.find((c) => c.endsWith('.ts') && existsSync(c)) ?? null;
}

const rel = (f: string): string => relative(ROOT, f).split(sep).join('/');

const files = tsFiles(ROOT).map(rel).sort();
const graph = new Map<string, string[]>();
for (const f of files) {
  const targets = specifiers(join(ROOT, f)).flatMap((s) => {
    const r = resolveSpecifier(join(ROOT, f), s);
    return r ? [rel(r)] : [];
  });
  graph.set(f, [...new Set(targets)].sort());
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
function cycles(g: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const strong = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of g.get(v) ?? []) {
      if (!index.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const group: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        group.push(w);
      } while (w !== v);
      if (group.length > 1 || (g.get(v) ?? []).includes(v)) out.push(group.sort());
    }
  };
  for (const v of g.keys()) if (!index.has(v)) strong(v);
  return out;
}

/** One cycle through `group`'s first file, staying inside the group (breadth-first: a shortest one). */
function exampleCycle(g: Map<string, string[]>, group: string[]): string[] {
  const inside = new Set(group);
  const start = group[0]!;
  const parent = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of g.get(v) ?? []) {
      if (!inside.has(w)) continue;
      if (w === start) {
        const path = [v];
        while (path[0] !== start) path.unshift(parent.get(path[0]!)!);
        return [...path, start];
      }
      if (!parent.has(w)) {
        parent.set(w, v);
        queue.push(w);
      }
    }
  }
  return group;
}

t.test('the scan sees the project', async (tt) => {
  tt.ok(files.length > 100, `${files.length} .ts files`);
  tt.ok(graph.get('pooler/pooler.ts')?.some((f) => f.startsWith('pooler/')), 'pooler/pooler.ts has resolved imports');
  // The rule counts type-only imports: a synthetic check that the parser sees them.
  const typeOnly = ts.createSourceFile('x.ts', "import type { A } from './a.js'; export type { B } from './b.js';", ts.ScriptTarget.Latest);
  tt.equal(typeOnly.statements.length, 2);
});

t.test('no import cycles among the project files', async (tt) => {
  const found = cycles(graph);
  const report = found.map((group) => `${exampleCycle(graph, group).join(' -> ')}${group.length > 2 ? `  (group: ${group.join(', ')})` : ''}`);
  tt.same(report, [], `import cycles:\n${report.join('\n')}`);
});

t.test('config/ imports nothing from pooler/, engine/, bin/ or tests/', async (tt) => {
  const bad = [...graph].flatMap(([from, targets]) =>
    from.startsWith('config/') ? targets.filter((to) => !to.startsWith('config/')).map((to) => `${from} -> ${to}`) : [],
  );
  tt.same(bad, [], `config/ reaches outside itself:\n${bad.join('\n')}`);
});
