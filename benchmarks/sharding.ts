// PgLynx sharding benchmark: latency and throughput of a cross-shard
// (scatter-gather) SELECT through PgLynx over 3 Postgres shards against the
// same query on one shard directly, and of a top-k nearest-neighbour search
// across the 3 shards against one node holding every row. Everything runs
// side by side in one run, in interleaved rounds.
//
// Not part of CI: it takes about 2 minutes on a quiet 2-CPU machine, needs
// the Postgres 15 binaries and the `cube` contrib extension (run as root,
// like the test harness, whose startPostgres/startPglynx it reuses), and its
// numbers depend on the machine.
//
// Usage:  node --import tsx benchmarks/sharding.ts
// Env:    ROWS           rows in `docs` (default 30000), spread over 3 shards by PgLynx's pg_bigint_hash
//                        and all of them on the single node
//         DIM            dimensions of the real[] embeddings (default 64; <= 100 uses cube's C distance)
//         ROUNDS         rounds of every measurement, interleaved; the tables show the median (default 5)
//         QUERIES        sequential queries per latency measurement (default 30)
//         CLIENTS        concurrent clients of the throughput measurements (default 8)
//         THROUGHPUT_MS  duration of each throughput measurement (default 1000)
//         POOL_SIZE      server connections per shard and user of the PgLynx pools (default 4)
//         CHECK_PROBES   random probes whose 3-shard top-k is compared with the single node's (default 5)
//         SEED           data and probe seed (default 1)
//         LOG_LEVEL      the pooler's log level (default warn)
//         PGLYNX_PG_BIN  Postgres 15 binaries (default /usr/lib/postgresql/15/bin, via the test harness)
//
// The report (machine, versions, exact command and config, tables) goes to
// stdout and to benchmarks/results/sharding-<date>-<time>.md; progress goes
// to stderr. The four temp clusters and the pooler are stopped and removed
// on exit (Ctrl-C included, via the harness's onExitSync).
//
// Steps:
//  1. Four throwaway Postgres 15 clusters (tests/harness/postgres.ts: fsync
//     off, md5 for user `app`): shards 0-2 and `single`. Same schema on each:
//     docs (id bigint primary key, category text, score int, body text,
//     emb real[]) and `<->` on real[] (Euclidean distance) as an inlinable SQL
//     function over contrib `cube` (Postgres 15 here has no pgvector).
//  2. ROWS rows with random int64 ids and DIM-dimensional random embeddings
//     (seeded), loaded with multi-row INSERTs straight into the shard
//     pgBigintHash(id, 3) picks (pooler/sharding/hash.ts, bit-identical to
//     PARTITION BY HASH) and, all of them, into `single`; VACUUM ANALYZE.
//  3. PgLynx from source (`node --import tsx bin/pglynx.ts`, as the test
//     harness runs it) with pool `shop` (the 3 shards, query parser,
//     automatic_sharding_key = "docs.id") and pool `single` (the single node),
//     transaction mode.
//  4. Checks: key lookups through `shop` find the rows where they were
//     loaded; SET SHARD TO '0' sees shard 0's rows; the cross-shard answers
//     (the two SELECTs and CHECK_PROBES top-k probes) equal the single node's.
//  5. Per round, for each query and each target (targets in rotated order):
//     QUERIES sequential queries on one client (latency), then CLIENTS
//     clients in a closed loop for THROUGHPUT_MS (queries/s), with the CPU of
//     the pooler and of the Postgres clusters read from /proc around it.

import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { mulberry32 } from '../engine/onnx/bert-synth.js';
import { pgBigintHash } from '../pooler/sharding/hash.js';
import { CLK_TCK, cpuIdleFraction, fmt, median, sh, writeReport } from './lib/report.js';
import { configToml, startPglynx, type PglynxProcess } from '../tests/harness/pglynx.js';
import { freePort } from '../tests/harness/ports.js';
import { PG_BIN, startPostgres, type PgCluster } from '../tests/harness/postgres.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const ENV_KEYS = ['ROWS', 'DIM', 'ROUNDS', 'QUERIES', 'CLIENTS', 'THROUGHPUT_MS', 'POOL_SIZE', 'CHECK_PROBES', 'SEED', 'LOG_LEVEL', 'PGLYNX_PG_BIN'];
const env = (k: string, d: string): string => process.env[k] ?? d;
const ROWS = Number(env('ROWS', '30000'));
const DIM = Number(env('DIM', '64'));
const ROUNDS = Number(env('ROUNDS', '5'));
const QUERIES = Number(env('QUERIES', '30'));
const CLIENTS = Number(env('CLIENTS', '8'));
const THROUGHPUT_MS = Number(env('THROUGHPUT_MS', '1000'));
const POOL_SIZE = Number(env('POOL_SIZE', '4'));
const CHECK_PROBES = Number(env('CHECK_PROBES', '5'));
const SEED = Number(env('SEED', '1'));
const LOG_LEVEL = env('LOG_LEVEL', 'warn');
const SHARDS = 3;
const USER = 'app';
const PASSWORD = 'benchpw';
const CUBE_MAX_DIM = 100;

