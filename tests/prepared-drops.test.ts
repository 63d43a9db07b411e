// Prepared statements that vanish, and what clients leave behind (issue 10,
// points 1, 4, 5, 11, 14): whatever drops statements on a server, in either
// protocol, the pooler's view of that server stays true; a pooled statement
// the server lost is prepared again instead of failing the client; a reload
// that turns the cache on works on connections opened before it; check-in
// undoes only what the client changed.
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import type pg from 'pg';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres } from './harness/postgres.js';
import { freePort } from './harness/ports.js';
import { RawClient, commandTag, dataRow, firstError, msg, types } from './harness/raw-client.js';
import { parseConfig } from '../config/load.js';

const pgsrv = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'apppw' }], t });
await pgsrv.query('CREATE DATABASE app OWNER app');
const port = await freePort();
const shard = primaryShard(pgsrv, 'app');
const user = { username: 'app', password: 'apppw', pool_size: 1 };
/** Every pool has one server connection: each client lands on the same server as the one before. */
const config = (reloadedCache: number): string =>
  configToml({
    port,
    // PgCat 1.1's size without its switch: the cache stays off (pools without their own size).
    general: { prepared_statements_cache_size: 500, connect_timeout: 5000 },
    pools: {
      shared: { pool_mode: 'transaction', prepared_statements_cache_size: 100, users: [user], shards: [shard] },
      off: { pool_mode: 'transaction', users: [user], shards: [shard] },
      rl: { pool_mode: 'transaction', prepared_statements_cache_size: reloadedCache, users: [user], shards: [shard] },
    },
  });
const pooler = await startPglynx(config(0), { t, logLevel: 'warn' });

const client = (database: string): Promise<pg.Client> =>
  pgClient({ host: pooler.host, port: pooler.port, user: 'app', password: 'apppw', database });
const raw = (database: string): Promise<RawClient> =>
  RawClient.connect({ host: pooler.host, port: pooler.port, user: 'app', password: 'apppw', database });
/** The pooled statements the (only) server connection of a pool holds, seen through the pooler. */
async function pooledOnServer(c: pg.Client): Promise<string[]> {
  const r = await c.query<{ name: string }>("SELECT name FROM pg_prepared_statements WHERE name ~ '^pglynx_[0-9a-f]{20}$' ORDER BY name");
  return r.rows.map((x) => x.name);
}
const named = { name: 'count_q', text: 'SELECT $1::int + 1 AS v' };

t.test('DEALLOCATE ALL through the extended protocol after a failed transaction', async (t) => {
  const a = await client('shared');
  t.equal((await a.query({ ...named, values: [1] })).rows[0].v, 2, 'a named query works');
  const observer = await client('shared');
  const pooled = await pooledOnServer(observer);
  t.ok(pooled.length > 0, 'the server holds the pooled statement');

  // psycopg 3 (prepare_threshold=0) after ROLLBACK: Parse/Bind/Describe/Execute/Sync of DEALLOCATE ALL.
  const b = await raw('shared');
  b.send(msg.parse('SELECT 1', 'b_own'), msg.sync());
  t.equal(types(await b.readUntilReady()), '1Z');
  t.equal(types(await b.query('BEGIN')), 'CZ');
  t.equal(firstError(await b.query('SELECT * FROM no_such_table'))?.get('C'), '42P01');
  t.equal(types(await b.query('ROLLBACK')), 'CZ');
  b.send(msg.parse('DEALLOCATE ALL'), msg.bind(), msg.describePortal(), msg.execute(), msg.sync());
  const reply = await b.readUntilReady();
  t.equal(types(reply), '12nCZ', 'the client gets its whole reply');
  t.equal(commandTag(reply[3].body), 'DEALLOCATE ALL');
  b.send(msg.bind([], 'b_own'), msg.execute(), msg.sync());
  t.equal(firstError(await b.readUntilReady())?.get('C'), '26000', "the client's own statements are gone, as on a server");
  // The named form (node-postgres with a name) too.
  const c = await client('shared');
  t.equal((await c.query({ name: 'dealloc', text: 'DEALLOCATE ALL' })).command, 'DEALLOCATE');
  t.same(await pooledOnServer(observer), pooled, "the shared statements other clients use stay on the server");

  for (let i = 0; i < 3; i++) t.equal((await a.query({ ...named, values: [i] })).rows[0].v, i + 1, `the first client's named query still works (${i})`);
  const d = await client('shared');
  t.equal((await d.query({ ...named, values: [41] })).rows[0].v, 42, 'a new client prepares and runs it');
  b.end();
  await Promise.all([a.end(), c.end(), d.end(), observer.end()]);
});

