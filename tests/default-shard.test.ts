// default_shard with the query parser and automatic_sharding_key on: a
// statement that names no key and reads no table (SELECT 1 + 2) goes to the
// pool's default_shard as in PgCat (shard_N, random), not always shard 0.
// inet_server_port() tells which of three real Postgres shards answered.
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import pg from 'pg';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres, type PgCluster } from './harness/postgres.js';
import { freePort } from './harness/ports.js';

t.test('default_shard applies to key-less, table-less statements under the query parser', async (t) => {
  const users = [{ name: 'app', password: 'pw' }];
  const shards: PgCluster[] = [];
  for (let i = 0; i < 3; i++) shards.push(await startPostgres({ auth: 'md5', users, t }));
  for (const c of shards) await c.query('CREATE TABLE docs (id bigint PRIMARY KEY); ALTER TABLE docs OWNER TO app');
  const shardList = shards.map((c) => primaryShard(c));
  const user = { username: 'app', password: 'pw', pool_size: 2 };
  const parsed = { pool_mode: 'transaction' as const, query_parser_enabled: true, automatic_sharding_key: 'docs.id', users: [user], shards: shardList };
  const port = await freePort();
  const pooler = await startPglynx(
    configToml({
      port,
      pools: {
        pinned: { ...parsed, default_shard: 'shard_2' },
        spread: { ...parsed, default_shard: 'random' },
      },
    }),
    { t, logLevel: 'warn' },
  );
  const connect = (database: string): Promise<pg.Client> => pgClient({ port: pooler.port, user: 'app', password: 'pw', database });
  const portOf = (c: PgCluster): number => c.port;

  await t.test('shard_2: simple and extended protocol', async (t) => {
    const c = await connect('pinned');
    t.teardown(() => c.end());
    t.equal((await c.query('SELECT 1 + 2 AS sum')).rows[0].sum, 3);
    for (let i = 0; i < 5; i++) {
      t.equal((await c.query('SELECT inet_server_port() AS p')).rows[0].p, portOf(shards[2]!), 'simple Query on shard 2');
      t.equal((await c.query('SELECT inet_server_port() + $1::int AS p', [0])).rows[0].p, portOf(shards[2]!), 'Parse/Bind on shard 2');
    }
    // A keyed statement still goes where its key hashes, not to the default.
    await c.query('INSERT INTO docs (id) VALUES (1)');
    const onShard = await Promise.all(shards.map(async (s) => (await s.query('SELECT count(*)::int AS n FROM docs WHERE id = 1'))[0].n as number));
    t.equal(onShard.reduce((a, b) => a + b, 0), 1, 'the keyed row is on exactly one shard');
  });

  await t.test('random: more than one shard answers', async (t) => {
    const c = await connect('spread');
    t.teardown(() => c.end());
    const seen = new Set<number>();
    for (let i = 0; i < 40 && seen.size < 2; i++) seen.add((await c.query('SELECT inet_server_port() AS p')).rows[0].p as number);
    t.ok(seen.size >= 2, `answered by ${[...seen].join(', ')}`);
    for (const p of seen) t.ok(shards.some((s) => s.port === p), `${p} is one of the shards`);
  });
});
