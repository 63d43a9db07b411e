// Real client programs for tests: psql, pgbench and node-postgres.
// The PG 15 binaries are called directly rather than through Debian's
// pg_wrapper, which may pick another installed version or cluster defaults.
import { spawn } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { PG_BIN } from './postgres.js';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion, collecting output; SIGKILLs it after timeoutMs. */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string | undefined>; input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      stderr += `\n[harness] ${path.basename(cmd)} killed after ${opts.timeoutMs} ms`;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 120_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {}); // the program may exit before reading stdin
    child.stdin.end(opts.input ?? '');
  });
}

export interface PsqlArgs {
  host: string;
  port: number;
  user: string;
  db: string;
  password?: string;
  /** Passed with -c (several statements run as one simple-query message). */
  sql?: string;
  /** Passed with -f. */
  file?: string;
  extraArgs?: string[];
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** psql -X -q -A -t -v ON_ERROR_STOP=1: unaligned, tuples only, so stdout is just the values. */
export function psql(a: PsqlArgs): Promise<RunResult> {
  const args = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', a.host, '-p', String(a.port), '-U', a.user, '-d', a.db];
  if (a.sql !== undefined) args.push('-c', a.sql);
  if (a.file !== undefined) args.push('-f', a.file);
  args.push(...(a.extraArgs ?? []));
  return run(path.join(PG_BIN, 'psql'), args, {
    env: {
      // An inherited PGPASSWORD would mask a wrong/missing password in the test.
      PGPASSWORD: a.password,
      PGCONNECT_TIMEOUT: '10',
      ...a.env,
    },
    timeoutMs: a.timeoutMs,
  });
}

export interface PgbenchResult extends RunResult {
  tps?: number;
  /** Transactions processed ("N" of "N/M"). */
  processed?: number;
  /** Transactions planned ("M" of "N/M", with -t). */
  expected?: number;
  failed?: number;
  latencyAvgMs?: number;
}

/** Pulls the numbers out of pgbench 15's summary. */
export function parsePgbench(out: string): Omit<PgbenchResult, keyof RunResult> {
  const num = (re: RegExp, group = 1): number | undefined => {
    const m = re.exec(out);
    return m?.[group] === undefined ? undefined : Number(m[group]);
  };
  return {
    tps: num(/^tps = ([\d.]+)/m),
    processed: num(/^number of transactions actually processed: (\d+)/m),
    expected: num(/^number of transactions actually processed: \d+\/(\d+)/m),
    failed: num(/^number of failed transactions: (\d+)/m),
    latencyAvgMs: num(/^latency average = ([\d.]+) ms/m),
  };
}

/**
 * Runs pgbench with the given args (include -h/-p/-U and the db name yourself);
 * pass PGPASSWORD in env if needed.
 */
export async function pgbench(
  args: string[],
  env?: Record<string, string>,
  opts: { timeoutMs?: number } = {},
): Promise<PgbenchResult> {
  const res = await run(path.join(PG_BIN, 'pgbench'), args, {
    env: { PGCONNECT_TIMEOUT: '10', ...env },
    timeoutMs: opts.timeoutMs ?? 300_000,
  });
  return { ...res, ...parsePgbench(res.stdout) };
}

/**
 * A connected node-postgres Client. Defaults to 127.0.0.1, bounded connect and
 * query times (a hung pooler fails the test instead of hanging it), and an
 * 'error' listener so a server/pooler dropping the connection does not crash
 * the test process; the error is still seen by the pending query.
 */
export async function pgClient(cfg: pg.ClientConfig): Promise<pg.Client> {
  const client = new pg.Client({
    host: '127.0.0.1',
    connectionTimeoutMillis: 10_000,
    query_timeout: 60_000,
    ...cfg,
  });
  client.on('error', () => {});
  await client.connect();
  return client;
}