t.test('a DEALLOCATE ALL that reaches the server (in a transaction) clears the pooler\'s view of it', async (t) => {
  const a = await client('shared');
  t.equal((await a.query({ ...named, values: [1] })).rows[0].v, 2);
  const b = await client('shared');
  await b.query('BEGIN');
  await b.query({ name: 'dealloc_in_tx', text: 'DEALLOCATE ALL' });
  t.same(await pooledOnServer(b), [], 'the server dropped everything');
  // In a transaction nothing can be run again: this works only if the pooler knows the statement is gone.
  t.equal((await b.query({ name: 'again', text: named.text, values: [5] })).rows[0].v, 6, 'the same text prepares again in the transaction');
  await b.query('COMMIT');
  t.equal((await a.query({ ...named, values: [2] })).rows[0].v, 3, 'the first client still works');
  await Promise.all([a.end(), b.end()]);
});

t.test('a client DEALLOCATEs only its own names', async (t) => {
  const a = await client('shared');
  t.equal((await a.query({ ...named, values: [1] })).rows[0].v, 2);
  const pooled = await pooledOnServer(a);
  const b = await raw('shared');
  b.send(msg.parse('SELECT 1', 'pdo_stmt_00000001'), msg.sync());
  t.equal(types(await b.readUntilReady()), '1Z');
  // PHP PDO closes its statements with DEALLOCATE name (pgbouncer#991).
  const own = await b.query('DEALLOCATE pdo_stmt_00000001');
  t.equal(types(own), 'CZ', 'its own statement: answered');
  t.equal(commandTag(own[0].body), 'DEALLOCATE');
  t.equal(firstError(await b.query('DEALLOCATE pdo_stmt_00000001'))?.get('C'), '26000', 'and gone');
  t.equal(firstError(await b.query(`DEALLOCATE ${pooled[0]}`))?.get('C'), '26000', 'a pooled name is not the client\'s to drop');
  t.same(await pooledOnServer(a), pooled, 'the shared statement is still on the server');
  b.end();
  await a.end();
});

t.test('a pooled statement dropped behind the pooler is prepared again, not a 26000', async (t) => {
  const a = await client('shared');
  t.equal((await a.query({ ...named, values: [1] })).rows[0].v, 2);
  const b = await client('shared');
  const drop = async (): Promise<void> => {
    const names = await pooledOnServer(b);
    t.ok(names.length > 0, `the server holds pooled statements (${names.length})`);
    // Inside a transaction the pooler sends it on; its tag ("DEALLOCATE") does not say which.
    await b.query('BEGIN');
    for (const n of names) await b.query(`DEALLOCATE ${n}`);
    await b.query('COMMIT');
    t.same(await pooledOnServer(b), [], 'all dropped by name');
  };
  await drop();
  t.equal((await a.query({ ...named, values: [2] })).rows[0].v, 3, 'Bind of the lost statement: healed');
  t.equal((await a.query({ ...named, values: [3] })).rows[0].v, 4, 'and it stays healed');

  // A new client's Parse of a statement the pooler believes prepared (a
  // scratch Parse, then Bind): its ParseComplete is not repeated by the rerun.
  await drop();
  const c = await raw('shared');
  c.send(msg.parse(named.text, 'mine'), msg.bind(['7'], 'mine'), msg.describePortal(), msg.execute(), msg.sync());
  const reply = await c.readUntilReady();
  t.equal(types(reply), '12TDCZ', 'exactly one reply per request, no error');
  t.same(dataRow(reply[3].body), ['8']);

  // Inside a transaction the unit cannot run again: the error is the
  // server's, and the next transaction works.
  await drop();
  await a.query('BEGIN');
  await t.rejects(a.query({ ...named, values: [4] }), { code: '26000' }, 'in a transaction the client sees the error');
  await a.query('ROLLBACK');
  t.equal((await a.query({ ...named, values: [5] })).rows[0].v, 6, 'the next transaction prepares it again');
  c.end();
  await Promise.all([a.end(), b.end()]);
});

t.test('prepared statements turned on by RELOAD', async (t) => {
  const warm = await client('rl');
  await warm.query('SELECT 1');
  await warm.end();
  pooler.writeConfig(config(100));
  const admin = await pgClient({ host: pooler.host, port: pooler.port, user: 'admin', password: 'admin', database: 'pgcat' });
  await admin.query('RELOAD');
  await admin.end();
  // libpq's PQprepare then PQexecPrepared: Parse + Sync, then Bind + Execute + Sync.
  const c = await raw('rl');
  c.send(msg.parse('SELECT $1::int * 2', 'statement1'), msg.sync());
  t.equal(types(await c.readUntilReady()), '1Z', 'prepared');
  c.send(msg.bind(['21'], 'statement1'), msg.execute(), msg.sync());
  const reply = await c.readUntilReady();
  t.equal(firstError(reply), null, 'no error');
  t.same(dataRow(reply.find((m) => m.type === 'D')!.body), ['42']);
  c.end();
});

