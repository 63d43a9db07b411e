// A loaded decoder (Hugging Face "decoder with past" export, or a graph from
// `pglynx models synth`) and one forward pass over a batch of sequences,
// each with its own KV cache.
//
// Batch layout: the caches live in KvBatch rows (engine/kv-batch.ts), whose
// tensors are the last step's present outputs, fed back as the next step's
// past: pasts are left-padded (right-aligned) per row and a row's tokens are
// the columns its mask marks. New tokens are left-padded to the longest too,
// so every row's last token is the last position; the attention mask zeroes
// the padding and position_ids carry each sequence's real positions, so a
// row's logits do not depend on what it is batched with. Sequences join and
// leave the running batch between steps (continuous batching) by taking and
// freeing rows.

import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { KvBatch, type KvCache } from './kv-batch.js';

export type { KvCache } from './kv-batch.js';

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

/** A cache holding nothing yet (the shape is kept in the signature for callers; rows are made at the first forward). */
export function emptyCache(_shape?: DecoderShape): KvCache {
  return { length: 0, batch: null, row: -1 };
}

/**
 * Rows beyond the participants a batch may carry before a step rebuilds it
 * (idle or free rows still cost compute), as a fraction of the participants.
 */
const IDLE_ROWS = 0.5;
/**
 * Leading columns no live row uses, as a fraction of the width, beyond which
 * a step rebuilds the batch: every step's present copies the whole width
 * (in onnxruntime's Concat and again out to JS), and attention runs over it.
 */
const SLACK = 0.25;
const SLACK_MIN_COLUMNS = 8;

/** How often passes had to move caches (Decoder.layout). */
export interface LayoutCounters {
  passes: number;
  /** Passes that packed their rows' caches into a fresh batch (every cache copied). */
  rebuilds: number;
  /** Caches copied, by rebuilds and by joiners taking a free row. */
  rowsCopied: number;
}

/** Bytes of KV cache one token holds. */
export function kvBytesPerToken(shape: DecoderShape): number {
  return 2 * shape.layers * shape.kvHeads * shape.headDim * 4;
}

export class Decoder {
  private readonly hasPositions: boolean;
  private tail: Promise<unknown> = Promise.resolve();
  /** Counts of how the KV rows were laid out, for tests and diagnostics. */
  readonly layout: LayoutCounters = { passes: 0, rebuilds: 0, rowsCopied: 0 };

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
   * cache. Returns, per row, the logits of its last token (a fresh
   * vocab-sized array). Concurrent calls run one after another.
   */
  async forward(rows: readonly ForwardRow[]): Promise<Float32Array[]> {
    if (rows.length === 0) return [];
    if (new Set(rows.map((r) => r.cache)).size !== rows.length) throw new Error('a cache appears twice in one forward pass');
    if (rows.some((r) => r.tokens.length === 0)) throw new Error('every row needs at least one token');
    // Passes share batches, so they run one after another, in call order.
    const pass = this.tail.then(() => this.run(rows));
    this.tail = pass.catch(() => undefined);
    return pass;
  }

  /** Frees a cache's row (a finished or cancelled sequence), so a joining one can take it. */
  free(cache: KvCache): void {
    if (cache.batch) cache.batch.free(cache.row);
    cache.batch = null;
    cache.row = -1;
    cache.length = 0;
  }

