// The model engine on its own (no Postgres): the builtin hash-384 model in
// real piscina worker threads running onnxruntime-node. Batching equals
// unbatched, the cache, admission (53300), timeouts (57014), crash and hang
// isolation, and the load-balancing modes across instances.
//
// Misbehaving workers come from the hidden test inputs of
// tests/harness/engine-worker-hooks.ts, passed to every engine below.
import t, { type Test } from 'tap';
import { sleep } from './harness/wait.js';
import { parseModels } from '../config/models.js';
import { Engine, EngineError } from '../engine/engine.js';
import { ENGINE_WORKER_HOOKS, TEST_HOOK_PREFIX } from './harness/engine-worker-hooks.js';
import { createLogger } from '../pooler/logger.js';

const log = createLogger('silent');
const hook = (h: string): string => TEST_HOOK_PREFIX + h;

async function engine(tt: Test, models: Record<string, Record<string, unknown>>, loadBalancing?: 'random' | 'loc' | 'round_robin'): Promise<Engine> {
  const e = await Engine.start(parseModels(models, '/tmp/pgcat.toml'), { log, loadBalancing, workerHooks: ENGINE_WORKER_HOOKS });
  tt.teardown(() => e.close());
  return e;
}

/** The EngineError a promise rejects with (fails the test if it resolves). */
async function failure(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof EngineError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

const dot = (a: Float32Array, b: Float32Array): number => a.reduce((s, x, i) => s + x * b[i]!, 0);

t.test('hash-384: 384 normalised dims, deterministic, one vector per input in order', async (tt) => {
  const e = await engine(tt, { lexical: { builtin: 'hash-384', cache_mb: 0 } });
  tt.ok(e.has('lexical'));
  tt.notOk(e.has('nope'));
  tt.equal(e.dims('lexical'), 384);
  const [a, b, c] = await e.embed('lexical', ['the quick brown fox', 'a quick brown dog', 'postgres pooler']);
  tt.equal(a!.length, 384);
  tt.ok(Math.abs(Math.hypot(...a!) - 1) < 1e-5, 'L2-normalised');
  tt.ok(dot(a!, b!) > dot(a!, c!), 'shared words are closer');
  const [again] = await e.embed('lexical', ['the quick brown fox']);
  tt.equal(maxDiff(a!, again!), 0, 'deterministic');
  const [empty] = await e.embed('lexical', ['']);
  tt.equal(empty!.length, 384, 'empty text gives a vector too');
  tt.same(await e.embed('lexical', []), [], 'no inputs, no vectors');

  const err = await failure(e.embed('nope', ['x']));
  tt.equal(err.code, '42704');
  tt.match(err.message, /model "nope" does not exist; configured models: lexical/);
});

t.test('batched results equal unbatched ones', async (tt) => {
  const e = await engine(tt, { m: { builtin: 'hash-384', cache_mb: 0, max_batch_size: 16, max_batch_delay_ms: 20 } });
  const texts = Array.from({ length: 48 }, (_, i) => `document ${i} ${'about pooling '.repeat(i % 7)} and models ${i * 7}`);
  const alone: Float32Array[] = [];
  for (const text of texts) alone.push((await e.embed('m', [text]))[0]!);
  const before = e.stats()[0]!;
  tt.equal(before.avgBatchSize, 1, 'one at a time: batches of one');
  // Concurrent single calls form batches; so does one call with many inputs.
  const concurrent = await Promise.all(texts.map((text) => e.embed('m', [text]).then((v) => v[0]!)));
  const many = await e.embed('m', texts);
  const s = e.stats()[0]!;
  const batchesSince = s.batches - before.batches;
  tt.ok(batchesSince <= 10, `96 inputs ran in ${batchesSince} batches (max_batch_size 16)`);
  tt.ok(s.avgBatchSize > 1.5, `average batch size ${s.avgBatchSize.toFixed(2)}`);
  let worst = 0;
  texts.forEach((_, i) => (worst = Math.max(worst, maxDiff(alone[i]!, concurrent[i]!), maxDiff(alone[i]!, many[i]!))));
  tt.ok(worst <= 1e-5, `batched equals unbatched within 1e-5 (max diff ${worst})`);
});

t.test('embedding cache: hits and misses, LRU, callers own their arrays', async (tt) => {
  const e = await engine(tt, { m: { builtin: 'hash-384', cache_mb: 1 } });
  const [first] = await e.embed('m', ['cached text']);
  const copy = first!.slice();
  first!.fill(0); // the caller's array is its own
  const [second] = await e.embed('m', ['cached text']);
  tt.equal(maxDiff(second!, copy), 0, 'a hit returns the original vector');
  let s = e.stats()[0]!;
  tt.equal(s.cacheMisses, 1);
  tt.equal(s.cacheHits, 1);
  tt.equal(s.cacheHitRate, 0.5);
  tt.equal(s.calls, 1, 'the hit never reached a worker');
  // 1 MB holds about 600 vectors of 384 floats: 2,000 inputs evict the oldest.
  const texts = Array.from({ length: 2000 }, (_, i) => `t${i}`);
  for (let i = 0; i < texts.length; i += 100) await e.embed('m', texts.slice(i, i + 100));
  s = e.stats()[0]!;
  tt.ok(s.cacheBytes <= 1024 * 1024, `bounded: ${s.cacheBytes} bytes, ${s.cacheEntries} entries`);
  tt.ok(s.cacheEntries > 400 && s.cacheEntries < 2000, 'evicted down to the bound');
  const hitsBefore = s.cacheHits;
  await e.embed('m', ['t1999']);
  tt.equal(e.stats()[0]!.cacheHits, hitsBefore + 1, 'the newest entries are kept');
  await e.embed('m', ['t0']);
  tt.equal(e.stats()[0]!.cacheHits, hitsBefore + 1, 'the oldest were evicted');

  const off = await engine(tt, { m: { builtin: 'hash-384', cache_mb: 0 } });
  await off.embed('m', ['x']);
  await off.embed('m', ['x']);
  tt.equal(off.stats()[0]!.cacheHits, 0, 'cache_mb = 0 disables the cache');
  tt.equal(off.stats()[0]!.calls, 2);
});

t.test('a full admission queue fails at once with 53300', async (tt) => {
  const e = await engine(tt, { m: { builtin: 'hash-384', cache_mb: 0, max_queue: 4, max_batch_size: 1, max_batch_delay_ms: 0 } });
  const busy = e.embed('m', [hook('sleep:600')]); // holds the only worker
  await sleep(50);
  const queued = [1, 2, 3, 4].map((i) => e.embed('m', [`q${i}`]));
  const started = Date.now();
  const err = await failure(e.embed('m', ['one too many']));
  tt.equal(err.code, '53300');
  tt.match(err.message, /model "m" is too busy: 4 inputs are already waiting \(max_queue 4\)/);
  tt.ok(Date.now() - started < 100, 'rejected at once, not after waiting');
  tt.equal(e.stats()[0]!.queueDepth, 4, 'SHOW MODELS sees the queue');
  const tooMany = await failure(e.embed('m', ['a', 'b', 'c', 'd', 'e']));
  tt.equal(tooMany.code, '54000', 'more inputs in one call than max_queue can ever hold');
  tt.equal((await Promise.all([busy, ...queued])).length, 5, 'the admitted calls all complete');
  tt.equal((await e.embed('m', ['later'])).length, 1, 'and the model takes calls again');
});

t.test('timeouts: 57014 for a hung batch and for waiting; the hung worker is replaced', async (tt) => {
  const e = await engine(tt, { m: { builtin: 'hash-384', cache_mb: 0, model_timeout_ms: 400, max_batch_size: 1, max_batch_delay_ms: 0 } });
  const started = Date.now();
  const hung = failure(e.embed('m', [hook('hang')]));
  await sleep(50);
  const waiting = failure(e.embed('m', ['behind the hung one']));
  const h = await hung;
  tt.equal(h.code, '57014');
  tt.match(h.message, /model "m": no result within model_timeout_ms \(400 ms\), while its batch was running/);
  const elapsed = Date.now() - started;
  tt.ok(elapsed >= 390 && elapsed < 2000, `failed after ${elapsed} ms`);
  const w = await waiting;
  tt.equal(w.code, '57014');
  // Where its time ran out depends on how fast the replacement loaded.
  tt.match(w.message, /no result within model_timeout_ms \(400 ms\), (waiting for a free instance|while its batch was running)/);
  // The watchdog terminated the spinning thread; piscina started another and it loads the model.
  for (let i = 0; i < 100 && !e.stats()[0]!.loaded; i++) await sleep(100);
  const s = e.stats()[0]!;
  tt.equal(s.restarts, 1, 'the hung worker was replaced');
  tt.ok(s.loaded, 'the replacement loaded the model');
  tt.equal(s.errors, 2);
  tt.equal((await e.embed('m', ['works again']))[0]!.length, 384);
});

t.test('a call still queued after model_timeout_ms fails with 57014; the healthy worker stays', async (tt) => {
  const e = await engine(tt, { m: { builtin: 'hash-384', cache_mb: 0, model_timeout_ms: 500, max_batch_size: 1, max_batch_delay_ms: 0 } });
  // Two slow batches back to back: the third call is still queued at 500 ms.
  const a = e.embed('m', [hook('sleep:300')]);
  const b = failure(e.embed('m', [hook('sleep:300')]));
  const c = failure(e.embed('m', ['third in line']));
  tt.equal((await a).length, 1, 'the first call finished in time');
  const [eb, ec] = await Promise.all([b, c]);
  tt.equal(ec.code, '57014');
  tt.match(ec.message, /no result within model_timeout_ms \(500 ms\), waiting for a free instance/);
  tt.equal(eb.code, '57014');
  tt.match(eb.message, /while its batch was running/);
  await sleep(200);
  const s = e.stats()[0]!;
  tt.equal(s.restarts, 0, 'no batch ran past the timeout: no worker was replaced');
  tt.equal(s.errors, 2);
  tt.equal(s.queueDepth, 0, 'the timed-out call left the queue');
});

t.test('a crashing worker fails only its own callers and is replaced', async (tt) => {
  const e = await engine(tt, { m: { builtin: 'hash-384', instances: 2, cache_mb: 0, max_batch_size: 1, max_batch_delay_ms: 0 } }, 'round_robin');
  const texts = Array.from({ length: 40 }, (_, i) => `client ${i}`);
  const crash = failure(e.embed('m', [hook('crash')]));
  const others = Promise.allSettled(texts.map((text) => e.embed('m', [text])));
  const err = await crash;
  tt.equal(err.code, 'XX000');
  tt.match(err.message, /model "m" instance \d: worker thread crashed \(worker exited with code: 70\); it is being replaced/);
  const results = await others;
  tt.same(results.filter((r) => r.status === 'rejected'), [], 'every other caller got its vector');
  for (let i = 0; i < 100 && !e.stats().every((s) => s.loaded); i++) await sleep(100);
  const stats = e.stats();
  tt.same(stats.map((s) => s.loaded), [true, true], 'both instances serve again');
  tt.equal(stats.reduce((n, s) => n + s.restarts, 0), 1, 'one restart');
  tt.equal(stats.reduce((n, s) => n + s.errors, 0), 1, 'one error');
  tt.equal((await e.embed('m', ['after the crash']))[0]!.length, 384);

  // A batch that fails inside a healthy worker: an error, no restart.
  const failed = await failure(e.embed('m', [hook('fail')]));
  tt.equal(failed.code, 'XX000');
  tt.match(failed.message, /failed to embed a batch of 1: test hook: this batch fails/);
  tt.equal(e.stats().reduce((n, s) => n + s.restarts, 0), 1, 'the worker survived');
});

t.test('load balancing across 2 instances: round_robin, random, loc', async (tt) => {
  const e = await engine(tt, { m: { builtin: 'hash-384', instances: 2, cache_mb: 0, max_batch_delay_ms: 0 } });
  const calls = (): number[] => e.stats().map((s) => s.calls);
  for (let i = 0; i < 40; i++) await e.embed('m', [`rr ${i}`], { loadBalancing: 'round_robin' });
  tt.same(calls(), [20, 20], 'round_robin alternates');

  for (let i = 0; i < 200; i++) await e.embed('m', [`random ${i}`], { loadBalancing: 'random' });
  const [r0, r1] = calls().map((n) => n - 20);
  tt.equal(r0! + r1!, 200);
  tt.ok(r0! > 60 && r1! > 60, `random spreads (${r0} / ${r1})`);

  // loc: a busy instance (a slow batch) gets nothing more while the other is free.
  const base = calls();
  const slow = e.embed('m', [hook('sleep:2000')], { loadBalancing: 'loc' });
  await sleep(30);
  const busyIndex = e.stats().findIndex((s) => s.inFlight === 1);
  tt.not(busyIndex, -1, 'one instance runs the slow batch');
  for (let i = 0; i < 20; i++) await e.embed('m', [`loc ${i}`], { loadBalancing: 'loc' });
  await slow;
  const delta = calls().map((n, i) => n - base[i]!);
  tt.equal(delta[busyIndex], 1, 'the busy instance only ran the slow call');
  tt.equal(delta[1 - busyIndex], 20, 'the free instance took the rest');
});

t.test('close: queued calls fail with 57P01, later calls too', async (tt) => {
  const e = await Engine.start(parseModels({ m: { builtin: 'hash-384', max_batch_size: 1 } }, '/tmp/pgcat.toml'), { log, workerHooks: ENGINE_WORKER_HOOKS });
  const slow = failure(e.embed('m', [hook('sleep:2000')]));
  await sleep(50);
  const queued = failure(e.embed('m', ['queued']));
  await e.close();
  tt.equal((await slow).code, '57P01');
  tt.equal((await queued).code, '57P01');
  tt.equal((await failure(e.embed('m', ['x']))).code, '57P01');
});
