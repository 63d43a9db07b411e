// One loaded model inside a worker thread: the ONNX Runtime session, the
// tokenizer, and the code that turns a batch of texts into pooled,
// normalised vectors (one flat Float32Array, `dims` floats per text).
//
// Loading checks everything that would otherwise fail on a client's first
// call: the files exist, the graph loads, its inputs are ones we can feed,
// the tokenizer's largest id fits the embedding table and the longest input
// fits the position table (both by running probe batches, which catches a
// config.json that does not match the graph too).

import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { Tokenizer } from '@huggingface/tokenizers';
import type { ModelConfig } from '../config/models.js';
import type { ModelInfo } from './worker-protocol.js';
import { buildHashModel, hashTokenize, HASH_MODEL_DIMS } from './onnx/hash-model.js';
import { planSubBatches } from './sub-batches.js';
import { TokenEncoder, poolAndNormalize } from './tokens.js';

export interface Runtime {
  readonly info: ModelInfo;
  /**
   * `texts.length * info.dims` floats, in input order; a fresh buffer
   * (transferable). The texts run in length-aware sub-batches unless
   * `padded` asks for one run padded to the longest (the plain way, kept
   * for the benchmark's baseline).
   */
  embed(texts: readonly string[], options?: { padded?: boolean }): Promise<Float32Array>;
}

const BERT_INPUTS = ['input_ids', 'attention_mask', 'token_type_ids'] as const;
/** Token-level outputs first (we pool them), then ready sentence vectors. */
const OUTPUT_PREFERENCE = ['last_hidden_state', 'token_embeddings', 'sentence_embedding'];

export function sessionOptions(c: ModelConfig): InferenceSession.SessionOptions {
  // One thread pool per instance, sized by intra_op_threads; instances scale
  // by count, not by threads, so the graph runs sequentially.
  return {
    intraOpNumThreads: c.intra_op_threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
  };
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n').map((l) => l.trim()).filter(Boolean).join(' ').slice(0, 500);
}

/** A view that owns its whole buffer, so it can be transferred without taking anything else along. */
function owned(a: Float32Array): Float32Array {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && !(a.buffer instanceof SharedArrayBuffer) ? a : a.slice();
}

export async function loadRuntime(c: ModelConfig): Promise<Runtime> {
  return c.builtin !== null ? loadBuiltin(c) : loadDirectory(c);
}

/** hash-384: hashed words, no files; the graph comes from engine/onnx/hash-model.ts. */
async function loadBuiltin(c: ModelConfig): Promise<Runtime> {
  const session = await InferenceSession.create(buildHashModel(HASH_MODEL_DIMS), sessionOptions(c));
  const info: ModelInfo = { dims: HASH_MODEL_DIMS, maxTokens: c.max_tokens, inputs: [...session.inputNames], vocabSize: null };
  return {
    info,
    async embed(texts) {
      const { ids, mask, batch, seq } = hashTokenize([...texts], c.max_tokens);
      const out = await session.run({
        ids: new Tensor('int64', ids, [batch, seq]),
        mask: new Tensor('float32', mask, [batch, seq]),
      });
      const embedding = out['embedding'];
      if (!embedding) throw new Error('the hash model has no "embedding" output');
      return owned(embedding.data as Float32Array);
    },
  };
}

async function exists(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

async function readJson(file: string, what: string, required: boolean): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : firstLine(err)}`);
  }
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${what} ${file} is not valid JSON: ${firstLine(err)}`);
  }
  throw new Error(`${what} ${file} is not a JSON object`);
}

const positiveInt = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : null);

/** `path` names a directory in Hugging Face layout, or the .onnx file itself. */
export async function modelFiles(path: string): Promise<{ onnx: string; dir: string }> {
  if (path.endsWith('.onnx')) {
    if (!(await exists(path))) throw new Error(`model file ${path} not found`);
    return { onnx: path, dir: join(path, '..') };
  }
  for (const candidate of [join(path, 'onnx', 'model.onnx'), join(path, 'model.onnx')]) {
    if (await exists(candidate)) return { onnx: candidate, dir: path };
  }
  throw new Error(`no ONNX model in ${path}: looked for onnx/model.onnx and model.onnx`);
}

