// Tokenization with truncation, and pooling of token vectors into one
// normalised vector per input. Both run in the worker threads.

import type { Tokenizer } from '@huggingface/tokenizers';
import type { Pooling } from '../config/models.js';

/**
 * Encodes texts to token ids with the tokenizer's special tokens, truncated
 * to `maxTokens`. tokenizers.js ignores tokenizer.json's truncation block,
 * so truncation is done here, keeping the special tokens around the text
 * (e.g. [CLS] ... [SEP]) as the Rust tokenizer does.
 */
export class TokenEncoder {
  private readonly prefix: number[];
  private readonly suffix: number[];

  constructor(
    private readonly tokenizer: Tokenizer,
    readonly maxTokens: number,
  ) {
    // What the tokenizer adds around a text: compare one word with and without specials.
    const plain = tokenizer.encode('a', { add_special_tokens: false }).ids;
    const full = tokenizer.encode('a', { add_special_tokens: true }).ids;
    const at = plain.length === 0 ? -1 : indexOf(full, plain);
    this.prefix = at < 0 ? [] : full.slice(0, at);
    this.suffix = at < 0 ? [] : full.slice(at + plain.length);
    if (this.prefix.length + this.suffix.length >= maxTokens) {
      throw new Error(`max_tokens ${maxTokens} leaves no room for text between the tokenizer's ${this.prefix.length + this.suffix.length} special tokens`);
    }
  }

  encode(text: string): number[] {
    const ids = this.tokenizer.encode(text).ids;
    if (ids.length <= this.maxTokens) return ids;
    const room = this.maxTokens - this.prefix.length - this.suffix.length;
    return [...this.prefix, ...ids.slice(this.prefix.length, this.prefix.length + room), ...this.suffix];
  }

  /** Given content ids wrapped in the special tokens (truncated to fit), as encode() would produce. */
  wrap(content: number[]): number[] {
    const room = this.maxTokens - this.prefix.length - this.suffix.length;
    return [...this.prefix, ...content.slice(0, room), ...this.suffix];
  }
}

function indexOf(haystack: readonly number[], needle: readonly number[]): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * `data` is the model output, [batch, tokens, hidden] (pooled here over each
 * row's first `lengths[i]` tokens: inputs are right-padded) or [batch, hidden]
 * (already one vector per input). Returns batch * hidden floats in a fresh
 * buffer, L2-normalised when asked.
 */
export function poolAndNormalize(
  data: Float32Array,
  dims: readonly number[],
  lengths: readonly number[],
  pooling: Pooling,
  normalize: boolean,
): Float32Array {
  const batch = dims[0]!;
  const hidden = dims[dims.length - 1]!;
  const out = new Float32Array(batch * hidden);
  if (dims.length === 2) {
    out.set(data.subarray(0, batch * hidden));
  } else {
    const seq = dims[1]!;
    // Accumulate in float64 so the sum does not depend on the padded length.
    const acc = new Float64Array(hidden);
    for (let b = 0; b < batch; b++) {
      const base = b * seq * hidden;
      const n = pooling === 'cls' ? 1 : Math.max(1, lengths[b]!);
      acc.fill(0);
      for (let t = 0; t < n; t++) {
        const row = base + t * hidden;
        for (let h = 0; h < hidden; h++) acc[h] += data[row + h];
      }
      for (let h = 0; h < hidden; h++) out[b * hidden + h] = acc[h]! / n;
    }
  }
  if (normalize) {
    for (let b = 0; b < batch; b++) {
      const v = out.subarray(b * hidden, (b + 1) * hidden);
      let sum = 0;
      for (let h = 0; h < hidden; h++) sum += v[h]! * v[h]!;
      const norm = Math.sqrt(sum);
      // A zero vector stays zero rather than becoming NaN.
      if (norm > 0) for (let h = 0; h < hidden; h++) v[h] = v[h]! / norm;
    }
  }
  return out;
}
