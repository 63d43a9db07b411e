// Generation arguments (PostgresML's `args` jsonb: Hugging Face generate()
// names) and the choice of the next token from a row of logits.
//
// Sampling draws from a per-sequence PRNG seeded by `seed`, so a seeded
// call gives the same text whatever it is batched with (rows of a batch
// equal running alone; see engine/decoder.ts).

import { EngineCode, EngineError } from './errors.js';
import { mulberry32 } from './onnx/bert-synth.js';

export interface GenerateParams {
  maxNewTokens: number;
  /** False: greedy (argmax). */
  doSample: boolean;
  temperature: number;
  /** 0: no top-k cut. */
  topK: number;
  /** 1: no nucleus cut. */
  topP: number;
  /** 1: none (CTRL's penalty over the prompt and generated tokens, as Hugging Face applies it). */
  repetitionPenalty: number;
  /** The sampling PRNG's seed (drawn at random when not given). */
  seed: number;
  /** Generation ends before the first of these strings (which is not returned). */
  stop: string[];
}

const bad = (message: string): EngineError => new EngineError(EngineCode.InvalidArgument, `text-generation args: ${message}`);

function num(args: Record<string, unknown>, key: string, check: (v: number) => boolean, want: string): number | undefined {
  const v = args[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw bad(`${key} must be ${want}, got ${JSON.stringify(v)}`);
  return v;
}

/** Keys that would change the result's shape or search: refused rather than ignored. */
const UNSUPPORTED: Record<string, (v: unknown) => boolean> = {
  num_beams: (v) => v !== 1,
  num_return_sequences: (v) => v !== 1,
};

/**
 * Reads `args` (a JSON object or null). `ceiling` is the model's
 * max_new_tokens: the default and the most a call may ask for (larger asks
 * are capped to it). Sampling is on with do_sample, or when temperature,
 * top_k or top_p is given without do_sample; temperature 0 means greedy.
 */
export function parseGenerateArgs(args: unknown, ceiling: number, randomSeed: () => number): GenerateParams {
  if (args === null || args === undefined) args = {};
  if (typeof args !== 'object' || Array.isArray(args)) throw bad('expected a JSON object');
  const a = args as Record<string, unknown>;
  for (const [key, unsupported] of Object.entries(UNSUPPORTED)) {
    if (a[key] !== undefined && unsupported(a[key])) throw new EngineError(EngineCode.NotSupported, `text-generation args: ${key} ${JSON.stringify(a[key])} is not supported (only 1)`);
  }
  const maxNew = num(a, 'max_new_tokens', (v) => Number.isInteger(v) && v >= 1, 'a positive integer') ?? ceiling;
  const temperature = num(a, 'temperature', (v) => v >= 0, 'a number >= 0');
  const topK = num(a, 'top_k', (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0');
  const topP = num(a, 'top_p', (v) => v > 0 && v <= 1, 'a number in (0, 1]');
  const penalty = num(a, 'repetition_penalty', (v) => v > 0, 'a number > 0');
  const seed = num(a, 'seed', (v) => Number.isInteger(v), 'an integer');
  const doSampleRaw = a['do_sample'];
  if (doSampleRaw !== undefined && doSampleRaw !== null && typeof doSampleRaw !== 'boolean') throw bad(`do_sample must be a boolean, got ${JSON.stringify(doSampleRaw)}`);
  const stopRaw = a['stop'] ?? a['stop_strings'];
  let stop: string[] = [];
  if (typeof stopRaw === 'string') stop = [stopRaw];
  else if (Array.isArray(stopRaw) && stopRaw.every((s) => typeof s === 'string')) stop = stopRaw as string[];
  else if (stopRaw !== undefined && stopRaw !== null) throw bad('stop must be a string or an array of strings');
  const doSample = ((doSampleRaw as boolean | undefined) ?? (temperature !== undefined || topK !== undefined || topP !== undefined)) && temperature !== 0;
  return {
    maxNewTokens: Math.min(maxNew, ceiling),
    doSample,
    temperature: temperature ?? 1,
    topK: topK ?? 0,
    topP: topP ?? 1,
    repetitionPenalty: penalty ?? 1,
    // Any integer seeds the 32-bit PRNG (negative and large ones too).
    seed: seed === undefined ? randomSeed() : Number(BigInt.asUintN(32, BigInt(seed))),
    stop: stop.filter((s) => s.length > 0),
  };
}

export function samplerFor(params: GenerateParams): () => number {
  return mulberry32(params.seed);
}

/** The next token for one sequence. `logits` is modified in place. */
export function chooseToken(logits: Float32Array, history: readonly number[], p: GenerateParams, rand: () => number): number {
  if (p.repetitionPenalty !== 1) {
    for (const id of new Set(history)) {
      const v = logits[id]!;
      logits[id] = v > 0 ? v / p.repetitionPenalty : v * p.repetitionPenalty;
    }
  }
  if (!p.doSample) return argmax(logits);
  const V = logits.length;
  // Candidates, best first when a cut needs the order.
  let ids: Uint32Array;
  if (p.topK > 0 && p.topK < V) ids = topIndices(logits, p.topK);
  else if (p.topP < 1) ids = Uint32Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]!);
  else ids = Uint32Array.from({ length: V }, (_, i) => i);
  let max = -Infinity;
  for (const id of ids) if (logits[id]! > max) max = logits[id]!;
  const probs = new Float64Array(ids.length);
  let sum = 0;
  for (let i = 0; i < ids.length; i++) sum += probs[i] = Math.exp((logits[ids[i]!]! - max) / p.temperature);
  let n = ids.length;
  if (p.topP < 1) {
    // Smallest prefix whose mass reaches top_p (at least one token).
    let acc = 0;
    for (let i = 0; i < ids.length; i++) {
      acc += probs[i]! / sum;
      if (acc >= p.topP) {
        n = i + 1;
        break;
      }
    }
    sum = 0;
    for (let i = 0; i < n; i++) sum += probs[i]!;
  }
  let r = rand() * sum;
  for (let i = 0; i < n; i++) {
    r -= probs[i]!;
    if (r < 0) return ids[i]!;
  }
  return ids[n - 1]!;
}

/**
 * The `k` most probable next tokens of a row of logits, most probable first,
 * with their softmax probabilities over the whole row (float64 sums).
 */
export function topCandidates(logits: Float32Array, k: number): { id: number; probability: number }[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return Array.from(topIndices(logits, Math.min(k, logits.length)), (id) => ({ id, probability: Math.exp(logits[id]! - max) / sum }));
}

export function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

/** Indices of the k largest values, largest first. */
function topIndices(v: Float32Array, k: number): Uint32Array {
  if (k > 256) return Uint32Array.from({ length: v.length }, (_, i) => i).sort((a, b) => v[b]! - v[a]!).subarray(0, k);
  const top = new Uint32Array(k);
  let size = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (size === k && x <= v[top[k - 1]!]!) continue;
    let j = size < k ? size++ : k - 1;
    while (j > 0 && v[top[j - 1]!]! < x) {
      top[j] = top[j - 1]!;
      j--;
    }
    top[j] = i;
  }
  return top;
}

/**
 * Where generation must end in `text` because of a stop string, searching
 * only past `from` minus the longest stop (earlier text was checked before).
 * Returns the cut index or -1.
 */
export function stopAt(text: string, stops: readonly string[], from: number): number {
  let cut = -1;
  for (const s of stops) {
    const i = text.indexOf(s, Math.max(0, from - s.length));
    if (i >= 0 && (cut < 0 || i < cut)) cut = i;
  }
  return cut;
}