/** A Hugging Face export (or a graph from `pglynx models synth`): BERT-style inputs, token-level output. */
async function loadDirectory(c: ModelConfig): Promise<Runtime> {
  const { onnx, dir } = await modelFiles(c.path!);
  const tokenizerJson = await readJson(join(dir, 'tokenizer.json'), 'tokenizer', true);
  const tokenizerConfig = await readJson(join(dir, 'tokenizer_config.json'), 'tokenizer config', false);
  const modelConfig = (await readJson(join(dir, 'config.json'), 'model config', false)) ?? {};
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(tokenizerJson!, tokenizerConfig ?? {});
  } catch (err) {
    throw new Error(`cannot use tokenizer ${join(dir, 'tokenizer.json')}: ${firstLine(err)}`);
  }
  let session: InferenceSession;
  try {
    session = await InferenceSession.create(onnx, sessionOptions(c));
  } catch (err) {
    throw new Error(`cannot load ONNX model ${onnx}: ${firstLine(err)}`);
  }

  const inputs = [...session.inputNames];
  if (!inputs.includes('input_ids')) {
    throw new Error(`ONNX model ${onnx} has no input_ids input (its inputs: ${inputs.join(', ')}); expected a BERT-style text encoder`);
  }
  const unknown = inputs.filter((n) => !(BERT_INPUTS as readonly string[]).includes(n));
  if (unknown.length > 0) {
    throw new Error(`ONNX model ${onnx} needs input(s) ${unknown.join(', ')} that PgLynx cannot feed (supported: ${BERT_INPUTS.join(', ')})`);
  }
  const outputName = OUTPUT_PREFERENCE.find((n) => session.outputNames.includes(n)) ?? session.outputNames[0];
  if (outputName === undefined) throw new Error(`ONNX model ${onnx} has no outputs`);

  const vocab = tokenizer.get_vocab(true);
  let maxId = 0;
  for (const id of vocab.values()) if (id > maxId) maxId = id;
  const vocabSize = positiveInt(modelConfig['vocab_size']);
  if (vocabSize !== null && maxId >= vocabSize) {
    throw new Error(`tokenizer does not fit the model: token ids go up to ${maxId}, but config.json vocab_size is ${vocabSize}`);
  }
  const positions = positiveInt(modelConfig['max_position_embeddings']);
  const maxTokens = Math.min(c.max_tokens, positions ?? Number.MAX_SAFE_INTEGER);
  const padId = typeof modelConfig['pad_token_id'] === 'number' ? modelConfig['pad_token_id'] : (tokenizer.token_to_id('[PAD]') ?? 0);
  const encoder = new TokenEncoder(tokenizer, maxTokens);

  const run = async (batch: number[][]): Promise<{ data: Float32Array; dims: readonly number[] }> => {
    const seq = Math.max(1, ...batch.map((ids) => ids.length));
    const ids = new BigInt64Array(batch.length * seq).fill(BigInt(padId));
    const mask = new BigInt64Array(batch.length * seq);
    batch.forEach((row, i) => {
      for (let j = 0; j < row.length; j++) {
        ids[i * seq + j] = BigInt(row[j]!);
        mask[i * seq + j] = 1n;
      }
    });
    const shape = [batch.length, seq];
    const feeds: Record<string, Tensor> = { input_ids: new Tensor('int64', ids, shape) };
    if (inputs.includes('attention_mask')) feeds['attention_mask'] = new Tensor('int64', mask, shape);
    if (inputs.includes('token_type_ids')) feeds['token_type_ids'] = new Tensor('int64', new BigInt64Array(ids.length), shape);
    const out = (await session.run(feeds, [outputName]))[outputName]!;
    return { data: out.data as Float32Array, dims: out.dims };
  };

  // Probes: the largest token id, then the longest input we will ever send.
  let dims: number;
  try {
    const probe = await run([encoder.wrap([maxId])]);
    if (probe.dims.length !== 2 && probe.dims.length !== 3) {
      throw new Error(`output ${outputName} has shape [${probe.dims.join(', ')}]; expected [batch, tokens, hidden] or [batch, hidden]`);
    }
    dims = probe.dims[probe.dims.length - 1]!;
  } catch (err) {
    throw new Error(`tokenizer does not fit the model: running token id ${maxId} (the tokenizer's largest) failed: ${firstLine(err)}`);
  }
  if (maxTokens <= 8192) {
    try {
      await run([encoder.wrap(new Array<number>(maxTokens).fill(maxId))]);
    } catch (err) {
      throw new Error(`max_tokens ${maxTokens} is more than the model accepts (lower max_tokens): ${firstLine(err)}`);
    }
  }

  const info: ModelInfo = { dims, maxTokens, inputs, vocabSize: maxId + 1 };
  return {
    info,
    async embed(texts, options) {
      const encoded = texts.map((t) => encoder.encode(t));
      const vectors = new Float32Array(encoded.length * dims);
      // Runs of similar lengths: a short text never pays for a long one's padding.
      const groups = options?.padded ? [encoded.map((_, i) => i)] : planSubBatches(encoded.map((ids) => ids.length));
      for (const group of groups) {
        const rows = group.map((i) => encoded[i]!);
        const out = await run(rows);
        const pooled = poolAndNormalize(out.data, out.dims, rows.map((ids) => ids.length), c.pooling, c.normalize);
        group.forEach((i, k) => vectors.set(pooled.subarray(k * dims, (k + 1) * dims), i * dims));
      }
      return vectors;
    },
  };
}
