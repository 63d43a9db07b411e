// Embeddings beside generation (issue 13, point 10's latency target): the
// latency of `SELECT pgml.embed('minilm', $1)` through PgLynx with no
// generation running, then with 16 clients generating (`pgml.transform`,
// max_new_tokens 32) on the same pooler at the same time, then alone again.
// Target: embedding p99 with 16 clients generating within 2x of its p99 with
// no generation running. (benchmarks/engine.ts measures embedding throughput;
// this is its mixed-load row, kept apart so each script stays one concern.)
//
// Not part of CI: needs the Postgres 15 binaries (as the test harness does);
// its numbers depend on the machine.
//
// Usage:  node --import tsx benchmarks/engine-mixed.ts
// Env:    LAYERS       blocks of the synthesized GPT-2-small-shaped model (default 12)
//         EMBEDDERS    concurrent pgml.embed clients (default 8)
//         GENERATORS   concurrent pgml.transform clients in the mixed phase (default 16)
//         SECONDS      length of each phase (default 20)
//         THREADS      intra_op_threads of each model's slot (default 1)
//
// The report goes to stdout and benchmarks/results/engine-mixed-<date>-<time>.md.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { mulberry32 } from '../engine/onnx/bert-synth.js';
import { GPT2_TOKENIZER, MINILM_TOKENIZER } from '../tests/harness/fixtures.js';
import { configToml } from '../tests/harness/pglynx.js';
import { startPostgres } from '../tests/harness/postgres.js';
import { buildPglynx, connectClients, endAll, freePort, machineBusy, processCpu, showModels, startPooler, benchWorkspace } from './lib/pglynx-process.js';
import { cpuIdleFraction, fmt, sh, writeReport } from './lib/report.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const env = (k: string, d: string): number => Number(process.env[k] ?? d);
const LAYERS = env('LAYERS', '12');
const EMBEDDERS = env('EMBEDDERS', '8');
const GENERATORS = env('GENERATORS', '16');
const SECONDS = env('SECONDS', '20');
const THREADS = env('THREADS', '1');
const LOGIN = { user: 'bench', password: 'benchpw', database: 'bench' };
const EMBED = `SELECT pgml.embed('minilm', $1)`;
const GENERATE = `SELECT pgml.transform(task => '{"task": "text-generation", "model": "gpt"}'::jsonb, inputs => ARRAY[$1::text], args => '{"max_new_tokens": 32}'::jsonb)`;

