// pgml.infer(model, prompt, top) and pgml.similar_to(model, a, b): model
// knowledge from SQL, served by the engine's slots and spliced into the
// statement like pgml.transform (rewrite.ts), so Postgres evaluates the
// rest of the statement around them: joins, WHERE, ORDER BY, INSERT ...
// SELECT, inside transactions, in both protocols.
//
// - infer: one forward pass of a text-generation model over the prompt;
//   the result is a jsonb array of {token, probability, rank} (softmax of the
//   last position's logits, top-k) that the rewrite turns into rows with
//   jsonb_to_recordset.
// - similar_to: the cosine similarity of the two texts' embeddings, from
//   the same engine path as pgml.embed (its cache included), as float8.

import { PgmlError, type PgmlCall } from './analyze.js';
import type { GenerationProvider } from './transform.js';

/** What the knowledge calls need from the engine. */
export interface KnowledgeProvider {
  has(model: string): boolean;
  task?(model: string): string | null;
  embed(model: string, inputs: string[]): Promise<Float32Array[]>;
  infer?: GenerationProvider['infer'];
}

export const INFER_TOP_DEFAULT = 10;
/** The column list jsonb_to_recordset gives the rows (PgLynx's pgml.infer result). */
export const INFER_COLUMNS = 'token text, probability float8, rank int';

type Resolve = (arg: PgmlCall['model'], what: string) => string | null | (string | null)[];

function text(v: ReturnType<Resolve>, fn: string, what: string): string | null {
  if (Array.isArray(v)) throw new PgmlError('42804', `${fn}: ${what} must be text`);
  return v;
}

/** pgml.infer's jsonb text (null for a NULL argument: a strict function). */
export async function computeInfer(call: PgmlCall, resolve: Resolve, engine: KnowledgeProvider, signal?: AbortSignal): Promise<string | null> {
  const model = text(resolve(call.model, 'model'), 'pgml.infer', 'model');
  const prompt = text(resolve(call.input, 'prompt'), 'pgml.infer', 'prompt');
  const topText = call.other ? text(resolve(call.other, 'top'), 'pgml.infer', 'top') : String(INFER_TOP_DEFAULT);
  if (model === null || prompt === null || topText === null) return null;
  const top = Number(topText.trim());
  if (!Number.isInteger(top) || top < 1) throw new PgmlError('22023', `pgml.infer: top must be a positive integer, got ${JSON.stringify(topText)}`);
  const task = engine.task?.(model) ?? null;
  if (task === null) throw new PgmlError('42704', `pgml.infer: model "${model}" does not exist (declare it as [models.${model}] in pgcat.toml)`);
  if (task !== 'text-generation' || !engine.infer) throw new PgmlError('42809', `pgml.infer: model "${model}" is an embedding model, not a text-generation model`);
  const candidates = await engine.infer(model, prompt, top, { signal });
  return JSON.stringify(candidates.map((c, i) => ({ token: c.token, probability: c.probability, rank: i + 1 })));
}

/** pgml.similar_to's float8 text (null for a NULL argument or a zero vector). */
export async function computeSimilarTo(call: PgmlCall, resolve: Resolve, engine: KnowledgeProvider): Promise<string | null> {
  const model = text(resolve(call.model, 'model'), 'pgml.similar_to', 'model');
  const a = text(resolve(call.input, 'a'), 'pgml.similar_to', 'a');
  const b = text(resolve(call.other!, 'b'), 'pgml.similar_to', 'b');
  if (model === null || a === null || b === null) return null;
  if (!engine.has(model)) throw new PgmlError('42704', `pgml.similar_to: model "${model}" does not exist (declare it as [models.${model}] in pgcat.toml)`);
  const [va, vb] = await engine.embed(model, [a, b]);
  const cos = cosine(va!, vb!);
  return cos === null ? null : String(cos);
}

/** Cosine similarity in float64; null when a vector is all zeros. */
export function cosine(a: Float32Array, b: Float32Array): number | null {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  if (na === 0 || nb === 0) return null;
  return dot / Math.sqrt(na * nb);
}
