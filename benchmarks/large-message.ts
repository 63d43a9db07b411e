// One large client message through PgLynx, side by side with the same
// message sent to Postgres directly: how long the statement takes, and how
// long other clients' small queries wait meanwhile (the event loop must not
// be held by one client's big message).
//
//   node --import tsx benchmarks/large-message.ts            # 64 MiB, 3 rounds
//   SIZE_MB=32 ROUNDS=5 node --import tsx benchmarks/large-message.ts
//
// Prints a Markdown report to stdout.

import os from 'node:os';
import pg from 'pg';
import { configToml, startPglynx } from '../tests/harness/pglynx.js';
import { freePort } from '../tests/harness/ports.js';
import { startPostgres } from '../tests/harness/postgres.js';
import { fmt, median } from './lib/report.js';

const SIZE_MB = Number(process.env.SIZE_MB ?? '64');
const ROUNDS = Number(process.env.ROUNDS ?? '3');
const PROBE_INTERVAL_MS = 5;

const pgCluster = await startPostgres({ auth: 'md5', users: [{ name: 'bench', password: 'bench' }] });
const poolerPort = await freePort();
const pooler = await startPglynx(
  configToml({
    port: poolerPort,
    pools: {
      postgres: {
        pool_mode: 'transaction',
        users: [{ username: 'bench', password: 'bench', pool_size: 4 }],
        shards: [{ database: 'postgres', servers: [['127.0.0.1', pgCluster.port, 'primary']] }],
      },
    },
  }),
  { logLevel: 'warn' },
);

const sql = `SELECT length('${'x'.repeat(SIZE_MB << 20)}')`;

async function connect(port: number): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'bench', password: 'bench', database: 'postgres' });
  await c.connect();
  return c;
}

/** The big statement's time, and the latencies of a second client's `SELECT 1` loop while it runs. */
async function round(port: number): Promise<{ ms: number; probes: number[] }> {
  const big = await connect(port);
  const probe = await connect(port);
  const probes: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      await probe.query('SELECT 1');
      probes.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, PROBE_INTERVAL_MS));
    }
  })();
  const t0 = performance.now();
  const r = await big.query<{ length: number }>(sql);
  const ms = performance.now() - t0;
  running = false;
  await loop;
  if (Number(r.rows[0].length) !== SIZE_MB << 20) throw new Error('wrong result');
  await big.end();
  await probe.end();
  return { ms, probes };
}

function p99(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] ?? 0;
}

const direct: number[] = [];
const through: number[] = [];
const directP99: number[] = [];
const throughP99: number[] = [];
try {
  for (let i = 0; i < ROUNDS; i++) {
    const d = await round(pgCluster.port);
    direct.push(d.ms);
    directP99.push(p99(d.probes));
    const p = await round(pooler.port);
    through.push(p.ms);
    throughP99.push(p99(p.probes));
  }
} finally {
  await pooler.stop();
  await pgCluster.stop();
}

const out = [
  `# One ${SIZE_MB} MiB Query: PgLynx vs Postgres directly`,
  '',
  `${os.availableParallelism()} CPUs, Node ${process.version}, ${ROUNDS} rounds (direct then through PgLynx, alternating); medians.`,
  '',
  '| path | statement time (ms) | other client p99 SELECT 1 (ms) |',
  '|---|---|---|',
  `| Postgres directly | ${fmt(median(direct), 0)} | ${fmt(median(directP99), 2)} |`,
  `| through PgLynx | ${fmt(median(through), 0)} | ${fmt(median(throughP99), 2)} |`,
  '',
  `Ratio PgLynx / direct: **${(median(through) / median(direct)).toFixed(2)}x** statement time.`,
];
console.log(out.join('\n'));
