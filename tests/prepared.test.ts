// Prepared statements in transaction mode (PgCat's prepared_statements):
// named statements keep working while clients move between servers, each
// server prepares on demand, names never collide, and the per-server cache
// is LRU-bounded with Close sent to the server.
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { pgbench, pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres } from './harness/postgres.js';
import { freePort } from './harness/ports.js';

t.test('prepared statements across server connections', async (t) => {
  const pg = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'apppw' }], t });
  await pg.query('CREATE DATABASE app OWNER app');
  const port = await freePort();
  const shard = primaryShard(pg, 'app');
  const pooler = await startPglynx(
    configToml({
      port,
      pools: {
        app: {
          pool_mode: 'transaction',
          prepared_statements_cache_size: 500,
          connect_timeout: 10_000,
          users: [{ username: 'app', password: 'apppw', pool_size: 4 }],
          shards: [shard],
        },
        tiny: {
          pool_mode: 'transaction',
          prepared_statements_cache_size: 2,
          users: [{ username: 'app', password: 'apppw', pool_size: 1 }],
          shards: [shard],
        },
      },
    }),
    { t, logLevel: 'warn' },
  );
  const conn = ['-h', '127.0.0.1', '-p', String(pooler.port), '-U', 'app'];
  const env = { PGPASSWORD: 'apppw' };

  await t.test('pgbench -M prepared -c 20 -j 2 -T 10: zero failed transactions', async (t) => {
    const init = await pgbench(['-i', '-s', '1', '-q', ...conn, 'app'], env);
    t.equal(init.code, 0, init.stderr);
    const r = await pgbench(['-n', '-M', 'prepared', '-c', '20', '-j', '2', '-T', '10', ...conn, 'app'], env);
    t.equal(r.code, 0, `pgbench exits 0: ${r.stderr.slice(-1500)}`);
    t.ok((r.processed ?? 0) > 100, `${r.processed} transactions, ${r.tps} tps`);
    t.equal(r.failed ?? 0, 0, 'no failed transactions');
    const [{ n }] = await pg.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_history', [], 'app');
    t.equal(Number(n), r.processed, 'every acknowledged transaction is in pgbench_history');
    const names = await pg.query<{ name: string }>(
      "SELECT DISTINCT name FROM pg_prepared_statements WHERE name LIKE 'P%'",
      [],
      'app',
    );
    t.same(names, [], 'pgbench names (P0_1...) never reach the server');
  });

  await t.test('node-postgres named queries while moving between servers', async (t) => {
    const clients = await Promise.all(
      Array.from({ length: 8 }, () => pgClient({ port: pooler.port, user: 'app', password: 'apppw', database: 'app' })),
    );
    // Same name, different text in different clients: must not collide.
    const results = await Promise.all(
      clients.map(async (c, i) => {
        const seen = new Set<number>();
        for (let k = 0; k < 25; k++) {
          const r = await c.query({ name: 'q', text: `SELECT $1::int * ${i + 1} AS v, pg_backend_pid() AS pid`, values: [k] });
          if (r.rows[0].v !== k * (i + 1)) throw new Error(`client ${i}: got ${r.rows[0].v} for ${k}`);
          seen.add(r.rows[0].pid);
        }
        return seen.size;
      }),
    );
    t.pass('every client got its own statement\'s results');
    t.ok(results.some((n) => n > 1), `clients used several server connections (${results.join(',')})`);
    await Promise.all(clients.map((c) => c.end()));
  });

  await t.test('a transaction with a named statement and an error recovers', async (t) => {
    const c = await pgClient({ port: pooler.port, user: 'app', password: 'apppw', database: 'app' });
    await c.query('BEGIN');
    const r = await c.query({ name: 'inside', text: 'SELECT $1::text AS s', values: ['a'] });
    t.equal(r.rows[0].s, 'a');
    await t.rejects(c.query({ name: 'bad', text: 'SELECT * FROM no_such_table WHERE x = $1', values: [1] }), /no_such_table/);
    await c.query('ROLLBACK');
    const again = await c.query({ name: 'inside', text: 'SELECT $1::text AS s', values: ['b'] });
    t.equal(again.rows[0].s, 'b', 'the statement works after the failed transaction');
    await c.end();
  });

  await t.test('LRU cache of 2 per server: eviction sends Close', async (t) => {
    const c = await pgClient({ port: pooler.port, user: 'app', password: 'apppw', database: 'tiny' });
    for (let round = 0; round < 3; round++) {
      for (let k = 0; k < 5; k++) {
        const r = await c.query({ name: `s${k}`, text: `SELECT ${k} + $1::int AS v`, values: [round] });
        t.equal(r.rows[0].v, k + round, `s${k} round ${round}`);
      }
    }
    const pid = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    const count = await c.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'pglynx_%' AND name <> 'pglynx_scratch'");
    t.ok(count.rows[0].n <= 2, `server ${pid} holds at most 2 pooled statements (${count.rows[0].n})`);
    await c.end();
  });
});
