// Replaces pgml.embed and pgml.transform calls so the server never sees `pgml.`:
// - simple protocol: the embedding is computed now and spliced in as a
//   `real[]` literal;
// - extended protocol: at Parse each call becomes a new parameter
//   (`$K::real[]`); at every Bind the embedding is computed from that
//   execution's parameters and appended, so a statement prepared once is
//   computed per execution.
// A text[] input yields one row per element, as PostgresML's overload does.
// pgml.transform becomes a jsonb value the same way (transform.ts computes it),
// pgml.infer rows of a jsonb value and pgml.similar_to a float8 (knowledge.ts).
// pgml.transform_stream is not rewritten: the pooler answers it (stream.ts).

import { Oid, TEXT_OID } from '../protocol/codes.js';
import { bind as bindMessage, type BindParts } from '../protocol/messages/bind.js';
import { PgmlError, type PgmlAnalysis, type PgmlArg, type PgmlCall } from './analyze.js';
import { computeTransform, type GenerationProvider } from './transform.js';
import { computeInfer, computeSimilarTo, INFER_COLUMNS } from './knowledge.js';
import { quoteString } from '../router/sql-quote.js';

/** What the pooler needs from the engine (generation for pgml.transform, when the engine has it). */
export interface EmbeddingProvider extends Partial<GenerationProvider> {
  has(model: string): boolean;
  embed(model: string, inputs: string[]): Promise<Float32Array[]>;
}

/** A Parse rewritten for pgml: which new parameter carries which call. */
export interface PgmlPlan {
  calls: PgmlCall[];
  /** Parameter number of the first added parameter (then +1 per call). */
  firstParam: number;
}

export { TEXT_OID };
export const REAL_ARRAY_OID = Oid.float4Array;
export const TEXT_ARRAY_OID = Oid.textArray;
export const JSONB_OID = Oid.jsonb;

/** The client's own parameter count: as Postgres counts it, declared types or highest $n. */
export function clientParamCount(declared: number[], analysis: PgmlAnalysis): number {
  return Math.max(declared.length, analysis.maxParam);
}

/** Type of each parameter the rewrite adds, in order (what the server reports for them). */
export function addedParamTypes(calls: PgmlCall[]): number[] {
  return calls.map((call) =>
    call.fn === 'transform' || call.fn === 'infer' ? JSONB_OID : call.fn === 'similar_to' ? Oid.float8 : call.inputIsArray ? TEXT_ARRAY_OID : REAL_ARRAY_OID,
  );
}

/**
 * Parameter type OIDs for the rewritten Parse: the client's, then the
 * added ones (real[] or text[]). A parameter only the calls used gets the
 * type PostgresML's signature gives it (text, or text[] for `inputs`): the
 * server no longer sees it and could not infer one.
 */
export function parseParamTypes(declared: number[], analysis: PgmlAnalysis): number[] {
  const arrayInputs = new Set(analysis.calls.filter((c) => c.inputIsArray && c.input.kind === 'param').map((c) => (c.input as { index: number }).index));
  const jsonArgs = new Set(analysis.calls.flatMap((c) => (c.args?.kind === 'param' ? [c.args.index] : [])));
  const intArgs = new Set(analysis.calls.flatMap((c) => (c.fn === 'infer' && c.other?.kind === 'param' ? [c.other.index] : [])));
  // A cast written on the parameter ($1::jsonb) types it, as Postgres would.
  const casts = new Map<number, number>();
  for (const c of analysis.calls) for (const a of [c.model, c.input, c.args, c.other]) if (a?.kind === 'param' && a.cast) casts.set(a.index, a.cast);
  const types: number[] = [];
  for (let n = 1; n <= clientParamCount(declared, analysis); n++) {
    const t = declared[n - 1] ?? 0;
    types.push(t === 0 && !analysis.usedOutside.has(n) ? (casts.get(n) ?? (arrayInputs.has(n) ? TEXT_ARRAY_OID : jsonArgs.has(n) ? JSONB_OID : intArgs.has(n) ? Oid.int4 : TEXT_OID)) : t);
  }
  return [...types, ...addedParamTypes(analysis.calls)];
}

/** Parameter values of one Bind, as the server would decode them (text). */
export type { ParamValues } from './param-values.js';
import type { ParamValues } from './param-values.js';

const VECTOR_DIGITS = 9; // float4 round-trips with 9 significant digits

export function vectorLiteral(v: Float32Array): string {
  let s = '{';
  for (let i = 0; i < v.length; i++) s += (i ? ',' : '') + v[i].toPrecision(VECTOR_DIGITS);
  return s + '}';
}


