// A BERT-shaped ONNX graph with seeded random weights, built from a Hugging
// Face `config.json`.
//
// Real weights cannot be downloaded on the project's machines, yet tests and
// benchmarks must exercise the real loading, tokenization, batching and
// pooling paths at the real model's cost. This graph has the same inputs
// and output (names, types, dynamic dims) as an optimum / Hugging Face ONNX
// export of a BertModel such as all-MiniLM-L6-v2, and the same operations
// and parameter count, so the runtime cannot tell it apart except by its
// (meaningless) numbers.

import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  ElemType,
  GraphBuilder,
  encodeModel,
  floatAttr,
  floatConst,
  floatTensor,
  int64Const,
  intAttr,
  intsAttr,
  tensorValueInfo,
} from './graph.js';
import { fnv1a32 } from './hash-model.js';

/** The fields of a Hugging Face BertConfig that shape the graph. */
export interface HfBertConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  max_position_embeddings: number;
  type_vocab_size: number;
  layer_norm_eps: number;
  /** Only "gelu" (the exact, erf form) is supported. */
  hidden_act: string;
  model_type?: string;
}

/** Input and output names of a Hugging Face / optimum BertModel export. */
export const BERT_INPUTS = ['input_ids', 'attention_mask', 'token_type_ids'] as const;
export const BERT_OUTPUT = 'last_hidden_state';

// BertConfig's own defaults (transformers), for the optional fields.
const DEFAULTS = { max_position_embeddings: 512, type_vocab_size: 2, layer_norm_eps: 1e-12, hidden_act: 'gelu' };