t.test('a named Parse with the cache off does not leak to the next client', async (t) => {
  const a = await client('off');
  const b = await client('off');
  t.equal((await a.query({ name: 'prepared_q', text: 'SELECT 1 AS v' })).rows[0].v, 1);
  t.equal((await b.query({ name: 'prepared_q', text: 'SELECT 2 AS v' })).rows[0].v, 2, 'no 42P05 for the next client');
  const left = await b.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = 'prepared_q'");
  t.equal(left.rows[0].n, 0, 'the statement was deallocated at check-in');
  await Promise.all([a.end(), b.end()]);
});

t.test('check-in after SET keeps the pooled statements; after PREPARE they are re-prepared', async (t) => {
  const a = await client('shared');
  t.equal((await a.query({ ...named, values: [1] })).rows[0].v, 2);
  const b = await client('shared');
  const before = await pooledOnServer(b);
  t.ok(before.length > 0, 'the server holds the pooled statement');
  await b.query("SET statement_timeout = '7s'");
  const c = await client('shared');
  t.equal((await c.query('SHOW statement_timeout')).rows[0].statement_timeout, '0', 'the next client sees the default setting');
  t.same(await pooledOnServer(c), before, 'and the pooled statements are still prepared (RESET ALL, not DISCARD ALL)');

  // SQL-level PREPARE: DEALLOCATE ALL at check-in; the pooler's view follows.
  await b.query('PREPARE mine AS SELECT 1');
  const left = await c.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = 'mine'");
  t.equal(left.rows[0].n, 0, 'the SQL-level statement is gone for the next client');
  t.equal((await a.query({ ...named, values: [2] })).rows[0].v, 3, 'the pooled statement is prepared again');

  // The cache-off pool: SET is undone too.
  const d = await client('off');
  await d.query("SET work_mem = '7MB'");
  const e = await client('off');
  t.not((await e.query('SHOW work_mem')).rows[0].work_mem, '7MB', 'the next client sees the default');
  await Promise.all([a.end(), b.end(), c.end(), d.end(), e.end()]);
});

t.test('check-in after LISTEN, DECLARE WITH HOLD and a temp table: each undone, the pooled statements kept', async (t) => {
  const a = await client('shared');
  t.equal((await a.query({ ...named, values: [1] })).rows[0].v, 2);
  const b = await client('shared');
  const before = await pooledOnServer(b);
  await b.query('LISTEN some_channel');
  await b.query('DECLARE held CURSOR WITH HOLD FOR SELECT 1');
  await b.query('CREATE TEMP TABLE scratch_rows (x int)');
  const c = await client('shared');
  t.same((await c.query('SELECT pg_listening_channels() AS ch')).rows, [], 'UNLISTEN *');
  t.equal((await c.query('SELECT count(*)::int AS n FROM pg_cursors')).rows[0].n, 0, 'CLOSE ALL');
  t.equal((await c.query("SELECT to_regclass('pg_temp.scratch_rows') AS r")).rows[0].r, null, 'DISCARD TEMP');
  t.same(await pooledOnServer(c), before, 'the pooled statements are still prepared');
  await Promise.all([a.end(), b.end(), c.end()]);
});

t.test('[general] prepared_statements_cache_size without prepared_statements: off, with a warning', async (t) => {
  t.match(
    pooler.output(),
    /general\.prepared_statements_cache_size = 500 without general\.prepared_statements = true: prepared statements stay off \(as in PgCat\) for pool\(s\) off/,
    'the warning names both keys and the pool',
  );
  const c = await client('off');
  await c.query('BEGIN');
  await c.query({ name: 'client_named', text: 'SELECT 1' });
  const r = await c.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = 'client_named'");
  t.equal(r.rows[0].n, 1, 'the statement reaches the server under the client\'s name: no renaming, the cache is off');
  await c.query('COMMIT');
  await c.end();
});

t.test('the warning: only when [general] sets the size without the switch and a pool takes it', async (t) => {
  const warnings = (general: string, pool: string): string[] =>
    parseConfig(
      `[general]\nadmin_username = "a"\nadmin_password = "a"\n${general}\n[pools.p]\n${pool}\n` +
        '[pools.p.users.0]\nusername = "u"\npassword = "p"\npool_size = 1\n' +
        '[pools.p.shards.0]\ndatabase = "d"\nservers = [["127.0.0.1", 5432, "primary"]]\n',
      '/tmp/pgcat.toml',
    ).warnings ?? [];
  t.match(warnings('prepared_statements_cache_size = 300', '').join('\n'), /general\.prepared_statements_cache_size = 300 without general\.prepared_statements = true: prepared statements stay off \(as in PgCat\) for pool\(s\) p/);
  t.same(warnings('prepared_statements = true\nprepared_statements_cache_size = 300', ''), [], 'PgCat 1.1: switch and size');
  t.same(warnings('', 'prepared_statements_cache_size = 200'), [], "PgCat 1.2: the pool's size alone turns it on");
  t.same(warnings('prepared_statements_cache_size = 300', 'prepared_statements_cache_size = 200'), [], "the pool's own size wins");
  t.same(warnings('', ''), [], 'nothing set: off, silently');
});
