// Tests of the test harness itself: real clusters, real clients.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import t from 'tap';
import toml from 'toml';
import { parsePgbench, pgbench, pgClient, psql } from './harness/clients.js';
import { configToml } from './harness/pglynx.js';
import { startPostgres } from './harness/postgres.js';
import { freePort, isPortOpen, waitForPortClosed } from './harness/ports.js';

async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test('freePort gives a closed port', async (t) => {
  const port = await freePort();
  t.ok(port > 1024 && port < 65536);
  t.equal(await isPortOpen('127.0.0.1', port), false);
});

t.test('scram cluster, clients, replica, promote, cleanup', async (t) => {
  const password = `it's "q" \\ s3cret`;
  const primary = await startPostgres({
    auth: 'scram-sha-256',
    users: [{ name: 'app', password }],
    replication: true,
    t,
  });
  const dirs = [primary.dir];
  const ports = [primary.port];
  t.equal(primary.host, '127.0.0.1');
  t.ok(existsSync(primary.dataDir), 'data dir exists');

  const [stored] = await primary.query<{ p: string }>("SELECT rolpassword AS p FROM pg_authid WHERE rolname = 'app'");
  t.match(stored?.p, /^SCRAM-SHA-256\$/, 'password stored as SCRAM');

  const client = await pgClient({ port: primary.port, user: 'app', password, database: 'postgres' });
  const who = await client.query<{ u: string }>('SELECT current_user AS u');
  t.equal(who.rows[0]?.u, 'app', 'node-postgres logs in with scram');
  await client.end();

  await t.rejects(
    pgClient({ port: primary.port, user: 'app', password: 'wrong', database: 'postgres' }),
    /password authentication failed/,
    'wrong password is refused',
  );

  const ps = await psql({ host: primary.host, port: primary.port, user: 'app', db: 'postgres', password, sql: 'SELECT current_user' });
  t.equal(ps.code, 0, 'psql exit code', { stderr: ps.stderr });
  t.equal(ps.stdout.trim(), 'app', 'psql logs in with scram');
  const noPw = await psql({ host: primary.host, port: primary.port, user: 'app', db: 'postgres', sql: 'SELECT 1', extraArgs: ['-w'] });
  t.not(noPw.code, 0, 'psql without password is refused');

  await psql({ host: primary.host, port: primary.port, user: 'app', db: 'postgres', password, sql: 'CREATE TABLE t (v int); INSERT INTO t VALUES (1)' });
  const pid = await primary.pid();
  t.ok(Number.isInteger(pid) && pid > 0, 'postmaster pid');
  t.doesNotThrow(() => process.kill(pid, 0), 'postmaster is alive');

  const replica = await primary.startReplica();
  dirs.push(replica.dir);
  ports.push(replica.port);
  t.not(replica.port, primary.port);
  await primary.query('INSERT INTO t VALUES (2)');
  const rows = await eventually(
    () => replica.query<{ n: number }>('SELECT count(*)::int AS n FROM t'),
    (r) => r[0]?.n === 2,
  );
  t.equal(rows[0]?.n, 2, 'row streamed to replica');
  t.same(await replica.query('SELECT pg_is_in_recovery() AS r'), [{ r: true }]);
  await t.rejects(replica.query('INSERT INTO t VALUES (3)'), /read-only/);

  // Crash and recover the primary; the replica reconnects by itself.
  await primary.kill();
  await waitForPortClosed(primary.host, primary.port);
  await primary.start();
  t.same(await primary.query('SELECT count(*)::int AS n FROM t'), [{ n: 2 }], 'data survives a crash');
  await primary.restart();
  t.same(await primary.query('SELECT 1 AS one'), [{ one: 1 }], 'restart');

  await replica.promote();
  t.same(await replica.query('SELECT pg_is_in_recovery() AS r'), [{ r: false }], 'promoted');
  await replica.query('INSERT INTO t VALUES (3)');
  t.same(await replica.query('SELECT count(*)::int AS n FROM t'), [{ n: 3 }], 'promoted replica takes writes');

  // pgbench against the real server, to check the parser on real output.
  const env = { PGPASSWORD: password };
  const conn = ['-h', primary.host, '-p', String(primary.port), '-U', 'app'];
  const init = await pgbench(['-i', '-s', '1', '-q', ...conn, 'postgres'], env);
  t.equal(init.code, 0, 'pgbench -i', { stderr: init.stderr });
  const bench = await pgbench(['-c', '2', '-t', '50', '-S', ...conn, 'postgres'], env);
  t.equal(bench.code, 0, 'pgbench run', { stderr: bench.stderr });
  t.equal(bench.processed, 100);
  t.equal(bench.expected, 100);
  t.equal(bench.failed, 0);
  t.ok((bench.tps ?? 0) > 0, 'tps parsed');

  await primary.stop(); // also stops the replica started from it
  await replica.stop(); // idempotent
  for (const d of dirs) t.notOk(existsSync(d), `${d} removed`);
  for (const p of ports) t.equal(await isPortOpen('127.0.0.1', p), false, `port ${p} closed`);
});

