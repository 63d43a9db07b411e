// Servers with role "auto" (issue 11.1): until the role probe has answered,
// a write has no known primary. At start-up and during a promotion a write
// waits for the probe (bounded by connect_timeout, the checkout timeout)
// instead of failing at once with 08006; a read pinned to replicas never
// lands on a server whose role is not known yet.
import t from 'tap';
import pg from 'pg';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres } from './harness/postgres.js';
import { freePort } from './harness/ports.js';

// Room for pg_ctl promote on a busy machine; the timeout case uses a pool of its own with a short one.
const CONNECT_TIMEOUT_MS = 8000;
const SHORT_TIMEOUT_MS = 1000;

t.test('role auto: writes wait for a known primary', async (t) => {
  const primary = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'pw' }], replication: true, t });
  await primary.query('CREATE TABLE items (id serial PRIMARY KEY, v text)');
  await primary.query('GRANT ALL ON items TO app; GRANT ALL ON SEQUENCE items_id_seq TO app');
  const standby = await primary.startReplica({ t });
  const servers: [string, number, 'auto'][] = [
    ['127.0.0.1', primary.port, 'auto'],
    ['127.0.0.1', standby.port, 'auto'],
  ];
  const pool = (extra: Record<string, string | boolean>) => ({
    pool_mode: 'transaction' as const,
    ...extra,
    users: [{ username: 'app', password: 'pw', pool_size: 4 }],
    shards: [{ database: 'postgres', servers }],
  });
  const port = await freePort();
  const pooler = await startPglynx(
    configToml({
      port,
      general: { connect_timeout: CONNECT_TIMEOUT_MS, ban_time: 60 },
      pools: {
        split: pool({ query_parser_enabled: true, query_parser_read_write_splitting: true, primary_reads_enabled: false }),
        pinned: pool({ default_role: 'replica', primary_reads_enabled: false }),
        short: { ...pool({ query_parser_enabled: true, query_parser_read_write_splitting: true }), connect_timeout: SHORT_TIMEOUT_MS },
        // Two shards (both on the primary's database), each one auto server: the sharded executor waits too.
        sharded: {
          ...pool({ query_parser_enabled: true, query_parser_read_write_splitting: true, automatic_sharding_key: 'items.id' }),
          shards: [0, 1].map(() => ({ database: 'postgres', servers: [servers[0]] })),
        },
      },
    }),
    { t, logLevel: 'warn' },
  );
  const connect = (database: string): Promise<pg.Client> =>
    pgClient({ port: pooler.port, user: 'app', password: 'pw', database, query_timeout: 10_000 });
  const clients: pg.Client[] = [];
  t.teardown(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
  });

  await t.test('start-up: writes and pinned reads from the first moment', async (t) => {
    // As soon as the port accepts: the roles are not known yet.
    const unsharded = Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const c = await connect('split');
        clients.push(c);
        return c.query<{ port: number }>('INSERT INTO items (v) VALUES ($1) RETURNING inet_server_port() AS port', [`start ${i}`]).then(
          (r) => `on ${r.rows[0].port}`,
          (e: { code?: string; message?: string }) => `${e.code}: ${e.message}`,
        );
      }),
    );
    const sharded = Promise.all(
      [1001, 1002, 1003, 1004].map(async (id) => {
        const c = await connect('sharded');
        t.teardown(() => c.end().catch(() => undefined));
        return c.query('INSERT INTO items (id, v) VALUES ($1, $2)', [id, 'sharded']).then(
          (r) => r.rowCount,
          (e: { code?: string; message?: string }) => `${e.code}: ${e.message}`,
        );
      }),
    );
    const outcomes = await unsharded;
    t.same(outcomes, outcomes.map(() => `on ${primary.port}`), 'every write ran on the primary (none got 08006)');
    t.same(await sharded, [1, 1, 1, 1], 'sharded writes ran (each on its shard)');
    const reads = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const c = await connect('pinned');
        clients.push(c);
        return (await c.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby')).rows[0].standby;
      }),
    );
    t.same(reads, [true, true, true, true], 'default_role = replica reads only on the standby');
  });

  await t.test('no primary and no promotion: a write fails after connect_timeout', async (t) => {
    const c = await connect('short');
    clients.push(c);
    await primary.kill();
    const t0 = Date.now();
    const err = (await c.query("INSERT INTO items (v) VALUES ('gap') RETURNING id").then(
      () => ({ code: 'answered' }),
      (e: { code?: string; message?: string }) => e,
    )) as { code?: string; message?: string };
    const waited = Date.now() - t0;
    t.equal(err.code, '08006', `connection_failure: ${err.message}`);
    t.match(err.message, /role probe within 1000 ms/, 'says it waited for the role probe');
    t.ok(waited >= SHORT_TIMEOUT_MS - 100 && waited < SHORT_TIMEOUT_MS + 1500, `failed after ${waited} ms (connect_timeout ${SHORT_TIMEOUT_MS})`);
    t.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'the client carries on (reads on the standby)');
  });

  await t.test('promotion drill: writes issued during the gap wait and succeed on the new primary', async (t) => {
    const writes = clients.slice(0, 4).map((c, i) =>
      c.query<{ port: number }>('INSERT INTO items (v) VALUES ($1) RETURNING inet_server_port() AS port', [`gap ${i}`]).then(
        (r) => `on ${r.rows[0].port}`,
        (e: { code?: string; message?: string }) => `${e.code}: ${e.message}`,
      ),
    );
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    await standby.promote();
    const outcomes = await Promise.all(writes);
    const elapsed = Date.now() - t0;
    t.same(outcomes, outcomes.map(() => `on ${standby.port}`), 'every write waited and ran on the promoted standby');
    t.ok(elapsed < 2000, `answered ${elapsed} ms after the promote returned (probe every 500 ms)`);
  });
});
