// A GPT-2-shaped decoder ONNX graph with seeded random weights, built from a
// Hugging Face GPT-2 `config.json`.
//
// As with the BERT synthesizer, weights cannot be downloaded here, yet
// generation must run the real path (tokenizer, prefill, KV cache, batched
// decode steps) at the real model's cost. The graph has the inputs and
// outputs of an optimum "decoder with past" export of GPT2LMHeadModel:
//
//   inputs   input_ids, attention_mask, position_ids          int64
//            past_key_values.{i}.key / .value                 float [batch, heads, past, head_dim]
//   outputs  logits                                           float [batch, 1, vocab] (last position; an export's is [batch, seq, vocab])
//            present.{i}.key / .value                         float [batch, heads, past + seq, head_dim]
//
// and GPT-2's operations: token + position embeddings, pre-LayerNorm blocks
// with causal self-attention and a gelu_new MLP, a final LayerNorm, and an
// LM head tied to the token embeddings. The attention mask covers the past
// and the new tokens, so sequences of different lengths can be batched with
// padding as long as position_ids give the real positions (new tokens
// left-padded: logits are the last position's).

import { readFileSync } from 'node:fs';
import { normal } from './bert-synth.js';
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
  node,
  tensorValueInfo,
} from './graph.js';

/** The fields of a Hugging Face GPT2Config that shape the graph. */
export interface HfGpt2Config {
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  /** MLP width; GPT2Config's null means 4 * n_embd. */
  n_inner: number;
  layer_norm_epsilon: number;
  /** "gelu_new" (tanh approximation, GPT-2's) or "gelu" (exact). */
  activation_function: string;
  bos_token_id: number;
  eos_token_id: number;
}

/** Shrinks the real shape for fast test models; the default is the config's own. */
export interface Gpt2Overrides {
  layers?: number;
  hidden?: number;
  heads?: number;
}

/** True when a parsed config.json describes a GPT-2 decoder. */
export function isGpt2Config(json: unknown): boolean {
  if (typeof json !== 'object' || json === null) return false;
  const raw = json as Record<string, unknown>;
  const archs = Array.isArray(raw.architectures) ? raw.architectures : [];
  return raw.model_type === 'gpt2' || archs.includes('GPT2LMHeadModel');
}