for (const [k, v] of Object.entries({ ROWS, DIM, ROUNDS, QUERIES, CLIENTS, THROUGHPUT_MS, POOL_SIZE })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`sharding.ts: ${k} must be a positive integer, not ${String(v)}`);
}

const log = (msg: string): void => {
  process.stderr.write(`[sharding.ts ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};
/** Nearest-rank percentile. */
const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]!;
};
const mean = (xs: number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

process.on('unhandledRejection', (err) => {
  log(`error: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});

// ------------------------------------------------------------------ data


const CATEGORIES = ['books', 'garden', 'kitchen', 'music', 'sports', 'tools', 'toys', 'travel'];
const WORDS = ['quick', 'brown', 'fox', 'lazy', 'dog', 'postgres', 'shard', 'vector', 'pooler', 'search', 'index', 'merge', 'scatter', 'gather'];

/** A random vector in [-1, 1)^DIM as a Postgres array literal (4 decimals). */
const vectorLiteral = (r: () => number): string => `{${Array.from({ length: DIM }, () => (r() * 2 - 1).toFixed(4)).join(',')}}`;

interface Doc {
  id: bigint;
  /** The row as a VALUES tuple. */
  tuple: string;
}

function makeDocs(n: number, seed: number): Doc[] {
  const r = mulberry32(seed);
  const ids = new Set<bigint>();
  while (ids.size < n) ids.add(BigInt.asIntN(64, (BigInt(Math.floor(r() * 2 ** 32)) << 32n) | BigInt(Math.floor(r() * 2 ** 32))));
  return [...ids].map((id, i) => {
    const category = CATEGORIES[Math.floor(r() * CATEGORIES.length)]!;
    const score = Math.floor(r() * 1000);
    const body = `${Array.from({ length: 3 + Math.floor(r() * 5) }, () => WORDS[Math.floor(r() * WORDS.length)]).join(' ')} #${i}`;
    return { id, tuple: `(${id}, '${category}', ${score}, '${body}', '${vectorLiteral(r)}')` };
  });
}

const useCube = DIM <= CUBE_MAX_DIM;
const DISTANCE_FN = useCube
  ? `CREATE EXTENSION cube;
CREATE FUNCTION l2(a real[], b real[]) RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
  $$ SELECT cube(a::float8[]) <-> cube(b::float8[]) $$;`
  : `CREATE FUNCTION l2(a real[], b real[]) RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
  $$ SELECT sqrt(sum((x - y)::float8 ^ 2)) FROM unnest(a, b) AS t(x, y) $$;`;
const SCHEMA = `
CREATE TABLE docs (id bigint PRIMARY KEY, category text, score int, body text, emb real[]);
${DISTANCE_FN}
CREATE OPERATOR <-> (LEFTARG = real[], RIGHTARG = real[], FUNCTION = l2);
ALTER TABLE docs OWNER TO ${USER};
`;

async function load(cluster: PgCluster, docs: Doc[]): Promise<void> {
  const client = new pg.Client({ host: cluster.socketDir, port: cluster.port, user: 'postgres', database: 'postgres' });
  await client.connect();
  try {
    for (let i = 0; i < docs.length; i += 1000) {
      await client.query(`INSERT INTO docs (id, category, score, body, emb) VALUES ${docs.slice(i, i + 1000).map((d) => d.tuple).join(', ')}`);
    }
    await client.query('VACUUM ANALYZE docs');
  } finally {
    await client.end();
  }
}

// ------------------------------------------------------------------ /proc readings


