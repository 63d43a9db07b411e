// The built-in lexical model `hash-384`: a bag of hashed words, L2-normalised.
//
// It needs no weights, so every machine (CI included) can serve a model
// end to end. It is still an ONNX graph run by onnxruntime, so it goes
// through exactly the same session, batching and pooling code as a real
// export; only the tokenizer (hashTokenize) is its own. Texts that share
// words get a positive cosine, which is enough for tests and demos of
// similarity search; it is not a semantic model.

import { ElemType, GraphBuilder, encodeModel, floatConst, int64Const, intAttr, intsAttr, tensorValueInfo } from './graph.js';

export const HASH_MODEL_DIMS = 384;

/** Words: runs of Unicode letters, digits and combining marks (so "café" stays one word after NFKC). */
const WORD = /[\p{L}\p{N}\p{M}]+/gu;

const utf8 = new TextEncoder();

/** FNV-1a, 32 bit, over the UTF-8 bytes: simple, stable across platforms and versions. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of utf8.encode(text)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The words of a text as the hash model sees them (normalised, lower-cased). */
export function hashWords(text: string): string[] {
  return text.normalize('NFKC').toLowerCase().match(WORD) ?? [];
}

export interface HashBatch {
  /** Bucket ids, row-major [batch, seq]. */
  ids: BigInt64Array;
  /** 1 for a word, 0 for padding, row-major [batch, seq]. */
  mask: Float32Array;
  batch: number;
  seq: number;
}

/**
 * Tokenizes a batch for the hash model: one bucket per word, rows padded to
 * the longest row with bucket 0 and mask 0. A text without words still gets
 * one (padded) position so every tensor dimension is at least 1; its
 * embedding comes out all zeros. `dims` must match the model's.
 */
export function hashTokenize(texts: string[], maxTokens = 512, dims = HASH_MODEL_DIMS): HashBatch {
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new RangeError(`maxTokens must be a positive integer, got ${maxTokens}`);
  const rows = texts.map((t) => hashWords(t).slice(0, maxTokens).map((w) => fnv1a32(w) % dims));
  const seq = Math.max(1, ...rows.map((r) => r.length));
  const batch = rows.length;
  const ids = new BigInt64Array(batch * seq);
  const mask = new Float32Array(batch * seq);
  rows.forEach((row, b) => {
    row.forEach((bucket, i) => {
      ids[b * seq + i] = BigInt(bucket);
      mask[b * seq + i] = 1;
    });
  });
  return { ids, mask, batch, seq };
}

/**
 * The ONNX graph: inputs `ids` int64 [batch, seq] and `mask` float
 * [batch, seq], output `embedding` float [batch, dims].
 *
 *   OneHot(ids, dims) * mask[..., None] -> ReduceSum(seq) -> x / max(|x|, 1e-12)
 *
 * Word counts, not presence: a repeated word weighs more, as in TF.
 */
export function buildHashModel(dims = HASH_MODEL_DIMS): Uint8Array {
  if (!Number.isInteger(dims) || dims < 1) throw new RangeError(`dims must be a positive integer, got ${dims}`);
  const g = new GraphBuilder();
  const depth = g.init(int64Const('depth', [dims], true));
  const onOff = g.init(floatConst('one_hot_values', [0, 1]));
  const axis2 = g.init(int64Const('axes_2', [2]));
  const axis1 = g.init(int64Const('axes_1', [1]));
  const eps = g.init(floatConst('eps', [1e-12], true));

  const oneHot = g.op('OneHot', ['ids', depth, onOff], [intAttr('axis', -1)]); // [b, s, dims]
  const mask3 = g.op('Unsqueeze', ['mask', axis2]); // [b, s, 1]
  const counted = g.op('Mul', [oneHot, mask3]);
  // ReduceSum takes axes as an input from opset 13; ReduceL2 only from opset 18.
  const sum = g.op('ReduceSum', [counted, axis1], [intAttr('keepdims', 0)]); // [b, dims]
  const norm = g.op('ReduceL2', [sum], [intsAttr('axes', [1]), intAttr('keepdims', 1)]); // [b, 1]
  const safe = g.op('Max', [norm, eps]);
  g.op('Div', [sum, safe], [], 'embedding');

  const graph = g.build(
    `hash-${dims}`,
    [tensorValueInfo('ids', ElemType.INT64, ['batch', 'seq']), tensorValueInfo('mask', ElemType.FLOAT, ['batch', 'seq'])],
    [tensorValueInfo('embedding', ElemType.FLOAT, ['batch', dims])],
  );
  return encodeModel(graph, {
    docString: `PgLynx built-in lexical model: FNV-1a hashed words into ${dims} buckets, L2-normalised.`,
    metadata: { 'pglynx.model': `hash-${dims}`, 'pglynx.tokenizer': 'fnv1a32-words-nfkc-lower' },
  });
}
