// The client side of benchmarks/failover.sh, one run: the script sets up a
// primary, two streaming replicas and PgLynx, then runs this, which does
// the timing-critical parts itself (kill, stop, promote) so the clock is
// the one the clients see. Prints one JSON line of figures on stdout;
// progress goes to stderr.
//
// (a) 20 node-postgres clients read in a loop through pool `reads`
//     (primary + replicas, read/write splitting); `kill -9` one replica's
//     postmaster; count the errors clients see and when the last one was.
// (b) Pool `auto` (same servers, role "auto"): a writer inserts in a loop;
//     `pg_ctl stop -m immediate` the primary, `pg_ctl promote` the other
//     replica; time from the promote until an insert succeeds on it.
//
// Env: LYNX_PORT, PG_BIN, PRIMARY_DIR, REPLICA1_DIR, REPLICA2_PORT,
// REPLICA2_DIR, CLIENTS (20), WARMUP_MS (2000), OBSERVE_MS (5000),
// PASSWORD. Run as root: Postgres tools run as `postgres` via runuser.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';

const env = (name: string, fallback?: string): string => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`failover.ts: ${name} is not set`);
  return v;
};
const LYNX_PORT = Number(env('LYNX_PORT'));
const PG_BIN = env('PG_BIN', '/usr/lib/postgresql/15/bin');
const CLIENTS = Number(env('CLIENTS', '20'));
const WARMUP_MS = Number(env('WARMUP_MS', '2000'));
const OBSERVE_MS = Number(env('OBSERVE_MS', '5000'));
const PASSWORD = env('PASSWORD', 'drillpw');
const REPLICA2_PORT = Number(env('REPLICA2_PORT'));

const log = (msg: string): void => void process.stderr.write(`[failover.ts ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const round = (ms: number): number => Math.round(ms);

/** pg_ctl as the postgres user, from a directory it can read (the cluster's parent). */
function pgCtl(dataDir: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const argv = ['-u', 'postgres', '--', path.join(PG_BIN, 'pg_ctl'), '-D', dataDir, ...args];
    execFile('runuser', argv, { cwd: path.dirname(dataDir), timeout: 120_000 }, (err, _out, stderr) =>
      err ? reject(new Error(`pg_ctl ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(),
    );
  });
}

const postmasterPid = (dataDir: string): number => Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);

/** A client that replaces itself when its connection dies (a drill may cut it). */
class Reader {
  private client: pg.Client | null = null;
  reconnects = 0;
  /** What the connection reported outside any query (it is unusable after). */
  connectionError: string | null = null;

  constructor(private readonly database: string) {}

  async query(sql: string): Promise<pg.QueryResult> {
    if (!this.client) {
      const c = new pg.Client({ host: '127.0.0.1', port: LYNX_PORT, user: 'app', password: PASSWORD, database: this.database, query_timeout: 5000, connectionTimeoutMillis: 5000 });
      c.on('error', (err) => {
        if (this.client === c) this.connectionError = err.message;
      });
      c.on('end', () => {
        if (this.client === c) this.client = null;
      });
      this.client = c;
      try {
        await c.connect();
      } catch (err) {
        this.client = null;
        throw err;
      }
    }
    return this.client.query(sql);
  }

  /** After an error the connection may be unusable: start over with a fresh one. */
  reset(): void {
    this.reconnects += 1;
    this.connectionError = null;
    void this.client?.end().catch(() => {});
    this.client = null;
  }

  end(): Promise<void> {
    const c = this.client;
    this.client = null;
    return c ? c.end().catch(() => {}) : Promise.resolve();
  }
}

