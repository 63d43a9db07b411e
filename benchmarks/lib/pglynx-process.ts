// PgLynx as a benchmark runs it: compiled with tsc into a temp dir (as
// `npm start` runs dist/), started as a child process on a config file,
// reached by node-postgres clients, and read from /proc (RSS, CPU).

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort, waitForPort } from '../../tests/harness/ports.js';
import { CLK_TCK } from './report.js';
import { onExitSync } from '../../tests/harness/cleanup.js';

export interface Build {
  entry: string;
  /** The tsc command, for the report. */
  command: string;
  note: string;
}

/** Compiles PgLynx into `work`/build with the repo's tsconfig; JavaScript is emitted even with type errors (noted). */
export function buildPglynx(repo: string, work: string): Build {
  const out = path.join(work, 'build');
  const tsc = path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
  let note = 'tsc exited 0';
  try {
    execFileSync(process.execPath, [tsc, '-p', path.join(repo, 'tsconfig.json'), '--outDir', out, '--sourceMap', 'false'], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stdout?: Buffer; status?: number };
    note = `tsc exited ${e.status} (type errors; JavaScript emitted anyway): ${String(e.stdout ?? '').split('\n').slice(0, 3).join(' | ')}`;
  }
  const entry = path.join(out, 'bin', 'pglynx.js');
  readFileSync(entry); // throws when nothing was emitted
  // ESM scope and version for the emitted files; dependencies from the repo.
  copyFileSync(path.join(repo, 'package.json'), path.join(out, 'package.json'));
  symlinkSync(path.join(repo, 'node_modules'), path.join(out, 'node_modules'));
  return { entry, command: `node ${path.relative(repo, tsc)} -p tsconfig.json --outDir <tmp>/build --sourceMap false`, note };
}

export interface PoolerProcess {
  port: number;
  pid: number;
  command: string;
  output(): string;
  stop(): Promise<void>;
}

/** Starts the compiled pooler on `toml` (whose `port` must be `port`), with `nodeFlags` (e.g. --cpu-prof); `children` tracks it for cleanup on exit. */
export async function startPooler(entry: string, work: string, port: number, toml: string, children: Set<ChildProcess>, nodeFlags: string[] = []): Promise<PoolerProcess> {
  const dir = mkdtempSync(path.join(work, 'pooler-'));
  const configPath = path.join(dir, 'pgcat.toml');
  writeFileSync(configPath, toml);
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, [...nodeFlags, entry, configPath, '--log-level', 'warn'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  const keep = (d: string): void => {
    out = (out + d).slice(-200_000);
  };
  child.stdout!.setEncoding('utf8').on('data', keep);
  child.stderr!.setEncoding('utf8').on('data', keep);
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  await waitForPort('127.0.0.1', port, 180_000, () =>
    child.exitCode !== null || child.signalCode !== null ? `pooler exited (${child.exitCode ?? child.signalCode}) before listening:\n${out}` : undefined,
  );
  return {
    port,
    pid: child.pid!,
    command: `node ${nodeFlags.map((f) => f + ' ').join('')}<tmp>/build/bin/pglynx.js <tmp>/pgcat.toml --log-level warn`,
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(t);
      }
      children.delete(child);
    },
  };
}

export { freePort };

export interface Login {
  user: string;
  password: string;
  database: string;
}

/** `n` logged-in node-postgres clients, `parallel` logins at a time. */
export async function connectClients(port: number, login: Login, n: number, parallel = 50): Promise<pg.Client[]> {
  const clients: pg.Client[] = [];
  for (let i = 0; i < n; i += parallel) {
    const chunk = await Promise.all(
      Array.from({ length: Math.min(parallel, n - i) }, async () => {
        const c = new pg.Client({ host: '127.0.0.1', port, ...login, connectionTimeoutMillis: 60_000, query_timeout: 600_000 });
        c.on('error', () => {});
        await c.connect();
        return c;
      }),
    );
    clients.push(...chunk);
  }
  return clients;
}

export async function endAll(clients: pg.Client[]): Promise<void> {
  await Promise.all(clients.map((c) => c.end().catch(() => {})));
}

/** SHOW MODELS over the admin database, one object per row (text values). */
export async function showModels(port: number): Promise<Record<string, string | null>[]> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'admin', password: 'admin', database: 'pgbouncer' });
  c.on('error', () => {});
  await c.connect();
  try {
    return (await c.query<Record<string, string | null>>('SHOW MODELS')).rows;
  } finally {
    await c.end().catch(() => {});
  }
}

/** VmRSS, VmHWM, RssAnon (KiB) and Threads of a process. */
export function procStatus(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^(Vm\w+|Rss\w+|Threads):\s+(\d+)/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** CPU seconds (user + system) of a process, all its threads. */
export function processCpu(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state): utime is field 14, stime 15 (clock ticks).
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** Busy CPU seconds of the whole machine, all CPUs (user, nice, system, irq, softirq, steal). */
export function machineBusy(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) / CLK_TCK;
}

/**
 * A benchmark's scratch directory and the child processes it starts, both
 * cleaned up however the process ends (Ctrl-C included); an unhandled
 * rejection is logged and ends the run.
 */
export function benchWorkspace(prefix: string, log: (msg: string) => void): { work: string; children: Set<ChildProcess> } {
  const work = mkdtempSync(path.join(os.tmpdir(), prefix));
  const children = new Set<ChildProcess>();
  onExitSync(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  });
  process.on('unhandledRejection', (err) => {
    log(`error: ${(err as Error)?.stack ?? String(err)}`);
    process.exit(1);
  });
  return { work, children };
}
