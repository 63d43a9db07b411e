// Two acceptance checks of the foundation:
// - a pg_sleep(30) cancelled from psql returns within 1 s and its server
//   connection serves the next client;
// - 1,000 concurrent clients, 20 `SELECT 1` transactions each, through 10
//   server connections, all succeed.
import { spawn } from 'node:child_process';
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { pgClient, psql } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { PG_BIN, startPostgres } from './harness/postgres.js';
import { freePort } from './harness/ports.js';

t.test('cancel and scale through PgLynx', async (t) => {
  const pg = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'apppw' }], t });
  const port = await freePort();
  const pooler = await startPglynx(
    configToml({
      port,
      pools: {
        one: {
          pool_mode: 'transaction',
          users: [{ username: 'app', password: 'apppw', pool_size: 1 }],
          shards: [primaryShard(pg)],
        },
        many: {
          pool_mode: 'transaction',
          connect_timeout: 30_000,
          users: [{ username: 'app', password: 'apppw', pool_size: 10 }],
          shards: [primaryShard(pg)],
        },
      },
    }),
    { t, logLevel: 'warn' },
  );

  await t.test('psql cancels pg_sleep(30) within 1 s; the slot serves the next client', async (t) => {
    const child = spawn(`${PG_BIN}/psql`, ['-X', '-h', '127.0.0.1', '-p', String(pooler.port), '-U', 'app', '-d', 'one', '-c', 'SELECT pg_sleep(30)'], {
      env: { ...process.env, PGPASSWORD: 'apppw' },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // Wait until the sleep is running on the server.
    for (let i = 0; i < 100; i++) {
      const rows = await pg.query("SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'");
      if (rows.length > 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const started = Date.now();
    child.kill('SIGINT'); // psql sends a CancelRequest on SIGINT
    const code = await exited;
    const elapsed = Date.now() - started;
    t.not(code, 0, 'psql reports the cancelled statement as failed');
    t.match(stderr, /canceling statement due to user request/, 'the server cancelled it');
    t.ok(elapsed < 1000, `returned ${elapsed} ms after the cancel`);
    const next = await psql({ host: '127.0.0.1', port: pooler.port, user: 'app', db: 'one', password: 'apppw', sql: 'SELECT 42' });
    t.equal(next.stdout.trim(), '42', 'the same single slot serves the next client');
  });

  await t.test('1,000 clients × 20 SELECT 1 through 10 server connections', async (t) => {
    const clients = await Promise.all(
      Array.from({ length: 1000 }, () =>
        pgClient({ port: pooler.port, user: 'app', password: 'apppw', database: 'many', connectionTimeoutMillis: 60_000 }),
      ),
    );
    let ok = 0;
    let failed = 0;
    await Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < 20; i++) {
          try {
            const r = await c.query('SELECT 1 AS one');
            if (r.rows[0]?.one === 1) ok++;
            else failed++;
          } catch {
            failed++;
          }
        }
      }),
    );
    t.equal(ok, 20_000, 'all 20,000 transactions returned 1');
    t.equal(failed, 0, 'none failed');
    const [{ n }] = await pg.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'app'");
    t.ok(Number(n) <= 11, `server connections stayed within the pools (${n})`);
    await Promise.all(clients.map((c) => c.end()));
  });
});
