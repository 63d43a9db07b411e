// A loaded decoder (Hugging Face "decoder with past" export, or a graph from
// `pglynx models synth`) and one forward pass over a batch of sequences,
// each with its own KV cache.
//
// Batch layout: every sequence brings its past (cached keys / values of
// length L_i) and its new tokens (n_i: the prompt at prefill, one token per
// decode step). Pasts are left-padded to the longest, new tokens
// right-padded to the longest; the attention mask zeroes the padding and
// position_ids carry each sequence's real positions, so a row's logits do
// not depend on what it is batched with. A sequence's present is then the
// contiguous run [Lmax - L_i, Lmax + n_i) of the output: copied back into
// its own cache, which is what lets sequences join and leave the running
// batch between steps (continuous batching).

import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';

/** What a decoder's config.json says about its shape (GPT-2 or Llama field names). */
export interface DecoderShape {
  layers: number;
  /** Key / value heads (Llama's num_key_value_heads; GPT-2's n_head). */
  kvHeads: number;
  headDim: number;
  vocabSize: number;
  /** Longest sequence (prompt + generated) the position table allows. */
  maxPositions: number;
  eosTokenIds: number[];
  bosTokenId: number | null;
}

/** One sequence's cache: per layer, keys and values as [kvHeads, length, headDim]. */
export interface KvCache {
  length: number;
  keys: Float32Array[];
  values: Float32Array[];
}

export interface ForwardRow {
  cache: KvCache;
  /** Tokens to run (at least one). */
  tokens: readonly number[];
}

const positiveInt = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : null);

/** Reads the decoder's shape from a parsed config.json (and generation_config.json). */
export function decoderShape(config: Record<string, unknown>, generation: Record<string, unknown> | null, source: string): DecoderShape {
  const pick = (...keys: string[]): number => {
    for (const k of keys) {
      const v = positiveInt(config[k]);
      if (v !== null) return v;
    }
    throw new Error(`${source}: needs ${keys.join(' or ')} (a positive integer)`);
  };
  const layers = pick('n_layer', 'num_hidden_layers');
  const heads = pick('n_head', 'num_attention_heads');
  const hidden = pick('n_embd', 'hidden_size');
  const kvHeads = positiveInt(config['num_key_value_heads']) ?? heads;
  if (hidden % heads !== 0) throw new Error(`${source}: hidden size ${hidden} is not a multiple of ${heads} heads`);
  const headDim = positiveInt(config['head_dim']) ?? hidden / heads;
  const ids = (v: unknown): number[] => (Array.isArray(v) ? v.filter((x): x is number => Number.isInteger(x)) : Number.isInteger(v) ? [v as number] : []);
  const eos = ids(generation?.['eos_token_id'] ?? config['eos_token_id']);
  const bos = ids(generation?.['bos_token_id'] ?? config['bos_token_id'])[0] ?? null;
  return {
    layers,
    kvHeads,
    headDim,
    vocabSize: pick('vocab_size'),
    maxPositions: positiveInt(config['n_positions']) ?? positiveInt(config['max_position_embeddings']) ?? 2048,
    eosTokenIds: eos,
    bosTokenId: bos,
  };
}

export function emptyCache(shape: DecoderShape): KvCache {
  return {
    length: 0,
    keys: Array.from({ length: shape.layers }, () => new Float32Array(0)),
    values: Array.from({ length: shape.layers }, () => new Float32Array(0)),
  };
}

/** Bytes of KV cache one token holds. */
export function kvBytesPerToken(shape: DecoderShape): number {
  return 2 * shape.layers * shape.kvHeads * shape.headDim * 4;
}

export class Decoder {
  private readonly hasPositions: boolean;

  constructor(
    readonly session: InferenceSession,
    readonly shape: DecoderShape,
  ) {
    const inputs = session.inputNames;
    for (const need of ['input_ids', 'attention_mask', 'past_key_values.0.key']) {
      if (!inputs.includes(need)) {
        throw new Error(`ONNX model has no ${need} input (its inputs: ${inputs.join(', ')}); expected a decoder exported with past_key_values`);
      }
    }
    const pasts = inputs.filter((n) => /^past_key_values\.\d+\.key$/.test(n)).length;
    if (pasts !== shape.layers) throw new Error(`ONNX model has past_key_values for ${pasts} layers but config.json says ${shape.layers}`);
    if (!session.outputNames.includes('logits')) throw new Error('ONNX model has no logits output');
    this.hasPositions = inputs.includes('position_ids');
  }

