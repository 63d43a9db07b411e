// The driver matrix (issue 10): real drivers through PgLynx in transaction
// mode with prepared statements on ([general] prepared_statements = true,
// prepared_statements_cache_size = 500) and pool_size 2, so every client
// moves between two server connections and every statement is prepared by
// the pooler on whichever server runs it.
//
// Each program in tests/drivers/ runs the same checks and prints one line
// per check, `ok CHECK` or `not ok CHECK: error`, exiting 1 if any failed:
//   setup             DROP/CREATE its own table drv_<driver>
//   prepared          4 connections x 50 iterations of a parameterised SELECT
//                     (a prepared/named statement), an INSERT in a committed
//                     transaction, and every 10th iteration an INSERT, a
//                     division by zero (22012) and ROLLBACK
//   embed positional  pgml.embed('lexical', $1): 384 floats, unit length,
//                     deterministic, different for different inputs
//   embed named       pgml.embed(transformer => 'lexical', text => $1) equals
//                     the positional form
//   embed literal     pgml.embed('lexical', 'hello world') through the
//                     driver's extended protocol (no parameters)
//   embed insert      INSERT ... pgml.embed('lexical', $2) in a transaction,
//                     read back as 384-element arrays
//   count             the final row count: exactly the 200 committed rows,
//                     none of the rolled-back ones
// The drivers, and what each one stresses:
//   psycopg 3   (Debian python3-psycopg)   prepare_threshold=0: every statement named; ROLLBACK
//                                          after an error is followed by DEALLOCATE ALL (extended protocol)
//   asyncpg     (Debian python3-asyncpg)   named statements; checks ParameterDescription against its arguments
//   pgx v4      (Debian golang-github-jackc-pgx-v4-dev, built offline in GOPATH mode)
//                                          statement cache; checks ParameterDescription against its arguments
//   JDBC        (Debian libpostgresql-jdbc-java) prepareThreshold=1: named server statements from the first use
//   ruby-pg     (Debian ruby-pg)           PG::Connection#prepare + exec_prepared
//   node-postgres (`pg`)                   named queries { name, text, values }
//   postgres.js (`postgres`)               prepare: true (named statements), sql.begin()
// Each driver gets a fresh pooler (one shared Postgres), so one driver
// breaking the pool cannot fail the next one. Last, the DEALLOCATE ALL case
// across two drivers: node-postgres named queries on both server connections,
// psycopg 3 BEGIN / error / ROLLBACK (then its DEALLOCATE ALL), and the
// node-postgres queries, old and new clients, must still work.
//
// Run one driver by hand against a running PgLynx (config as below):
//   export PGHOST=127.0.0.1 PGPORT=6432 PGUSER=app PGPASSWORD=pw PGDATABASE=app
//   /usr/bin/python3 tests/drivers/psycopg3.py        # Debian's python, not a pyenv one
//   /usr/bin/python3 tests/drivers/asyncpg_driver.py
//   GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$(mktemp -d) go run tests/drivers/pgx.go
//   java -cp /usr/share/java/postgresql.jar tests/drivers/Jdbc.java
//   ruby tests/drivers/ruby_pg.rb
//   node --import tsx tests/drivers/node-pg.ts
//   node --import tsx tests/drivers/postgres-js.ts
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { primaryShard } from './harness/pool-config.js';
import type pg from 'pg';
import { pgClient, run, type RunResult } from './harness/clients.js';
import { configToml, REPO_ROOT, startPglynx, type PglynxProcess } from './harness/pglynx.js';
import { startPostgres, type PgCluster } from './harness/postgres.js';
import { freePort } from './harness/ports.js';

const DRIVERS = path.join(REPO_ROOT, 'tests', 'drivers');
const CHECKS = ['setup', 'prepared', 'embed positional', 'embed named', 'embed literal', 'embed insert', 'count'];
const TIMEOUT_MS = 90_000;

interface Driver {
  name: string;
  /** Builds what the driver needs (once) and returns the command line. */
  command(tmp: string): Promise<[string, string[]]>;
}

const node = (file: string): Driver['command'] => async () => [process.execPath, ['--import', 'tsx', path.join(DRIVERS, file)]];

// GOPATH mode, offline: Debian's pgx sources, no module download.
const GO_ENV = (tmp: string): Record<string, string> => ({
  GO111MODULE: 'off',
  GOPATH: '/usr/share/gocode',
  GOCACHE: path.join(tmp, 'gocache'),
  GOFLAGS: '',
});

const drivers: Driver[] = [
  { name: 'psycopg 3 (prepare_threshold=0)', command: async () => ['/usr/bin/python3', [path.join(DRIVERS, 'psycopg3.py')]] },
  { name: 'asyncpg', command: async () => ['/usr/bin/python3', [path.join(DRIVERS, 'asyncpg_driver.py')]] },
  {
    name: 'pgx v4',
    async command(tmp) {
      const bin = path.join(tmp, 'pgx-driver');
      const b = await run('/usr/bin/go', ['build', '-o', bin, path.join(DRIVERS, 'pgx.go')], { env: GO_ENV(tmp), timeoutMs: TIMEOUT_MS });
      if (b.code !== 0) throw new Error(`go build failed (${b.code}): ${b.stderr}`);
      return [bin, []];
    },
  },
  { name: 'JDBC (prepareThreshold=1)', command: async () => ['/usr/bin/java', ['-cp', '/usr/share/java/postgresql.jar', path.join(DRIVERS, 'Jdbc.java')]] },
  { name: 'ruby-pg', command: async () => ['/usr/bin/ruby', [path.join(DRIVERS, 'ruby_pg.rb')]] },
  { name: 'node-postgres', command: node('node-pg.ts') },
  { name: 'postgres.js', command: node('postgres-js.ts') },
];

