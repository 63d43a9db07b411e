// Finds `pgml.embed`, `pgml.transform`, `pgml.transform_stream`,
// `pgml.infer` and `pgml.similar_to` calls in a parsed statement
// (libpg-query's tree, see router/parse.ts): each call's byte span, its
// arguments (constants or parameters only), and whether it stands alone in
// the select list (then the replacement keeps PostgresML's output column
// name, `embed`, `transform`...) or in FROM (call-context.ts). Pure: the
// statement's one parse keeps the answer (analyze.ts reads it).

import type { AstNode } from '../router/ast-walk.js';
import { type Node, type NodeOf, type RawStmt, type ScanToken, wrapped } from '../router/sql-ast.js';

/** An argument the pooler can evaluate: a constant, a NULL, or a bind parameter ($n). */
export type PgmlArg =
  | { kind: 'const'; value: string }
  | { kind: 'null' }
  /** `cast`: the type OID of a cast written on the parameter (`$1::jsonb`), which types it as Postgres would; 0 when none is known. */
  | { kind: 'param'; index: number; cast?: number }
  | { kind: 'array'; items: PgmlArg[] };

export type PgmlFunction = 'embed' | 'transform' | 'transform_stream' | 'infer' | 'similar_to';

export interface PgmlCall {
  fn: PgmlFunction;
  /** Byte offsets of the call in the UTF-8 statement, `pgml` through `)`. */
  start: number;
  end: number;
  /** embed, infer, similar_to: the model name; transform(_stream): the task (text or jsonb, `{"task": ..., "model": ...}`). */
  model: PgmlArg;
  /** embed: text or text[]; transform: the inputs text[] (a NULL constant when not given); transform_stream: the input text; infer: the prompt; similar_to: the first text. */
  input: PgmlArg;
  /** transform(_stream): its args jsonb (null when not given). */
  args: PgmlArg | null;
  /** infer: top (null: the default, 10); similar_to: the second text. */
  other: PgmlArg | null;
  /** A function in FROM: whether it has an alias (null elsewhere). */
  fromAlias: boolean | null;
  /** A bare select-list item: the replacement is named after the function. */
  needsAlias: boolean;
  /** embed's text[] overload (ARRAY[...] or a cast to text[]): one row per element; always true for transform. */
  inputIsArray: boolean;
}

import { Oid } from '../protocol/codes.js';
import { PgmlError } from './pgml-error.js';
import { fromFunctions, streamColumn } from './call-context.js';

/** The statement cannot be served (SQLSTATE and message for the client). */
export { PgmlError };

export interface PgmlAnalysis {
  calls: PgmlCall[];
  /** Highest $n in the statement (new parameters are numbered after it). */
  maxParam: number;
  /** Parameters still referenced once the calls are replaced (the others need a declared type). */
  usedOutside: Set<number>;
  /** pgml.transform_stream: the statement is only that call, answered by the pooler (stream.ts); its column's name. */
  stream: { column: string } | null;
}

type FuncCall = NodeOf<'FuncCall'>;

/**
 * The pgml.embed / pgml.transform calls of a parsed text, or null when it
 * has none (or does not parse: the server will say what is wrong). `tokens`
 * is the text's scan, called only when there are calls. Throws PgmlError.
 */
