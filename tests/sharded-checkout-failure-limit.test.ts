// checkout_failure_limit on a sharded pool: a unit whose shard has no free
// server (pool_size 1, held by another client's transaction, checkouts
// failing after connect_timeout) is answered with the pool's error and
// counts as one checkout failure, as on the direct path
// (tests/checkout-failure-limit.test.ts); at the limit the client gets
// FATAL "checkout failure limit reached (N / N)" and is disconnected.
// Before the count was shared, a sharded client was never disconnected.
// Two databases of one real Postgres 15 as the two shards.
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres } from './harness/postgres.js';
import { freePort } from './harness/ports.js';
import { errorFields, firstError, RawClient, types } from './harness/raw-client.js';

t.test('checkout_failure_limit on a sharded pool', async (t) => {
  const pg = await startPostgres({
    auth: 'md5',
    users: [{ name: 'app', password: 'pw' }],
    databases: [{ name: 'shard0', owner: 'app' }, { name: 'shard1', owner: 'app' }],
    t,
  });
  const pool = (extra: Record<string, number>) => ({
    pool_mode: 'transaction' as const,
    connect_timeout: 150,
    sharding_function: 'pg_bigint_hash',
    ...extra,
    users: [{ username: 'app', password: 'pw', pool_size: 1 }],
    shards: [0, 1].map((n) => primaryShard(pg, `shard${n}`)),
  });
  const port = await freePort();
  const pooler = await startPglynx(configToml({ port, pools: { limited: pool({ checkout_failure_limit: 2 }), unlimited: pool({}) } }), { t, logLevel: 'warn' });
  const connect = async (database: string): Promise<RawClient> => {
    const c = await RawClient.connect({ host: '127.0.0.1', port: pooler.port, user: 'app', password: 'pw', database });
    t.equal(types(await c.query("SET SHARD TO '0'")).slice(-1), 'Z');
    return c;
  };

  /** A client holding shard 0's only server in a transaction. */
  const hold = async (database: string): Promise<RawClient> => {
    const holder = await connect(database);
    t.equal(types(await holder.query('BEGIN')).slice(-1), 'Z');
    t.equal(firstError(await holder.query('SELECT 1')), null, 'the holder runs on shard 0');
    return holder;
  };

  await t.test('limit 2: two failed checkouts answered, then FATAL and disconnect', async (t) => {
    const c = await connect('limited');
    const holder = await hold('limited');
    for (let i = 1; i <= 2; i++) {
      const r = await c.query('SELECT 1');
      t.equal(types(r).slice(-2), 'EZ', `checkout ${i}: the error, then ReadyForQuery`);
      const err = firstError(r);
      t.equal(err?.get('C'), '53300', `checkout ${i} fails with the pool's code (${err?.get('M')})`);
      t.match(err?.get('M'), /shard 0: .*could not get connection from the pool/);
    }
    const rest = await c.readUntilClosed();
    t.equal(types(rest), 'E', 'then only the FATAL, and the socket closes');
    const fatal = errorFields(rest[0]!.body);
    t.equal(fatal.get('S'), 'FATAL');
    t.equal(fatal.get('C'), '53300');
    t.equal(fatal.get('M'), 'checkout failure limit reached (2 / 2)');
    await holder.query('COMMIT');
    const again = await connect('limited');
    t.equal(firstError(await again.query('SELECT 1')), null, 'a new client is served');
    again.end();
    holder.end();
  });

  await t.test('without the key the client stays connected', async (t) => {
    const c = await connect('unlimited');
    const holder = await hold('unlimited');
    for (let i = 0; i < 3; i++) t.equal(firstError(await c.query('SELECT 1'))?.get('C'), '53300', `failure ${i + 1} answered`);
    await holder.query('COMMIT');
    t.equal(firstError(await c.query('SELECT 1')), null, 'still connected and served');
    c.end();
    holder.end();
  });
});
