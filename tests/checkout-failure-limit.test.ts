// PgCat 1.2's pools.<name>.checkout_failure_limit: a client whose checkouts
// fail that many times (over its life, as PgCat counts) gets each failure's
// error, then FATAL "checkout failure limit reached (N / N)" and is
// disconnected; without the key (or 0) it stays connected. pool_size 1 and
// one client holding the only server in a transaction make checkouts fail
// after connect_timeout.
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres } from './harness/postgres.js';
import { freePort } from './harness/ports.js';
import { errorFields, firstError, RawClient, types } from './harness/raw-client.js';

t.test('checkout_failure_limit', async (t) => {
  const pgc = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'pw' }], t });
  const pool = (extra: Record<string, number>) => ({
    pool_mode: 'transaction' as const,
    connect_timeout: 150,
    ...extra,
    users: [{ username: 'app', password: 'pw', pool_size: 1 }],
    shards: [primaryShard(pgc)],
  });
  const port = await freePort();
  const pooler = await startPglynx(
    configToml({ port, pools: { limited: pool({ checkout_failure_limit: 2 }), unlimited: pool({}), zero: pool({ checkout_failure_limit: 0 }) } }),
    { t, logLevel: 'warn' },
  );
  t.notMatch(pooler.output(), /checkout_failure_limit/, 'the key is not reported as unknown or unsupported');
  const connect = (database: string): Promise<RawClient> => RawClient.connect({ host: '127.0.0.1', port: pooler.port, user: 'app', password: 'pw', database });

  /** A client holding the pool's only server in a transaction. */
  const hold = async (database: string): Promise<RawClient> => {
    const holder = await connect(database);
    t.equal(types(await holder.query('BEGIN')).slice(-1), 'Z');
    t.equal(types(await holder.query('SELECT 1')).slice(-1), 'Z');
    return holder;
  };

  await t.test('limit 2: two failed checkouts answered, then FATAL and disconnect', async (t) => {
    const holder = await hold('limited');
    const c = await connect('limited');
    for (let i = 1; i <= 2; i++) {
      const err = firstError(await c.query('SELECT 1'));
      t.equal(err?.get('C'), '53300', `checkout ${i} fails (${err?.get('M')})`);
      t.match(err?.get('M'), /could not get connection from the pool/);
    }
    const rest = await c.readUntilClosed();
    t.equal(types(rest), 'E', 'then only the FATAL, and the socket closes');
    const fatal = errorFields(rest[0]!.body);
    t.equal(fatal.get('S'), 'FATAL');
    t.equal(fatal.get('C'), '53300');
    t.equal(fatal.get('M'), 'checkout failure limit reached (2 / 2)');
    await holder.query('COMMIT');
    // The pooler still serves: a new client gets the freed server.
    const again = await connect('limited');
    t.equal(firstError(await again.query('SELECT 1')), null, 'a new client is served');
    again.end();
    holder.end();
  });

  await t.test('failures need not be in a row (PgCat counts them over the client life)', async (t) => {
    const c = await connect('limited');
    t.equal(firstError(await c.query('SELECT 1')), null, 'served while the server is free');
    let holder = await hold('limited');
    t.equal(firstError(await c.query('SELECT 1'))?.get('C'), '53300', 'failure 1');
    await holder.query('COMMIT');
    t.equal(firstError(await c.query('SELECT 1')), null, 'served again');
    holder.end();
    holder = await hold('limited');
    t.equal(firstError(await c.query('SELECT 1'))?.get('C'), '53300', 'failure 2');
    await c.readUntilClosed();
    t.notOk(c.isOpen, 'disconnected at the second failure');
    holder.end();
  });

  for (const database of ['unlimited', 'zero']) {
    await t.test(`${database}: the client stays connected`, async (t) => {
      const holder = await hold(database);
      const c = await connect(database);
      for (let i = 0; i < 4; i++) t.equal(firstError(await c.query('SELECT 1'))?.get('C'), '53300', `failure ${i + 1} answered`);
      await holder.query('COMMIT');
      t.equal(firstError(await c.query('SELECT 1')), null, 'still connected and served');
      c.end();
      holder.end();
    });
  }
});
