// Mirroring (PgCat's `mirrors`): writes through PgLynx reach the mirror
// too, in the same transactions, pipelined units too; a mirror that is slow
// (a table lock) or dead never holds up or fails a client.
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { waitFor } from './harness/wait.js';
import pg from 'pg';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres, type PgCluster } from './harness/postgres.js';
import { freePort } from './harness/ports.js';

const rows = async (c: PgCluster): Promise<string[]> =>
  (await c.query<{ v: string }>('SELECT v FROM events ORDER BY id, v')).map((r) => r.v);

t.test('mirroring', async (t) => {
  const primary = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'pw' }], t });
  const mirror = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'pw' }], t });
  for (const c of [primary, mirror]) await c.query('CREATE TABLE events (id int, v text); GRANT ALL ON events TO app');
  const port = await freePort();
  const pooler = await startPglynx(
    configToml({
      port,
      pools: {
        app: {
          pool_mode: 'transaction',
          users: [{ username: 'app', password: 'pw', pool_size: 1 }],
          shards: [{ ...primaryShard(primary), mirrors: [['127.0.0.1', mirror.port, 0]] }],
        },
        // The same, pipelined (autocommit writes too): units queued behind others are copied in the socket's order.
        piped: {
          pool_mode: 'transaction',
          pipeline_depth: 4,
          pipeline_writes: true,
          pipeline_max_wait_ms: 60_000,
          users: [{ username: 'app', password: 'pw', pool_size: 1 }],
          shards: [{ ...primaryShard(primary), mirrors: [['127.0.0.1', mirror.port, 0]] }],
        },
      },
    }),
    { t, logLevel: 'warn' },
  );
  const client: pg.Client = await pgClient({ port: pooler.port, user: 'app', password: 'pw', database: 'app', query_timeout: 5000 });
  t.teardown(() => client.end());

  // The mirror connects beside the server connection; copying starts at the next idle boundary.
  await waitFor(async () => {
    await client.query("INSERT INTO events VALUES (0, 'hello')");
    return (await mirror.query('SELECT 1 FROM events LIMIT 1')).length > 0;
  }, 10_000);
  await primary.query('TRUNCATE events');
  await mirror.query('TRUNCATE events');

  await t.test('writes are copied, transactions whole', async (t) => {
    for (let i = 1; i <= 20; i++) await client.query(`INSERT INTO events VALUES (${i}, 'auto ${i}')`);
    await client.query('INSERT INTO events VALUES ($1, $2)', [21, 'extended']);
    await client.query('BEGIN');
    await client.query("INSERT INTO events VALUES (22, 'committed a')");
    await client.query("INSERT INTO events VALUES (22, 'committed b')");
    await client.query('COMMIT');
    await client.query('BEGIN');
    await client.query("INSERT INTO events VALUES (23, 'rolled back')");
    await client.query('ROLLBACK');
    const expected = await rows(primary);
    t.equal(expected.length, 23, 'the primary has 23 rows');
    await waitFor(async () => (await rows(mirror)).length >= expected.length, 10_000);
    t.same(await rows(mirror), expected, 'the mirror has the same rows, the rolled-back one neither');
  });

  await t.test('pipelined units reach the mirror too', async (t) => {
    const connect = (): Promise<pg.Client> => pgClient({ port: pooler.port, user: 'app', password: 'pw', database: 'piped', query_timeout: 5000 });
    const first = await connect();
    await waitFor(async () => {
      await first.query("INSERT INTO events VALUES (-299, 'piped hello')"); // negative ids: the later subtests count ids from 100 up
      return (await mirror.query("SELECT 1 FROM events WHERE v = 'piped hello' LIMIT 1")).length > 0;
    }, 10_000);
    const clients = [first, ...(await Promise.all(Array.from({ length: 9 }, connect)))];
    const admin = await pgClient({ port: pooler.port, user: 'admin', password: 'admin', database: 'pgcat' });
    const pipelined = async (): Promise<number> => Number((await admin.query('SHOW POOLS')).rows.find((r: { database: string }) => r.database === 'piped')?.pipelined);
    const before = await pipelined();
    // One connection: while a sleep holds it, the others' inserts queue behind it.
    const sleeper = first.query('SELECT pg_sleep(0.3)');
    await Promise.all(clients.slice(1).map(async (c, i) => {
      for (let r = 0; r < 5; r++) await c.query(`INSERT INTO events VALUES (${-(300 + i * 10 + r)}, 'piped ${i}.${r}')`);
    }));
    await sleeper;
    t.ok((await pipelined()) - before > 0, 'inserts were pipelined');
    const piped = async (c: PgCluster): Promise<string[]> =>
      (await c.query<{ v: string }>('SELECT v FROM events WHERE id <= -300 ORDER BY id, v')).map((r) => r.v);
    const expected = await piped(primary);
    t.equal(expected.length, 45, 'the primary has the 45 rows');
    await waitFor(async () => (await piped(mirror)).length >= expected.length, 10_000);
    t.same(await piped(mirror), expected, 'the mirror has the same rows');
    await admin.end();
    await Promise.all(clients.map((c) => c.end()));
  });

  await t.test('a slow mirror does not hold up clients', async (t) => {
    const locker = await pgClient({ host: mirror.socketDir, port: mirror.port, user: 'postgres', database: 'postgres' });
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
    // Each insert would wait for the lock if the mirror were in the client's path (query_timeout 5 s).
    for (let i = 0; i < 20; i++) await client.query(`INSERT INTO events VALUES (${100 + i}, 'while locked ${i}')`);
    t.equal((await primary.query('SELECT count(*)::int AS n FROM events WHERE id >= 100'))[0].n, 20, 'all 20 inserts done on the primary');
    await locker.query('COMMIT');
    await locker.end();
    await waitFor(async () => (await mirror.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE id >= 100'))[0].n === 20, 10_000);
    t.pass('the mirror caught up once unlocked');
  });

  await t.test('a dead mirror does not fail clients', async (t) => {
    await mirror.kill();
    let errors = 0;
    for (let i = 0; i < 20; i++) await client.query(`INSERT INTO events VALUES (${200 + i}, 'mirror down')`).catch(() => (errors += 1));
    t.equal(errors, 0, 'no client error');
    t.equal((await primary.query('SELECT count(*)::int AS n FROM events WHERE id >= 200'))[0].n, 20, 'all 20 inserts done');
    const r = await client.query('SELECT count(*)::int AS n FROM events WHERE id >= 0');
    t.equal(r.rows[0].n, 63, 'reads through PgLynx go on');
  });
});
