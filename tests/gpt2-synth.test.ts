// `pglynx models synth` on GPT-2's real config and tokenizer: a decoder with
// past_key_values in optimum's naming, and the properties generation relies
// on: decoding with the KV cache gives the logits of recomputing the whole
// sequence, and a batch (padded, masked, with per-sequence positions) gives
// each sequence's logits as if it ran alone, also as sequences join and leave
// the shared KV rows between steps.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { Tokenizer } from '@huggingface/tokenizers';
import { Tensor } from 'onnxruntime-node';
import { parseGpt2Config, synthesizeGpt2 } from '../engine/onnx/gpt2-synth.js';
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

t.test('batched decoding equals unbatched, prefill (left-padded prompts) and decode (left-padded pasts)', async (t) => {
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

t.test('continuous batching on shared KV rows: idle rows, freed rows reused by joiners, and rebuilds keep every sequence as if alone', async (t) => {
  const texts = ['Hi', 'The quick brown fox jumps over the lazy dog', 'Once upon a time', 'Ünïcödé — 日本語 text ✓', 'A', 'In the beginning was the word, and'];
  // Each sequence decodes in the shared batch and, as the reference, alone in its own cache.
  const seqs = texts.map((text) => ({ prompt: encode(text), cache: emptyCache(decoder.shape), solo: emptyCache(decoder.shape), next: -1 }));
  const check = async (t: Test, label: string, which: number[], prefill = false): Promise<void> => {
    const rows = which.map((i) => ({ cache: seqs[i]!.cache, tokens: prefill ? seqs[i]!.prompt : [seqs[i]!.next] }));
    const solo: Float32Array[] = [];
    for (const i of which) solo.push((await decoder.forward([{ cache: seqs[i]!.solo, tokens: prefill ? seqs[i]!.prompt : [seqs[i]!.next] }]))[0]!);
    const batched = await decoder.forward(rows);
    which.forEach((i, k) => {
      t.ok(maxDiff(batched[k]!, solo[k]!) < 1e-4, `${label}, sequence ${i}: ${maxDiff(batched[k]!, solo[k]!).toExponential(2)}`);
      seqs[i]!.next = argmax(solo[k]!);
    });
  };
  await check(t, 'prefill of five', [0, 1, 2, 3, 4], true);
  const shared = seqs[0]!.cache.batch;
  await check(t, 'decode of five', [0, 1, 2, 3, 4]);
  await check(t, 'decode of four, sequence 4 idle', [0, 1, 2, 3]);
  t.equal(seqs[4]!.cache.batch, shared, 'an idle row stays in the batch');
  await check(t, 'the idle sequence decodes again', [0, 1, 2, 3, 4]);
  t.equal(seqs[0]!.cache.batch, shared, 'unchanged batch: no rebuild');
  // Sequence 1 finishes; sequence 5 is prefilled apart and joins into its row.
  const freedRow = seqs[1]!.cache.row;
  decoder.free(seqs[1]!.cache);
  t.equal(seqs[1]!.cache.length, 0);
  await check(t, 'prefill of a joiner', [5], true);
  t.not(seqs[5]!.cache.batch, shared);
  await check(t, 'decode with the joiner', [0, 2, 3, 4, 5]);
  t.equal(seqs[5]!.cache.batch, shared, 'the joiner took the freed row');
  t.equal(seqs[5]!.cache.row, freedRow);
  await check(t, 'decode with the joiner again', [0, 2, 3, 4, 5]);
  // Two of five left: too many idle rows, the batch is rebuilt with the two.
  await check(t, 'decode of two', [2, 5]);
  t.not(seqs[2]!.cache.batch, shared, 'rebuilt');
  t.same(seqs[2]!.cache.batch!.rows.map((c) => c !== null), [true, true, false], 'the two, and a free row for a joiner');
  await check(t, 'the rest, from the old batch and the new one', [0, 2, 3, 4, 5]);
  for (const i of [0, 2, 3, 4, 5]) t.equal(seqs[i]!.cache.length, seqs[i]!.solo.length, `sequence ${i} holds as many tokens as alone`);
});

t.test('steady churn (sequences ending and joining as in a slot): decode steps reuse rows instead of copying every cache', async (t) => {
  let seed = 11;
  const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
  interface Seq { cache: KvCache; next: number; left: number }
  let running: Seq[] = [];
  let decodeSteps = 0;
  let decodeRebuilds = 0;
  let decodeCopies = 0;
  for (let turn = 0; turn < 80; turn++) {
    // As gen-worker: arrivals are prefilled together, then the sequences already running decode as one batch.
    const joining: Seq[] = [];
    for (let k = rand(3); k > 0 && running.length + joining.length < 8; k--) joining.push({ cache: emptyCache(decoder.shape), next: 0, left: 8 + rand(16) });
    if (joining.length > 0) {
      const prompts = joining.map(() => Array.from({ length: 2 + rand(12) }, () => rand(50000)));
      const logits = await decoder.forward(joining.map((s, i) => ({ cache: s.cache, tokens: prompts[i]! })));
      joining.forEach((s, i) => (s.next = argmax(logits[i]!)));
    }
    if (running.length > 0) {
      const before = { ...decoder.layout };
      const logits = await decoder.forward(running.map((s) => ({ cache: s.cache, tokens: [s.next] })));
      decodeSteps++;
      decodeRebuilds += decoder.layout.rebuilds - before.rebuilds;
      decodeCopies += decoder.layout.rowsCopied - before.rowsCopied;
      running.forEach((s, i) => ((s.next = argmax(logits[i]!)), s.left--));
      for (const s of running) if (s.left === 0) decoder.free(s.cache);
      running = running.filter((s) => s.left > 0);
    }
    running.push(...joining);
  }
  const rowSteps = decodeSteps * 8;
  t.ok(decodeSteps > 60, `${decodeSteps} decode steps`);
  t.ok(decodeRebuilds < decodeSteps / 3, `${decodeRebuilds} of ${decodeSteps} decode steps rebuilt their batch`);
  t.ok(decodeCopies < rowSteps / 3, `${decodeCopies} caches copied over ${decodeSteps} steps of up to 8 sequences (copying every cache each step: about ${rowSteps})`);
});

t.test('logits: the last position only from the synthesized graph; an export with every position decodes the same', async (t) => {
  const tokens = encode('The quick brown fox');
  const feeds: Record<string, Tensor> = {
    input_ids: new Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, tokens.length]),
    attention_mask: new Tensor('int64', new BigInt64Array(tokens.length).fill(1n), [1, tokens.length]),
    position_ids: new Tensor('int64', BigInt64Array.from(tokens, (_, i) => BigInt(i)), [1, tokens.length]),
  };
  for (let l = 0; l < decoder.shape.layers; l++) {
    for (const kv of ['key', 'value']) feeds[`past_key_values.${l}.${kv}`] = new Tensor('float32', new Float32Array(0), [1, decoder.shape.kvHeads, 0, decoder.shape.headDim]);
  }
  t.same((await decoder.session.run(feeds))['logits']!.dims, [1, 1, 50257], 'synthesized: [batch, 1, vocab]');
  // The same weights with optimum's [batch, seq, vocab] logits.
  const dir = mkdtempSync(path.join(tmpdir(), 'pglynx-gpt2-all-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  writeFileSync(path.join(dir, 'model.onnx'), synthesizeGpt2(parseGpt2Config(config), 7, { allLogits: true }));
  const exported = await Decoder.load(path.join(dir, 'model.onnx'), dir);
  t.teardown(() => exported.release());
  t.same((await exported.session.run(feeds))['logits']!.dims, [1, tokens.length, 50257], 'export-shaped: [batch, seq, vocab]');
  const prompts = ['Hi', 'The quick brown fox jumps over the lazy dog', 'Once upon a time'].map(encode);
  const mine = prompts.map(() => emptyCache(decoder.shape));
  const theirs = prompts.map(() => emptyCache(exported.shape));
  let a = await decoder.forward(prompts.map((p, i) => ({ cache: mine[i]!, tokens: p })));
  let b = await exported.forward(prompts.map((p, i) => ({ cache: theirs[i]!, tokens: p })));
  for (let step = 0; step < 3; step++) {
    a.forEach((l, i) => t.ok(maxDiff(l, b[i]!) < 1e-4, `step ${step} row ${i}: ${maxDiff(l, b[i]!).toExponential(2)}`));
    const next = a.map(argmax);
    a = await decoder.forward(prompts.map((_, i) => ({ cache: mine[i]!, tokens: [next[i]!] })));
    b = await exported.forward(prompts.map((_, i) => ({ cache: theirs[i]!, tokens: [next[i]!] })));
  }
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