  private async run(rows: readonly ForwardRow[]): Promise<Float32Array[]> {
    const { layers, kvHeads: H, headDim: D, vocabSize: V } = this.shape;
    const S = Math.max(...rows.map((r) => r.tokens.length));
    const batch = this.place(rows, S);
    this.layout.passes++;
    const B = batch.rows.length;
    const W = batch.width;
    const T = W + S;
    const ids = new BigInt64Array(B * S);
    const positions = new BigInt64Array(B * S);
    const mask = new BigInt64Array(B * T);
    for (let b = 0; b < B; b++) for (let c = 0; c < W; c++) if (batch.mask[b * W + c]) mask[b * T + c] = 1n;
    for (const r of rows) {
      const { row: b, length: L } = r.cache;
      const pad = S - r.tokens.length;
      r.tokens.forEach((tok, j) => {
        ids[b * S + pad + j] = BigInt(tok);
        positions[b * S + pad + j] = BigInt(L + j);
        mask[b * T + W + pad + j] = 1n;
      });
    }
    const feeds: Record<string, Tensor> = {
      input_ids: new Tensor('int64', ids, [B, S]),
      attention_mask: new Tensor('int64', mask, [B, T]),
    };
    if (this.hasPositions) feeds['position_ids'] = new Tensor('int64', positions, [B, S]);
    for (let l = 0; l < layers; l++) {
      feeds[`past_key_values.${l}.key`] = new Tensor('float32', batch.tensors[2 * l]!, [B, H, W, D]);
      feeds[`past_key_values.${l}.value`] = new Tensor('float32', batch.tensors[2 * l + 1]!, [B, H, W, D]);
    }
    const out = await this.session.run(feeds);
    // The presents are the batch's tensors from now on; rows not in this pass got masked-out columns.
    batch.tensors = Array.from({ length: 2 * layers }, (_, i) => out[`present.${i >> 1}.${i & 1 ? 'value' : 'key'}`]!.data as Float32Array);
    const next = new Uint8Array(B * T);
    for (let b = 0; b < B; b++) for (let c = 0; c < T; c++) next[b * T + c] = mask[b * T + c] === 1n ? 1 : 0;
    batch.mask = next;
    batch.width = T;
    for (const r of rows) r.cache.length += r.tokens.length;
    // An export may return every position's logits, or (PgLynx's synthesized graphs) only the last one's.
    const logits = out['logits']!;
    const positionsOut = logits.dims[1]!;
    const data = logits.data as Float32Array;
    return rows.map((r) => {
      const at = (r.cache.row * positionsOut + positionsOut - 1) * V;
      return data.slice(at, at + V);
    });
  }

  /** The batch this pass runs on, with every row's cache in it: the one most of them are in when they fit there, else a fresh one. */
  private place(rows: readonly ForwardRow[], S: number): KvBatch {
    const counts = new Map<KvBatch, number>();
    for (const r of rows) if (r.cache.batch) counts.set(r.cache.batch, (counts.get(r.cache.batch) ?? 0) + 1);
    let home: KvBatch | null = null;
    for (const [b, n] of counts) if (!home || n > counts.get(home)!) home = b;
    if (home && this.fits(home, rows, S)) {
      const freeRows: number[] = [];
      home.rows.forEach((c, i) => c === null && freeRows.push(i));
      for (const r of rows) {
        const c = r.cache;
        if (c.batch === home) continue;
        const to = freeRows.shift()!;
        if (c.batch) {
          home.copyRow(c.batch, c.row, to, c.batch.span(c.row));
          c.batch.free(c.row);
          this.layout.rowsCopied++;
        }
        home.rows[to] = c;
        c.batch = home;
        c.row = to;
      }
      return home;
    }
    // A rebuilt batch (not a prefill's) keeps a free row per 8 for the next joiners: a free row
    // costs its compute each step, a joiner that finds none a rebuild (every
    // cache copied once).
    const moving = rows.some((r) => r.cache.batch);
    const spare = moving ? Math.ceil(rows.length / 8) : 0;
    const fresh = KvBatch.empty(rows.length + spare, Math.max(...rows.map((r) => r.cache.length)), 2 * this.shape.layers, this.shape.kvHeads, this.shape.headDim);
    if (moving) this.layout.rebuilds++;
    rows.forEach((r, i) => {
      const c = r.cache;
      if (c.batch) {
        fresh.packRow(c.batch, c.row, i);
        c.batch.free(c.row);
        this.layout.rowsCopied++;
      }
      fresh.rows[i] = c;
      c.batch = fresh;
      c.row = i;
    });
    return fresh;
  }

  /** Whether `rows` can run on `home` as it is: free rows for the newcomers, little idle compute, little dead width. */
  private fits(home: KvBatch, rows: readonly ForwardRow[], S: number): boolean {
    const incoming = rows.filter((r) => r.cache.batch !== home);
    const free = home.rows.reduce((n, c) => n + (c === null ? 1 : 0), 0);
    if (free < incoming.length) return false;
    if (home.rows.length - rows.length > Math.floor(rows.length * IDLE_ROWS)) return false;
    if (home.width + S > this.shape.maxPositions) return false;
    let span = 0;
    for (const r of incoming) {
      const s = r.cache.batch ? r.cache.batch.span(r.cache.row) : 0;
      if (s > home.width) return false;
      span = Math.max(span, s);
    }
    home.rows.forEach((c, i) => c !== null && (span = Math.max(span, home.span(i))));
    return home.width - span <= Math.max(SLACK_MIN_COLUMNS, home.width * SLACK);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
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