export function findPgmlCalls(stmts: readonly RawStmt[] | null, tokens: () => readonly ScanToken[] | null): PgmlAnalysis | null {
  if (stmts === null) return null;
  const found: { call: FuncCall; fn: PgmlFunction; bare: boolean }[] = [];
  let maxParam = 0;
  const refs: { number: number; location: number }[] = [];
  walk(stmts, null, (node, parent) => {
    // Nodes are wrapped by their type: { FuncCall: {...} } inside ResTarget.val.
    const call = wrapped(node, 'FuncCall');
    const fn = call ? pgmlFunction(call) : null;
    if (call && fn) {
      const bare = parent !== null && parent.val === node && !parent.name;
      found.push({ call, fn, bare });
    }
    const p = wrapped(node, 'ParamRef');
    if (p?.number) {
      refs.push({ number: p.number, location: p.location ?? -1 });
      if (p.number > maxParam) maxParam = p.number;
    }
  });
  if (found.length === 0) return null;
  const scanned = tokens();
  if (scanned === null) throw new PgmlError('42601', 'the statement text cannot be scanned');
  const inFrom = fromFunctions(stmts);
  const calls = found.map(({ call, fn, bare }) => {
    const c = fn === 'embed' ? toCall(call, bare, scanned) : fn === 'transform' ? toTransformCall(call, bare, scanned) : toSlotCall(fn, call, bare, scanned);
    c.fromAlias = inFrom.get(c.start) ?? null;
    return c;
  });
  calls.sort((a, b) => a.start - b.start);
  let stream: PgmlAnalysis['stream'] = null;
  const streaming = calls.find((c) => c.fn === 'transform_stream');
  if (streaming) {
    if (calls.length > 1) throw new PgmlError('0A000', 'pgml.transform_stream cannot be combined with other pgml calls in one statement');
    stream = { column: streamColumn(stmts, streaming.start) };
  }
  const usedOutside = new Set(refs.filter((r) => !calls.some((c) => r.location >= c.start && r.location < c.end)).map((r) => r.number));
  return { calls, maxParam, usedOutside, stream };
}

function pgmlFunction(call: FuncCall): PgmlFunction | null {
  const names = (call.funcname ?? []).map((n) => ('String' in n ? n.String.sval?.toLowerCase() : undefined));
  if (names.length !== 2 || names[0] !== 'pgml') return null;
  const fn = names[1];
  return fn === 'embed' || fn === 'transform' || fn === 'transform_stream' || fn === 'infer' || fn === 'similar_to' ? fn : null;
}

