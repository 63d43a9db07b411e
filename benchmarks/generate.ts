// PgLynx text-generation benchmark (issue 13): generated tokens per second
// through PgLynx over SQL (pgml.transform, max_new_tokens 32, prompts of
// varied length) with 1, 4, 16 and 64 concurrent clients, against the same
// model called in-process one sequence at a time (engine/decoder.ts's
// forward pass in a plain greedy loop, no batching); time to first token and
// inter-token latency p50/p99; the pooler's RSS with 10 and 1,000 connected
// idle clients. Everything runs side by side in one run.
//
// Not part of CI: it takes minutes, needs the Postgres 15 binaries (as the
// test harness does), and its numbers depend on the machine.
//
// Usage:  node --import tsx benchmarks/generate.ts
// Env:    LAYERS          blocks of the synthesized GPT-2-small-shaped model (default 12; 2 for a smoke run)
//         CLIENTS         concurrent SQL client counts (default "1 4 16 64")
//         REQUESTS        generations per client at each count (default 3; at least MIN_REQUESTS in all)
//         MIN_REQUESTS    generations per count at least (default 4)
//         MAX_NEW_TOKENS  per generation (default 32)
//         BASELINE        prompts generated in-process one at a time (default 6)
//         THREADS         intra_op_threads of the slot and of the in-process baseline (default 1)
//         MAX_BATCH       the slot's max_batch_size (default 64)
//         STAGGER         1: client i of N sends its first query i/N of one generation's expected time at N
//                         sequences per step (MAX_NEW_TOKENS x the diagnostic's decode step at batch N) after
//                         the first, so arrivals are spread as in a steady state; 0: all at once (default 1)
//         SPREAD_MS       with STAGGER=1, spread the first queries over this many ms instead of that estimate
//         STREAM          auto | 0: measure TTFT / ITL at the client from pgml.transform_stream rows when the
//                         pooler has it (auto), else from SHOW MODELS (default auto)
//         RSS_CLIENTS     connected idle clients for RSS (default "10 1000")
//         STEP_DIAGNOSTIC 1: time one in-process Decoder.forward decode step over 1 and each CLIENTS count of
//                         sequences at once (default 1)
//         SEED            prompt seed (default 1)
//
// Each client count gets a fresh pooler (the model loaded anew, SHOW MODELS'
// windows empty), one warm-up generation, then the measured run. The report
// goes to stdout and benchmarks/results/generate-<date>-<time>.md; progress
// to stderr. Temp dirs are removed on exit.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Tokenizer } from '@huggingface/tokenizers';
import { MODEL_DEFAULTS } from '../config/models.js';
import { Decoder, emptyCache } from '../engine/decoder.js';
import { mulberry32 } from '../engine/onnx/bert-synth.js';
import { argmax } from '../engine/sampling.js';
import { modelFiles, sessionOptions } from '../engine/runtime.js';
import { GPT2_TOKENIZER } from '../tests/harness/fixtures.js';
import { configToml } from '../tests/harness/pglynx.js';
import { startPostgres } from '../tests/harness/postgres.js';
import { buildPglynx, connectClients, endAll, freePort, machineBusy, procStatus, processCpu, showModels, startPooler, type PoolerProcess, benchWorkspace } from './lib/pglynx-process.js';
import { cpuIdleFraction, fmt, median, sh, sleep, writeReport } from './lib/report.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const env = (k: string, d: string): string => process.env[k] ?? d;
const list = (k: string, d: string): number[] => env(k, d).split(/\s+/).filter(Boolean).map(Number);
const LAYERS = Number(env('LAYERS', '12'));
const CLIENTS = list('CLIENTS', '1 4 16 64');
const REQUESTS = Number(env('REQUESTS', '3'));
const MIN_REQUESTS = Number(env('MIN_REQUESTS', '4'));
const MAX_NEW = Number(env('MAX_NEW_TOKENS', '32'));
const BASELINE = Number(env('BASELINE', '6'));
const THREADS = Number(env('THREADS', '1'));
const MAX_BATCH = Number(env('MAX_BATCH', '64'));
const STREAM = env('STREAM', 'auto');
const STAGGER = env('STAGGER', '1') === '1';
const SPREAD_MS = process.env['SPREAD_MS'] === undefined ? null : Number(process.env['SPREAD_MS']);
const STEP_DIAGNOSTIC = env('STEP_DIAGNOSTIC', '1') === '1';
const RSS_CLIENTS = list('RSS_CLIENTS', '10 1000');
const SEED = Number(env('SEED', '1'));
const LOGIN = { user: 'bench', password: 'benchpw', database: 'bench' };
const TASK = '{"task": "text-generation", "model": "gpt"}';
const ARGS = JSON.stringify({ max_new_tokens: MAX_NEW });
const TRANSFORM = `SELECT pgml.transform(task => '${TASK}'::jsonb, inputs => ARRAY[$1::text], args => '${ARGS}'::jsonb)`;
const STREAM_SQL = `SELECT * FROM pgml.transform_stream(task => '${TASK}'::jsonb, input => $1::text, args => '${ARGS}'::jsonb)`;