export function resolve(arg: PgmlArg, params: ParamValues | null, what: string): string | null | (string | null)[] {
  switch (arg.kind) {
    case 'null':
      return null;
    case 'const':
      return arg.value;
    case 'param': {
      if (!params) throw new PgmlError('42P02', `there is no parameter $${arg.index}`);
      const v = params[arg.index - 1];
      if (v === undefined) throw new PgmlError('08P01', `bind message supplies too few parameters for pgml.embed ${what}`);
      return v;
    }
    case 'array':
      return arg.items.map((item) => {
        const v = resolve(item, params, what);
        if (Array.isArray(v)) throw new PgmlError('0A000', 'pgml.embed takes a one-dimensional text[]');
        return v;
      });
  }
}

/** Parse a text[] literal ('{a,"b c",NULL}') as the server would. */
function parseTextArray(literal: string): (string | null)[] {
  const s = literal.trim();
  if (!s.startsWith('{') || !s.endsWith('}')) throw new PgmlError('22P02', `malformed array literal: "${literal}"`);
  const out: (string | null)[] = [];
  let i = 1;
  while (i < s.length - 1) {
    if (s[i] === ',' || s[i] === ' ') {
      i++;
      continue;
    }
    if (s[i] === '"') {
      let v = '';
      i++;
      while (i < s.length - 1 && s[i] !== '"') {
        if (s[i] === '\\') i++;
        v += s[i++];
      }
      i++;
      out.push(v);
    } else {
      let j = i;
      while (j < s.length - 1 && s[j] !== ',') j++;
      const v = s.slice(i, j).trim();
      out.push(v.toUpperCase() === 'NULL' ? null : v);
      i = j;
    }
  }
  return out;
}

interface Computed {
  /** One vector per input (null for a NULL input). */
  vectors: (Float32Array | null)[];
  /** text[] input: one row per element. */
  many: boolean;
  /** pgml.transform and pgml.infer: the jsonb text, pgml.similar_to: the float8 text (null for NULL); undefined for embed. */
  value?: string | null;
}

/** Evaluate every call of a statement with the engine. */
export async function computeCalls(calls: PgmlCall[], params: ParamValues | null, engine: EmbeddingProvider, signal?: AbortSignal): Promise<Computed[]> {
  return Promise.all(
    calls.map(async (call): Promise<Computed> => {
      const arg = (a: PgmlArg, what: string): ReturnType<typeof resolve> => resolve(a, params, what);
      if (call.fn === 'transform') return { vectors: [], many: false, value: await transformCall(call, params, engine, signal) };
      if (call.fn === 'infer') return { vectors: [], many: false, value: await computeInfer(call, arg, engine, signal) };
      if (call.fn === 'similar_to') return { vectors: [], many: false, value: await computeSimilarTo(call, arg, engine) };
      if (call.fn === 'transform_stream') throw new PgmlError('XX000', 'pgml.transform_stream is answered by the pooler, not rewritten');
      const model = resolve(call.model, params, 'model');
      if (model === null || Array.isArray(model)) throw new PgmlError('22004', 'pgml.embed: the model name must be a non-null text');
      if (!engine.has(model)) throw new PgmlError('42704', `pgml.embed: model "${model}" does not exist (declare it as [models.${model}] in pgcat.toml)`);
      let input = resolve(call.input, params, 'input');
      const many = call.inputIsArray;
      if (many && typeof input === 'string') input = parseTextArray(input);
      const inputs = (Array.isArray(input) ? input : [input]) as (string | null)[];
      const texts = inputs.filter((x): x is string => x !== null);
      const vectors = texts.length > 0 ? await engine.embed(model, texts) : [];
      let k = 0;
      return { vectors: inputs.map((x) => (x === null ? null : vectors[k++])), many };
    }),
  );
}

async function transformCall(call: PgmlCall, params: ParamValues | null, engine: EmbeddingProvider, signal?: AbortSignal): Promise<string | null> {
  if (!engine.names || !engine.task || !engine.generate) throw new PgmlError('0A000', 'pgml.transform: this pooler has no text-generation engine');
  const taskValue = resolve(call.model, params, 'task');
  if (Array.isArray(taskValue)) throw new PgmlError('42804', 'pgml.transform: task must be text or jsonb');
  const args = call.args ? resolve(call.args, params, 'args') : null;
  if (Array.isArray(args)) throw new PgmlError('42804', 'pgml.transform: args must be jsonb');
  let input = resolve(call.input, params, 'inputs');
  if (typeof input === 'string') input = parseTextArray(input);
  return computeTransform(taskValue, args, input === null ? [] : input, engine as GenerationProvider, signal);
}

/** A literal no escaping can change (standard_conforming_strings on or off): dollar quoting with a free tag. */
function dollarQuote(s: string): string {
  let tag = '$pglynx_json$';
  for (let i = 0; s.includes(tag); i++) tag = `$pglynx_json${i}$`;
  return `${tag}${s}${tag}`;
}

