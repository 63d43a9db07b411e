// PgLynx engine benchmark: embeddings per second over SQL through PgLynx
// (SELECT pgml.embed('minilm', $1) from 64 concurrent node-postgres clients)
// against the same model called in-process with onnxruntime-node, one at a
// time and in batches of 32; and the pooler's RSS with 10 and with 1,000
// connected clients. Everything runs side by side in one run.
//
// Not part of CI: it takes several minutes, needs the Postgres 15 binaries
// (and root or a postgres-capable user, as the test harness does), and its
// numbers depend on the machine.
//
// Usage:  node --import tsx benchmarks/engine.ts
// Env:    CORPUS            sentences in the corpus (default 2000; 8-30 words each, seeded)
//         CLIENTS           concurrent SQL clients (default 64)
//         ROUNDS            rounds of every measurement, interleaved; the table shows the median (default 3)
//         VARIANTS          pooler configs, "<instances>x<intra_op_threads>@<max_batch_delay_ms>[:<load_balancing_mode>][/b<max_batch_size>]",
//                           space-separated; the first is the headline
//                           (default "2x1@2 2x1@5 2x1@2:loc 2x1@2:loc/b4 1x2@2")
//         BASELINE_THREADS  intra-op threads of the in-process baselines; must include the headline's
//                           thread budget, instances x intra_op_threads, the reference (default "2 1")
//         BATCH             max_batch_size and the in-process batch size (default 32)
//         RSS_CLIENTS       connected-client counts for RSS (default "10 1000")
//         POOL_SIZE         server connections of the pooler's pool (default 20)
//         PROFILE           1: one extra SQL pass with the headline pooler under --cpu-prof, summarised (default 1)
//         SEED              corpus seed (default 1)
//         PG_BIN            Postgres 15 binaries (default /usr/lib/postgresql/15/bin, via the test harness)
//
// The report (machine, versions, exact commands and configs, tables) goes to
// stdout and to benchmarks/results/engine-<date>-<time>.md; progress goes to
// stderr. Temp dirs (model, build, cluster, configs) are removed on exit.
//
// Steps:
//  1. `pglynx models synth` writes the MiniLM-shaped model (seeded weights)
//     into a temp dir; PgLynx is compiled (tsc) into another temp dir and run
//     as `node <build>/bin/pglynx.js`, as `npm start` runs dist/.
//  2. In-process baselines: engine/runtime.ts's loadRuntime() in this process
//     (the same tokenizer, padding, onnxruntime-node session and pooling code
//     the engine's workers run, without worker threads or batching logic),
//     one text per session.run and 32 per session.run, over the corpus; and,
//     as a diagnostic, 32 per run over the corpus sorted by token count
//     (what batching gains without padding).
//  3. Diagnostic: the Engine (worker threads, dynamic batching) in this
//     process with the headline config, 64 concurrent callers of
//     engine.embed(): the engine's cost without SQL.
//  4. Through PgLynx: a throwaway Postgres 15 cluster (no extension), the
//     pooler with [models.minilm] (cache_mb = 0) and 64 node-postgres clients,
//     each running SELECT pgml.embed('minilm', $1) over its share of the corpus.
//     CPU time of the pooler's main thread, its other threads, Postgres and
//     this process is read from /proc around each run.
//  5. RSS (VmRSS of the pooler process) with 10 connected clients each having
//     run one pgml.embed, then with 1,000.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Tokenizer } from '@huggingface/tokenizers';
import { MODEL_DEFAULTS, type ModelConfig } from '../config/models.js';
import { Engine } from '../engine/engine.js';
import { mulberry32 } from '../engine/onnx/bert-synth.js';
import { CLK_TCK, cpuIdleFraction, fmt, median, sh, sleep, writeReport } from './lib/report.js';
import { loadRuntime, type Runtime } from '../engine/runtime.js';
import { createLogger } from '../pooler/logger.js';
import { configToml } from '../tests/harness/pglynx.js';
import { buildPglynx, connectClients, endAll, freePort, machineBusy, procStatus, startPooler as startPoolerProcess, benchWorkspace } from './lib/pglynx-process.js';
import { startPostgres, type PgCluster } from '../tests/harness/postgres.js';
import { MINILM_TOKENIZER } from '../tests/harness/fixtures.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const TOKENIZER_SRC = MINILM_TOKENIZER;
const MODEL = 'minilm';
const QUERY = `SELECT pgml.embed('${MODEL}', $1)`;

const env = (k: string, d: string): string => process.env[k] ?? d;
const CORPUS = Number(env('CORPUS', '2000'));
const CLIENTS = Number(env('CLIENTS', '64'));
const ROUNDS = Number(env('ROUNDS', '3'));
const BATCH = Number(env('BATCH', '32'));
const POOL_SIZE = Number(env('POOL_SIZE', '20'));
const PROFILE = env('PROFILE', '1') === '1';
const SEED = Number(env('SEED', '1'));
const RSS_CLIENTS = env('RSS_CLIENTS', '10 1000').split(/\s+/).filter(Boolean).map(Number);
const BASELINE_THREADS = env('BASELINE_THREADS', '2 1').split(/\s+/).filter(Boolean).map(Number);

interface Variant {
  label: string;
  instances: number;
  threads: number;
  delay: number;
  lb: 'random' | 'loc' | 'round_robin';
  maxBatch: number;
}

