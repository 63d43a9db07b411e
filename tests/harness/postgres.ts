// Real throwaway PostgreSQL 15 clusters for tests (no mocks of Postgres).
//
// Each cluster lives in its own temp dir: DIR/data (the cluster), DIR (its
// unix socket) and DIR/postgres.log. initdb refuses to run as root, so when we
// are root every Postgres binary runs as the `postgres` OS user via runuser.
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { onExitSync, type Teardown } from './cleanup.js';
import { freePort } from './ports.js';

/** Directory of the PostgreSQL 15 binaries (override with PGLYNX_PG_BIN). */
export const PG_BIN = process.env.PGLYNX_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export type PgAuth = 'trust' | 'md5' | 'scram-sha-256' | 'password';

export interface PgUser {
  name: string;
  password: string;
  superuser?: boolean;
}

export interface StartPostgresOptions {
  /** Auth method for every user except `postgres` (which is always trust). Default 'trust'. */
  auth?: PgAuth;
  /** Roles to create. Each may LOGIN and CREATE in schema public of `postgres`. */
  users?: PgUser[];
  /** Extra databases to create (owner defaults to postgres). */
  databases?: { name: string; owner?: string }[];
  /** postgresql.conf settings, e.g. { max_connections: '1200' }; they win over the harness defaults. */
  settings?: Record<string, string>;
  /**
   * Kept for readability of tests that use replicas. Replication from the
   * `postgres` user is always allowed; this only adds a little WAL retention.
   */
  replication?: boolean;
  /** Registers `stop()` as teardown of this tap test. */
  t?: Teardown;
}

export type Row = pg.QueryResultRow;

export interface PgCluster {
  readonly host: string;
  readonly port: number;
  /** Temp dir holding everything of this cluster; removed by stop(). */
  readonly dir: string;
  readonly dataDir: string;
  /** Directory of the unix socket (pass as host to libpq/node-postgres). */
  readonly socketDir: string;
  readonly logPath: string;
  readonly isReplica: boolean;
  /** Runs one statement as the `postgres` superuser on a fresh connection (over the unix socket). */
  query<R extends Row = Row>(sql: string, params?: unknown[], database?: string): Promise<R[]>;
  /** Starts the cluster again after kill(). */
  start(): Promise<void>;
  /** Fast shutdown (also of replicas started from it), then removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Immediate shutdown, like a crash: no checkpoint, clients cut. The dir is kept; start() recovers. */
  kill(): Promise<void>;
  /** Fast shutdown and start on the same port (starts it if it was down). */
  restart(): Promise<void>;
  /** Streaming replica of this cluster on a new port (pg_basebackup -R). */
  startReplica(opts?: { t?: Teardown }): Promise<PgCluster>;
  /** Promotes this replica to primary and waits until it accepts writes. */
  promote(): Promise<void>;
  /** PID of the postmaster. */
  pid(): Promise<number>;
  /** The server log so far. */
  log(): Promise<string>;
}

const isRoot = process.getuid?.() === 0;

/** Command line running a Postgres binary as the postgres OS user (when we are root). */
function pgCommand(bin: string, args: string[]): [string, string[]] {
  const full = path.join(PG_BIN, bin);
  return isRoot ? ['runuser', ['-u', 'postgres', '--', full, ...args]] : [full, args];
}