async function waitFor(what: string, fn: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await fn().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

async function drillKillReplica(): Promise<Record<string, unknown>> {
  const readers = Array.from({ length: CLIENTS }, () => new Reader('reads'));
  await Promise.all(readers.map((r) => r.query('SELECT 1')));
  let killAt = Infinity;
  let stop = false;
  let errorsAfter = 0;
  let errorsBefore = 0;
  let lastErrorEnd = 0;
  let readsAfter = 0;
  let maxLatencyAfter = 0;
  // The baseline: the slowest read of the warm-up's second half (the machine's own jitter).
  let baselineFrom = Infinity;
  let maxLatencyBefore = 0;
  const messages = new Map<string, number>();
  const loops = readers.map(async (r) => {
    while (!stop) {
      const t0 = performance.now();
      try {
        await r.query('SELECT count(*) FROM items');
        const t1 = performance.now();
        // A read in flight at the kill counts: its wait is the stall clients saw.
        if (t1 >= killAt) {
          readsAfter += 1;
          maxLatencyAfter = Math.max(maxLatencyAfter, t1 - t0);
        } else if (t0 >= baselineFrom) maxLatencyBefore = Math.max(maxLatencyBefore, t1 - t0);
      } catch (err) {
        const t1 = performance.now();
        if (t1 >= killAt) {
          errorsAfter += 1;
          lastErrorEnd = t1;
          // node-postgres fails a query with "not queryable" once the connection
          // reported an error between queries: name that error instead.
          const m = r.connectionError ? `${(err as Error).message} (connection error: ${r.connectionError})` : (err as Error).message;
          messages.set(m, (messages.get(m) ?? 0) + 1);
        } else errorsBefore += 1;
        r.reset();
        await sleep(10);
      }
    }
  });
  await sleep(WARMUP_MS / 2);
  baselineFrom = performance.now();
  await sleep(WARMUP_MS / 2);
  const pid = postmasterPid(env('REPLICA1_DIR'));
  log(`(a) kill -9 ${pid} (replica 1's postmaster) under ${CLIENTS} reading clients`);
  killAt = performance.now();
  process.kill(pid, 'SIGKILL');
  await sleep(OBSERVE_MS);
  stop = true;
  await Promise.all(loops);
  await Promise.all(readers.map((r) => r.end()));
  return {
    errorsBeforeKill: errorsBefore,
    errors: errorsAfter,
    errorFreeAfterMs: errorsAfter > 0 ? round(lastErrorEnd - killAt) : 0,
    readsAfterKill: readsAfter,
    maxReadLatencyBeforeKillMs: round(maxLatencyBefore),
    maxReadLatencyAfterKillMs: round(maxLatencyAfter),
    errorMessages: Object.fromEntries(messages),
  };
}

async function drillPromote(): Promise<Record<string, unknown>> {
  const writer = new Reader('auto');
  // Role auto: the probe must have found the primary before writes go anywhere.
  await waitFor('a write through pool auto', async () => (await writer.query("INSERT INTO items (v) VALUES ('before')")).rowCount === 1, 15_000);
  let promoteStart = Infinity;
  let promoteEnd = Infinity;
  let firstWrite = 0;
  let errors = 0;
  let done = false;
  const loop = (async () => {
    while (!done) {
      try {
        const r = await writer.query("INSERT INTO items (v) VALUES ('after') RETURNING inet_server_port() AS port");
        if (r.rows[0].port === REPLICA2_PORT && performance.now() >= promoteStart) {
          firstWrite = performance.now();
          done = true;
        } else await sleep(10);
      } catch {
        errors += 1;
        writer.reset();
        await sleep(10);
      }
    }
  })();
  await sleep(500);
  log('(b) pg_ctl stop -m immediate on the primary');
  const stopStart = performance.now();
  await pgCtl(env('PRIMARY_DIR'), ['-m', 'immediate', '-w', 'stop']);
  const stopEnd = performance.now();
  log('(b) pg_ctl promote on replica 2');
  promoteStart = performance.now();
  await pgCtl(env('REPLICA2_DIR'), ['-w', '-t', '60', 'promote']);
  promoteEnd = performance.now();
  const deadline = Date.now() + 30_000;
  while (!done && Date.now() < deadline) await sleep(10);
  const ok = done;
  done = true;
  await loop;
  await writer.end();
  return {
    stopMs: round(stopEnd - stopStart),
    promoteCommandMs: round(promoteEnd - promoteStart),
    writeAfterPromoteStartMs: ok ? round(firstWrite - promoteStart) : null,
    writeAfterPromoteReturnMs: ok ? round(firstWrite - promoteEnd) : null,
    writeErrors: errors,
  };
}

const kill = await drillKillReplica();
log(`(a) ${JSON.stringify(kill)}`);
const promote = await drillPromote();
log(`(b) ${JSON.stringify(promote)}`);
process.stdout.write(`${JSON.stringify({ kill, promote })}\n`);