const log = (msg: string): void => void process.stderr.write(`[engine-mixed.ts ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const { work: WORK, children } = benchWorkspace('pglynx-mixed-bench-', log);

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};

/** `n` seeded sentences of 8-30 words from a word list. */
function sentences(words: string[], n: number, seed: number): string[] {
  const rand = mulberry32(seed);
  return Array.from({ length: n }, () => Array.from({ length: 8 + Math.floor(rand() * 23) }, () => words[Math.floor(rand() * words.length)]!).join(' ') + '.');
}

const started = new Date();
const idleBefore = await cpuIdleFraction(2000);
const loadBefore = os.loadavg();
const synth = (src: string, out: string, extra: string[]): string =>
  execFileSync(process.execPath, ['--import', 'tsx', path.join(REPO, 'bin', 'pglynx.ts'), 'models', 'synth', src, out, ...extra], { cwd: REPO, encoding: 'utf8' }).trim();
log('synthesizing MiniLM- and GPT-2-small-shaped models');
const minilmDir = path.join(WORK, 'minilm');
const gptDir = path.join(WORK, 'gpt2');
synth(MINILM_TOKENIZER, minilmDir, []);
synth(GPT2_TOKENIZER, gptDir, ['--layers', String(LAYERS)]);
const corpus = sentences(readFileSync(path.join(minilmDir, 'vocab.txt'), 'utf8').split('\n').filter((w) => /^[a-z]{3,12}$/.test(w)), 2000, 1);

log('compiling PgLynx, starting Postgres 15 and the pooler');
const build = buildPglynx(REPO, WORK);
const cluster = await startPostgres({ auth: 'md5', users: [{ name: LOGIN.user, password: LOGIN.password }] });
const port = await freePort();
const models = {
  minilm: { path: minilmDir, instances: 1, intra_op_threads: THREADS, max_batch_size: 32, max_batch_delay_ms: 2, cache_mb: 0 },
  gpt: { path: gptDir, instances: 1, intra_op_threads: THREADS, max_batch_size: 64, max_new_tokens: 32, kv_cache_mb: 4096, max_queue: 4096, model_timeout_ms: 600_000 },
};
const toml = configToml({
  port,
  general: { admin_username: 'admin', admin_password: 'admin' },
  pools: {
    [LOGIN.database]: {
      pool_mode: 'transaction',
      users: [{ username: LOGIN.user, password: LOGIN.password, pool_size: 10 }],
      shards: [{ database: 'postgres', servers: [['127.0.0.1', cluster.port, 'primary']] }],
    },
  },
  extra: { models },
});
const pooler = await startPooler(build.entry, WORK, port, toml, children);
const embedders = await connectClients(port, LOGIN, EMBEDDERS);
const generators = await connectClients(port, LOGIN, GENERATORS);
await Promise.all(embedders.map((c, i) => c.query(EMBED, [corpus[i]!])));
await generators[0]!.query(GENERATE, ['Warm-up']);

interface Phase {
  label: string;
  latenciesMs: number[];
  seconds: number;
  generated: number;
  poolerCpu: number;
  machineCpu: number;
  /** CPU seconds of this process (the clients). */
  clientCpu: number;
}

/** Embedding clients loop for SECONDS; with `generating`, the generation clients loop too until the phase ends. */
async function phase(label: string, generating: boolean): Promise<Phase> {
  log(label);
  const tokens0 = Number((await showModels(port)).find((r) => r['model'] === 'gpt')?.['tokens'] ?? 0);
  const cpu0 = processCpu(pooler.pid);
  const m0 = machineBusy();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  const latencies: number[] = [];
  let next = 0;
  const gens = generating
    ? generators.map(async (c: pg.Client, i) => {
        for (let r = 0; performance.now() < end; r++) await c.query(GENERATE, [corpus[(i * 7 + r) % corpus.length]!]);
      })
    : [];
  await Promise.all(
    embedders.map(async (c) => {
      while (performance.now() < end) {
        const s = performance.now();
        await c.query(EMBED, [corpus[next++ % corpus.length]!]);
        latencies.push(performance.now() - s);
      }
    }),
  );
  await Promise.all(gens);
  const seconds = (performance.now() - t0) / 1000;
  const tokens1 = Number((await showModels(port)).find((r) => r['model'] === 'gpt')?.['tokens'] ?? 0);
  const c = process.cpuUsage(c0);
  return { label, latenciesMs: latencies, seconds, generated: tokens1 - tokens0, poolerCpu: processCpu(pooler.pid) - cpu0, machineCpu: machineBusy() - m0, clientCpu: (c.user + c.system) / 1e6 };
}

const phases = [await phase('embeddings alone', false), await phase(`embeddings with ${GENERATORS} clients generating`, true), await phase('embeddings alone again', false)];
await endAll([...embedders, ...generators]);
await pooler.stop();
await cluster.stop();

const report: string[] = [];
const emit = (line = ''): void => void report.push(line);
const commit = sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']);
const dirty = sh('git', ['-C', REPO, 'status', '--porcelain']).length > 0;
const set = ['LAYERS', 'EMBEDDERS', 'GENERATORS', 'SECONDS', 'THREADS'].filter((k) => process.env[k] !== undefined);
emit(`# PgLynx embeddings beside generation, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC`);
emit();
emit(`Commit ${commit}${dirty ? ' plus uncommitted changes (other work in the checkout)' : ''}; nproc ${os.availableParallelism()}, Node ${process.version}. CPU idle before the run: ${fmt(idleBefore * 100, 0)}% (load average ${loadBefore.map((x) => fmt(x, 2)).join(', ')}).`);
emit();
emit(`Command: \`${set.map((k) => `${k}=${process.env[k]} `).join('')}node --import tsx benchmarks/engine-mixed.ts\`. One pooler (compiled with tsc, ${build.note}) with [models.minilm] (synthesized MiniLM shape, 1 instance, ${THREADS} intra-op thread(s), max_batch_size 32, cache off) and [models.gpt] (synthesized GPT-2 small shape, ${LAYERS} layers, 1 instance, ${THREADS} intra-op thread(s), max_batch_size 64). ${EMBEDDERS} clients loop \`${EMBED}\` for ${SECONDS} s per phase; in the mixed phase ${GENERATORS} more clients loop \`${GENERATE}\` meanwhile. Latency is per query at the client.`);
emit();
emit('| phase | embeddings | embeddings/s | p50 ms | p99 ms | max ms | tokens generated | pooler CPU % | machine CPU % | other load % |');
emit('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const p of phases) {
  emit(`| ${p.label} | ${p.latenciesMs.length} | ${fmt(p.latenciesMs.length / p.seconds)} | ${fmt(pct(p.latenciesMs, 50), 1)} | ${fmt(pct(p.latenciesMs, 99), 1)} | ${fmt(Math.max(...p.latenciesMs), 1)} | ${p.generated} | ${fmt((p.poolerCpu / p.seconds) * 100, 0)} | ${fmt((p.machineCpu / p.seconds) * 100, 0)} | ${fmt((Math.max(0, p.machineCpu - p.poolerCpu - p.clientCpu) / p.seconds) * 100, 0)} |`);
}
emit();
emit(`CPU % is of one CPU (${os.availableParallelism() * 100}% is the machine); "other load" is the machine's busy time minus the pooler's and the clients' (Postgres and other work on the machine).`);
emit();
const alone = Math.min(pct(phases[0]!.latenciesMs, 99), pct(phases[2]!.latenciesMs, 99));
const mixed = pct(phases[1]!.latenciesMs, 99);
emit(`Target (issue 13): embedding p99 with ${GENERATORS} clients generating / p99 alone (the lower of the two alone phases): ${fmt(mixed, 1)} / ${fmt(alone, 1)} ms = ${fmt(mixed / alone, 2)}x (target <= 2x).`);
const stamp = started.toISOString().replace(/T/, '-').replace(/:/g, '').slice(0, 17);
log(`report written to ${path.relative(REPO, writeReport(REPO, 'engine-mixed', stamp, report))}`);
process.exit(0);
