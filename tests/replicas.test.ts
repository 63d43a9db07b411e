// Primary and streaming replicas behind PgLynx: read/write splitting with
// the real parser, PgCat's SET SERVER ROLE / PRIMARY READS, load balancing,
// and the drills: a replica killed under 20 reading clients (no client
// error), a standby promoted with role "auto" (writes within 2 s).
import t from 'tap';
import { waitFor } from './harness/wait.js';
import pg from 'pg';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres, type PgCluster } from './harness/postgres.js';
import { freePort } from './harness/ports.js';

async function replicated(primary: PgCluster, replicas: PgCluster[]): Promise<void> {
  const [{ lsn }] = await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  for (const r of replicas) {
    await waitFor(async () => (await r.query<{ ok: boolean }>(`SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn AS ok`))[0].ok, 10_000);
  }
}

t.test('replicas', async (t) => {
  const primary = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'pw' }], replication: true, t });
  await primary.query('CREATE TABLE items (id serial PRIMARY KEY, v text)');
  await primary.query('GRANT ALL ON items TO app; GRANT ALL ON SEQUENCE items_id_seq TO app');
  const replicas = [await primary.startReplica({ t }), await primary.startReplica({ t }), await primary.startReplica({ t })];
  await replicated(primary, replicas);
  const port = await freePort();
  const servers = (role: 'replica' | 'auto'): [string, number, 'primary' | 'replica' | 'auto'][] => [
    ['127.0.0.1', primary.port, role === 'auto' ? 'auto' : 'primary'],
    ...replicas.map((r): [string, number, 'replica' | 'auto'] => ['127.0.0.1', r.port, role]),
  ];
  const pool = (extra: Record<string, string | number | boolean>, role: 'replica' | 'auto' = 'replica') => ({
    pool_mode: 'transaction' as const,
    load_balancing_mode: 'random',
    ...extra,
    users: [{ username: 'app', password: 'pw', pool_size: 5 }],
    shards: [{ database: 'postgres', servers: servers(role) }],
  });
  const pooler = await startPglynx(
    configToml({
      port,
      general: { ban_time: 60, healthcheck_delay: 1000 },
      pools: {
        split: pool({ query_parser_enabled: true, query_parser_read_write_splitting: true, primary_reads_enabled: false }),
        replica: pool({ default_role: 'replica', primary_reads_enabled: false }),
        auto: pool({ query_parser_enabled: true, query_parser_read_write_splitting: true, primary_reads_enabled: false }, 'auto'),
        // Pipelining on every server connection of every role (issue 14): 2 connections per server, 4 units each.
        piped: {
          ...pool({ query_parser_enabled: true, query_parser_read_write_splitting: true, primary_reads_enabled: false }),
          users: [{ username: 'app', password: 'pw', pool_size: 2 }],
          pipeline_depth: 4,
          pipeline_max_wait_ms: 50,
          pipeline_writes: true,
        },
      },
    }),
    { t, logLevel: 'warn' },
  );
  // A hung query fails the drill after 5 s instead of hanging it.
  const connect = (database: string): Promise<pg.Client> => pgClient({ port: pooler.port, user: 'app', password: 'pw', database, query_timeout: 5000 });
  const replicaPorts = new Set(replicas.map((r) => r.port));

  await t.test('reads to replicas, writes and transactions to the primary', async (t) => {
    const c = await connect('split');
    for (let i = 0; i < 10; i++) {
      const r = await c.query('SELECT pg_is_in_recovery() AS standby, inet_server_port() AS port');
      t.ok(r.rows[0].standby && replicaPorts.has(r.rows[0].port), `read ${i} on a replica (${r.rows[0].port})`);
    }
    const w = await c.query("INSERT INTO items (v) VALUES ('a') RETURNING inet_server_port() AS port");
    t.equal(w.rows[0].port, primary.port, 'INSERT on the primary');
    const lock = await c.query('SELECT inet_server_port() AS port FROM items FOR UPDATE');
    t.equal(lock.rows[0].port, primary.port, 'SELECT ... FOR UPDATE on the primary');
    const ext = await c.query('SELECT inet_server_port() AS port, $1::int AS x', [1]);
    t.ok(replicaPorts.has(ext.rows[0].port), 'an extended-protocol read on a replica');
    await c.query('BEGIN');
    const inTx = await c.query('SELECT inet_server_port() AS port');
    t.equal(inTx.rows[0].port, primary.port, 'an explicit transaction runs on the primary');
    await c.query('COMMIT');
    await c.query('BEGIN READ ONLY');
    const ro = await c.query('SELECT pg_is_in_recovery() AS standby');
    t.ok(ro.rows[0].standby, 'BEGIN READ ONLY runs on a replica');
    await c.query('COMMIT');
    await c.end();
  });

  await t.test('pipelining with replicas: reads pipelined on replica connections, writes on the primary', async (t) => {
    const clients = await Promise.all(Array.from({ length: 60 }, () => connect('piped')));
    let wrong = 0;
    const writesOn = new Set<number>();
    await Promise.all(
      clients.map(async (c, i) => {
        for (let r = 0; r < 20; r++) {
          const n = Math.floor(Math.random() * 1e9);
          const read = await c.query('SELECT pg_is_in_recovery() AS standby, inet_server_port() AS port, $1::int AS n, $2::int AS client', [n, i]);
          const row = read.rows[0] as { standby: boolean; port: number; n: number; client: number };
          if (!row.standby || !replicaPorts.has(row.port) || row.n !== n || row.client !== i) wrong += 1;
          if (r % 5 === 0) {
            const w = await c.query("INSERT INTO items (v) VALUES ('p' || $1::text) RETURNING inet_server_port() AS port, v", [i]);
            writesOn.add(w.rows[0].port as number);
            if (w.rows[0].v !== `p${i}`) wrong += 1;
          }
        }
      }),
    );
    await Promise.all(clients.map((c) => c.end()));
    t.equal(wrong, 0, 'every read ran on a replica and answered its own client; every write answered its own');
    t.same([...writesOn], [primary.port], 'writes ran on the primary only');
    const admin = await pgClient({ port: pooler.port, user: 'admin', password: 'admin', database: 'pgcat' });
    const row = (await admin.query('SHOW POOLS')).rows.find((p: Record<string, string>) => p.database === 'piped');
    await admin.end();
    t.ok(Number(row?.pipelined) > 0, `units were pipelined (${row?.pipelined})`);
  });

  await t.test("PgCat's SET SERVER ROLE and SET PRIMARY READS", async (t) => {
    const c = await connect('replica');
    t.ok((await c.query('SELECT pg_is_in_recovery() AS s')).rows[0].s, "default_role 'replica'");
    await c.query("SET SERVER ROLE TO 'primary'");
    t.equal((await c.query('SHOW SERVER ROLE')).rows[0]['server role'], 'primary');
    t.notOk((await c.query('SELECT pg_is_in_recovery() AS s')).rows[0].s, 'now on the primary');
    await c.query("SET SERVER ROLE TO 'default'");
    t.ok((await c.query('SELECT pg_is_in_recovery() AS s')).rows[0].s, 'back to the default');
    await c.query("SET PRIMARY READS TO 'on'");
    t.equal((await c.query('SHOW PRIMARY READS')).rows[0]['primary reads'], 'on');
    await t.rejects(c.query("SET SERVER ROLE TO 'boss'"), { code: '22023' });
    await c.end();
  });

  await t.test('random load balancing: 3,000 reads within ±15% of a third each', async (t) => {
    const clients = await Promise.all(Array.from({ length: 10 }, () => connect('split')));
    const counts = new Map<number, number>();
    await Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < 300; i++) {
          const p = (await c.query('SELECT inet_server_port() AS port')).rows[0].port as number;
          counts.set(p, (counts.get(p) ?? 0) + 1);
        }
      }),
    );
    t.same([...counts.keys()].sort(), [...replicaPorts].sort(), 'only replicas');
    for (const [p, n] of counts) t.ok(Math.abs(n - 1000) <= 150, `replica ${p}: ${n} reads`);
    await Promise.all(clients.map((c) => c.end()));
  });

  await t.test('drill: kill -9 a replica under 20 reading clients', async (t) => {
    const clients = await Promise.all(Array.from({ length: 20 }, () => connect('split')));
    let errors = 0;
    let lastError = 0;
    let stop = false;
    const started = Date.now();
    const loops = clients.map(async (c) => {
      while (!stop) {
        try {
          await c.query('SELECT count(*) FROM items');
        } catch {
          errors++;
          lastError = Date.now();
        }
      }
    });
    await new Promise((r) => setTimeout(r, 500));
    const killedAt = Date.now();
    process.kill(await replicas[0].pid(), 'SIGKILL');
    await new Promise((r) => setTimeout(r, 2000));
    stop = true;
    await Promise.all(loops);
    t.equal(errors, 0, `client-visible errors: ${errors}${errors ? `, last ${lastError - killedAt} ms after the kill` : ''}`);
    t.ok(Date.now() - started > 2000);
    await Promise.all(clients.map((c) => c.end()));
  });

  await t.test('drill: promote a standby; role auto sends writes there within 2 s', async (t) => {
    const c = await connect('auto');
    await waitFor(async () => (await c.query("INSERT INTO items (v) VALUES ('before') RETURNING id")).rowCount === 1, 5000);
    await primary.kill();
    const promoted = replicas[1];
    const t0 = Date.now();
    await promoted.promote();
    const elapsed = await waitFor(async () => {
      const r = await c.query("INSERT INTO items (v) VALUES ('after') RETURNING inet_server_port() AS port");
      return r.rows[0].port === promoted.port;
    }, 10_000);
    const total = Date.now() - t0;
    t.ok(total < 2000 + 3000, `writes reached the new primary ${elapsed} ms after promote returned (${total} ms from the promote)`);
    t.ok(elapsed < 2000, `within 2 s of the promote (${elapsed} ms)`);
    await c.end();
  });
});