t.test('md5 cluster', async (t) => {
  const pg = await startPostgres({ auth: 'md5', users: [{ name: 'm', password: 'pw', superuser: true }], t });
  const [stored] = await pg.query<{ p: string }>("SELECT rolpassword AS p FROM pg_authid WHERE rolname = 'm'");
  t.match(stored?.p, /^md5/, 'password stored as md5');
  const c = await pgClient({ port: pg.port, user: 'm', password: 'pw', database: 'postgres' });
  t.same((await c.query('SELECT current_user AS u')).rows, [{ u: 'm' }]);
  await c.end();
  t.same((await pg.query<{ max_connections: string }>('SHOW max_connections')).map((r) => r.max_connections), ['200']);
});

// A test that dies (^C, tap timeout, crash) must not leak its clusters.
for (const how of ['SIGINT', 'exit'] as const) {
  t.test(`cluster is removed when the test process ends by ${how}`, async (t) => {
    const url = new URL('./harness/postgres.ts', import.meta.url).href;
    const code = `
      const { startPostgres } = await import(${JSON.stringify(url)});
      const pg = await startPostgres();
      console.log(JSON.stringify({ dir: pg.dir, port: pg.port }));
      if (${JSON.stringify(how)} === 'exit') process.exit(0);
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      env: { ...process.env, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    const info = await new Promise<{ dir: string; port: number }>((resolve, reject) => {
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('\n')) resolve(JSON.parse(out) as { dir: string; port: number });
      });
      child.on('exit', () => reject(new Error(`child exited early: ${out}`)));
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (c, sig) => r(c ?? (sig ? -1 : null))));
    if (how === 'SIGINT') child.kill('SIGINT');
    await exited;
    t.notOk(existsSync(info.dir), 'temp dir removed');
    t.equal(await isPortOpen('127.0.0.1', info.port), false, 'port closed');
  });
}

t.test('configToml', async (t) => {
  const text = configToml({
    port: 6433,
    general: { log_client_connections: true, admin_password: 'a"b\\c\n' },
    pools: {
      'my db': {
        pool_mode: 'transaction',
        users: [{ username: 'u', password: `p"'`, pool_size: 5, statement_timeout: 0, server_username: undefined }],
        shards: [{ database: 'postgres', servers: [['127.0.0.1', 5433, 'primary'], ['127.0.0.1', 5434, 'replica']] }],
      },
    },
    extra: { plugins: { intercept: { enabled: true } } },
  });
  const parsed = toml.parse(text) as Record<string, unknown>;
  t.same(parsed, {
    general: { host: '127.0.0.1', admin_username: 'admin', admin_password: 'a"b\\c\n', log_client_connections: true, port: 6433 },
    plugins: { intercept: { enabled: true } },
    pools: {
      'my db': {
        pool_mode: 'transaction',
        users: { '0': { username: 'u', password: `p"'`, pool_size: 5, statement_timeout: 0 } },
        shards: { '0': { database: 'postgres', servers: [['127.0.0.1', 5433, 'primary'], ['127.0.0.1', 5434, 'replica']] } },
      },
    },
  });
});

t.test('parsePgbench', async (t) => {
  const out = [
    'number of transactions actually processed: 990/1000',
    'number of failed transactions: 10 (1.000%)',
    'latency average = 4.043 ms',
    'tps = 2473.286431 (without initial connection time)',
  ].join('\n');
  t.same(parsePgbench(out), { tps: 2473.286431, processed: 990, expected: 1000, failed: 10, latencyAvgMs: 4.043 });
});