/** Validates a parsed config.json; `source` names the file in errors. */
export function parseHfConfig(json: unknown, source = 'config.json'): HfBertConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${source}: expected a JSON object`);
  const raw = json as Record<string, unknown>;
  const int = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw new Error(`${source}: ${key} must be a positive integer, got ${JSON.stringify(v ?? null)}`);
    }
    return v;
  };
  const config: HfBertConfig = {
    vocab_size: int('vocab_size'),
    hidden_size: int('hidden_size'),
    num_hidden_layers: int('num_hidden_layers'),
    num_attention_heads: int('num_attention_heads'),
    intermediate_size: int('intermediate_size'),
    max_position_embeddings: int('max_position_embeddings', DEFAULTS.max_position_embeddings),
    type_vocab_size: int('type_vocab_size', DEFAULTS.type_vocab_size),
    layer_norm_eps: typeof raw.layer_norm_eps === 'number' ? raw.layer_norm_eps : DEFAULTS.layer_norm_eps,
    hidden_act: typeof raw.hidden_act === 'string' ? raw.hidden_act : DEFAULTS.hidden_act,
  };
  if (typeof raw.model_type === 'string') config.model_type = raw.model_type;
  if (!(config.layer_norm_eps > 0)) throw new Error(`${source}: layer_norm_eps must be positive`);
  if (config.hidden_act !== 'gelu') throw new Error(`${source}: hidden_act ${JSON.stringify(config.hidden_act)} is not supported (only "gelu")`);
  if (config.hidden_size % config.num_attention_heads !== 0) {
    throw new Error(`${source}: hidden_size ${config.hidden_size} is not a multiple of num_attention_heads ${config.num_attention_heads}`);
  }
  const pet = raw.position_embedding_type;
  if (pet !== undefined && pet !== 'absolute') throw new Error(`${source}: position_embedding_type ${JSON.stringify(pet)} is not supported (only "absolute")`);
  return config;
}

/** Reads `config.json` (or `<dir>/config.json` when given a directory). */
export function readHfConfig(file: string): HfBertConfig {
  const p = statSync(file).isDirectory() ? path.join(file, 'config.json') : file;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(p, 'utf8'));
  } catch (err) {
    throw new Error(`${p}: ${(err as Error).message}`);
  }
  return parseHfConfig(json, p);
}

/** Number of parameters of the synthesized graph (BertModel without the pooler). */
export function bertParamCount(c: HfBertConfig): number {
  const h = c.hidden_size;
  const embeddings = (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * h + 2 * h;
  const layer = 4 * (h * h + h) + 2 * h + (h * c.intermediate_size + c.intermediate_size) + (c.intermediate_size * h + h) + 2 * h;
  return embeddings + c.num_hidden_layers * layer;
}

/** mulberry32: a tiny, fast, well-mixed 32-bit PRNG; plenty for fake weights. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * normal(0, std) values by Box-Muller. Each tensor gets its own stream,
 * seeded from (seed, tensor name): a 2-layer variant shares its embeddings
 * and first layers with the 6-layer model of the same seed.
 */
export function normal(name: string, seed: number, size: number, std: number): Float32Array {
  const rand = mulberry32(Math.imul(seed >>> 0, 0x9e3779b1) ^ fnv1a32(name));
  const out = new Float32Array(size);
  for (let i = 0; i < size; i += 2) {
    const u1 = 1 - rand(); // (0, 1]: log(0) would be -Infinity
    const r = Math.sqrt(-2 * Math.log(u1)) * std;
    const theta = 2 * Math.PI * rand();
    out[i] = r * Math.cos(theta);
    if (i + 1 < size) out[i + 1] = r * Math.sin(theta);
  }
  return out;
}

export interface SynthOptions {
  /** Standard deviation of the random weights (BertConfig.initializer_range). */
  std?: number;
}

/**
 * Builds the graph. Inputs `input_ids`, `attention_mask`, `token_type_ids`
 * int64 [batch_size, sequence_length]; output `last_hidden_state` float
 * [batch_size, sequence_length, hidden_size]. Weights are normal(0, 0.02),
 * LayerNorm gamma 1 / beta 0, biases 0; deterministic for a seed.
 */
export function synthesizeBert(config: HfBertConfig, seed = 42, options: SynthOptions = {}): Uint8Array {
  const c = parseHfConfig(config, 'config');
  const std = options.std ?? 0.02;
  const H = c.hidden_size;
  const heads = c.num_attention_heads;
  const headDim = H / heads;
  const g = new GraphBuilder();

  const weight = (name: string, dims: number[]): string =>
    g.init(floatTensor(name, dims, normal(name, seed, dims.reduce((a, b) => a * b, 1), std)));
  const filled = (name: string, size: number, value: number): string => g.init(floatTensor(name, [size], new Float32Array(size).fill(value)));
  const layerNorm = (x: string, prefix: string, out?: string): string =>
    g.op(
      'LayerNormalization',
      [x, filled(`${prefix}.weight`, H, 1), filled(`${prefix}.bias`, H, 0)],
      [intAttr('axis', -1), floatAttr('epsilon', c.layer_norm_eps)],
      out,
    );
  // A linear layer as the exporters write it: MatMul by the transposed weight [in, out], then Add bias.
  const dense = (x: string, prefix: string, inDim: number, outDim: number): string =>
    g.op('Add', [g.op('MatMul', [x, weight(`${prefix}.weight`, [inDim, outDim])]), filled(`${prefix}.bias`, outDim, 0)]);

  const zero = g.init(int64Const('const_0', [0]));
  const one = g.init(floatConst('const_one', [1], true));
  const half = g.init(floatConst('const_half', [0.5], true));
  const sqrt2 = g.init(floatConst('const_sqrt2', [Math.SQRT2], true));
  const maskValue = g.init(floatConst('const_mask_value', [-10000], true));
  const scale = g.init(floatConst('const_sqrt_head_dim', [Math.sqrt(headDim)], true));
  const axes12 = g.init(int64Const('const_axes_1_2', [1, 2]));
  const splitHeads = g.init(int64Const('const_shape_split_heads', [0, 0, heads, headDim]));
  const mergeHeads = g.init(int64Const('const_shape_merge_heads', [0, 0, H]));

  // Embeddings: word + position (0..seq-1) + token type, then LayerNorm.
  const words = g.op('Gather', [weight('embeddings.word_embeddings.weight', [c.vocab_size, H]), 'input_ids']);
  const seqLen = g.op('Shape', ['input_ids'], [intAttr('start', 1), intAttr('end', 2)]); // [1]
  const positions = g.op('Slice', [weight('embeddings.position_embeddings.weight', [c.max_position_embeddings, H]), zero, seqLen, zero]);
  const types = g.op('Gather', [weight('embeddings.token_type_embeddings.weight', [c.type_vocab_size, H]), 'token_type_ids']);
  let hidden = layerNorm(g.op('Add', [g.op('Add', [words, positions]), types]), 'embeddings.LayerNorm');

  // Additive attention bias [batch, 1, 1, seq]: 0 where mask is 1, -10000 on padding.
  const maskF = g.op('Cast', ['attention_mask'], [intAttr('to', ElemType.FLOAT)]);
  const bias = g.op('Unsqueeze', [g.op('Mul', [g.op('Sub', [one, maskF]), maskValue]), axes12]);

  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `encoder.layer.${l}`;
    // [b, s, H] -> [b, heads, s, headDim] (K as [b, heads, headDim, s] for Q·Kᵀ).
    const project = (name: string, perm: number[]): string =>
      g.op('Transpose', [g.op('Reshape', [dense(hidden, `${p}.attention.self.${name}`, H, H), splitHeads])], [intsAttr('perm', perm)]);
    const q = project('query', [0, 2, 1, 3]);
    const k = project('key', [0, 2, 3, 1]);
    const v = project('value', [0, 2, 1, 3]);
    const scores = g.op('Add', [g.op('Div', [g.op('MatMul', [q, k]), scale]), bias]);
    const probs = g.op('Softmax', [scores], [intAttr('axis', -1)]);
    const context = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [probs, v])], [intsAttr('perm', [0, 2, 1, 3])]), mergeHeads]);
    const attention = dense(context, `${p}.attention.output.dense`, H, H);
    hidden = layerNorm(g.op('Add', [attention, hidden]), `${p}.attention.output.LayerNorm`);

    // FFN with the exact GELU: 0.5 * x * (1 + erf(x / sqrt 2)).
    const up = dense(hidden, `${p}.intermediate.dense`, H, c.intermediate_size);
    const gelu = g.op('Mul', [g.op('Mul', [up, g.op('Add', [g.op('Erf', [g.op('Div', [up, sqrt2])]), one])]), half]);
    const down = dense(gelu, `${p}.output.dense`, c.intermediate_size, H);
    const last = l === c.num_hidden_layers - 1;
    hidden = layerNorm(g.op('Add', [down, hidden]), `${p}.output.LayerNorm`, last ? BERT_OUTPUT : undefined);
  }

  const dims = ['batch_size', 'sequence_length'];
  const graph = g.build(
    'bert_synth',
    BERT_INPUTS.map((name) => tensorValueInfo(name, ElemType.INT64, dims)),
    [tensorValueInfo(BERT_OUTPUT, ElemType.FLOAT, [...dims, H])],
  );
  return encodeModel(graph, {
    docString: 'BERT-shaped graph with seeded random weights (PgLynx models synth): real cost, meaningless embeddings.',
    metadata: { 'pglynx.synthetic': 'true', 'pglynx.seed': String(seed), 'pglynx.params': String(bertParamCount(c)) },
  });
}
