// Every replica down, as PgCat: reads pinned to replicas (default_role =
// "replica", SET SERVER ROLE TO 'replica', or parser-classified reads with
// primary_reads_enabled = false) fail instead of landing on the primary the
// operator is protecting; default_role = "any" and primary_reads_enabled =
// true let the primary take them. A real primary and streaming replica.
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import pg from 'pg';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres } from './harness/postgres.js';
import { freePort } from './harness/ports.js';

t.test('reads when every replica is down', async (t) => {
  const primary = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'pw' }], replication: true, t });
  const replica = await primary.startReplica({ t });
  const pool = (extra: Record<string, string | boolean>) => ({
    pool_mode: 'transaction' as const,
    ...extra,
    users: [{ username: 'app', password: 'pw', pool_size: 2 }],
    shards: [primaryShard(primary, 'postgres', [replica])],
  });
  const parser = { query_parser_enabled: true, query_parser_read_write_splitting: true };
  const port = await freePort();
  const pooler = await startPglynx(
    configToml({
      port,
      general: { ban_time: 60, connect_timeout: 1000 },
      pools: {
        // primary_reads_enabled does not widen a role named outright (PgCat).
        pinned: pool({ default_role: 'replica', primary_reads_enabled: true }),
        any: pool({ default_role: 'any' }),
        split: pool({ ...parser, primary_reads_enabled: false }),
        split_primary_reads: pool({ ...parser, primary_reads_enabled: true }),
      },
    }),
    { t, logLevel: 'warn' },
  );
  const connect = (database: string): Promise<pg.Client> => pgClient({ port: pooler.port, user: 'app', password: 'pw', database, query_timeout: 10_000 });
  const where = async (c: pg.Client): Promise<number> => (await c.query('SELECT inet_server_port() AS p')).rows[0].p as number;

  const pinned = await connect('pinned');
  const split = await connect('split');
  t.teardown(async () => {
    for (const c of [pinned, split]) await c.end().catch(() => undefined);
  });
  t.equal(await where(pinned), replica.port, 'default_role = replica reads on the replica while it is up');
  t.equal(await where(split), replica.port, 'a parsed read goes to the replica while it is up');

  await replica.kill();

  await t.test('default_role = replica: the read fails, twice (no fallback after the ban)', async (t) => {
    for (let i = 0; i < 2; i++) {
      const err = (await pinned.query('SELECT inet_server_port() AS p').then(
        (r) => ({ code: `answered by ${r.rows[0].p}` }),
        (e: { code?: string }) => e,
      )) as { code?: string };
      t.equal(err.code, '08006', `read ${i + 1} refused with connection_failure`);
    }
    // Writes are not pinned: SET SERVER ROLE TO 'primary' still works.
    await pinned.query("SET SERVER ROLE TO 'primary'");
    t.equal(await where(pinned), primary.port, 'the primary is still reachable when asked for');
  });

  await t.test("SET SERVER ROLE TO 'replica' fails too; 'any' goes to the primary", async (t) => {
    const c = await connect('any');
    t.teardown(() => c.end());
    t.equal(await where(c), primary.port, 'default_role = any: the primary answers');
    await c.query("SET SERVER ROLE TO 'replica'");
    await t.rejects(c.query('SELECT 1'), { code: '08006' }, 'replica role: no replica, no primary');
    await c.query("SET SERVER ROLE TO 'any'");
    t.equal(await where(c), primary.port);
  });

  await t.test('the parser: reads fail without primary_reads_enabled, go to the primary with it', async (t) => {
    await t.rejects(split.query('SELECT inet_server_port()'), { code: '08006' });
    t.equal((await split.query('SELECT 1 AS one FOR UPDATE')).rows[0].one, 1, 'a write still runs on the primary');
    await split.query("SET PRIMARY READS TO 'on'");
    t.equal(await where(split), primary.port, 'SET PRIMARY READS TO on lets the primary take the read');
    const c = await connect('split_primary_reads');
    t.teardown(() => c.end());
    t.equal(await where(c), primary.port, 'primary_reads_enabled = true: the primary answers');
  });
});