const log = (msg: string): void => void process.stderr.write(`[generate.ts ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const { work: WORK, children } = benchWorkspace('pglynx-generate-bench-', log);

const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};

// ------------------------------------------------------------------ model and prompts

const started = new Date();
const idleBefore = await cpuIdleFraction(2000);
const loadBefore = os.loadavg();
const modelDir = path.join(WORK, 'gpt2');
const synthArgs = ['--import', 'tsx', path.join(REPO, 'bin', 'pglynx.ts'), 'models', 'synth', GPT2_TOKENIZER, modelDir, '--layers', String(LAYERS)];
log(`synthesizing the GPT-2-small-shaped model (${LAYERS} layers)`);
const synthOut = execFileSync(process.execPath, synthArgs, { cwd: REPO, encoding: 'utf8' }).trim();
const tokenizer = new Tokenizer(JSON.parse(readFileSync(path.join(modelDir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>, {});

/** 256 prompts of 4-48 words (seeded), from GPT-2's whole-word vocabulary. */
const prompts = ((): string[] => {
  const { vocab } = (JSON.parse(readFileSync(path.join(modelDir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } }).model;
  const words = Object.keys(vocab).filter((w) => /^Ġ[a-z]{3,10}$/.test(w)).map((w) => w.slice(1));
  const rand = mulberry32(SEED);
  return Array.from({ length: 256 }, () => {
    const ws = Array.from({ length: 4 + Math.floor(rand() * 45) }, () => words[Math.floor(rand() * words.length)]!);
    return ws.join(' ').replace(/^./, (c) => c.toUpperCase());
  });
})();
const promptTokens = (ps: string[]): number[] => ps.map((p) => tokenizer.encode(p).ids.length);

// ------------------------------------------------------------------ in-process, one sequence at a time

interface Baseline {
  tokens: number;
  seconds: number;
  prefillMs: number[];
  decodeMs: number[];
}

async function inProcess(ps: string[]): Promise<Baseline> {
  const { onnx, dir } = await modelFiles(modelDir);
  const decoder = await Decoder.load(onnx, dir, sessionOptions({ ...MODEL_DEFAULTS, path: modelDir, builtin: null, intra_op_threads: THREADS }));
  const generate = async (prompt: string, into: Baseline | null): Promise<number> => {
    const cache = emptyCache(decoder.shape);
    let t = performance.now();
    let logits = (await decoder.forward([{ cache, tokens: tokenizer.encode(prompt).ids }]))[0]!;
    into?.prefillMs.push(performance.now() - t);
    let tokens = 1;
    for (let next = argmax(logits); tokens < MAX_NEW && !decoder.shape.eosTokenIds.includes(next); next = argmax(logits)) {
      t = performance.now();
      logits = (await decoder.forward([{ cache, tokens: [next] }]))[0]!;
      into?.decodeMs.push(performance.now() - t);
      tokens++;
    }
    return tokens;
  };
  await generate(prompts[prompts.length - 1]!, null); // warm-up
  const out: Baseline = { tokens: 0, seconds: 0, prefillMs: [], decodeMs: [] };
  const t0 = performance.now();
  for (const p of ps) out.tokens += await generate(p, out);
  out.seconds = (performance.now() - t0) / 1000;
  await decoder.release();
  return out;
}

/**
 * Diagnostic: one decode step of Decoder.forward over B sequences at once (each
 * prefilled alone first, so the step sees real caches), median of 5 steps: the
 * most batching can give with this model and decoder.ts, before any scheduling.
 */
async function batchedStep(sizes: number[]): Promise<Map<number, number>> {
  const { onnx, dir } = await modelFiles(modelDir);
  const decoder = await Decoder.load(onnx, dir, sessionOptions({ ...MODEL_DEFAULTS, path: modelDir, builtin: null, intra_op_threads: THREADS }));
  const out = new Map<number, number>();
  for (const b of sizes) {
    const rows = [];
    for (let i = 0; i < b; i++) {
      const cache = emptyCache(decoder.shape);
      const logits = (await decoder.forward([{ cache, tokens: tokenizer.encode(prompts[i % prompts.length]!).ids }]))[0]!;
      rows.push({ cache, tokens: [argmax(logits)] });
    }
    const steps: number[] = [];
    for (let k = 0; k < 5; k++) {
      const t = performance.now();
      const logits = await decoder.forward(rows);
      steps.push(performance.now() - t);
      rows.forEach((r, i) => (r.tokens = [argmax(logits[i]!)]));
    }
    out.set(b, median(steps));
    log(`in-process decode step at batch ${b}: ${fmt(median(steps), 1)} ms`);
  }
  await decoder.release();
  return out;
}

log(`in-process baseline: ${BASELINE} prompts, one sequence at a time`);
const baselinePrompts = prompts.slice(0, BASELINE);
// Run before and again after the SQL runs; the faster run is the reference (the one less slowed by other work on the machine).
const baselineRuns: Baseline[] = [await inProcess(baselinePrompts)];
log(`baseline ${fmt(baselineRuns[0]!.tokens / baselineRuns[0]!.seconds)} tokens/s, prefill median ${fmt(median(baselineRuns[0]!.prefillMs))} ms`);
const generationMs = (baselineRuns[0]!.seconds * 1000) / BASELINE;
const stepMs = STEP_DIAGNOSTIC ? await batchedStep([1, ...CLIENTS.filter((n) => n > 1)]) : new Map<number, number>();
/** How long client N-1's first query waits after client 0's. */
const spreadMs = (n: number): number => (!STAGGER ? 0 : SPREAD_MS ?? (stepMs.has(n) ? MAX_NEW * stepMs.get(n)! : generationMs));

// ------------------------------------------------------------------ through PgLynx

log('compiling PgLynx into a temp dir');
const build = buildPglynx(REPO, WORK);
log('starting Postgres 15');
const cluster = await startPostgres({ auth: 'md5', users: [{ name: LOGIN.user, password: LOGIN.password }] });
const pgVersion = (await cluster.query<{ v: string }>('SELECT version() AS v'))[0]!.v;

const poolerToml = (port: number): string =>
  configToml({
    port,
    general: { admin_username: 'admin', admin_password: 'admin' },
    pools: {
      [LOGIN.database]: {
        pool_mode: 'transaction',
        users: [{ username: LOGIN.user, password: LOGIN.password, pool_size: 10 }],
        shards: [{ database: 'postgres', servers: [['127.0.0.1', cluster.port, 'primary']] }],
      },
    },
    extra: {
      models: {
        gpt: { path: modelDir, instances: 1, intra_op_threads: THREADS, max_batch_size: MAX_BATCH, max_new_tokens: MAX_NEW, kv_cache_mb: 4096, max_queue: 4096, model_timeout_ms: 600_000 },
      },
    },
  });

async function pooler(): Promise<PoolerProcess> {
  const port = await freePort();
  return startPooler(build.entry, WORK, port, poolerToml(port), children);
}

/** Runs one generation; with streaming, the client-side arrival times of its rows (ms since the query was sent). */
function runOne(c: pg.Client, prompt: string, stream: boolean): Promise<number[]> {
  if (!stream) return c.query(TRANSFORM, [prompt]).then(() => []);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const rows: number[] = [];
    const q = new pg.Query({ text: STREAM_SQL, values: [prompt] });
    q.on('row', () => rows.push(performance.now() - t0));
    q.on('end', () => resolve(rows));
    q.on('error', reject);
    void c.query(q);
  });
}

interface Level {
  clients: number;
  requests: number;
  seconds: number;
  tokens: number;
  /** Tokens/s while all N clients had a generation in flight: from the last client's first query to the first client's last result. */
  steadyRate: number;
  steadySeconds: number;
  promptTokensMean: number;
  show: Record<string, string | null>;
  clientTtft: number[];
  clientItl: number[];
  poolerCpu: number;
  machineCpu: number;
}

let streaming = false;
if (STREAM === 'auto') {
  const p = await pooler();
  const [c] = await connectClients(p.port, LOGIN, 1);
  streaming = await runOne(c!, 'Hello', true).then(
    (rows) => rows.length > 0,
    (err: Error) => (log(`no pgml.transform_stream (${err.message}); TTFT and ITL from SHOW MODELS`), false),
  );
  await endAll([c!]);
  await p.stop();
}

const levels: Level[] = [];
let rssPooler: PoolerProcess | null = null;
for (const n of CLIENTS) {
  log(`${n} client(s): starting a fresh pooler`);
  const p = await pooler();
  const clients = await connectClients(p.port, LOGIN, n);
  await runOne(clients[0]!, prompts[prompts.length - 1]!, streaming); // warm-up
  const perClient = Math.max(REQUESTS, Math.ceil(MIN_REQUESTS / n));
  const before = (await showModels(p.port))[0]!;
  const cpu0 = processCpu(p.pid);
  const m0 = machineBusy();
  const clientTtft: number[] = [];
  const clientItl: number[] = [];
  const used: string[] = [];
  const snapshot = async (): Promise<{ at: number; tokens: number }> => {
    const at = performance.now();
    return { at, tokens: Number((await showModels(p.port))[0]!['tokens']) };
  };
  let active = 0;
  let steadyFrom: Promise<{ at: number; tokens: number }> | null = null;
  let steadyTo: Promise<{ at: number; tokens: number }> | null = null;
  const t0 = performance.now();
  await Promise.all(
    clients.map(async (c, i) => {
      await sleep((i / n) * spreadMs(n));
      for (let r = 0; r < perClient; r++) {
        const prompt = prompts[(r * n + i) % prompts.length]!;
        used.push(prompt);
        const pending = runOne(c, prompt, streaming);
        if (r === 0 && ++active === n) steadyFrom = snapshot();
        const rows = await pending;
        if (rows.length > 0) clientTtft.push(rows[0]!);
        for (let k = 1; k < rows.length; k++) clientItl.push(rows[k]! - rows[k - 1]!);
      }
      steadyTo ??= snapshot();
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const [from, to] = [await steadyFrom!, await steadyTo!];
  const steadySeconds = (to.at - from.at) / 1000;
  const show = (await showModels(p.port))[0]!;
  const tokens = Number(show['tokens']) - Number(before['tokens']);
  const lengths = promptTokens(used);
  levels.push({
    clients: n,
    requests: used.length,
    seconds,
    tokens,
    steadySeconds,
    steadyRate: steadySeconds > 0 ? (to.tokens - from.tokens) / steadySeconds : NaN,
    promptTokensMean: lengths.reduce((s, x) => s + x, 0) / lengths.length,
    show,
    clientTtft,
    clientItl,
    poolerCpu: processCpu(p.pid) - cpu0,
    machineCpu: machineBusy() - m0,
  });
  log(`${n} client(s): ${fmt(tokens / seconds)} tokens/s over the run (${tokens} tokens, ${fmt(seconds, 1)} s), ${fmt(levels[levels.length - 1]!.steadyRate)} steady, ttft p50 ${show['ttft_p50_us']} us`);
  await endAll(clients);
  if (n === CLIENTS[CLIENTS.length - 1]) rssPooler = p;
  else await p.stop();
}

// RSS with idle clients, on the last pooler (model loaded, its generation runs done).
const rss: { clients: number; status: Record<string, number> }[] = [];
if (rssPooler) {
  const held: pg.Client[] = [];
  for (const n of RSS_CLIENTS) {
    const fresh = await connectClients(rssPooler.port, LOGIN, n - held.length);
    await Promise.all(fresh.map((c) => c.query('SELECT 1')));
    held.push(...fresh);
    await sleep(3000);
    rss.push({ clients: n, status: procStatus(rssPooler.pid) });
    log(`RSS with ${n} clients: ${fmt(rss[rss.length - 1]!.status.VmRSS! / 1024)} MiB`);
  }
  await endAll(held);
  await rssPooler.stop();
}
await cluster.stop();
log('in-process baseline again');
baselineRuns.push(await inProcess(baselinePrompts));
const baseline = [...baselineRuns].sort((a, b) => b.tokens / b.seconds - a.tokens / a.seconds)[0]!;
const baseRate = baseline.tokens / baseline.seconds;
const prefillMedian = median(baseline.prefillMs);

// ------------------------------------------------------------------ report

const report: string[] = [];
const emit = (line = ''): void => void report.push(line);
const ms = (us: string | null | undefined): string => (us == null ? 'n/a' : fmt(Number(us) / 1000, 1));
const ratio = (x: number, ref: number): string => (ref > 0 && Number.isFinite(x) ? `${fmt(x / ref, 2)}x` : 'n/a');
const commit = sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']);
const dirty = sh('git', ['-C', REPO, 'status', '--porcelain']).length > 0;
const cpuModel = (/model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown').trim();
const idleAfter = await cpuIdleFraction(1000);
const pkgVersion = (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const baseTokensMean = promptTokens(baselinePrompts).reduce((s, x) => s + x, 0) / BASELINE;
const setEnv = ['LAYERS', 'CLIENTS', 'REQUESTS', 'MIN_REQUESTS', 'MAX_NEW_TOKENS', 'BASELINE', 'THREADS', 'MAX_BATCH', 'STAGGER', 'SPREAD_MS', 'STEP_DIAGNOSTIC', 'STREAM', 'RSS_CLIENTS', 'SEED'].filter((k) => process.env[k] !== undefined);

emit(`# PgLynx generation benchmark, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC`);
emit();
emit(`PgLynx ${pkgVersion} at commit ${commit}${dirty ? ' plus uncommitted changes (other work in the checkout)' : ''}.`);
emit();
emit('## Machine');
emit();
emit(`- nproc: ${os.availableParallelism()} (${cpuModel}), ${fmt(os.totalmem() / 2 ** 30, 1)} GiB RAM, kernel ${os.release()}; Node ${process.version}; ${pgVersion.split(',')[0]}`);
emit(`- CPU idle before the run: ${fmt(idleBefore * 100, 0)}% (load average ${loadBefore.map((x) => fmt(x, 2)).join(', ')}); after: ${fmt(idleAfter * 100, 0)}%`);
emit();
emit('## Setup');
emit();
emit(`- Command: \`${setEnv.map((k) => `${k}=${JSON.stringify(process.env[k])} `).join('')}node --import tsx benchmarks/generate.ts\``);
emit(`- Model: \`node --import tsx bin/pglynx.ts models synth tests/fixtures/gpt2-tokenizer <tmp>/gpt2 --layers ${LAYERS}\` (${synthOut.split('\n')[0]!.replace(modelDir, '<tmp>/gpt2')}): GPT-2 small's shape and real tokenizer, seeded weights.`);
emit(`- Prompts: 256 seeded prompts of 4-48 words from GPT-2's whole-word vocabulary; greedy, max_new_tokens ${MAX_NEW} (a generation ends earlier only at EOS).`);
emit(`- In-process, one sequence at a time: engine/decoder.ts's \`Decoder.forward\` on one sequence (prefill, then one token per step with its KV cache), argmax, in the benchmark process, ${THREADS} intra-op thread(s), over ${BASELINE} prompts (mean ${fmt(baseTokensMean, 1)} tokens), after one warm-up generation, once before and once after the SQL runs (${baselineRuns.map((b) => `${fmt(b.tokens / b.seconds)} tokens/s, prefill median ${fmt(median(b.prefillMs), 1)} ms`).join('; then ')}); the faster run is the reference. Tokens/s = forward passes (one token each) / wall time.`);
emit(`- Through PgLynx: a throwaway Postgres 15 (no extension); PgLynx compiled with \`${build.command}\` (${build.note}) and started fresh for each client count as \`node <tmp>/build/bin/pglynx.js <tmp>/pgcat.toml\` with [models.gpt] instances 1, intra_op_threads ${THREADS}, max_batch_size ${MAX_BATCH}, kv_cache_mb 4096. Each of N node-postgres clients runs ${streaming ? `\`${STREAM_SQL}\`` : `\`${TRANSFORM}\``} (extended protocol) ${REQUESTS} time(s) or more (at least ${MIN_REQUESTS} generations per count), one after another, after one warm-up generation${STAGGER ? `; client i of N sends its first query i/N x (${MAX_NEW} x the diagnostic's decode step at batch N, below) after the first, so arrivals are spread over one generation as in a steady state, not in lockstep` : ', all clients starting at once'}. Tokens are the \`tokens\` column of SHOW MODELS (one per sequence per forward pass, as in-process). "steady tokens/s": tokens over the time all N clients had a generation in flight (from the last client's first query to the first client's last result), the headline; "run tokens/s": over the whole run, ramp-up and tail included.`);
emit(
  streaming
    ? '- TTFT and ITL at the client: from sending the query to its first pgml.transform_stream row, and between consecutive rows; the SHOW MODELS figures (engine side, from a prompt reaching the engine) beside them.'
    : '- TTFT and ITL from SHOW MODELS (ttft_p50/p99_us: from a prompt reaching the engine, queue included, to its first token; itl_p50/p99_us: between two tokens of one sequence), read after each run: pgml.transform_stream was not available to time rows at the client.',
);
emit();
emit('## Throughput and latency');
emit();
emit(`| measurement | generations | prompt tokens (mean) | tokens | wall s | run tokens/s | steady s | steady tokens/s | vs one at a time | decode batch (mean) | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | pooler CPU % | machine CPU % |`);
emit('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
emit(`| in-process, one sequence at a time | ${BASELINE} | ${fmt(baseTokensMean, 1)} | ${baseline.tokens} | ${fmt(baseline.seconds, 2)} | ${fmt(baseRate)} | - | ${fmt(baseRate)} | 1.00x | 1 | ${fmt(prefillMedian, 1)} (prefill) | ${fmt(pct(baseline.prefillMs, 99), 1)} (prefill) | ${fmt(median(baseline.decodeMs), 1)} | ${fmt(pct(baseline.decodeMs, 99), 1)} | - | - |`);
for (const l of levels) {
  const rate = l.tokens / l.seconds;
  const cells = streaming
    ? [fmt(pct(l.clientTtft, 50), 1), fmt(pct(l.clientTtft, 99), 1), fmt(pct(l.clientItl, 50), 1), fmt(pct(l.clientItl, 99), 1)]
    : [ms(l.show['ttft_p50_us']), ms(l.show['ttft_p99_us']), ms(l.show['itl_p50_us']), ms(l.show['itl_p99_us'])];
  emit(
    `| PgLynx over SQL, ${l.clients} client(s) | ${l.requests} | ${fmt(l.promptTokensMean, 1)} | ${l.tokens} | ${fmt(l.seconds, 2)} | ${fmt(rate)} | ${fmt(l.steadySeconds, 2)} | ${fmt(l.steadyRate)} | ${ratio(l.steadyRate, baseRate)} | ${l.show['decode_batch_size']} | ${cells.join(' | ')} | ${fmt((l.poolerCpu / l.seconds) * 100, 0)} | ${fmt((l.machineCpu / l.seconds) * 100, 0)} |`,
  );
}
emit();
emit(`"pooler CPU %": the pooler process (main thread and slot thread) over the run, % of one CPU; "machine CPU %": every process on the machine (the benchmark's clients, Postgres and other work included), out of ${os.availableParallelism() * 100}%. The in-process row's TTFT cells are one prefill alone (batch 1) and its ITL cells one decode step alone.`);
if (streaming) {
  emit();
  emit('SHOW MODELS (engine side) for the same runs:');
  emit();
  emit('| clients | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | tokens_per_s (last 10 s) |');
  emit('| ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const l of levels) emit(`| ${l.clients} | ${ms(l.show['ttft_p50_us'])} | ${ms(l.show['ttft_p99_us'])} | ${ms(l.show['itl_p50_us'])} | ${ms(l.show['itl_p99_us'])} | ${l.show['tokens_per_s']} |`);
}
if (stepMs.size > 0) {
  emit();
  emit('Diagnostic: one decode step of `Decoder.forward` in-process over B sequences at once (each prefilled alone first; median of 5 steps), no scheduling, no SQL: the most batching can give with this model and engine/decoder.ts on this machine.');
  emit();
  emit('| sequences per step | step ms | tokens/s | vs batch 1 |');
  emit('| ---: | ---: | ---: | ---: |');
  const one = stepMs.get(1) ?? NaN;
  for (const [b, t] of stepMs) emit(`| ${b} | ${fmt(t, 1)} | ${fmt((b * 1000) / t)} | ${ratio(b / t, 1 / one)} |`);
}
emit();
emit('## Memory');
emit();
emit(`VmRSS of the pooler (the last client count's pooler, after its run; slot thread included), each client logged in and ran \`SELECT 1\`, then 3 s of quiet.`);
emit();
emit('| connected idle clients | VmRSS MiB | VmHWM MiB | RssAnon MiB | threads |');
emit('| ---: | ---: | ---: | ---: | ---: |');
const mib = (kb: number | undefined): string => (kb === undefined ? 'n/a' : fmt(kb / 1024, 1));
for (const r of rss) emit(`| ${r.clients} | ${mib(r.status.VmRSS)} | ${mib(r.status.VmHWM)} | ${mib(r.status.RssAnon)} | ${r.status.Threads} |`);
emit();
emit('## Targets (issue 13)');
emit();
const at16 = levels.find((l) => l.clients === 16);
if (at16) {
  const ttft16 = streaming ? pct(at16.clientTtft, 50) : Number(at16.show['ttft_p50_us']) / 1000;
  emit(`- Tokens/s at 16 clients vs in-process one at a time: steady ${ratio(at16.steadyRate, baseRate)}, whole run ${ratio(at16.tokens / at16.seconds, baseRate)} (target >= 4x).`);
  emit(`- TTFT p50 at 16 clients / one prefill alone: ${fmt(ttft16, 1)} ms / ${fmt(prefillMedian, 1)} ms = ${ratio(ttft16, prefillMedian)} (target <= 2x).`);
}
const lo = rss.find((r) => r.clients === RSS_CLIENTS[0]);
const hi = rss.find((r) => r.clients === RSS_CLIENTS[RSS_CLIENTS.length - 1]);
if (lo && hi && lo !== hi) emit(`- RSS at ${hi.clients} clients / at ${lo.clients}: ${fmt(hi.status.VmRSS! / lo.status.VmRSS!, 3)} (target <= 1.10); ${fmt((hi.status.VmRSS! - lo.status.VmRSS!) / (hi.clients - lo.clients), 1)} KiB per extra client.`);

const stamp = started.toISOString().replace(/T/, '-').replace(/:/g, '').slice(0, 17);
const outFile = writeReport(REPO, 'generate', stamp, report);
log(`report written to ${path.relative(REPO, outFile)}`);
process.exit(0);