export function parseGpt2Config(json: unknown, source = 'config.json', overrides: Gpt2Overrides = {}): HfGpt2Config {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${source}: expected a JSON object`);
  const raw = json as Record<string, unknown>;
  const int = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      throw new Error(`${source}: ${key} must be a non-negative integer, got ${JSON.stringify(v ?? null)}`);
    }
    return v;
  };
  const n_embd = overrides.hidden ?? int('n_embd');
  const n_head = overrides.heads ?? int('n_head');
  const c: HfGpt2Config = {
    vocab_size: int('vocab_size'),
    n_positions: int('n_positions', 1024),
    n_embd,
    n_layer: overrides.layers ?? int('n_layer'),
    n_head,
    // A shrunk hidden size shrinks the MLP with it (GPT-2's own ratio).
    n_inner: overrides.hidden !== undefined || raw.n_inner === null || raw.n_inner === undefined ? 4 * n_embd : int('n_inner'),
    layer_norm_epsilon: typeof raw.layer_norm_epsilon === 'number' ? raw.layer_norm_epsilon : 1e-5,
    activation_function: typeof raw.activation_function === 'string' ? raw.activation_function : 'gelu_new',
    bos_token_id: int('bos_token_id', 50256),
    eos_token_id: int('eos_token_id', 50256),
  };
  for (const k of ['vocab_size', 'n_positions', 'n_embd', 'n_layer', 'n_head'] as const) {
    if (c[k] < 1) throw new Error(`${source}: ${k} must be at least 1`);
  }
  if (c.n_embd % c.n_head !== 0) throw new Error(`${source}: n_embd ${c.n_embd} is not a multiple of n_head ${c.n_head}`);
  if (c.activation_function !== 'gelu_new' && c.activation_function !== 'gelu') {
    throw new Error(`${source}: activation_function ${JSON.stringify(c.activation_function)} is not supported (gelu_new or gelu)`);
  }
  return c;
}

export function readGpt2Config(file: string, overrides: Gpt2Overrides = {}): { config: HfGpt2Config; raw: Record<string, unknown> } {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
  return { config: parseGpt2Config(raw, file, overrides), raw };
}

/** config.json for the synthesized model: the source's, with the shape it was actually built with. */
export function synthesizedConfigJson(raw: Record<string, unknown>, c: HfGpt2Config): Record<string, unknown> {
  return { ...raw, n_embd: c.n_embd, n_layer: c.n_layer, n_head: c.n_head, n_inner: c.n_inner === 4 * c.n_embd ? null : c.n_inner };
}

/** Parameters of GPT2LMHeadModel (the LM head is tied: not counted twice). */
export function gpt2ParamCount(c: HfGpt2Config): number {
  const h = c.n_embd;
  const layer = 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + 2 * h + (h * c.n_inner + c.n_inner) + (c.n_inner * h + h);
  return (c.vocab_size + c.n_positions) * h + c.n_layer * layer + 2 * h;
}

export const pastKeyName = (layer: number): string => `past_key_values.${layer}.key`;
export const pastValueName = (layer: number): string => `past_key_values.${layer}.value`;
export const presentKeyName = (layer: number): string => `present.${layer}.key`;
export const presentValueName = (layer: number): string => `present.${layer}.value`;

/** Builds the decoder graph; deterministic for a seed (each tensor has its own seeded stream). */
export function synthesizeGpt2(config: HfGpt2Config, seed = 42, options: { std?: number; /** Every position's logits, as an optimum export has them (tests). */ allLogits?: boolean } = {}): Uint8Array {
  const c = config;
  const std = options.std ?? 0.02;
  const H = c.n_embd;
  const heads = c.n_head;
  const headDim = H / heads;
  const g = new GraphBuilder();

  const weight = (name: string, dims: number[], s = std): string =>
    g.init(floatTensor(name, dims, normal(name, seed, dims.reduce((a, b) => a * b, 1), s)));
  const filled = (name: string, size: number, value: number): string => g.init(floatTensor(name, [size], new Float32Array(size).fill(value)));
  const layerNorm = (x: string, prefix: string): string =>
    g.op(
      'LayerNormalization',
      [x, filled(`${prefix}.weight`, H, 1), filled(`${prefix}.bias`, H, 0)],
      [intAttr('axis', -1), floatAttr('epsilon', c.layer_norm_epsilon)],
    );
  // GPT-2's Conv1D stores weights as [in, out]: MatMul then Add bias.
  const dense = (x: string, prefix: string, inDim: number, outDim: number, s = std): string =>
    g.op('Add', [g.op('MatMul', [x, weight(`${prefix}.weight`, [inDim, outDim], s)]), filled(`${prefix}.bias`, outDim, 0)]);

  const axis0 = g.init(int64Const('const_axis_0', [0]));
  const axis1 = g.init(int64Const('const_axis_1', [1]));
  const axes12 = g.init(int64Const('const_axes_1_2', [1, 2]));
  const zeroI = g.init(int64Const('const_zero_i', [0], true));
  const oneI = g.init(int64Const('const_one_i', [1], true));
  const zeroF = g.init(floatConst('const_zero_f', [0], true));
  // A large finite negative rather than -inf: a fully masked row (a padding
  // query) then softmaxes to a uniform row instead of NaN.
  const negF = g.init(floatConst('const_mask_value', [-1e9], true));
  const one = g.init(floatConst('const_one', [1], true));
  const half = g.init(floatConst('const_half', [0.5], true));
  // Only the constants the chosen activation uses (unused initializers make onnxruntime warn).
  const exact = c.activation_function === 'gelu';
  const geluConsts: GeluConsts = {
    one,
    half,
    sqrt2: exact ? g.init(floatConst('const_sqrt2', [Math.SQRT2], true)) : '',
    cubic: exact ? '' : g.init(floatConst('const_gelu_cubic', [0.044715], true)),
    scale: exact ? '' : g.init(floatConst('const_gelu_scale', [SQRT_2_OVER_PI], true)),
  };
  const scale = g.init(floatConst('const_sqrt_head_dim', [Math.sqrt(headDim)], true));
  const splitHeads = g.init(int64Const('const_shape_split_heads', [0, 0, heads, headDim]));
  const mergeHeads = g.init(int64Const('const_shape_merge_heads', [0, 0, H]));
  const qkvSplit = g.init(int64Const('const_qkv_split', [H, H, H]));

  const wte = weight('transformer.wte.weight', [c.vocab_size, H]);
  const wpe = weight('transformer.wpe.weight', [c.n_positions, H], 0.01);
  let hidden = g.op('Add', [g.op('Gather', [wte, 'input_ids']), g.op('Gather', [wpe, 'position_ids'])]);

  // Attention bias [batch, 1, seq, past + seq]: query i (absolute index past + i)
  // sees key j when j <= past + i and attention_mask[j] is 1.
  const pastLen = g.op('Shape', [pastKeyName(0)], [intAttr('start', 2), intAttr('end', 3)]);
  const seqLen = g.op('Shape', ['input_ids'], [intAttr('start', 1), intAttr('end', 2)]);
  const totalS = g.op('Squeeze', [g.op('Add', [pastLen, seqLen]), axis0]);
  const keyIdx = g.op('Range', [zeroI, totalS, oneI]);
  const queryIdx = g.op('Unsqueeze', [g.op('Range', [g.op('Squeeze', [pastLen, axis0]), totalS, oneI]), axis1]);
  const causal = g.op('LessOrEqual', [keyIdx, queryIdx]);
  const padding = g.op('Unsqueeze', [g.op('Cast', ['attention_mask'], [intAttr('to', onnxBool)]), axes12]);
  const bias = g.op('Where', [g.op('And', [causal, padding]), zeroF, negF]);

  // Residual projections scaled by 1/sqrt(2 * n_layer), as GPT-2 initialises them.
  const projStd = std / Math.sqrt(2 * c.n_layer);
  for (let l = 0; l < c.n_layer; l++) {
    const p = `transformer.h.${l}`;
    const qkv = dense(layerNorm(hidden, `${p}.ln_1`), `${p}.attn.c_attn`, H, 3 * H);
    const [q0, k0, v0] = [g.fresh('q'), g.fresh('k'), g.fresh('v')];
    g.nodes.push(node('Split', [qkv, qkvSplit], [q0, k0, v0], [intAttr('axis', -1)]));
    const toHeads = (x: string): string => g.op('Transpose', [g.op('Reshape', [x, splitHeads])], [intsAttr('perm', [0, 2, 1, 3])]);
    const key = g.op('Concat', [pastKeyName(l), toHeads(k0)], [intAttr('axis', 2)], presentKeyName(l));
    const value = g.op('Concat', [pastValueName(l), toHeads(v0)], [intAttr('axis', 2)], presentValueName(l));
    const kT = g.op('Transpose', [key], [intsAttr('perm', [0, 1, 3, 2])]);
    const scores = g.op('Add', [g.op('Div', [g.op('MatMul', [toHeads(q0), kT]), scale]), bias]);
    const probs = g.op('Softmax', [scores], [intAttr('axis', -1)]);
    const context = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [probs, value])], [intsAttr('perm', [0, 2, 1, 3])]), mergeHeads]);
    hidden = g.op('Add', [hidden, dense(context, `${p}.attn.c_proj`, H, H, projStd)]);

    const up = dense(layerNorm(hidden, `${p}.ln_2`), `${p}.mlp.c_fc`, H, c.n_inner);
    hidden = g.op('Add', [hidden, dense(gelu(g, up, c.activation_function, geluConsts), `${p}.mlp.c_proj`, c.n_inner, H, projStd)]);
  }
  // Only the last position's logits: a batch's new tokens are left-padded, so
  // that is every row's last token, and generation reads nothing else. Over
  // a whole prompt the LM head (vocab x hidden per position) costs about as
  // much as the 12 blocks of GPT-2 small together.
  const last = options.allLogits ? hidden : g.op('Gather', [hidden, g.init(int64Const('const_last_position', [-1]))], [intAttr('axis', 1)]);
  const final = layerNorm(last, 'transformer.ln_f');
  // Tied LM head: logits = h · wteᵀ (ONNX Runtime folds the constant transpose at load).
  g.op('MatMul', [final, g.op('Transpose', [wte], [intsAttr('perm', [1, 0])])], [], 'logits');

  const kv = (name: string, len: string) => tensorValueInfo(name, ElemType.FLOAT, ['batch_size', heads, len, headDim]);
  const inputs = [
    tensorValueInfo('input_ids', ElemType.INT64, ['batch_size', 'sequence_length']),
    tensorValueInfo('attention_mask', ElemType.INT64, ['batch_size', 'total_sequence_length']),
    tensorValueInfo('position_ids', ElemType.INT64, ['batch_size', 'sequence_length']),
  ];
  const outputs = [tensorValueInfo('logits', ElemType.FLOAT, ['batch_size', options.allLogits ? 'sequence_length' : 1, c.vocab_size])];
  for (let l = 0; l < c.n_layer; l++) {
    inputs.push(kv(pastKeyName(l), 'past_sequence_length'), kv(pastValueName(l), 'past_sequence_length'));
    outputs.push(kv(presentKeyName(l), 'total_sequence_length'), kv(presentValueName(l), 'total_sequence_length'));
  }
  return encodeModel(g.build('gpt2_synth', inputs, outputs), {
    docString: 'GPT-2-shaped decoder with past_key_values and seeded random weights (PgLynx models synth): real cost, meaningless text.',
    metadata: { 'pglynx.synthetic': 'true', 'pglynx.seed': String(seed), 'pglynx.params': String(gpt2ParamCount(c)) },
  });
}

/** onnx TensorProto.DataType.BOOL */
const onnxBool = 9;

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

interface GeluConsts {
  one: string;
  half: string;
  sqrt2: string;
  cubic: string;
  scale: string;
}

/** gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))); gelu: the exact erf form. */
function gelu(g: GraphBuilder, x: string, kind: string, k: GeluConsts): string {
  if (kind === 'gelu') {
    return g.op('Mul', [g.op('Mul', [x, g.op('Add', [g.op('Erf', [g.op('Div', [x, k.sqrt2])]), k.one])]), k.half]);
  }
  const { cubic: c1, scale: c2 } = k;
  const cube = g.op('Mul', [g.op('Mul', [x, x]), x]);
  const inner = g.op('Mul', [g.op('Add', [x, g.op('Mul', [cube, c1])]), c2]);
  return g.op('Mul', [g.op('Mul', [x, g.op('Add', [g.op('Tanh', [inner]), k.one])]), k.half]);
}
