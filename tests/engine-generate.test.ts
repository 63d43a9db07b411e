// Text generation in the engine with a GPT-2-shaped decoder (GPT-2's real
// tokenizer and config, 2 small layers, seeded weights): greedy results equal
// an in-process one-sequence-at-a-time loop over the same graph, whatever
// the batching; seeded sampling repeats; EOS, max_new_tokens and stop
// strings end sequences; continuous batching joins late requests; the
// admission queue, timeouts, cancel and a crash mid-batch fail only their
// own sequences.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { synthModel } from '../bin/models.js';
import { parseModels } from '../config/models.js';
import { Decoder } from '../engine/decoder.js';
import { Engine, type EngineError } from '../engine/engine.js';
import { ENGINE_WORKER_HOOKS, TEST_HOOK_PREFIX } from './harness/engine-worker-hooks.js';
import { createLogger } from '../pooler/logger.js';
import { GPT2_TOKENIZER } from './harness/fixtures.js';
import { greedyDecode, loadTokenizer } from './harness/greedy.js';

const out = mkdtempSync(path.join(tmpdir(), 'pglynx-gen-'));
synthModel({ src: GPT2_TOKENIZER, out, seed: 3, gpt2: { layers: 2, hidden: 96 } });

const decoder = await Decoder.load(path.join(out, 'onnx', 'model.onnx'), out);
const tokenizer = loadTokenizer(out);

/** The plain loop: one sequence, greedy, no batching. */
const reference = (prompt: string, n: number): Promise<{ ids: number[]; text: string }> => greedyDecode(decoder, tokenizer, prompt, n);

// A copy whose generation_config makes a later greedy token (one not generated before it) the EOS.
// (A random tied-embedding model soon repeats one token; this prompt changes token after three.)
const PROMPT = 'In 1999, the';
const ref = await reference(PROMPT, 24);
const eosAt = ref.ids.findIndex((id, k) => k > 0 && !ref.ids.slice(0, k).includes(id));
const eosDir = path.join(out, 'eos');
mkdirSync(path.join(eosDir, 'onnx'), { recursive: true });
for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(out, f), path.join(eosDir, f));
copyFileSync(path.join(out, 'onnx', 'model.onnx'), path.join(eosDir, 'onnx', 'model.onnx'));
writeFileSync(path.join(eosDir, 'generation_config.json'), JSON.stringify({ eos_token_id: ref.ids[eosAt] }));

const e = await Engine.start(
  parseModels(
    {
      gpt: { path: out, max_batch_size: 4, max_new_tokens: 64 },
      eos: { path: eosDir },
      tight: { path: out, max_batch_size: 1, max_queue: 2, model_timeout_ms: 5000 },
      slow: { path: out, model_timeout_ms: 300 },
      embedder: { builtin: 'hash-384' },
    },
    '/tmp/pgcat.toml',
  ),
  { log: createLogger('silent'), loadBalancing: 'loc', workerHooks: ENGINE_WORKER_HOOKS },
);
t.teardown(async () => {
  await e.close();
  await decoder.release();
  rmSync(out, { recursive: true, force: true });
});

t.test('a GPT-2 config.json makes a text-generation model', async (t) => {
  t.equal(e.task('gpt'), 'text-generation');
  t.equal(e.task('embedder'), 'embedding');
  t.same(e.names(), ['gpt', 'eos', 'tight', 'slow', 'embedder'], 'models in config order, whichever loaded first');
  await t.rejects(e.embed('gpt', ['x']), { code: '42809' });
  await t.rejects(e.generate('embedder', ['x']), { code: '42809' });
  await t.rejects(e.generate('nope', ['x']), { code: '42704' });
});

t.test('greedy equals the one-at-a-time loop, and stops at max_new_tokens', async (t) => {
  const [r] = await e.generate('gpt', [PROMPT], { max_new_tokens: 24 });
  t.equal(r!.text, ref.text);
  t.equal(r!.tokens, 24);
  t.equal(r!.reason, 'length');
  t.equal(r!.promptTokens, tokenizer.encode(PROMPT).ids.length);
  const [capped] = await e.generate('gpt', [PROMPT], { max_new_tokens: 10_000 });
  t.equal(capped!.tokens, 64, 'max_new_tokens is capped by the model setting');
});

t.test('continuous batching: concurrent and late-joining prompts equal running alone', async (t) => {
  const prompts = ['Hello', 'The weather today is', 'ünïcödé and 日本語 — ', 'SELECT * FROM', 'A', 'In 1999, the', 'def main():', 'x'];
  const lengths = [20, 5, 16, 9, 30, 12, 7, 25];
  const expected = await Promise.all(prompts.map((p, i) => reference(p, lengths[i]!)));
  const first = e.generate('gpt', [prompts[0]!], { max_new_tokens: lengths[0] });
  await new Promise((r) => setTimeout(r, 5));
  const rest = prompts.slice(1).map((p, i) => e.generate('gpt', [p], { max_new_tokens: lengths[i + 1] }));
  const got = await Promise.all([first, ...rest]);
  got.forEach(([r], i) => t.equal(r!.text, expected[i]!.text, `prompt ${i}`));
  const many = await e.generate('gpt', prompts, { max_new_tokens: 8 });
  for (let i = 0; i < prompts.length; i++) t.equal(many[i]!.text, (await reference(prompts[i]!, 8)).text, `one call, prompt ${i}`);
  const s = e.stats().filter((x) => x.model === 'gpt');
  t.ok(s.some((x) => x.avgBatchSize > 1.5), `decode steps ran several sequences (avg ${s[0]!.avgBatchSize.toFixed(2)})`);
  t.ok(s.every((x) => x.inFlight <= 4), 'never more than max_batch_size running');
});