function poolerConfig(port: number, pgPort: number): string {
  return configToml({
    port,
    general: { prepared_statements: true, prepared_statements_cache_size: 500 },
    pools: {
      app: {
        pool_mode: 'transaction',
        users: [{ username: 'app', password: 'pw', pool_size: 2 }],
        shards: [primaryShard(pgPort, 'app')],
      },
    },
    extra: { models: { lexical: { builtin: 'hash-384' } } },
  });
}

async function startPooler(pgCluster: PgCluster, t: Test): Promise<PglynxProcess> {
  return startPglynx(poolerConfig(await freePort(), pgCluster.port), { t, logLevel: 'warn' });
}

/** The driver's environment: connection in PG*, and nothing of tap's (loaders) or pyenv's. */
function driverEnv(pooler: PglynxProcess): Record<string, string | undefined> {
  return {
    PGHOST: pooler.host,
    PGPORT: String(pooler.port),
    PGUSER: 'app',
    PGPASSWORD: 'pw',
    PGDATABASE: 'app',
    NODE_OPTIONS: undefined,
    PYTHONPATH: undefined,
    PYTHONHOME: undefined,
  };
}

function tail(s: string, n = 1500): string {
  const trimmed = s.trim();
  return trimmed.length > n ? `...${trimmed.slice(-n)}` : trimmed;
}

/** Asserts the exit code and one `ok CHECK` line per check, quoting the driver's own error. */
function assertChecks(t: Test, r: RunResult, checks: string[]): void {
  const lines = r.stdout.split('\n');
  for (const check of checks) {
    const line = lines.find((l) => l === `ok ${check}` || l.startsWith(`not ok ${check}:`));
    t.equal(line, `ok ${check}`, line ? `${check}: ${line}` : `${check}: not reported (stderr: ${tail(r.stderr)})`);
  }
  t.equal(r.code, 0, `exits 0 (exit ${r.code}; stderr: ${tail(r.stderr) || 'empty'})`);
}

t.test('driver matrix through PgLynx (transaction mode, prepared statements, pool_size 2)', async (t) => {
  const pgCluster = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'pw' }], t });
  await pgCluster.query('CREATE DATABASE app OWNER app');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'pglynx-drivers-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

  for (const driver of drivers) {
    await t.test(driver.name, async (t) => {
      const [cmd, args] = await driver.command(tmp);
      const pooler = await startPooler(pgCluster, t);
      const r = await run(cmd, args, { env: driverEnv(pooler), timeoutMs: TIMEOUT_MS });
      assertChecks(t, r, CHECKS);
    });
  }

  await t.test('DEALLOCATE ALL from psycopg 3 does not break node-postgres named statements', async (t) => {
    const pooler = await startPooler(pgCluster, t);
    const connect = (): Promise<pg.Client> => pgClient({ port: pooler.port, user: 'app', password: 'pw', database: 'app' });
    const named = { name: 'probe', text: 'SELECT $1::int * 2 AS v' };
    // Two clients, each in a transaction at the same time, hold both server
    // connections of pool_size 2: the named statement runs on both servers,
    // so whichever server psycopg's DEALLOCATE ALL reaches is exercised.
    // Resolves with both results, or with the first error (both transactions rolled back).
    const onBothServers = async (a: pg.Client, b: pg.Client, x: number): Promise<number[] | string> => {
      await Promise.all([a.query('BEGIN'), b.query('BEGIN')]);
      const rows = await Promise.allSettled([a, b].map(async (c) => (await c.query({ ...named, values: [x] })).rows[0].v as number));
      const failed = rows.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      await Promise.all([a.query(failed ? 'ROLLBACK' : 'COMMIT'), b.query(failed ? 'ROLLBACK' : 'COMMIT')]);
      if (failed) {
        const e = failed.reason as Error & { code?: string };
        return `${e.code ?? e.name}: ${e.message}`;
      }
      return rows.map((r) => (r as PromiseFulfilledResult<number>).value);
    };
    const a = await connect();
    const b = await connect();
    t.teardown(() => Promise.all([a.end(), b.end()]));
    t.same(await onBothServers(a, b, 1), [2, 2], 'node-postgres named query works on both server connections');

    const py = await run('/usr/bin/python3', [path.join(DRIVERS, 'psycopg3.py'), 'dealloc'], { env: driverEnv(pooler), timeoutMs: TIMEOUT_MS });
    assertChecks(t, py, ['dealloc']);

    const after = await onBothServers(a, b, 2);
    t.same(after, [4, 4], `the same node-postgres clients' named query still works on both servers (${after})`);
    const c = await connect();
    t.teardown(() => c.end());
    const fresh = await onBothServers(c, a, 3);
    t.same(fresh, [6, 6], `a new node-postgres client's named query works (${fresh})`);
  });
});
