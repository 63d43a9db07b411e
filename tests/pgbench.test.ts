// pgbench through PgLynx (-n: no pre-run vacuum, which would truncate
// pgbench_history and hide lost transactions) in transaction mode: 50 clients on 5 server
// connections, simple and extended protocol, zero failed transactions, and
// every acknowledged transaction found in the database afterwards.
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { pgbench } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres } from './harness/postgres.js';
import { freePort } from './harness/ports.js';

t.test('pgbench -c 50 -j 2 -T 10 through pool_size 5', async (t) => {
  const pg = await startPostgres({ auth: 'scram-sha-256', users: [{ name: 'bench', password: 'benchpw' }], t });
  await pg.query('CREATE DATABASE bench OWNER bench');
  const port = await freePort();
  const pooler = await startPglynx(
    configToml({
      port,
      pools: {
        bench: {
          pool_mode: 'transaction',
          // PgCat's example value: how long a client may wait for one of the
          // 5 connections (the test shares 2 cores with the rest of the suite).
          connect_timeout: 5000,
          users: [{ username: 'bench', password: 'benchpw', pool_size: 5 }],
          shards: [primaryShard(pg, 'bench')],
        },
      },
    }),
    { t, logLevel: 'warn' },
  );
  const env = { PGPASSWORD: 'benchpw' };
  const conn = ['-h', '127.0.0.1', '-p', String(pooler.port), '-U', 'bench'];
  const init = await pgbench(['-i', '-s', '1', '-q', ...conn, 'bench'], env);
  t.equal(init.code, 0, `pgbench -i through PgLynx: ${init.stderr}`);

  let acknowledged = 0;
  for (const protocol of ['simple', 'extended']) {
    const r = await pgbench(['-n', '-c', '50', '-j', '2', '-T', '10', `--protocol=${protocol}`, ...conn, 'bench'], env);
    t.equal(r.code, 0, `pgbench --protocol=${protocol} exits 0: ${r.stderr.slice(-2000)}`);
    t.ok((r.processed ?? 0) > 100, `${protocol}: ${r.processed} transactions processed, ${r.tps} tps`);
    t.equal(r.failed ?? 0, 0, `${protocol}: no failed transactions`);
    acknowledged += r.processed ?? 0;
  }
  // Each tpcb-like transaction inserts one pgbench_history row: check on the server itself.
  const [{ n }] = await pg.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_history', [], 'bench');
  t.equal(Number(n), acknowledged, 'every acknowledged transaction is in pgbench_history');
  const [{ balanced }] = await pg.query<{ balanced: boolean }>(
    'SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(delta) FROM pgbench_history) AS balanced',
    [],
    'bench',
  );
  t.ok(balanced, 'account balances equal the sum of history deltas');
  const [{ c }] = await pg.query<{ c: string }>("SELECT count(*) AS c FROM pg_stat_activity WHERE usename = 'bench'");
  t.ok(Number(c) <= 5, `at most pool_size server connections used (${c})`);
});
