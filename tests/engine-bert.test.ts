// A MiniLM-shaped model (the real all-MiniLM-L6-v2 tokenizer and config,
// a graph with seeded random weights from `pglynx models synth`) through
// the engine: the Hugging Face loading path, real tokenization with
// truncation, mean / CLS pooling, batching equal to one at a time, and
// 1,000 concurrent callers on 2 instances.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseModels } from '../config/models.js';
import { Engine } from '../engine/engine.js';
import { createLogger } from '../pooler/logger.js';
import { REPO_ROOT } from './harness/pglynx.js';
import { MINILM_TOKENIZER } from './harness/fixtures.js';

const MINILM = MINILM_TOKENIZER;
const out = mkdtempSync(path.join(tmpdir(), 'pglynx-minilm-'));

// The CLI as a user runs it (without tap's loaders in the environment).
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('TAP') && !k.startsWith('TS_NODE_')));
await promisify(execFile)(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'bin', 'pglynx.ts'), 'models', 'synth', MINILM, out], {
  cwd: REPO_ROOT,
  env,
  timeout: 120_000,
});
const synthesized = existsSync(path.join(out, 'onnx', 'model.onnx'));

const e = await Engine.start(
  parseModels(
    {
      minilm: { path: out, instances: 2, cache_mb: 0, max_batch_size: 16 },
      short: { path: out, max_tokens: 16, cache_mb: 0 },
      cls: { path: out, pooling: 'cls', cache_mb: 0 },
    },
    '/tmp/pgcat.toml',
  ),
  { log: createLogger('silent'), loadBalancing: 'loc' },
);
// Registered after the set-up: a root test with a teardown ends itself once it looks idle.
t.teardown(async () => {
  await e.close();
  rmSync(out, { recursive: true, force: true });
});

const norm = (v: Float32Array): number => Math.hypot(...v);
function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

t.test('loads and embeds: 384 dims, normalised', async (tt) => {
  tt.ok(synthesized, 'pglynx models synth wrote onnx/model.onnx');
  tt.equal(e.dims('minilm'), 384);
  const [v] = await e.embed('minilm', ['PgLynx pools Postgres connections.']);
  tt.equal(v!.length, 384);
  tt.ok(Math.abs(norm(v!) - 1) < 1e-5, `normalised (${norm(v!)})`);
  tt.ok(v!.some((x) => x !== 0), 'not a zero vector');
});

t.test('batched results equal unbatched ones (padding is masked out)', async (tt) => {
  const texts = Array.from({ length: 24 }, (_, i) => `${'token '.repeat(i * 3)}sentence number ${i}, with punctuation!`);
  const alone: Float32Array[] = [];
  for (const text of texts) alone.push((await e.embed('minilm', [text]))[0]!);
  const together = await e.embed('minilm', texts);
  let worst = 0;
  texts.forEach((_, i) => (worst = Math.max(worst, maxDiff(alone[i]!, together[i]!))));
  tt.ok(worst <= 1e-5, `max difference ${worst}`);
  tt.ok(e.stats().some((s) => s.model === 'minilm' && s.avgBatchSize > 1), 'some batches held several inputs');
});

t.test('truncation to max_tokens, and pooling', async (tt) => {
  // [CLS] + 14 x "hello" + [SEP] = 16 tokens: longer inputs embed the same.
  const [long, fits] = await e.embed('short', ['hello '.repeat(300), 'hello '.repeat(14)]);
  tt.ok(maxDiff(long!, fits!) < 1e-6, 'the long input was truncated to 16 tokens');
  const [fewer] = await e.embed('short', ['hello '.repeat(13)]);
  tt.ok(maxDiff(fewer!, fits!) > 1e-6, 'below the limit, length still counts');
  const [veryLong] = await e.embed('minilm', ['word '.repeat(2000)]);
  tt.equal(veryLong!.length, 384, 'inputs past 512 tokens are truncated, not refused');

  const [mean] = await e.embed('minilm', ['pooling differs']);
  const [cls] = await e.embed('cls', ['pooling differs']);
  tt.ok(Math.abs(norm(cls!) - 1) < 1e-5, 'CLS pooling is normalised too');
  tt.ok(maxDiff(mean!, cls!) > 1e-3, 'CLS and mean pooling differ');
});

t.test('1,000 concurrent callers share 2 instances', async (tt) => {
  const texts = Array.from({ length: 1000 }, (_, i) => `client ${i} asks for an embedding`);
  const before = e.stats().filter((s) => s.model === 'minilm').map((s) => s.calls);
  const results = await Promise.all(texts.map((text) => e.embed('minilm', [text])));
  tt.equal(results.length, 1000);
  tt.ok(results.every(([v]) => v!.length === 384), 'every caller got its vector');
  const stats = e.stats().filter((s) => s.model === 'minilm');
  tt.equal(stats.length, 2, 'still 2 instances: memory is per instance, not per client');
  const share = stats.map((s, i) => s.calls - before[i]!);
  tt.ok(share.every((n) => n > 200), `both instances worked (${share.join(' / ')})`);
  tt.ok(stats.every((s) => s.avgBatchSize > 1), `batches formed (${stats.map((s) => s.avgBatchSize.toFixed(1)).join(' / ')})`);
});