/** CPU seconds a task has run (schedstat, ns), 0 when gone. */
function schedCpu(dir: string): number {
  try {
    return Number(readFileSync(`${dir}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
  } catch {
    return 0;
  }
}

/** Fields of /proc/<pid>/stat after the command name: f[0] is field 3 (state). */
function statFields(pid: number | string): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** CPU seconds of a process (all its threads), its live children's and its reaped children's. */
function treeCpu(pid: number, children: Map<number, number[]>): number {
  let total = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) total += schedCpu(`/proc/${pid}/task/${tid}`);
  } catch {
    return 0;
  }
  const f = statFields(pid);
  if (f) total += (Number(f[13]) + Number(f[14])) / CLK_TCK; // cutime, cstime
  for (const c of children.get(pid) ?? []) total += schedCpu(`/proc/${c}`);
  return total;
}

function childrenMap(): Map<number, number[]> {
  const m = new Map<number, number[]>();
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const f = statFields(p);
    if (!f) continue;
    const ppid = Number(f[1]);
    const list = m.get(ppid);
    if (list) list.push(Number(p));
    else m.set(ppid, [Number(p)]);
  }
  return m;
}

/**
 * Busy CPU seconds of the whole machine, all CPUs: time in processes (user,
 * nice, system), in interrupts (irq, softirq: loopback TCP is processed
 * there, charged to no process) and stolen by the hypervisor.
 */
function machineBusy(): { tasks: number; irq: number; steal: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  return { tasks: (f[0]! + f[1]! + f[2]!) / CLK_TCK, irq: (f[5]! + f[6]!) / CLK_TCK, steal: f[7]! / CLK_TCK };
}


interface CpuSnapshot {
  pooler: number;
  postgres: number;
  self: number;
  machine: { tasks: number; irq: number; steal: number };
}

let poolerPid = -1;
let postmasters: number[] = [];
function cpuSnapshot(): CpuSnapshot {
  const children = childrenMap();
  const u = process.cpuUsage();
  return {
    pooler: poolerPid > 0 ? treeCpu(poolerPid, children) : 0,
    postgres: postmasters.reduce((s, p) => s + treeCpu(p, children), 0),
    self: (u.user + u.system) / 1e6,
    machine: machineBusy(),
  };
}
const cpuDelta = (a: CpuSnapshot, b: CpuSnapshot): CpuSnapshot => ({
  pooler: b.pooler - a.pooler,
  postgres: b.postgres - a.postgres,
  self: b.self - a.self,
  machine: { tasks: b.machine.tasks - a.machine.tasks, irq: b.machine.irq - a.machine.irq, steal: b.machine.steal - a.machine.steal },
});

// ------------------------------------------------------------------ targets and queries

type TargetKey = 'lynx3' | 'lynxShard0' | 'direct0' | 'lynxSingle' | 'directSingle';
interface Target {
  key: TargetKey;
  label: string;
  clients: pg.Client[];
}
type QueryKey = 'agg' | 'top' | 'knn';
interface QueryDef {
  key: QueryKey;
  sql: string;
  title: string;
  baseline: TargetKey;
  /** Parameters for one execution (a fresh random probe for top-k). */
  params(r: () => number): string[] | undefined;
}

const QUERY_DEFS: QueryDef[] = [
  {
    key: 'agg',
    sql: 'SELECT category, count(*), avg(score) FROM docs GROUP BY category ORDER BY category',
    title: 'GROUP BY aggregate',
    baseline: 'direct0',
    params: () => undefined,
  },
  {
    key: 'top',
    sql: 'SELECT id, score FROM docs ORDER BY score DESC, id LIMIT 10',
    title: 'ORDER BY ... LIMIT 10',
    baseline: 'direct0',
    params: () => undefined,
  },
  {
    key: 'knn',
    sql: 'SELECT id FROM docs ORDER BY emb <-> $1 LIMIT 10',
    title: 'top-k nearest neighbours (k = 10)',
    baseline: 'directSingle',
    params: (r) => [vectorLiteral(r)],
  },
];

const TARGET_LABELS: Record<TargetKey, string> = {
  lynx3: 'PgLynx `shop`, 3 shards (scatter-gather)',
  lynxShard0: "PgLynx `shop`, `SET SHARD TO '0'`",
  direct0: 'shard 0 direct',
  lynxSingle: 'PgLynx `single` (all rows)',
  directSingle: 'single node direct (all rows)',
};
const TARGET_ORDER: TargetKey[] = ['lynx3', 'lynxShard0', 'direct0', 'lynxSingle', 'directSingle'];

async function connect(port: number, database: string): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: USER, password: PASSWORD, database, query_timeout: 120_000, connectionTimeoutMillis: 20_000 });
  c.on('error', (err) => log(`client error (${database}@${port}): ${err.message}`));
  await c.connect();
  return c;
}

/** Rows as arrays of raw text, as the server sent them. */
const RAW = { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig;
async function rawRows(c: pg.Client, text: string, values?: string[]): Promise<(string | null)[][]> {
  const r = await c.query({ text, values, rowMode: 'array', types: RAW });
  return r.rows as (string | null)[][];
}

interface Sample {
  p50: number;
  p95: number;
  mean: number;
  max: number;
  qps: number;
  throughputQueries: number;
  /** CPU ms per query during the throughput run. */
  poolerMsPerQuery: number;
  postgresMsPerQuery: number;
}

async function latencyRun(t: Target, q: QueryDef, r: () => number): Promise<number[]> {
  const c = t.clients[0]!;
  const times: number[] = [];
  for (let i = 0; i < QUERIES; i++) {
    const params = q.params(r);
    const t0 = performance.now();
    await c.query(q.sql, params);
    times.push(performance.now() - t0);
  }
  return times;
}

async function throughputRun(t: Target, q: QueryDef, seed: number): Promise<{ qps: number; n: number; cpu: CpuSnapshot }> {
  let n = 0;
  const before = cpuSnapshot();
  const t0 = performance.now();
  const deadline = t0 + THROUGHPUT_MS;
  await Promise.all(
    t.clients.map(async (c, i) => {
      const r = mulberry32(seed * 1000 + i);
      while (performance.now() < deadline) {
        await c.query(q.sql, q.params(r));
        n++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return { qps: n / seconds, n, cpu: cpuDelta(before, cpuSnapshot()) };
}

// ------------------------------------------------------------------ main

const started = new Date();
// The code under test is the working tree at the start (others may commit meanwhile).
const commit = sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']);
const dirty = sh('git', ['-C', REPO, 'status', '--porcelain']).length > 0;
const report: string[] = [];
const emit = (line = ''): void => {
  report.push(line);
};

const loadBefore = os.loadavg();
const idleBefore = await cpuIdleFraction(2000);
log(`load average ${loadBefore.map((x) => fmt(x, 2)).join(', ')}, CPU idle ${fmt(idleBefore * 100, 0)}%`);

// 1. clusters
log('starting 4 Postgres clusters (3 shards + single)');
const users = [{ name: USER, password: PASSWORD }];
const shards = await Promise.all(Array.from({ length: SHARDS }, () => startPostgres({ auth: 'md5', users })));
const single = await startPostgres({ auth: 'md5', users });
const clusters = [...shards, single];
for (const c of clusters) await c.query(SCHEMA);
postmasters = await Promise.all(clusters.map((c) => c.pid()));
const pgVersion = (await single.query<{ v: string }>('SELECT version() AS v'))[0]!.v;
const cubeVersion = useCube ? (await single.query<{ v: string }>("SELECT extversion AS v FROM pg_extension WHERE extname = 'cube'"))[0]!.v : null;

// 2. data
const tGen = performance.now();
const docs = makeDocs(ROWS, SEED);
const perShard: Doc[][] = Array.from({ length: SHARDS }, () => []);
for (const d of docs) perShard[pgBigintHash(d.id, SHARDS)]!.push(d);
log(`generated ${ROWS} rows in ${fmt((performance.now() - tGen) / 1000, 1)} s; loading (${perShard.map((s) => s.length).join(' + ')} on the shards, ${ROWS} on single)`);
const tLoad = performance.now();
await Promise.all([...shards.map((c, i) => load(c, perShard[i]!)), load(single, docs)]);
const loadSeconds = (performance.now() - tLoad) / 1000;
const tableSize = (await single.query<{ s: string }>("SELECT pg_size_pretty(pg_total_relation_size('docs')) AS s"))[0]!.s;
log(`loaded in ${fmt(loadSeconds, 1)} s (single node's docs: ${tableSize})`);

// 3. pooler
const lynxPort = await freePort();
const servers = (c: PgCluster): [string, number, 'primary'][] => [['127.0.0.1', c.port, 'primary']];
const poolUser = { username: USER, password: PASSWORD, pool_size: POOL_SIZE };
const toml = configToml({
  port: lynxPort,
  pools: {
    shop: {
      pool_mode: 'transaction',
      query_parser_enabled: true,
      automatic_sharding_key: 'docs.id',
      sharding_function: 'pg_bigint_hash',
      users: [poolUser],
      shards: shards.map((c) => ({ database: 'postgres', servers: servers(c) })),
    },
    single: { pool_mode: 'transaction', users: [poolUser], shards: [{ database: 'postgres', servers: servers(single) }] },
  },
});
log('starting PgLynx from source (node --import tsx bin/pglynx.ts)');
const lynx: PglynxProcess = await startPglynx(toml, { logLevel: LOG_LEVEL, timeoutMs: 60_000 });
poolerPid = lynx.pid;

// Clients: CLIENTS per target; client 0 also runs the latency measurements.
const makeClients = async (port: number, database: string, setup?: string): Promise<pg.Client[]> =>
  Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      const c = await connect(port, database);
      if (setup) await c.query(setup);
      return c;
    }),
  );
const targets: Record<TargetKey, Target> = {
  lynx3: { key: 'lynx3', label: TARGET_LABELS.lynx3, clients: await makeClients(lynx.port, 'shop') },
  lynxShard0: { key: 'lynxShard0', label: TARGET_LABELS.lynxShard0, clients: await makeClients(lynx.port, 'shop', "SET SHARD TO '0'") },
  direct0: { key: 'direct0', label: TARGET_LABELS.direct0, clients: await makeClients(shards[0]!.port, 'postgres') },
  lynxSingle: { key: 'lynxSingle', label: TARGET_LABELS.lynxSingle, clients: await makeClients(lynx.port, 'single') },
  directSingle: { key: 'directSingle', label: TARGET_LABELS.directSingle, clients: await makeClients(single.port, 'postgres') },
};
const allClients = Object.values(targets).flatMap((t) => t.clients);

// 4. checks
log('checks');
const checks: string[] = [];
let checkFailures = 0;
const check = (ok: boolean, what: string): void => {
  checks.push(`- ${ok ? 'ok' : '**FAILED**'}: ${what}`);
  if (!ok) {
    checkFailures++;
    log(`check failed: ${what}`);
  }
};
{
  const shop = targets.lynx3.clients[0]!;
  const r = mulberry32(SEED + 7);
  const sample = Array.from({ length: 20 }, () => docs[Math.floor(r() * docs.length)]!);
  let found = 0;
  for (const d of sample) if ((await rawRows(shop, `SELECT id FROM docs WHERE id = ${d.id}`)).length === 1 && (await rawRows(shop, 'SELECT id FROM docs WHERE id = $1', [String(d.id)])).length === 1) found++;
  check(found === sample.length, `${found} of ${sample.length} random ids found through \`shop\` by key (automatic_sharding_key, simple and extended protocol): rows sit on the shard PgLynx routes their key to`);
  const shard0Count = (await rawRows(targets.direct0.clients[0]!, 'SELECT count(*) FROM docs'))[0]![0];
  const viaSetShard = (await rawRows(targets.lynxShard0.clients[0]!, 'SELECT count(*) FROM docs'))[0]![0];
  check(shard0Count === String(perShard[0]!.length) && viaSetShard === shard0Count, `\`SET SHARD TO '0'\` through \`shop\` counts ${viaSetShard} rows, shard 0 directly ${shard0Count} (loaded: ${perShard[0]!.length})`);
  const total = (await rawRows(shop, 'SELECT count(*) FROM docs'))[0]![0];
  check(total === String(ROWS), `\`SELECT count(*) FROM docs\` across the 3 shards: ${total} (rows: ${ROWS})`);
  for (const q of QUERY_DEFS.filter((x) => x.key !== 'knn')) {
    const a = await rawRows(shop, q.sql);
    const b = await rawRows(targets.directSingle.clients[0]!, q.sql);
    check(JSON.stringify(a) === JSON.stringify(b), `\`${q.sql}\`: 3-shard answer through PgLynx ${JSON.stringify(a) === JSON.stringify(b) ? 'equals' : 'differs from'} the single node's (${b.length} rows)`);
  }
  const knn = QUERY_DEFS.find((x) => x.key === 'knn')!;
  const pr = mulberry32(SEED + 99);
  let same = 0;
  for (let i = 0; i < CHECK_PROBES; i++) {
    const probe = knn.params(pr);
    const a = await rawRows(shop, knn.sql, probe);
    const b = await rawRows(targets.directSingle.clients[0]!, knn.sql, probe);
    const c = await rawRows(targets.lynxSingle.clients[0]!, knn.sql, probe);
    if (JSON.stringify(a) === JSON.stringify(b) && JSON.stringify(c) === JSON.stringify(b) && b.length === 10) same++;
  }
  check(same === CHECK_PROBES, `top-k: for ${same} of ${CHECK_PROBES} random probes the 10 ids (in order) through PgLynx over 3 shards equal the single node's, directly and through \`single\``);
}

// Warm-up: every client runs every query once.
log('warm-up');
await Promise.all(
  Object.values(targets).map(async (t) => {
    const r = mulberry32(SEED + 5);
    for (const q of QUERY_DEFS) for (const c of t.clients) await c.query(q.sql, q.params(r));
  }),
);

// 5. rounds
const samples = new Map<string, Sample[]>();
const sampleKey = (q: QueryKey, t: TargetKey): string => `${q}/${t}`;
const roundInfo: { round: number; seconds: number; otherLoad: number; irq: number; steal: number; ours: number }[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const roundStart = performance.now();
  const cpu0 = cpuSnapshot();
  const order = TARGET_ORDER.map((_, i) => TARGET_ORDER[(i + round) % TARGET_ORDER.length]!);
  for (const q of QUERY_DEFS) {
    for (const tk of order) {
      const t = targets[tk];
      // The same probe sequence for every target within a round.
      const times = await latencyRun(t, q, mulberry32(SEED * 7919 + round));
      const tp = await throughputRun(t, q, SEED + round);
      const s: Sample = {
        p50: percentile(times, 50),
        p95: percentile(times, 95),
        mean: mean(times),
        max: Math.max(...times),
        qps: tp.qps,
        throughputQueries: tp.n,
        poolerMsPerQuery: (tp.cpu.pooler / tp.n) * 1000,
        postgresMsPerQuery: (tp.cpu.postgres / tp.n) * 1000,
      };
      const list = samples.get(sampleKey(q.key, tk)) ?? [];
      list.push(s);
      samples.set(sampleKey(q.key, tk), list);
    }
  }
  const d = cpuDelta(cpu0, cpuSnapshot());
  const seconds = (performance.now() - roundStart) / 1000;
  const pct = (cpuSeconds: number): number => (cpuSeconds / seconds) * 100;
  const ours = d.pooler + d.postgres + d.self;
  const otherLoad = pct(Math.max(0, d.machine.tasks - ours));
  roundInfo.push({ round: round + 1, seconds, otherLoad, irq: pct(d.machine.irq), steal: pct(d.machine.steal), ours: pct(ours) });
  log(`round ${round + 1}/${ROUNDS} done in ${fmt(seconds, 1)} s (CPU, % of one: ours ${fmt(pct(ours), 0)}, other processes ${fmt(otherLoad, 0)}, irq ${fmt(pct(d.machine.irq), 0)}, steal ${fmt(pct(d.machine.steal), 0)})`);
}

// ------------------------------------------------------------------ tear down

await Promise.all(allClients.map((c) => c.end().catch(() => undefined)));
const poolerExit = await lynx.stop();
const poolerOutput = lynx.output();
for (const c of clusters) await c.stop();

// ------------------------------------------------------------------ report

interface Summary {
  p50: number;
  p95: number;
  mean: number;
  qps: number;
  poolerMs: number;
  postgresMs: number;
  runs: Sample[];
}
const summary = (q: QueryKey, t: TargetKey): Summary => {
  const runs = samples.get(sampleKey(q, t)) ?? [];
  return {
    p50: median(runs.map((s) => s.p50)),
    p95: median(runs.map((s) => s.p95)),
    mean: median(runs.map((s) => s.mean)),
    qps: median(runs.map((s) => s.qps)),
    poolerMs: median(runs.map((s) => s.poolerMsPerQuery)),
    postgresMs: median(runs.map((s) => s.postgresMsPerQuery)),
    runs,
  };
};
const ratio = (x: number, ref: number): string => (Number.isFinite(x) && Number.isFinite(ref) && ref > 0 ? `${fmt(x / ref, 2)}x` : 'n/a');

const pkgVersion = (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const pgClientVersion = (JSON.parse(readFileSync(path.join(REPO, 'node_modules', 'pg', 'package.json'), 'utf8')) as { version: string }).version;
const cpuModel = (/model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown').trim();
const osName = (/PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'unknown').trim();
const idleAfter = await cpuIdleFraction(1000);
const loadAfter = os.loadavg();
const stamp = started.toISOString().replace(/T/, '-').replace(/:/g, '').slice(0, 17);
const envSet = Object.entries(process.env).filter(([k]) => ENV_KEYS.includes(k));
const command = `${envSet.map(([k, v]) => `${k}=${JSON.stringify(v)} `).join('')}node --import tsx benchmarks/sharding.ts`;

emit(`# PgLynx sharding benchmark, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC`);
emit();
emit(`PgLynx ${pkgVersion} at commit ${commit}${dirty ? ' plus uncommitted changes' : ''}.`);
emit();
emit('## Machine');
emit();
emit(`- nproc: ${os.availableParallelism()} (${cpuModel}), ${fmt(os.totalmem() / 2 ** 30, 1)} GiB RAM, ${osName}, kernel ${os.release()}`);
emit(`- Node ${process.version}, node-postgres ${pgClientVersion}; ${pgVersion.split(',')[0]} (${PG_BIN})${cubeVersion ? `, contrib cube ${cubeVersion}` : ''}`);
emit(`- Load average before the run: ${loadBefore.map((x) => fmt(x, 2)).join(', ')} (CPU ${fmt(idleBefore * 100, 0)}% idle over 2 s); after: ${loadAfter.map((x) => fmt(x, 2)).join(', ')} (${fmt(idleAfter * 100, 0)}% idle)`);
emit();
emit('## Setup');
emit();
emit(`- Command: \`${command}\``);
emit(`- Settings: ROWS=${ROWS}, DIM=${DIM}, ROUNDS=${ROUNDS}, QUERIES=${QUERIES}, CLIENTS=${CLIENTS}, THROUGHPUT_MS=${THROUGHPUT_MS}, POOL_SIZE=${POOL_SIZE}, CHECK_PROBES=${CHECK_PROBES}, SEED=${SEED}.`);
emit(`- Four throwaway Postgres 15 clusters from tests/harness/postgres.ts (fsync, synchronous_commit and full_page_writes off, shared_buffers 32MB, max_parallel_workers_per_gather 0, md5 for \`${USER}\` over 127.0.0.1): shards 0-2 and \`single\`, all on this machine.`);
emit(`- Data: ${ROWS} rows of \`docs (id bigint primary key, category text, score int, body text, emb real[])\`: random int64 ids, ${CATEGORIES.length} categories, score 0-999, ${DIM}-dimensional embeddings uniform in [-1, 1) (4 decimals), seed ${SEED}. Shards hold ${perShard.map((s) => s.length).join(' / ')} rows (placed with \`pgBigintHash(id, 3)\` from pooler/sharding/hash.ts, as PARTITION BY HASH would), \`single\` all ${ROWS} (${tableSize} with its index). Loaded with multi-row INSERTs of 1,000 rows over the unix socket, then VACUUM ANALYZE, in ${fmt(loadSeconds, 1)} s.`);
emit(`- Distance: Postgres 15 here has no pgvector, so \`<->\` on real[] is ${useCube ? 'an inlinable SQL function over contrib `cube` (`cube(a::float8[]) <-> cube(b::float8[])`, Euclidean distance in C)' : 'a SQL function (`sqrt(sum((x - y)^2))` over `unnest(a, b)`; DIM > 100 is beyond cube)'}. No index: every top-k query scans all the rows it covers.`);
emit(`- PgLynx ${pkgVersion} runs from source, \`node --import tsx bin/pglynx.ts <config> --log-level ${LOG_LEVEL}\` (tests/harness/pglynx.ts's startPglynx; not compiled), exit code ${String(poolerExit)} after SIGTERM. Config:`);
emit();
emit('```toml');
emit(toml.replace(/password = "[^"]*"/g, 'password = "<redacted>"').trim());
emit('```');
emit();
emit(`- Targets, each with ${CLIENTS} node-postgres ${pgClientVersion} clients (md5 over 127.0.0.1): ${TARGET_ORDER.map((k) => TARGET_LABELS[k]).join('; ')}. The \`SET SHARD TO '0'\` clients ran it once after connecting (it stays for the connection). Through PgLynx, ${CLIENTS} clients share ${POOL_SIZE} server connections per shard (transaction mode); direct clients have a backend each.`);
emit(`- Queries: ${QUERY_DEFS.map((q) => `\`${q.sql}\``).join('; ')}. The first two run in the simple protocol (no parameters); the top-k one in the extended protocol with a fresh random probe (a ${DIM}-element real[] literal) per execution; within a round every target gets the same probe sequence in the latency runs.`);
emit(`- Each round runs, for every query and every target (targets in an order rotated each round): ${QUERIES} sequential queries on one client (latency: p50, p95 nearest-rank, mean), then ${CLIENTS} clients in a closed loop for ${THROUGHPUT_MS} ms (queries/s = completed / wall time until the last finished). Tables show the median over ${ROUNDS} rounds of each figure. CPU of the pooler process and of the Postgres clusters (postmasters and their children) is read from /proc around each throughput run. Before round 1 every client ran every query once.`);
emit();
emit('## Checks');
emit();
for (const c of checks) emit(c);
emit();
emit('## Results');
emit();
emit(`Medians of ${ROUNDS} interleaved rounds. Ratios: p50 latency and queries/s over the baseline's (marked); for the scatter-gather SELECTs the baseline is one shard directly, for top-k the single node holding every row, directly.`);
emit();
emit(`| query | measurement | p50 ms | p95 ms | mean ms | queries/s at ${CLIENTS} clients | p50 vs baseline | q/s vs baseline | pooler CPU ms/query | Postgres CPU ms/query |`);
emit('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const q of QUERY_DEFS) {
  const base = summary(q.key, q.baseline);
  for (const tk of TARGET_ORDER) {
    const s = summary(q.key, tk);
    const name = tk === q.baseline ? `${TARGET_LABELS[tk]} (baseline)` : TARGET_LABELS[tk];
    const bold = (x: string): string => (tk === 'lynx3' ? `**${x}**` : x);
    emit(`| ${q.title} | ${bold(name)} | ${bold(fmt(s.p50, 2))} | ${fmt(s.p95, 2)} | ${fmt(s.mean, 2)} | ${bold(fmt(s.qps, 0))} | ${bold(ratio(s.p50, base.p50))} | ${bold(ratio(s.qps, base.qps))} | ${tk.startsWith('lynx') ? fmt(s.poolerMs, 3) : '-'} | ${fmt(s.postgresMs, 2)} |`);
  }
}
emit();
const knn3 = summary('knn', 'lynx3');
const knnSingle = summary('knn', 'directSingle');
const knnShard0 = summary('knn', 'direct0');
const agg3 = summary('agg', 'lynx3');
const agg0 = summary('agg', 'direct0');
const top3 = summary('top', 'lynx3');
const top0 = summary('top', 'direct0');
emit('Reading the table:');
emit();
emit(`- Scatter-gather: through PgLynx the GROUP BY over 3 shards took ${fmt(agg3.p50, 2)} ms at p50 against ${fmt(agg0.p50, 2)} ms on one shard directly (${ratio(agg3.p50, agg0.p50)}), the ORDER BY ... LIMIT 10 ${fmt(top3.p50, 2)} against ${fmt(top0.p50, 2)} ms (${ratio(top3.p50, top0.p50)}). The pooler parses and rewrites the statement, sends it to the 3 shards at once, waits for all three and merges; with ${os.availableParallelism()} CPUs the three shard backends cannot all run at once. Compare with the \`SET SHARD TO '0'\` row for the pooler's hop alone, and with the single-node rows for the same answer from one node.`);
emit(`- Top-k: each shard scans a third of the rows, so its scan is about a third of the single node's (shard 0 directly: ${fmt(knnShard0.p50, 2)} ms vs ${fmt(knnSingle.p50, 2)} ms); the 3 scans run in parallel on ${os.availableParallelism()} CPUs, so the 3-shard query (${fmt(knn3.p50, 2)} ms p50) is ${ratio(knn3.p50, knnSingle.p50)} the single node's latency. Under ${CLIENTS} concurrent clients the ${os.availableParallelism()} CPUs are shared by everything, and the scanning work per query is the same (every row once), so splitting it over shards cannot raise throughput: ${fmt(knn3.qps, 0)} against ${fmt(knnSingle.qps, 0)} queries/s (${ratio(knn3.qps, knnSingle.qps)}), the difference being the pooler's and the extra backends' work per query.`);
emit(`- CPU per query is from /proc over the throughput runs; the pooler column is the whole PgLynx process (running from source under tsx), the Postgres column all four clusters.`);
emit();
emit('## Every round');
emit();
emit('| round | wall s | benchmark + pooler + Postgres CPU | other processes\' CPU | irq + softirq | steal |');
emit('| ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of roundInfo) emit(`| ${r.round} | ${fmt(r.seconds, 1)} | ${fmt(r.ours, 0)}% | ${fmt(r.otherLoad, 0)}% | ${fmt(r.irq, 0)}% | ${fmt(r.steal, 0)}% |`);
emit();
emit(`In % of one CPU over the round (${os.availableParallelism() * 100}% is the whole machine), from /proc: this benchmark process, the pooler and the four clusters; every other process (user + nice + system time of the machine minus ours: other work on a shared machine); interrupt time (loopback TCP is largely processed in softirq, charged to no process); time stolen by the hypervisor.`);
emit();
emit('| round | query | measurement | p50 ms | p95 ms | mean ms | max ms | queries/s | queries in the throughput run |');
emit('| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (let r = 0; r < ROUNDS; r++) {
  for (const q of QUERY_DEFS) {
    for (const tk of TARGET_ORDER) {
      const s = samples.get(sampleKey(q.key, tk))?.[r];
      if (s) emit(`| ${r + 1} | ${q.title} | ${TARGET_LABELS[tk]} | ${fmt(s.p50, 2)} | ${fmt(s.p95, 2)} | ${fmt(s.mean, 2)} | ${fmt(s.max, 2)} | ${fmt(s.qps, 0)} | ${s.throughputQueries} |`);
    }
  }
}
emit();
const tail = poolerOutput.trim().split('\n').slice(-20).join('\n');
if (tail) {
  emit(`## Pooler output (last lines, log level ${LOG_LEVEL})`);
  emit();
  emit('```');
  emit(tail);
  emit('```');
  emit();
}

const outFile = writeReport(REPO, 'sharding', stamp, report);
log(`report written to ${path.relative(REPO, outFile)}${checkFailures ? ` (${checkFailures} check(s) FAILED)` : ''}`);
process.exit(checkFailures ? 1 : 0);