/** The SQL standing for a call whose value (a literal or a parameter) is `value`. */
function valueReplacement(call: PgmlCall, value: string): string {
  const alias = call.needsAlias ? ` AS ${call.fn}` : '';
  if (call.fn === 'similar_to') return `${value}::float8${alias}`;
  if (call.fn !== 'infer') return `${value}::jsonb${alias}`;
  // pgml.infer returns rows: a subquery in FROM (aliased, as Postgres 15 requires), a set of records elsewhere.
  const rows = `jsonb_to_recordset(${value}::jsonb) AS infer(${INFER_COLUMNS})`;
  if (call.fromAlias !== null) return `(SELECT * FROM ${rows})${call.fromAlias ? '' : ' AS infer'}`;
  return `unnest(ARRAY(SELECT ROW(token, probability, rank) FROM ${rows}))${alias}`;
}

function replacement(c: Computed, call: PgmlCall): string {
  if (c.value !== undefined) return valueReplacement(call, c.value === null ? 'NULL' : call.fn === 'similar_to' ? `'${c.value}'` : dollarQuote(c.value));
  const alias = call.needsAlias ? ' AS embed' : '';
  if (c.many) {
    const items = c.vectors.map((v) => (v ? quoteString(vectorLiteral(v)) : 'NULL'));
    return `unnest(ARRAY[${items.join(',')}]::text[])::real[]${alias}`;
  }
  const v = c.vectors[0];
  return `${v ? quoteString(vectorLiteral(v)) : 'NULL'}::real[]${alias}`;
}

/** Splice replacements into the statement (byte offsets, UTF-8). */
function splice(sql: string, calls: PgmlCall[], texts: string[]): string {
  const bytes = Buffer.from(sql, 'utf8');
  const parts: Buffer[] = [];
  let at = 0;
  calls.forEach((call, i) => {
    parts.push(bytes.subarray(at, call.start), Buffer.from(texts[i], 'utf8'));
    at = call.end;
  });
  parts.push(bytes.subarray(at));
  return Buffer.concat(parts).toString('utf8');
}

/** Simple protocol: the statement with every call computed and spliced in. */
export async function rewriteSimple(sql: string, analysis: PgmlAnalysis, engine: EmbeddingProvider, signal?: AbortSignal): Promise<string> {
  const computed = await computeCalls(analysis.calls, null, engine, signal);
  return splice(sql, analysis.calls, computed.map((c, i) => replacement(c, analysis.calls[i])));
}

/**
 * Extended protocol, at Parse: each call becomes an added parameter,
 * numbered after the client's `clientParams` (declared types or highest $n).
 */
export function rewriteParseSql(sql: string, analysis: PgmlAnalysis, clientParams = analysis.maxParam): { sql: string; plan: PgmlPlan } {
  const firstParam = clientParams + 1;
  const texts = analysis.calls.map((call, i) => {
    if (call.fn !== 'embed') return valueReplacement(call, `$${firstParam + i}`);
    const alias = call.needsAlias ? ' AS embed' : '';
    return call.inputIsArray ? `unnest($${firstParam + i}::text[])::real[]${alias}` : `$${firstParam + i}::real[]${alias}`;
  });
  return { sql: splice(sql, analysis.calls, texts), plan: { calls: analysis.calls, firstParam } };
}

/** The text value of each added parameter, for one execution. */
export async function computeBindValues(plan: PgmlPlan, params: ParamValues, engine: EmbeddingProvider, signal?: AbortSignal): Promise<(string | null)[]> {
  const computed = await computeCalls(plan.calls, params, engine, signal);
  return computed.map((c) => {
    if (c.value !== undefined) return c.value;
    if (c.many) return `{${c.vectors.map((v) => (v ? `"${vectorLiteral(v)}"` : 'NULL')).join(',')}}`;
    return c.vectors[0] ? vectorLiteral(c.vectors[0]) : null;
  });
}

// ------------------------------------------------------------ Bind messages

export { parseBind, type BindParts } from '../protocol/messages/bind.js';

export { paramTexts } from './param-values.js';

/** The Bind with `extra` text parameters appended (formats expanded as needed). */
export function appendParams(bind: BindParts, extra: (string | null)[]): Buffer {
  const n = bind.values.length;
  let formats: number[];
  if (bind.formats.length === 0) formats = [];
  else if (bind.formats.length === 1) formats = [...Array<number>(n).fill(bind.formats[0]), ...Array<number>(extra.length).fill(0)];
  else formats = [...bind.formats, ...Array<number>(extra.length).fill(0)];
  return bindMessage({ portal: bind.portal, statement: bind.statement, formats, values: [...bind.values, ...extra], resultFormats: bind.resultFormats });
}