function runPg(bin: string, args: string[], cwd: string, timeoutMs = 60_000): Promise<string> {
  const [cmd, argv] = pgCommand(bin, args);
  return new Promise((resolve, reject) => {
    // cwd must be readable by the postgres user, or initdb/pg_ctl complain.
    execFile(cmd, argv, { cwd, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${bin} ${args.join(' ')} failed: ${err.message}\n${stderr}${stdout}`));
      else resolve(stdout);
    });
  });
}

let pgOwner: { uid: number; gid: number } | undefined;
function chownToPostgres(p: string): void {
  if (!isRoot) return;
  pgOwner ??= {
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
  };
  chownSync(p, pgOwner.uid, pgOwner.gid);
}

function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  chownToPostgres(dir);
  return dir;
}

const quoteLiteral = (s: string): string => `'${s.replace(/'/g, "''")}'`;
const quoteIdent = (s: string): string => `"${s.replace(/"/g, '""')}"`;

// Durability is pointless for throwaway clusters and costs startup time.
const DEFAULT_SETTINGS: Record<string, string> = {
  listen_addresses: '127.0.0.1',
  max_connections: '200',
  shared_buffers: '32MB',
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  wal_level: 'replica',
  max_wal_senders: '10',
  hot_standby: 'on',
  logging_collector: 'off',
  log_line_prefix: '%m [%p] %q%u@%d ',
  // docker's 64 MB /dev/shm is too small for parallel hash joins under load.
  max_parallel_workers_per_gather: '0',
};

function hbaConf(auth: PgAuth): string {
  // The superuser stays trusted whatever `auth` is, so query()/pg_basebackup
  // need no password; everyone else gets the method under test.
  return [
    'local all         postgres trust',
    'host  all         postgres 127.0.0.1/32 trust',
    'local replication postgres trust',
    'host  replication postgres 127.0.0.1/32 trust',
    `local all         all ${auth}`,
    `host  all         all 127.0.0.1/32 ${auth}`,
    `host  replication all 127.0.0.1/32 ${auth}`,
    '',
  ].join('\n');
}

class Cluster implements PgCluster {
  readonly host = '127.0.0.1';
  port: number;
  isReplica: boolean;
  private running = false;
  private stopped = false;
  private readonly replicas = new Set<Cluster>();
  private readonly unregisterExit: () => void;

  constructor(
    readonly dir: string,
    port: number,
    private readonly settings: Record<string, string>,
    isReplica: boolean,
  ) {
    this.port = port;
    this.isReplica = isReplica;
    this.unregisterExit = onExitSync(() => this.emergencyStop());
  }

  get dataDir(): string {
    return path.join(this.dir, 'data');
  }
  get socketDir(): string {
    return this.dir;
  }
  get logPath(): string {
    return path.join(this.dir, 'postgres.log');
  }

  /** (Re)writes the harness's own config file, included from postgresql.conf. */
  writeHarnessConf(): void {
    const all: Record<string, string> = {
      ...this.settings,
      port: String(this.port),
      unix_socket_directories: this.dir,
    };
    const body = Object.entries(all)
      .map(([k, v]) => `${k} = ${quoteLiteral(v)}`)
      .join('\n');
    const file = path.join(this.dataDir, 'harness.conf');
    writeFileSync(file, `# written by tests/harness/postgres.ts\n${body}\n`);
    chownToPostgres(file);
  }

  /** Starts the postmaster; if the port was taken meanwhile, retries on a fresh one. */
  async start(): Promise<void> {
    if (this.stopped) throw new Error('cluster was stopped and removed');
    for (let attempt = 0; ; attempt++) {
      try {
        await runPg('pg_ctl', ['-D', this.dataDir, '-l', this.logPath, '-w', '-t', '60', 'start'], this.dir);
        this.running = true;
        return;
      } catch (err) {
        const log = existsSync(this.logPath) ? readFileSync(this.logPath, 'utf8') : '';
        if (attempt < 5 && /could not bind|already in use/i.test(log)) {
          this.port = await freePort();
          this.writeHarnessConf();
          continue;
        }
        throw new Error(`${(err as Error).message}\n--- ${this.logPath} ---\n${log.slice(-4000)}`);
      }
    }
  }

  async query<R extends Row = Row>(sql: string, params?: unknown[], database = 'postgres'): Promise<R[]> {
    const client = new pg.Client({
      host: this.socketDir,
      port: this.port,
      user: 'postgres',
      database,
      application_name: 'pglynx-harness',
      connectionTimeoutMillis: 10_000,
    });
    // A server shutdown while connected emits 'error'; unhandled it would crash the test.
    client.on('error', () => {});
    await client.connect();
    try {
      const res = await client.query<R>(sql, params);
      return res.rows;
    } finally {
      await client.end().catch(() => {});
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    for (const r of this.replicas) await r.stop();
    this.replicas.clear();
    if (this.running) {
      try {
        await runPg('pg_ctl', ['-D', this.dataDir, '-m', 'fast', '-w', '-t', '30', 'stop'], this.dir);
      } catch {
        await runPg('pg_ctl', ['-D', this.dataDir, '-m', 'immediate', '-w', 'stop'], this.dir).catch(() => {});
      }
      this.running = false;
    }
    this.stopped = true;
    rmSync(this.dir, { recursive: true, force: true });
    this.unregisterExit();
  }

  async kill(): Promise<void> {
    await runPg('pg_ctl', ['-D', this.dataDir, '-m', 'immediate', '-w', 'stop'], this.dir);
    this.running = false;
  }

  async restart(): Promise<void> {
    if (!this.running) return this.start();
    await runPg('pg_ctl', ['-D', this.dataDir, '-l', this.logPath, '-m', 'fast', '-w', '-t', '60', 'restart'], this.dir);
  }

  async startReplica(opts: { t?: Teardown } = {}): Promise<PgCluster> {
    const dir = makeTempDir('pglynx-pg-');
    const replica = new Cluster(dir, await freePort(), this.settings, true);
    try {
      // -c fast: without it the backup waits for a regular checkpoint (~minutes).
      await runPg(
        'pg_basebackup',
        ['-h', this.socketDir, '-p', String(this.port), '-U', 'postgres', '-D', replica.dataDir, '-R', '-X', 'stream', '-c', 'fast'],
        dir,
      );
      replica.writeHarnessConf();
      await replica.start();
    } catch (err) {
      await replica.stop().catch(() => {});
      throw err;
    }
    this.replicas.add(replica);
    opts.t?.teardown(() => replica.stop());
    return replica;
  }

  async promote(): Promise<void> {
    await runPg('pg_ctl', ['-D', this.dataDir, '-w', '-t', '60', 'promote'], this.dir);
    this.isReplica = false;
  }

  async pid(): Promise<number> {
    const text = await readFile(path.join(this.dataDir, 'postmaster.pid'), 'utf8');
    return Number(text.split('\n')[0]);
  }

  log(): Promise<string> {
    return readFile(this.logPath, 'utf8').catch(() => '');
  }

  /** Synchronous variant of stop() for process exit. */
  private emergencyStop(): void {
    if (this.stopped) return;
    this.stopped = true;
    const [cmd, argv] = pgCommand('pg_ctl', ['-D', this.dataDir, '-m', 'immediate', '-w', 'stop']);
    try {
      execFileSync(cmd, argv, { cwd: this.dir, stdio: 'ignore', timeout: 10_000 });
    } catch {
      // Not running; still remove the dir.
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** initdb + start a fresh cluster on a random port; creates the requested users/databases. */
export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PgCluster> {
  const auth = opts.auth ?? 'trust';
  const dir = makeTempDir('pglynx-pg-');
  const settings: Record<string, string> = {
    ...DEFAULT_SETTINGS,
    // How passwords get stored decides which challenge the server sends.
    password_encryption: auth === 'md5' ? 'md5' : 'scram-sha-256',
    ...(opts.replication ? { wal_keep_size: '256MB' } : {}),
    ...opts.settings,
  };
  const cluster = new Cluster(dir, await freePort(), settings, false);
  try {
    await runPg(
      'initdb',
      ['-D', cluster.dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '-N', '--no-instructions'],
      dir,
    );
    const conf = path.join(cluster.dataDir, 'postgresql.conf');
    writeFileSync(conf, `${readFileSync(conf, 'utf8')}\ninclude_if_exists = 'harness.conf'\n`);
    writeFileSync(path.join(cluster.dataDir, 'pg_hba.conf'), hbaConf(auth));
    cluster.writeHarnessConf();
    await cluster.start();
    for (const u of opts.users ?? []) {
      const su = u.superuser ? ' SUPERUSER' : '';
      await cluster.query(`CREATE ROLE ${quoteIdent(u.name)} LOGIN${su} PASSWORD ${quoteLiteral(u.password)}`);
      // PG 15 no longer lets everyone create in public; tests (pgbench -i) expect to.
      await cluster.query(`GRANT CREATE ON SCHEMA public TO ${quoteIdent(u.name)}`);
    }
    for (const db of opts.databases ?? []) {
      const owner = db.owner ? ` OWNER ${quoteIdent(db.owner)}` : '';
      await cluster.query(`CREATE DATABASE ${quoteIdent(db.name)}${owner}`);
    }
  } catch (err) {
    await cluster.stop().catch(() => {});
    throw err;
  }
  opts.t?.teardown(() => cluster.stop());
  return cluster;
}