/** Depth-first walk over every object node, with the object that holds it. */
function walk(value: unknown, parent: AstNode | null, visit: (node: AstNode, parent: AstNode | null) => void): void {
  if (Array.isArray(value)) {
    for (const v of value) walk(v, parent, visit);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  const node = value as AstNode;
  visit(node, parent);
  for (const v of Object.values(node)) walk(v, node, visit);
}

function toCall(call: FuncCall, bare: boolean, tokens: readonly ScanToken[]): PgmlCall {
  const start = call.location ?? -1;
  if (call.agg_star || call.agg_distinct || call.over) throw new PgmlError('0A000', 'pgml.embed is not an aggregate or window function');
  const { model, input, inputs } = signatureArgs(call.args ?? []);
  return {
    fn: 'embed',
    start,
    end: closingParen(tokens, start),
    model: toArg(model),
    input: toArg(input),
    args: null,
    other: null,
    fromAlias: null,
    needsAlias: bare,
    inputIsArray: inputs || isArrayTyped(input),
  };
}

const TRANSFORM_SIGNATURE = 'pgml.transform takes (task text | jsonb, args jsonb DEFAULT \'{}\', inputs text[] DEFAULT \'{}\', cache bool DEFAULT false)';

/** PostgresML's pgml.transform(task, args, inputs, cache), positional or named. */
function toTransformCall(call: FuncCall, bare: boolean, tokens: readonly ScanToken[]): PgmlCall {
  const start = call.location ?? -1;
  if (call.agg_star || call.agg_distinct || call.over) throw new PgmlError('0A000', 'pgml.transform is not an aggregate or window function');
  const slots: (Node | undefined)[] = [];
  (call.args ?? []).forEach((node, i) => {
    let slot = i;
    let value: Node | undefined = node;
    if ('NamedArgExpr' in node) {
      const named = node.NamedArgExpr;
      slot = ['task', 'args', 'inputs', 'cache'].indexOf(named.name?.toLowerCase() ?? '');
      if (slot < 0) throw new PgmlError('42883', `${TRANSFORM_SIGNATURE}: no argument named "${named.name ?? ''}"`);
      value = named.arg;
    }
    if (slot > 3) throw new PgmlError('42883', TRANSFORM_SIGNATURE);
    if (slots[slot]) throw new PgmlError('42601', `${TRANSFORM_SIGNATURE}: argument ${slot + 1} is given twice`);
    slots[slot] = value;
  });
  const [task, args, inputs] = slots;
  if (!task) throw new PgmlError('42883', TRANSFORM_SIGNATURE);
  // cache (slot 3) only concerns PostgresML's Python model cache: accepted, not used.
  return {
    fn: 'transform',
    start,
    end: closingParen(tokens, start),
    model: toArg(task, 'pgml.transform'),
    input: inputs ? toArg(inputs, 'pgml.transform') : { kind: 'array', items: [] },
    args: args ? toArg(args, 'pgml.transform') : null,
    other: null,
    fromAlias: null,
    needsAlias: bare,
    inputIsArray: true,
  };
}

/** PostgresML's and PgLynx's signatures of the other calls: argument names, how many are required. */
const SLOT_SIGNATURES = {
  transform_stream: { names: ['task', 'args', 'input', 'cache'], required: 1, text: "pgml.transform_stream takes (task text | jsonb, args jsonb DEFAULT '{}', input text DEFAULT '', cache bool DEFAULT false)" },
  infer: { names: ['model', 'prompt', 'top'], required: 2, text: 'pgml.infer takes (model text, prompt text, top int DEFAULT 10)' },
  similar_to: { names: ['model', 'a', 'b'], required: 3, text: 'pgml.similar_to takes (model text, a text, b text)' },
} as const;

/** pgml.transform_stream, pgml.infer and pgml.similar_to, positional or named. */
function toSlotCall(fn: 'transform_stream' | 'infer' | 'similar_to', call: FuncCall, bare: boolean, tokens: readonly ScanToken[]): PgmlCall {
  const sig = SLOT_SIGNATURES[fn];
  const label = `pgml.${fn}`;
  const start = call.location ?? -1;
  if (call.agg_star || call.agg_distinct || call.over) throw new PgmlError('0A000', `${label} is not an aggregate or window function`);
  const slots: (Node | undefined)[] = [];
  (call.args ?? []).forEach((node, i) => {
    let slot = i;
    let value: Node | undefined = node;
    if ('NamedArgExpr' in node) {
      const named = node.NamedArgExpr;
      slot = (sig.names as readonly string[]).indexOf(named.name?.toLowerCase() ?? '');
      if (slot < 0) throw new PgmlError('42883', `${sig.text}: no argument named "${named.name ?? ''}"`);
      value = named.arg;
    }
    if (slot >= sig.names.length) throw new PgmlError('42883', sig.text);
    if (slots[slot]) throw new PgmlError('42601', `${sig.text}: argument ${slot + 1} is given twice`);
    slots[slot] = value;
  });
  for (let i = 0; i < sig.required; i++) if (!slots[i]) throw new PgmlError('42883', sig.text);
  const arg = (i: number): PgmlArg | null => (slots[i] ? toArg(slots[i], label) : null);
  const stream = fn === 'transform_stream';
  return {
    fn,
    start,
    end: closingParen(tokens, start),
    model: arg(0)!,
    input: (stream ? arg(2) : arg(1)) ?? { kind: 'const', value: '' },
    args: stream ? arg(1) : null,
    other: stream ? null : arg(2),
    fromAlias: null,
    needsAlias: bare,
    inputIsArray: false,
  };
}

const SIGNATURE = 'pgml.embed takes (transformer text, text text | inputs text[] [, kwargs jsonb])';

/**
 * The arguments in PostgresML's signature order, positional or named
 * (`transformer => ..., text => ... | inputs => ..., kwargs => ...`), as
 * Postgres resolves them: positional first, then named. `inputs` names the
 * text[] overload. kwargs is accepted and not used (the pooler's models take none).
 */
function signatureArgs(args: readonly Node[]): { model: Node; input: Node; inputs: boolean } {
  const slots: (Node | undefined)[] = [];
  let inputs = false;
  args.forEach((node, i) => {
    let slot = i;
    let value: Node | undefined = node;
    if ('NamedArgExpr' in node) {
      const named = node.NamedArgExpr;
      const name = named.name?.toLowerCase();
      slot = name === 'transformer' ? 0 : name === 'text' || name === 'inputs' ? 1 : name === 'kwargs' ? 2 : -1;
      if (slot < 0) throw new PgmlError('42883', `${SIGNATURE}: no argument named "${named.name ?? ''}"`);
      if (name === 'inputs') inputs = true;
      value = named.arg;
    }
    if (slot > 2) throw new PgmlError('42883', SIGNATURE);
    if (slots[slot]) throw new PgmlError('42601', `${SIGNATURE}: argument ${slot + 1} is given twice`);
    slots[slot] = value;
  });
  const [model, input] = slots;
  if (!model || !input) throw new PgmlError('42883', SIGNATURE);
  return { model, input, inputs };
}

/** End (exclusive) of the call starting at `start`: its matching ")". */
function closingParen(tokens: readonly ScanToken[], start: number): number {
  let depth = 0;
  for (const t of tokens) {
    if (t.start < start) continue;
    if (t.text === '(') depth++;
    else if (t.text === ')' && --depth === 0) return t.end;
  }
  throw new PgmlError('42601', 'unbalanced parentheses around pgml.embed');
}

function isArrayTyped(node: Node): boolean {
  if ('A_ArrayExpr' in node) return true;
  const bounds = 'TypeCast' in node ? node.TypeCast.typeName?.arrayBounds : undefined;
  return bounds !== undefined && bounds.length > 0;
}

/** Type names a pgml argument may be cast to, by their OID. */
const CAST_OIDS: Record<string, number> = { text: Oid.text, varchar: Oid.varchar, jsonb: Oid.jsonb, int2: Oid.int2, int4: Oid.int4, int8: Oid.int8 };

function castOid(typeName: NodeOf<'TypeCast'>['typeName']): number {
  const names = typeName?.names ?? [];
  const last = names[names.length - 1];
  const name = last && 'String' in last ? last.String.sval : undefined;
  if (typeName?.arrayBounds && typeName.arrayBounds.length > 0) return name === 'text' ? Oid.textArray : 0;
  return name ? (CAST_OIDS[name] ?? 0) : 0;
}

function toArg(node: Node | undefined, fn = 'pgml.embed'): PgmlArg {
  if (node !== undefined) {
    if ('A_Const' in node) {
      if (node.A_Const.isnull) return { kind: 'null' };
      if (node.A_Const.sval) return { kind: 'const', value: node.A_Const.sval.sval ?? '' };
      // Numbers (infer's top): the text Postgres would read them from.
      if (node.A_Const.ival) return { kind: 'const', value: String(node.A_Const.ival.ival ?? 0) };
      if (node.A_Const.fval) return { kind: 'const', value: node.A_Const.fval.fval ?? '0' };
    } else if ('ParamRef' in node && node.ParamRef.number !== undefined) {
      return { kind: 'param', index: node.ParamRef.number };
    } else if ('TypeCast' in node) {
      // 'x'::text, $1::text, '{}'::jsonb: the value is what matters, and a parameter's type.
      const inner = toArg(node.TypeCast.arg, fn);
      if (inner.kind === 'param' && inner.cast === undefined) return { ...inner, cast: castOid(node.TypeCast.typeName) };
      return inner;
    } else if ('A_ArrayExpr' in node) {
      return { kind: 'array', items: (node.A_ArrayExpr.elements ?? []).map((n) => toArg(n, fn)) };
    }
  }
  const what = fn === 'pgml.embed' ? 'the embedding' : fn === 'pgml.transform_stream' ? 'the rows' : 'the result';
  throw new PgmlError(
    '0A000',
    `${fn} arguments must be constants or parameters: the pooler computes ${what} before the statement reaches the server, so it cannot read columns or expressions`,
  );
}
