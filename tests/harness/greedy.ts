// The reference the generation tests compare against: greedy decoding of
// one sequence at a time, in this process, over the same ONNX graph the
// pooler's slots load (engine/decoder.ts), with no batching or scheduling.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Decoder, emptyCache } from '../../engine/decoder.js';
import { argmax } from '../../engine/sampling.js';

/** Up to `n` greedy tokens after `prompt` (fewer at EOS), and their text. */
export async function greedyDecode(decoder: Decoder, tokenizer: Tokenizer, prompt: string, n: number): Promise<{ ids: number[]; text: string }> {
  const cache = emptyCache(decoder.shape);
  let logits = (await decoder.forward([{ cache, tokens: tokenizer.encode(prompt).ids }]))[0]!;
  const ids: number[] = [];
  for (let i = 0; i < n; i++) {
    const next = argmax(logits);
    if (decoder.shape.eosTokenIds.includes(next)) break;
    ids.push(next);
    if (i + 1 < n) logits = (await decoder.forward([{ cache, tokens: [next] }]))[0]!;
  }
  return { ids, text: tokenizer.decode(ids, { skip_special_tokens: true }) };
}

/** The tokenizer of a model directory (tokenizer.json). */
export function loadTokenizer(modelDir: string): Tokenizer {
  return new Tokenizer(JSON.parse(readFileSync(path.join(modelDir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>, {});
}

/** greedyDecode's text for the model in `modelDir`, loaded for the call and released after. */
export async function greedyText(modelDir: string, prompt: string, n: number): Promise<string> {
  const decoder = await Decoder.load(path.join(modelDir, 'onnx', 'model.onnx'), modelDir);
  try {
    return (await greedyDecode(decoder, loadTokenizer(modelDir), prompt, n)).text;
  } finally {
    await decoder.release();
  }
}