  /** Loads `onnx` with the shape from `dir`'s config.json (and generation_config.json when present). */
  static async load(onnx: string, dir: string, options: InferenceSession.SessionOptions = {}): Promise<Decoder> {
    const config = await readJson(join(dir, 'config.json'), true);
    const generation = await readJson(join(dir, 'generation_config.json'), false);
    const shape = decoderShape(config!, generation, join(dir, 'config.json'));
    const session = await InferenceSession.create(onnx, options);
    return new Decoder(session, shape);
  }

  /**
   * Runs one forward pass over `rows`, appending each row's tokens to its
   * cache (the caches are replaced, not mutated in place). Returns, per row,
   * the logits of its last token (a fresh vocab-sized array).
   */
  async forward(rows: readonly ForwardRow[]): Promise<Float32Array[]> {
    const { layers, kvHeads: H, headDim: D, vocabSize: V } = this.shape;
    const B = rows.length;
    const Lmax = Math.max(...rows.map((r) => r.cache.length));
    const S = Math.max(...rows.map((r) => r.tokens.length));
    const T = Lmax + S;
    const ids = new BigInt64Array(B * S);
    const positions = new BigInt64Array(B * S);
    const mask = new BigInt64Array(B * T);
    rows.forEach((r, b) => {
      const L = r.cache.length;
      for (let j = Lmax - L; j < Lmax; j++) mask[b * T + j] = 1n;
      r.tokens.forEach((tok, j) => {
        ids[b * S + j] = BigInt(tok);
        positions[b * S + j] = BigInt(L + j);
        mask[b * T + Lmax + j] = 1n;
      });
    });
    const feeds: Record<string, Tensor> = {
      input_ids: new Tensor('int64', ids, [B, S]),
      attention_mask: new Tensor('int64', mask, [B, T]),
    };
    if (this.hasPositions) feeds['position_ids'] = new Tensor('int64', positions, [B, S]);
    for (let l = 0; l < layers; l++) {
      feeds[`past_key_values.${l}.key`] = new Tensor('float32', padPast(rows, (c) => c.keys[l]!, Lmax, H, D), [B, H, Lmax, D]);
      feeds[`past_key_values.${l}.value`] = new Tensor('float32', padPast(rows, (c) => c.values[l]!, Lmax, H, D), [B, H, Lmax, D]);
    }
    const out = await this.session.run(feeds);
    const logits = out['logits']!.data as Float32Array;
    const presents = Array.from({ length: layers }, (_, l) => [out[`present.${l}.key`]!.data as Float32Array, out[`present.${l}.value`]!.data as Float32Array] as const);
    return rows.map((r, b) => {
      const L = r.cache.length;
      const n = r.tokens.length;
      const len = L + n;
      const keys: Float32Array[] = [];
      const values: Float32Array[] = [];
      for (const [k, v] of presents) {
        keys.push(extract(k, b, Lmax - L, len, T, H, D));
        values.push(extract(v, b, Lmax - L, len, T, H, D));
      }
      r.cache.length = len;
      r.cache.keys = keys;
      r.cache.values = values;
      const row = (b * S + n - 1) * V;
      return logits.slice(row, row + V);
    });
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** [B, H, Lmax, D] with each row's cache right-aligned (left padding of zeros). */
function padPast(rows: readonly ForwardRow[], pick: (c: KvCache) => Float32Array, Lmax: number, H: number, D: number): Float32Array {
  const out = new Float32Array(rows.length * H * Lmax * D);
  if (Lmax === 0) return out;
  rows.forEach((r, b) => {
    const L = r.cache.length;
    if (L === 0) return;
    const src = pick(r.cache);
    for (let h = 0; h < H; h++) out.set(src.subarray(h * L * D, (h + 1) * L * D), ((b * H + h) * Lmax + (Lmax - L)) * D);
  });
  return out;
}

/** Row b's positions [from, from + len) of a [B, H, T, D] present, as [H, len, D]. */
function extract(present: Float32Array, b: number, from: number, len: number, T: number, H: number, D: number): Float32Array {
  const out = new Float32Array(H * len * D);
  for (let h = 0; h < H; h++) {
    const at = ((b * H + h) * T + from) * D;
    out.set(present.subarray(at, at + len * D), h * len * D);
  }
  return out;
}

async function readJson(file: string, required: boolean): Promise<Record<string, unknown> | null> {
  try {
    await stat(file);
  } catch {
    if (!required) return null;
    throw new Error(`${file} not found (a decoder needs its config.json)`);
  }
  const v: unknown = JSON.parse(await readFile(file, 'utf8'));
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${file} is not a JSON object`);
  return v as Record<string, unknown>;
}
