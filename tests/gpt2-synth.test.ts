// `pglynx models synth` on GPT-2's real config and tokenizer: a decoder with
// past_key_values in optimum's naming, and the properties generation relies
// on: decoding with the KV cache gives the logits of recomputing the whole
// sequence, and a batch (padded, masked, with per-sequence positions) gives
// each sequence's logits as if it ran alone.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { Tokenizer } from '@huggingface/tokenizers';
import { Decoder, emptyCache, type KvCache } from '../engine/decoder.js';
import { REPO_ROOT } from './harness/pglynx.js';
import { GPT2_TOKENIZER } from './harness/fixtures.js';

const out = mkdtempSync(path.join(tmpdir(), 'pglynx-gpt2-'));
t.teardown(() => rmSync(out, { recursive: true, force: true }));
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('TAP') && !k.startsWith('TS_NODE_')));
const cli = await promisify(execFile)(
  process.execPath,
  ['--import', 'tsx', path.join(REPO_ROOT, 'bin', 'pglynx.ts'), 'models', 'synth', GPT2_TOKENIZER, out, '--layers', '2', '--hidden', '96', '--seed', '7'],
  { cwd: REPO_ROOT, env, timeout: 120_000 },
);

const decoder = await Decoder.load(path.join(out, 'onnx', 'model.onnx'), out);
t.teardown(() => decoder.release());
const tokenizer = new Tokenizer(
  JSON.parse(readFileSync(path.join(out, 'tokenizer.json'), 'utf8')) as Record<string, unknown>,
  JSON.parse(readFileSync(path.join(out, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>,
);
const encode = (text: string): number[] => tokenizer.encode(text).ids;

function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}
const argmax = (v: Float32Array): number => v.reduce((best, x, i) => (x > v[best]! ? i : best), 0);

t.test('synth writes a GPT-2 decoder in optimum naming, with the shape it was asked for', async (t) => {
  t.match(cli.stdout, /wrote .*model\.onnx/);
  const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  t.match(config, { n_layer: 2, n_embd: 96, n_head: 12, vocab_size: 50257, architectures: ['GPT2LMHeadModel'] });
  const { session } = decoder;
  t.same(session.inputNames, [
    'input_ids',
    'attention_mask',
    'position_ids',
    'past_key_values.0.key',
    'past_key_values.0.value',
    'past_key_values.1.key',
    'past_key_values.1.value',
  ]);
  t.same(session.outputNames, ['logits', 'present.0.key', 'present.0.value', 'present.1.key', 'present.1.value']);
  t.match(decoder.shape, { layers: 2, kvHeads: 12, headDim: 8, vocabSize: 50257, eosTokenIds: [50256] });
});

t.test('KV-cache decoding equals full recomputation (1e-4)', async (t) => {
  const prompt = encode('Once upon a time, in a land far away,');
  const cache = emptyCache(decoder.shape);
  let logits = (await decoder.forward([{ cache, tokens: prompt }]))[0]!;
  const seq = [...prompt];
  for (let step = 0; step < 6; step++) {
    const next = argmax(logits);
    seq.push(next);
    logits = (await decoder.forward([{ cache, tokens: [next] }]))[0]!;
    const full = (await decoder.forward([{ cache: emptyCache(decoder.shape), tokens: seq }]))[0]!;
    t.ok(maxDiff(logits, full) < 1e-4, `step ${step}: cached vs recomputed max |diff| ${maxDiff(logits, full).toExponential(2)}`);
  }
  t.equal(cache.length, seq.length, 'the cache holds every token');
});

t.test('batched decoding equals unbatched, prefill (right padding) and decode (left-padded pasts)', async (t) => {
  const prompts = ['Hi', 'The quick brown fox jumps over the lazy dog', 'Ünïcödé — 日本語 text ✓'].map(encode);
  const alone: { cache: KvCache; logits: Float32Array }[] = [];
  for (const p of prompts) {
    const cache = emptyCache(decoder.shape);
    alone.push({ cache, logits: (await decoder.forward([{ cache, tokens: p }]))[0]! });
  }
  const caches = prompts.map(() => emptyCache(decoder.shape));
  const together = await decoder.forward(prompts.map((p, i) => ({ cache: caches[i]!, tokens: p })));
  together.forEach((l, i) => t.ok(maxDiff(l, alone[i]!.logits) < 1e-4, `prefill row ${i}: ${maxDiff(l, alone[i]!.logits).toExponential(2)}`));
  // Four decode steps with pasts of different lengths in one batch; one sequence joins late.
  let batchLogits = together;
  for (let step = 0; step < 4; step++) {
    const next = batchLogits.map(argmax);
    const soloLogits: Float32Array[] = [];
    for (let i = 0; i < prompts.length; i++) soloLogits.push((await decoder.forward([{ cache: alone[i]!.cache, tokens: [next[i]!] }]))[0]!);
    batchLogits = await decoder.forward(prompts.map((_, i) => ({ cache: caches[i]!, tokens: [next[i]!] })));
    batchLogits.forEach((l, i) => t.ok(maxDiff(l, soloLogits[i]!) < 1e-4, `step ${step} row ${i}: ${maxDiff(l, soloLogits[i]!).toExponential(2)}`));
  }
  caches.forEach((c, i) => t.equal(c.length, prompts[i]!.length + 4));
});

t.test('same seed, same file; --hidden and --layers shrink it', async (t) => {
  const again = mkdtempSync(path.join(tmpdir(), 'pglynx-gpt2-'));
  t.teardown(() => rmSync(again, { recursive: true, force: true }));
  await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', path.join(REPO_ROOT, 'bin', 'pglynx.ts'), 'models', 'synth', GPT2_TOKENIZER, again, '--layers', '2', '--hidden', '96', '--seed', '7'],
    { cwd: REPO_ROOT, env, timeout: 120_000 },
  );
  t.ok(readFileSync(path.join(again, 'onnx', 'model.onnx')).equals(readFileSync(path.join(out, 'onnx', 'model.onnx'))), 'byte-identical');
  const bad = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', path.join(REPO_ROOT, 'bin', 'pglynx.ts'), 'models', 'synth', GPT2_TOKENIZER, again, '--hidden', '100'],
    { cwd: REPO_ROOT, env, timeout: 120_000 },
  ).catch((err: { code: number; stderr: string }) => err);
  t.equal((bad as { code: number }).code, 1);
  t.match((bad as { stderr: string }).stderr, /n_embd 100 is not a multiple of n_head 12/);
});