function parseVariant(s: string): Variant {
  const m = /^(\d+)x(\d+)@(\d+)(?::(random|loc|round_robin))?(?:\/b(\d+))?$/.exec(s);
  if (!m) throw new Error(`VARIANTS: cannot parse ${JSON.stringify(s)}; expected e.g. 2x1@2, 2x1@2:loc or 2x1@2:loc/b8`);
  const [instances, threads, delay] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const lb = (m[4] ?? 'random') as Variant['lb'];
  const maxBatch = m[5] === undefined ? BATCH : Number(m[5]);
  const label = `${instances} inst x ${threads} thr, delay ${delay} ms${lb === 'random' ? '' : `, ${lb}`}${maxBatch === BATCH ? '' : `, max_batch_size ${maxBatch}`}`;
  return { label, instances, threads, delay, lb, maxBatch };
}
const VARIANTS = env('VARIANTS', '2x1@2 2x1@5 2x1@2:loc 2x1@2:loc/b4 1x2@2').split(/\s+/).filter(Boolean).map(parseVariant);
const HEADLINE = VARIANTS[0]!;
const BUDGET = HEADLINE.instances * HEADLINE.threads;

const log = (msg: string): void => {
  process.stderr.write(`[engine.ts ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

// ------------------------------------------------------------------ temp dirs, cleanup

const { work: WORK, children } = benchWorkspace('pglynx-engine-bench-', log);

// ------------------------------------------------------------------ corpus

/** `n` sentences of 8-30 words drawn (seeded) from the tokenizer's whole-word vocabulary. */
function makeCorpus(n: number, seed: number, vocabFile: string): string[] {
  const words = readFileSync(vocabFile, 'utf8')
    .split('\n')
    .filter((w) => /^[a-z]{3,12}$/.test(w));
  const rand = mulberry32(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = 8 + Math.floor(rand() * 23);
    const ws = Array.from({ length: len }, () => words[Math.floor(rand() * words.length)]!);
    ws[0] = ws[0]![0]!.toUpperCase() + ws[0]!.slice(1);
    out.push(`${ws.join(' ')}.`);
  }
  return out;
}

// ------------------------------------------------------------------ /proc readings


/** CPU seconds of one live thread or process: /proc/.../schedstat (ns on CPU), plus reaped children's cutime+cstime when asked. */
function statCpu(dir: string, withChildren = false): number {
  try {
    let cpu = Number(readFileSync(`${dir}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
    if (withChildren) {
      const s = readFileSync(`${dir}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      // f[0] is field 3 (state): cutime is field 16, cstime 17 (clock ticks).
      cpu += (Number(f[13]) + Number(f[14])) / CLK_TCK;
    }
    return cpu;
  } catch {
    return 0;
  }
}

/** CPU seconds of a process's main thread and of all its other threads. */
function threadCpu(pid: number): { main: number; others: number; threads: number } {
  let main = 0;
  let others = 0;
  let threads = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const cpu = statCpu(`/proc/${pid}/task/${tid}`);
    threads++;
    if (Number(tid) === pid) main += cpu;
    else others += cpu;
  }
  return { main, others, threads };
}

/** CPU seconds of the postmaster, its live children and its reaped children. */
function clusterCpu(postmaster: number): number {
  let total = statCpu(`/proc/${postmaster}`, true);
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const s = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === postmaster) total += statCpu(`/proc/${p}`);
    } catch {
      // gone
    }
  }
  return total;
}

// ------------------------------------------------------------------ in-process measurements

function modelConfig(dir: string, threads: number, instances = 1, delay = 2): ModelConfig {
  return { ...MODEL_DEFAULTS, path: dir, builtin: null, instances, intra_op_threads: threads, max_batch_size: BATCH, max_batch_delay_ms: delay, cache_mb: 0 };
}

interface Measure {
  rate: number;
  seconds: number;
  /** CPU seconds of this process during the run. */
  cpu: number;
  /** Busy CPU seconds of the whole machine during the run. */
  machine: number;
}

async function timed(n: number, body: () => Promise<void>): Promise<Measure> {
  const c0 = process.cpuUsage();
  const m0 = machineBusy();
  const t0 = performance.now();
  await body();
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return { rate: n / seconds, seconds, cpu: (c.user + c.system) / 1e6, machine: machineBusy() - m0 };
}

function inProcessOne(rt: Runtime, corpus: string[]): Promise<Measure> {
  return timed(corpus.length, async () => {
    for (const s of corpus) await rt.embed([s]);
  });
}

/** `padded`: one session.run per 32 texts padded to the longest (plain batching); otherwise the engine's length-aware runs. */
function inProcessBatched(rt: Runtime, corpus: string[], padded: boolean): Promise<Measure> {
  return timed(corpus.length, async () => {
    for (let i = 0; i < corpus.length; i += BATCH) await rt.embed(corpus.slice(i, i + BATCH), { padded });
  });
}

/** Strided share of the corpus for caller `i` of `n`. */
const share = (corpus: string[], i: number, n: number): string[] => corpus.filter((_, k) => k % n === i);

function engineConcurrent(engine: Engine, corpus: string[]): Promise<Measure> {
  return timed(corpus.length, async () => {
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        for (const s of share(corpus, i, CLIENTS)) await engine.embed(MODEL, [s]);
      }),
    );
  });
}

// ------------------------------------------------------------------ the pooler

interface Pooler {
  variant: Variant;
  port: number;
  pid: number;
  command: string;
  configToml: string;
  output(): string;
  stop(): Promise<void>;
}

const BENCH_USER = 'bench';
const BENCH_PASSWORD = 'benchpw';
const POOL = 'bench';

function poolerToml(v: Variant, port: number, pgPort: number, modelDir: string): string {
  return configToml({
    port,
    general: { admin_username: 'admin', admin_password: 'admin' },
    pools: {
      [POOL]: {
        pool_mode: 'transaction',
        load_balancing_mode: v.lb,
        prepared_statements_cache_size: 100,
        users: [{ username: BENCH_USER, password: BENCH_PASSWORD, pool_size: POOL_SIZE }],
        shards: [{ database: 'postgres', servers: [['127.0.0.1', pgPort, 'primary']] }],
      },
    },
    extra: {
      models: {
        [MODEL]: {
          path: modelDir,
          instances: v.instances,
          intra_op_threads: v.threads,
          max_batch_size: v.maxBatch,
          max_batch_delay_ms: v.delay,
          cache_mb: 0,
        },
      },
    },
  });
}

async function startPooler(entry: string, v: Variant, pgPort: number, modelDir: string, nodeFlags: string[] = []): Promise<Pooler> {
  const port = await freePort();
  const text = poolerToml(v, port, pgPort, modelDir);
  const p = await startPoolerProcess(entry, WORK, port, text, children, nodeFlags);
  return { ...p, variant: v, configToml: text.replace(modelDir, '<tmp>/minilm') };
}

const connect = (port: number, n: number, parallel = 50): Promise<pg.Client[]> =>
  connectClients(port, { user: BENCH_USER, password: BENCH_PASSWORD, database: POOL }, n, parallel);

interface ModelRow {
  calls: number;
  batches: number;
  avgLatencyUs: number;
  p99LatencyUs: number;
  errors: number;
}

async function showModels(port: number): Promise<ModelRow[]> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'admin', password: 'admin', database: 'pgbouncer' });
  c.on('error', () => {});
  await c.connect();
  try {
    const r = await c.query('SHOW MODELS');
    return r.rows.map((row: Record<string, string>) => ({
      calls: Number(row.calls),
      batches: Number(row.batches),
      avgLatencyUs: Number(row.avg_latency_us),
      p99LatencyUs: Number(row.p99_latency_us),
      errors: Number(row.errors),
    }));
  } finally {
    await c.end().catch(() => {});
  }
}

interface SqlMeasure extends Measure {
  poolerMain: number;
  poolerOthers: number;
  postgres: number;
  avgBatch: number;
  errors: number;
  p99Ms: number;
}

async function sqlRun(p: Pooler, pgPid: number, clients: pg.Client[], corpus: string[]): Promise<SqlMeasure> {
  const before = { threads: threadCpu(p.pid), pg: clusterCpu(pgPid), models: await showModels(p.port) };
  let failures = 0;
  const m = await timed(corpus.length, async () => {
    await Promise.all(
      clients.map(async (c, i) => {
        for (const s of share(corpus, i, clients.length)) {
          try {
            const r = await c.query(QUERY, [s]);
            if ((r.rows[0]?.embed as number[] | undefined)?.length !== 384) throw new Error(`unexpected result ${JSON.stringify(r.rows[0]).slice(0, 100)}`);
          } catch (err) {
            if (failures++ < 3) log(`query failed: ${(err as Error).message}`);
          }
        }
      }),
    );
  });
  const after = { threads: threadCpu(p.pid), pg: clusterCpu(pgPid), models: await showModels(p.port) };
  const sum = (rows: ModelRow[], k: keyof ModelRow): number => rows.reduce((s, r) => s + r[k], 0);
  const dCalls = sum(after.models, 'calls') - sum(before.models, 'calls');
  const dBatches = sum(after.models, 'batches') - sum(before.models, 'batches');
  if (failures > 0) throw new Error(`${failures} of ${corpus.length} queries failed; pooler output:\n${p.output().slice(-3000)}`);
  return {
    ...m,
    poolerMain: after.threads.main - before.threads.main,
    poolerOthers: after.threads.others - before.threads.others,
    postgres: after.pg - before.pg,
    avgBatch: dBatches === 0 ? NaN : dCalls / dBatches,
    errors: sum(after.models, 'errors') - sum(before.models, 'errors'),
    // p99 of the instances' latency windows (not only this run's calls)
    p99Ms: Math.max(...after.models.map((r) => r.p99LatencyUs)) / 1000,
  };
}

// ------------------------------------------------------------------ CPU profile summary

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Where a frame's code lives, for grouping self time. */
function area(url: string, fn: string): string {
  if (fn === '(idle)' || fn === '(program)' || fn === '(garbage collector)' || fn === '(root)') return fn;
  if (url === '') return '(native)';
  const u = url.replace(/^file:\/\//, '');
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (nm) return nm[1]!;
  if (u.startsWith('node:')) return 'node:' + u.slice(5).split('/').slice(0, 2).join('/');
  const b = /\/build\/(.+)$/.exec(u);
  if (b) return b[1]!.split('/').slice(0, 2).join('/').replace(/\.js$/, '');
  return u;
}

/** Self time by area and by function, of samples taken between `from` and `to` (µs, profile clock). */
function summariseProfile(file: string, from?: number, to?: number): { totalMs: number; busyMs: number; areas: [string, number][]; fns: [string, number][] } {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const areaMs = new Map<string, number>();
  const fnMs = new Map<string, number>();
  let t = prof.startTime;
  let totalMs = 0;
  let busyMs = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i]!;
    if ((from !== undefined && t < from) || (to !== undefined && t > to)) continue;
    const dt = (prof.timeDeltas[i + 1] ?? 0) / 1000;
    const n = byId.get(prof.samples[i]!)!;
    const { functionName, url, lineNumber } = n.callFrame;
    const a = area(url, functionName);
    totalMs += dt;
    if (a !== '(idle)') busyMs += dt;
    areaMs.set(a, (areaMs.get(a) ?? 0) + dt);
    const key = `${functionName || '(anonymous)'} ${url ? `${a}:${lineNumber + 1}` : ''}`.trim();
    fnMs.set(key, (fnMs.get(key) ?? 0) + dt);
  }
  const top = (m: Map<string, number>, k: number): [string, number][] => [...m].sort((a, b) => b[1] - a[1]).slice(0, k);
  return { totalMs, busyMs, areas: top(areaMs, 14), fns: top(fnMs, 20) };
}

// ------------------------------------------------------------------ main

const started = new Date();
const report: string[] = [];
const emit = (line = ''): void => {
  report.push(line);
};

log(`work dir ${WORK}`);
const idleBefore = await cpuIdleFraction(2000);
const loadBefore = os.loadavg();

// 1. model
const modelDir = path.join(WORK, 'minilm');
const synthArgs = ['--import', 'tsx', path.join(REPO, 'bin', 'pglynx.ts'), 'models', 'synth', TOKENIZER_SRC, modelDir];
log('synthesizing the MiniLM-shaped model');
const synthOut = execFileSync(process.execPath, synthArgs, { cwd: REPO, encoding: 'utf8' }).trim();
const corpus = makeCorpus(CORPUS, SEED, path.join(modelDir, 'vocab.txt'));
const words = corpus.map((s) => s.split(' ').length);
// Token counts as the engine feeds them (special tokens included): how much of a batch is padding.
const tokenizer = new Tokenizer(JSON.parse(readFileSync(path.join(modelDir, 'tokenizer.json'), 'utf8')), JSON.parse(readFileSync(path.join(modelDir, 'tokenizer_config.json'), 'utf8')));
const tokens = corpus.map((t) => tokenizer.encode(t).ids.length);
const paddedShare = (lengths: number[]): number => {
  let real = 0;
  let padded = 0;
  for (let i = 0; i < lengths.length; i += BATCH) {
    const b = lengths.slice(i, i + BATCH);
    real += b.reduce((x, y) => x + y, 0);
    padded += Math.max(...b) * b.length;
  }
  return 1 - real / padded;
};
const padCorpusOrder = paddedShare(tokens);
const sortedCorpus = corpus.map((t, i) => [t, tokens[i]!] as const).sort((a, b) => a[1] - b[1]).map(([t]) => t);
const padSorted = paddedShare([...tokens].sort((a, b) => a - b));

log('compiling PgLynx into a temp dir');
const build = buildPglynx(REPO, WORK);

// 2. in-process runtimes (one per thread setting) and the in-process engine
log(`loading in-process runtimes (intra-op threads: ${BASELINE_THREADS.join(', ')})`);
const runtimes = new Map<number, Runtime>();
for (const th of BASELINE_THREADS) {
  const rt = await loadRuntime(modelConfig(modelDir, th));
  for (let i = 0; i < 3; i++) await rt.embed(corpus.slice(i * BATCH, (i + 1) * BATCH));
  for (let i = 0; i < 10; i++) await rt.embed([corpus[i]!]);
  runtimes.set(th, rt);
}
const engineLog = createLogger('warn');
const engine = await Engine.start({ [MODEL]: { ...modelConfig(modelDir, HEADLINE.threads, HEADLINE.instances, HEADLINE.delay), max_batch_size: HEADLINE.maxBatch } }, { log: engineLog, loadBalancing: HEADLINE.lb });
await engineConcurrent(engine, corpus.slice(0, 256));

// 3. Postgres and the poolers
log('starting Postgres 15');
const cluster: PgCluster = await startPostgres({ auth: 'md5', users: [{ name: BENCH_USER, password: BENCH_PASSWORD }] });
const pgPid = await cluster.pid();
const pgVersion = (await cluster.query<{ v: string }>('SELECT version() AS v'))[0]!.v;
const poolers: Pooler[] = [];
for (const v of VARIANTS) {
  log(`starting PgLynx: ${v.label}`);
  poolers.push(await startPooler(build.entry, v, cluster.port, modelDir));
}
const rssAtStart = procStatus(poolers[0]!.pid);
const sqlClients = new Map<Pooler, pg.Client[]>();
for (const p of poolers) {
  const cs = await connect(p.port, CLIENTS);
  // Warm-up: every client runs one query (logs in, fills the server pool, warms the batches).
  await Promise.all(cs.map((c, i) => c.query(QUERY, [corpus[i % corpus.length]!])));
  sqlClients.set(p, cs);
}

// 4. rounds, interleaved
type Key = string;
const results = new Map<Key, Measure[]>();
const add = (k: Key, m: Measure): void => {
  results.set(k, [...(results.get(k) ?? []), m]);
};
const K = {
  one: (th: number) => `in-process one at a time, ${th} intra-op thread${th > 1 ? 's' : ''}`,
  batched: (th: number) => `in-process batch ${BATCH}, ${th} intra-op thread${th > 1 ? 's' : ''}`,
  lengthAware: (th: number) => `(diagnostic) in-process batch ${BATCH} in PgLynx's length-aware runs, ${th} intra-op thread${th > 1 ? 's' : ''}`,
  sorted: (th: number) => `(diagnostic) in-process batch ${BATCH} of length-sorted texts, ${th} intra-op thread${th > 1 ? 's' : ''}`,
  engine: `Engine.embed in-process, ${HEADLINE.label}, ${CLIENTS} concurrent callers`,
  sql: (v: Variant) => `PgLynx SQL, ${v.label}, ${CLIENTS} clients`,
};
for (let r = 1; r <= ROUNDS; r++) {
  for (const th of BASELINE_THREADS) {
    log(`round ${r}/${ROUNDS}: in-process, ${th} thread(s), one at a time`);
    add(K.one(th), await inProcessOne(runtimes.get(th)!, corpus));
    log(`round ${r}/${ROUNDS}: in-process, ${th} thread(s), batch ${BATCH}`);
    add(K.batched(th), await inProcessBatched(runtimes.get(th)!, corpus, true));
    log(`round ${r}/${ROUNDS}: in-process, ${th} thread(s), batch ${BATCH}, length-aware runs`);
    add(K.lengthAware(th), await inProcessBatched(runtimes.get(th)!, corpus, false));
  }
  for (const th of BASELINE_THREADS) {
    log(`round ${r}/${ROUNDS}: in-process, ${th} thread(s), batch ${BATCH} of length-sorted texts`);
    add(K.sorted(th), await inProcessBatched(runtimes.get(th)!, sortedCorpus, true));
  }
  log(`round ${r}/${ROUNDS}: Engine.embed in-process`);
  add(K.engine, await engineConcurrent(engine, corpus));
  for (const p of poolers) {
    log(`round ${r}/${ROUNDS}: SQL through PgLynx, ${p.variant.label}`);
    const m = await sqlRun(p, pgPid, sqlClients.get(p)!, corpus);
    log(`  ${fmt(m.rate)} embeddings/s, avg batch ${fmt(m.avgBatch, 1)}`);
    add(K.sql(p.variant), m);
  }
}
await engine.close();
const rssAfterThroughput = procStatus(poolers[0]!.pid);
for (const p of poolers) await endAll(sqlClients.get(p)!);
for (const p of poolers.slice(1)) await p.stop();

// 5. RSS with 10 and 1,000 connected clients (headline pooler, after its throughput runs)
const head = poolers[0]!;
const rss: { clients: number; status: Record<string, number> }[] = [];
const rssClients: pg.Client[] = [];
await sleep(2000);
rss.push({ clients: 0, status: procStatus(head.pid) });
for (const n of RSS_CLIENTS) {
  log(`RSS: ${n} connected clients, each running one pgml.embed`);
  const fresh = await connect(head.port, n - rssClients.length, 100);
  await Promise.all(fresh.map((c, i) => c.query(QUERY, [corpus[(rssClients.length + i) % corpus.length]!])));
  rssClients.push(...fresh);
  await sleep(3000);
  const alive = await Promise.all(rssClients.slice(0, 3).map((c) => c.query('SELECT 1 AS one').then(() => true, () => false)));
  if (alive.includes(false)) throw new Error('clients lost their connections during the RSS phase');
  rss.push({ clients: n, status: procStatus(head.pid) });
}
await endAll(rssClients);
await head.stop();

// 6. profile
let profile: { rate: number; avgBatch: number; main: ReturnType<typeof summariseProfile>; workers: { file: string; busyMs: number; totalMs: number; areas: [string, number][] }[]; cpu: SqlMeasure } | null = null;
if (PROFILE) {
  log('profiled SQL pass (--cpu-prof) with the headline config');
  const dir = path.join(WORK, 'prof');
  mkdirSync(dir);
  const p = await startPooler(build.entry, HEADLINE, cluster.port, modelDir, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  const cs = await connect(p.port, CLIENTS);
  await Promise.all(cs.map((c, i) => c.query(QUERY, [corpus[i]!])));
  // CPU profiles time samples on CLOCK_MONOTONIC in µs, as process.hrtime does: keep only the run.
  const from = Number(process.hrtime.bigint() / 1000n);
  const m = await sqlRun(p, pgPid, cs, corpus);
  const to = Number(process.hrtime.bigint() / 1000n);
  await endAll(cs);
  await p.stop();
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  // CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile: tid 0 is the main thread.
  const mainFile = files.find((f) => f.split('.')[4] === '0');
  if (mainFile) {
    const main = summariseProfile(path.join(dir, mainFile), from, to);
    const workers = files
      .filter((f) => f !== mainFile)
      .map((f) => ({ file: f, ...summariseProfile(path.join(dir, f), from, to) }))
      .map(({ file, busyMs, totalMs, areas }) => ({ file, busyMs, totalMs, areas }));
    profile = { rate: m.rate, avgBatch: m.avgBatch, main, workers, cpu: m };
  } else {
    log(`no main-thread profile among ${files.join(', ')}`);
  }
}
await cluster.stop();

// ------------------------------------------------------------------ report

const summary = (k: Key): { med: number; min: number; max: number; runs: Measure[] } => {
  const runs = results.get(k) ?? [];
  const rates = runs.map((m) => m.rate);
  return { med: median(rates), min: Math.min(...rates), max: Math.max(...rates), runs };
};
const refOne = summary(K.one(BUDGET)).med;
const refBatched = summary(K.batched(BUDGET)).med;
/** CPU % (of one CPU) used during a run by processes that are not part of the measurement (other work on a shared machine). */
const otherLoad = (m: Measure): number => {
  const sq = m as Partial<SqlMeasure>;
  const ours = m.cpu + (sq.poolerMain ?? 0) + (sq.poolerOthers ?? 0) + (sq.postgres ?? 0);
  return (Math.max(0, m.machine - ours) / m.seconds) * 100;
};
const ratioCell = (x: number, ref: number): string => (Number.isFinite(ref) && ref > 0 ? `${fmt(x / ref, 2)}x` : 'n/a');

const onnxVersion = JSON.parse(readFileSync(path.join(REPO, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')).version as string;
const tokVersion = JSON.parse(readFileSync(path.join(REPO, 'node_modules', '@huggingface', 'tokenizers', 'package.json'), 'utf8')).version as string;
const pkgVersion = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')).version as string;
const commit = sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']);
const dirty = sh('git', ['-C', REPO, 'status', '--porcelain']).length > 0;
const cpuModel = (/model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown').trim();
const osName = (/PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'unknown').trim();
const idleAfter = await cpuIdleFraction(1000);
const stamp = started.toISOString().replace(/T/, '-').replace(/:/g, '').slice(0, 17);

emit(`# PgLynx engine benchmark, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC`);
emit();
emit(`PgLynx ${pkgVersion} at commit ${commit}${dirty ? ' plus uncommitted changes' : ''}.`);
emit();
emit('## Machine');
emit();
emit(`- nproc: ${os.availableParallelism()} (${cpuModel}), ${fmt(os.totalmem() / 2 ** 30, 1)} GiB RAM, ${osName}, kernel ${os.release()}`);
emit(`- Node ${process.version}, onnxruntime-node ${onnxVersion}, @huggingface/tokenizers ${tokVersion}`);
emit(`- ${pgVersion.split(',')[0]}`);
emit(`- CPU idle before the run: ${fmt(idleBefore * 100, 0)}% (load average ${loadBefore.map((x) => fmt(x, 2)).join(', ')}); after: ${fmt(idleAfter * 100, 0)}%`);
emit();
emit('## Setup');
emit();
emit(`- Command: \`${Object.entries(process.env).filter(([k]) => ['CORPUS', 'CLIENTS', 'ROUNDS', 'VARIANTS', 'BASELINE_THREADS', 'BATCH', 'RSS_CLIENTS', 'POOL_SIZE', 'PROFILE', 'SEED'].includes(k)).map(([k, v]) => `${k}=${JSON.stringify(v)} `).join('')}node --import tsx benchmarks/engine.ts\``);
emit(`- Model: \`node --import tsx bin/pglynx.ts models synth ${path.relative(REPO, TOKENIZER_SRC)} <tmp>/minilm\` (${synthOut.split('\n')[0]!.replace(modelDir, '<tmp>/minilm')})`);
emit(`- Corpus: ${CORPUS} generated sentences (seed ${SEED}), ${Math.min(...words)}-${Math.max(...words)} words (mean ${fmt(words.reduce((s, x) => s + x, 0) / words.length, 1)}), drawn from the tokenizer's whole-word vocabulary, ${Math.min(...tokens)}-${Math.max(...tokens)} tokens with [CLS]/[SEP] (mean ${fmt(tokens.reduce((x, y) => x + y, 0) / tokens.length, 1)}); example: "${corpus[0]}". Padding in batches of ${BATCH}: ${fmt(padCorpusOrder * 100, 0)}% of the tokens run are padding in corpus order, ${fmt(padSorted * 100, 0)}% when sorted by length.`);
emit(`- In-process baselines: \`loadRuntime()\` of engine/runtime.ts in the benchmark process: the tokenizer, right-padding, onnxruntime-node \`InferenceSession\` (sequential execution, graph optimisation "all", inter-op 1) and mean pooling + L2 normalisation the engine's workers run; no worker threads, no queue. "One at a time" is one text per \`session.run\`; "batch ${BATCH}" is ${BATCH} consecutive corpus texts per run, padded to the longest (plain batching, \`embed(texts, { padded: true })\`); the "length-aware runs" row is the same ${BATCH} texts as the engine's workers run them (sorted by token count and cut into the padded runs of least estimated cost, engine/sub-batches.ts). Thread budget: the pooler's headline config runs ${HEADLINE.instances} instance(s) x ${HEADLINE.threads} intra-op thread(s) = ${BUDGET}, so the reference baselines use ${BUDGET} intra-op threads; ${BASELINE_THREADS.filter((t) => t !== BUDGET).map((t) => `${t}-thread`).join(', ') || 'no other'} baselines are shown for reference.`);
emit(`- Engine.embed in-process (diagnostic): \`Engine.start()\` in the benchmark process with the headline config, ${CLIENTS} async callers each awaiting \`engine.embed('${MODEL}', [text])\` over its share of the corpus: worker threads and dynamic batching without SQL.`);
emit(`- Through PgLynx: a throwaway Postgres 15 cluster (tests/harness/postgres.ts: fsync off, md5), PgLynx compiled with \`${build.command}\` (${build.note}) and started as \`${head.command}\`; ${CLIENTS} node-postgres clients (md5, transaction mode, pool_size ${POOL_SIZE}) each run \`${QUERY}\` (extended protocol, unnamed statement; the result is parsed as a 384-element real[]) over a strided share of the corpus, after one warm-up query each. Embeddings/s = ${CORPUS} / wall time from the first query to the last result. Cache disabled (cache_mb = 0).`);
emit(`- Each measurement ran ${ROUNDS} time(s), interleaved (every baseline, the engine and every pooler config in each round); the tables show the median, with min-max.`);
emit(`- Pooler configs: ${VARIANTS.map((v) => v.label).join('; ')}. They differ only in [models.minilm] instances, intra_op_threads, max_batch_delay_ms, max_batch_size and the pool's load_balancing_mode; all run at once (idle between their runs). The headline config:`);
emit();
emit('```toml');
emit(head.configToml.trim());
emit('```');
emit();
emit('## Throughput');
emit();
const rowKeys: Key[] = [
  ...BASELINE_THREADS.flatMap((th) => [K.one(th), K.batched(th)]),
  ...BASELINE_THREADS.flatMap((th) => [K.lengthAware(th), K.sorted(th)]),
  K.engine,
  ...VARIANTS.map((v) => K.sql(v)),
];
const refs = BASELINE_THREADS.flatMap((th) => [
  { title: `vs batch ${BATCH}, ${th} thr`, rate: summary(K.batched(th)).med },
  { title: `vs one at a time, ${th} thr`, rate: summary(K.one(th)).med },
]);
emit(`| measurement | embeddings/s (median) | min-max | ${refs.map((r) => r.title).join(' | ')} | other load (median) |`);
emit(`| --- | ---: | ---: | ${refs.map(() => '---:').join(' | ')} | ---: |`);
for (const k of rowKeys) {
  const s = summary(k);
  emit(`| ${k} | ${fmt(s.med)} | ${fmt(s.min)}-${fmt(s.max)} | ${refs.map((r) => ratioCell(s.med, r.rate)).join(' | ')} | ${fmt(median(s.runs.map(otherLoad)), 0)}% |`);
}
emit();
emit(`"Other load": CPU used during the measurement by processes that are not part of it (other work on the machine), in % of one CPU, from /proc/stat minus the measured processes; ${os.availableParallelism() * 100}% is the whole machine.`);
emit();
const headSql = summary(K.sql(HEADLINE)).med;
const bestSql = Math.max(...VARIANTS.map((v) => summary(K.sql(v)).med));
const bestVariant = VARIANTS.find((v) => summary(K.sql(v)).med === bestSql)!;
emit(`Targets (issue 4): through PgLynx >= 0.8x in-process batched and >= 2x in-process one at a time. At the same thread budget (${BUDGET} intra-op threads in-process): headline (${HEADLINE.label}) ${ratioCell(headSql, refBatched)} and ${ratioCell(headSql, refOne)}; best config (${bestVariant.label}) ${ratioCell(bestSql, refBatched)} and ${ratioCell(bestSql, refOne)}.${BASELINE_THREADS.filter((t) => t !== BUDGET).map((t) => ` Against the ${t}-thread baselines: headline ${ratioCell(headSql, summary(K.batched(t)).med)} and ${ratioCell(headSql, summary(K.one(t)).med)}; best ${ratioCell(bestSql, summary(K.batched(t)).med)} and ${ratioCell(bestSql, summary(K.one(t)).med)}.`).join('')}`);
emit();
emit('### Where the CPU went during the SQL runs (median round)');
emit();
emit(`CPU seconds per 1,000 embeddings, read from /proc (schedstat run time of each thread and process) around each run; the machine has ${os.availableParallelism()} CPUs, so "CPU used" is out of ${os.availableParallelism() * 100}%.`);
emit();
emit('| config | wall s | pooler main thread | pooler other threads (engine workers, GC, libuv) | Postgres | benchmark clients | CPU used | avg batch | p99 engine latency ms |');
emit('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
const per1k = (x: number): string => fmt((x / CORPUS) * 1000, 2);
/** The run whose rate is closest to the median. */
const medianRun = <M extends Measure>(runs: M[]): M | undefined => {
  const med = median(runs.map((r) => r.rate));
  return [...runs].sort((a, b) => Math.abs(a.rate - med) - Math.abs(b.rate - med))[0];
};
for (const v of VARIANTS) {
  const m = medianRun((results.get(K.sql(v)) ?? []) as SqlMeasure[]);
  if (!m) continue;
  const used = (m.poolerMain + m.poolerOthers + m.postgres + m.cpu) / m.seconds;
  emit(`| ${v.label} | ${fmt(m.seconds, 2)} | ${per1k(m.poolerMain)} | ${per1k(m.poolerOthers)} | ${per1k(m.postgres)} | ${per1k(m.cpu)} | ${fmt(used * 100, 0)}% | ${fmt(m.avgBatch, 1)} | ${fmt(m.p99Ms, 0)} |`);
}
const engMed = medianRun(results.get(K.engine) ?? []);
if (engMed) emit(`| Engine.embed in-process (no SQL), ${HEADLINE.label} | ${fmt(engMed.seconds, 2)} | - | - | - | ${per1k(engMed.cpu)} (whole process) | ${fmt((engMed.cpu / engMed.seconds) * 100, 0)}% | - | - |`);
for (const th of BASELINE_THREADS) {
  for (const [k, label, batch] of [[K.batched(th), `in-process batch ${BATCH}, ${th} thr`, BATCH], [K.one(th), `in-process one at a time, ${th} thr`, 1]] as const) {
    const m = medianRun(results.get(k) ?? []);
    if (m) emit(`| ${label} | ${fmt(m.seconds, 2)} | - | - | - | ${per1k(m.cpu)} (whole process) | ${fmt((m.cpu / m.seconds) * 100, 0)}% | ${batch} | - |`);
  }
}
emit();
emit('### Every run');
emit();
emit('| round | measurement | embeddings/s | wall s | other load |');
emit('| ---: | --- | ---: | ---: | ---: |');
for (let r = 0; r < ROUNDS; r++) {
  for (const k of rowKeys) {
    const m = results.get(k)?.[r];
    if (m) emit(`| ${r + 1} | ${k} | ${fmt(m.rate)} | ${fmt(m.seconds, 2)} | ${fmt(otherLoad(m), 0)}% |`);
  }
}
emit();
emit('## Memory');
emit();
emit(`VmRSS of the pooler process (${HEADLINE.label}; its worker threads included), read from /proc/<pid>/status after its throughput runs; each client logged in and ran one \`${QUERY}\` (the new clients all at once), then 3 s of quiet.`);
emit();
emit('| connected clients | VmRSS MiB | VmHWM MiB | RssAnon MiB | threads |');
emit('| ---: | ---: | ---: | ---: | ---: |');
const mib = (kb: number | undefined): string => (kb === undefined ? 'n/a' : fmt(kb / 1024, 1));
emit(`| (after start-up, before any client) | ${mib(rssAtStart.VmRSS)} | ${mib(rssAtStart.VmHWM)} | ${mib(rssAtStart.RssAnon)} | ${rssAtStart.Threads} |`);
emit(`| (after the throughput runs, ${CLIENTS} clients still connected) | ${mib(rssAfterThroughput.VmRSS)} | ${mib(rssAfterThroughput.VmHWM)} | ${mib(rssAfterThroughput.RssAnon)} | ${rssAfterThroughput.Threads} |`);
for (const r of rss) emit(`| ${r.clients === 0 ? '0 (throughput clients disconnected)' : r.clients} | ${mib(r.status.VmRSS)} | ${mib(r.status.VmHWM)} | ${mib(r.status.RssAnon)} | ${r.status.Threads} |`);
emit();
const lo = rss.find((r) => r.clients === RSS_CLIENTS[0]);
const hi = rss.find((r) => r.clients === RSS_CLIENTS[RSS_CLIENTS.length - 1]);
if (lo && hi && lo !== hi) {
  const ratio = hi.status.VmRSS! / lo.status.VmRSS!;
  const perClient = (hi.status.VmRSS! - lo.status.VmRSS!) / (hi.clients - lo.clients);
  emit(`RSS at ${hi.clients} clients / RSS at ${lo.clients} clients: ${fmt(ratio, 3)} (target <= 1.10); ${fmt(perClient, 1)} KiB per extra client.`);
  emit();
}
if (profile) {
  emit('## CPU profile of the pooler (headline config, one SQL pass)');
  emit();
  emit(`\`node --cpu-prof\` on the pooler for one more pass over the corpus (${fmt(profile.rate)} embeddings/s under the profiler, avg batch ${fmt(profile.avgBatch, 1)}). Samples from the first query to the last result only. Main thread: ${fmt(profile.main.busyMs / 1000, 2)} s busy of ${fmt(profile.main.totalMs / 1000, 2)} s.`);
  emit();
  emit('Main thread, self time by code area:');
  emit();
  emit('| area | ms | % of busy |');
  emit('| --- | ---: | ---: |');
  for (const [a, ms] of profile.main.areas.filter(([a]) => a !== '(idle)')) emit(`| ${a} | ${fmt(ms, 0)} | ${fmt((ms / profile.main.busyMs) * 100, 1)} |`);
  emit();
  emit('Main thread, top functions by self time:');
  emit();
  emit('| function | ms |');
  emit('| --- | ---: |');
  for (const [f, ms] of profile.main.fns.filter(([f]) => !f.startsWith('(idle)'))) emit(`| \`${f.replace(/\|/g, '\\|')}\` | ${fmt(ms, 0)} |`);
  emit();
  for (const w of profile.workers) {
    emit(`Worker thread ${w.file.split('.')[4]}: ${fmt(w.busyMs / 1000, 2)} s busy of ${fmt(w.totalMs / 1000, 2)} s; ${w.areas.filter(([a]) => a !== '(idle)').slice(0, 6).map(([a, ms]) => `${a} ${fmt(ms, 0)} ms`).join(', ')}`);
    emit();
  }
}

const outFile = writeReport(REPO, 'engine', stamp, report);
log(`report written to ${path.relative(REPO, outFile)}`);
process.exit(0);