t.test('sampling: same seed, same text; temperature, top_k, top_p, repetition_penalty', async (t) => {
  const args = { max_new_tokens: 20, temperature: 0.9, top_p: 0.9, top_k: 50, seed: 7 };
  const [a] = await e.generate('gpt', [PROMPT], args);
  const [b] = await e.generate('gpt', [PROMPT], args);
  t.equal(a!.text, b!.text, 'same seed, same text');
  const batch = await e.generate('gpt', [PROMPT, PROMPT, PROMPT], args);
  t.ok(batch.every((r) => r.text === a!.text), 'same seed batched, same text');
  const [c] = await e.generate('gpt', [PROMPT], { ...args, seed: 8 });
  t.not(c!.text, a!.text, 'another seed, another text');
  const [greedy] = await e.generate('gpt', [PROMPT], { max_new_tokens: 20, temperature: 0 });
  t.equal(greedy!.text, (await reference(PROMPT, 20)).text, 'temperature 0 is greedy');
  const [penalised] = await e.generate('gpt', [PROMPT], { max_new_tokens: 20, repetition_penalty: 5 });
  const ids = tokenizer.encode(penalised!.text).ids;
  t.ok(new Set(ids).size >= ids.length - 2, 'a strong repetition penalty avoids repeats');
  await t.rejects(e.generate('gpt', [PROMPT], { top_p: 2 }), { code: '22023' });
  await t.rejects(e.generate('gpt', [PROMPT], { num_beams: 4 }), { code: '0A000' });
});

t.test('EOS and stop strings end a sequence', async (t) => {
  const [r] = await e.generate('eos', [PROMPT], { max_new_tokens: 20 });
  t.equal(r!.reason, 'eos');
  t.ok(eosAt > 0, `greedy token ${eosAt} is the EOS`);
  t.equal(r!.tokens, eosAt, 'the EOS token is not part of the text');
  t.equal(r!.text, tokenizer.decode(ref.ids.slice(0, eosAt), { skip_special_tokens: true }));
  const stop = tokenizer.decode([ref.ids[eosAt]!], {}).slice(0, 5);
  const [s] = await e.generate('gpt', [PROMPT], { max_new_tokens: 24, stop: ['never there', stop] });
  t.equal(s!.reason, 'stop');
  t.equal(s!.text, ref.text.slice(0, ref.text.indexOf(stop)), `text ends before the stop string ${JSON.stringify(stop)}`);
  t.ok(s!.text.length > 0);
});

t.test('streamed pieces join to the final text (byte-level BPE across tokens)', async (t) => {
  const pieces: string[] = [];
  const [r] = await e.generate('gpt', ['日本語のテキスト'], { max_new_tokens: 30, do_sample: true, seed: 1 }, { onText: (d) => pieces.push(d) });
  t.equal(pieces.join(''), r!.text);
  t.ok(pieces.every((p) => !p.endsWith('\uFFFD') || p === r!.text.slice(-p.length)), 'no piece ends inside a character');
});

t.test('admission: past max_queue 53300 at once; model_timeout_ms 57014; cancel frees the place', async (t) => {
  const running = e.generate('tight', [PROMPT], { max_new_tokens: 200 });
  await new Promise((r) => setTimeout(r, 20));
  const queued = e.generate('tight', [PROMPT, PROMPT], { max_new_tokens: 2 });
  const started = Date.now();
  await t.rejects(e.generate('tight', [PROMPT], { max_new_tokens: 2 }), { code: '53300' });
  t.ok(Date.now() - started < 100, 'refused at once');
  await Promise.all([running, queued]);

  await t.rejects(e.generate('slow', [`${TEST_HOOK_PREFIX}sleep:2000`], { max_new_tokens: 2 }), { code: '57014' });
  const replaced = (): boolean => e.stats().some((s) => s.model === 'slow' && s.loaded && s.restarts === 1);
  while (!replaced()) await new Promise((r) => setTimeout(r, 20));
  t.ok(replaced(), 'the hung worker was replaced');
  const [after] = await e.generate('slow', [PROMPT], { max_new_tokens: 3 });
  t.equal(after!.tokens, 3, 'the slot serves again after a hung step');

  const abort = new AbortController();
  const cancelled = e.generate('tight', [PROMPT], { max_new_tokens: 100_000 }, { signal: abort.signal });
  setTimeout(() => abort.abort(), 30);
  await t.rejects(cancelled, { code: '57014' });
  const [next] = await e.generate('tight', [PROMPT], { max_new_tokens: 3 });
  t.equal(next!.tokens, 3, 'the cancelled sequence left the batch');
});

t.test('a worker crash mid-batch fails the batch, and the slot is replaced', async (t) => {
  const victims = [e.generate('gpt', [PROMPT], { max_new_tokens: 60 }), e.generate('gpt', [`${TEST_HOOK_PREFIX}crash`])];
  await new Promise((r) => setTimeout(r, 1));
  const outcomes = await Promise.allSettled(victims);
  t.ok(
    outcomes.some((o) => o.status === 'rejected' && (o.reason as EngineError).code === 'XX000'),
    'the crashing sequence gets XX000',
  );
  const [r] = await e.generate('gpt', [PROMPT], { max_new_tokens: 5 });
  t.equal(r!.text, (await reference(PROMPT, 5)).text, 'the replacement slot generates');
  t.ok(e.stats().some((s) => s.model === 'gpt' && s.restarts >= 1));
});
