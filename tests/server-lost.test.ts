// A server lost under a client's statement (issue 11.7): Postgres says
// FATAL (57P01 for pg_terminate_backend or a restart) and closes. Under an
// autocommit statement in transaction mode the client loses nothing but that
// statement: it gets an ERROR (same SQLSTATE, severity ERROR, not FATAL),
// then ReadyForQuery, and carries on with another server; libpq/psql and
// node-postgres keep the connection. Inside a transaction or in session
// mode its transaction/session is gone: the server's FATAL, then the end.
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import pg from 'pg';
import { pgClient, psql } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';
import { RawClient, errorFields, msg, types, type RawMessage } from './harness/raw-client.js';

const APP = { username: 'app', password: 'apppw' };
const server = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'apppw' }], t });
const shards = [primaryShard(server)];
const pooler = await startPglynx(
  configToml({
    port: await freePort(),
    general: { connect_timeout: 5000 },
    pools: {
      tx: { pool_mode: 'transaction', users: [{ ...APP, pool_size: 2 }], shards },
      // Prepared statements on: the server stream is framed, not scanned.
      prep: { pool_mode: 'transaction', prepared_statements_cache_size: 100, users: [{ ...APP, pool_size: 2 }], shards },
      sess: { pool_mode: 'session', users: [{ ...APP, pool_size: 2 }], shards },
    },
  }),
  { t, logLevel: 'warn' },
);

const raw = (database: string): Promise<RawClient> => RawClient.connect({ host: pooler.host, port: pooler.port, user: APP.username, password: APP.password, database });
const client = (database: string): Promise<pg.Client> =>
  pgClient({ host: pooler.host, port: pooler.port, user: APP.username, password: APP.password, database });

/** Terminates (as superuser) the backend running `sql`, once it runs: the server sends FATAL 57P01. */
async function terminate(sql: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const rows = await server.query<{ n: number }>(
      "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE state = 'active' AND query = $1 AND pid <> pg_backend_pid()",
      [sql],
    );
    if (rows[0].n > 0) return;
    if (Date.now() > deadline) throw new Error(`no backend runs ${sql}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const errors = (ms: RawMessage[]): string[] =>
  ms.filter((m) => m.type === 'E').map((m) => {
    const f = errorFields(m.body);
    return `${f.get('S')}/${f.get('V')} ${f.get('C')}`;
  });

for (const database of ['tx', 'prep']) {
  t.test(`${database}: autocommit statement, server terminated: ERROR 57P01, ReadyForQuery, the client carries on`, async (t) => {
    const rc = await raw(database);
    t.teardown(() => rc.destroy());
    const sql = `SELECT pg_sleep(2.01) /* ${database} raw */`;
    rc.send(msg.query(sql));
    await terminate(sql);
    const reply = await rc.readMessages('Z', 5000);
    t.equal(types(reply), 'TEZ', 'RowDescription (sent as the statement started), one ErrorResponse, ReadyForQuery');
    t.same(errors(reply), ['ERROR/ERROR 57P01'], 'severity ERROR (S and V), the server SQLSTATE');
    t.match(errorFields(reply[1].body).get('M'), /server connection lost: terminating connection due to administrator command/);
    t.equal(types(await rc.query('SELECT 1')), 'TDCZ', 'the same connection runs SELECT 1 on another server');

    // Extended protocol (node-postgres sends Parse/Bind/Execute/Sync for parameters).
    const c = await client(database);
    t.teardown(() => c.end().catch(() => undefined));
    const ext = `SELECT pg_sleep($1) /* ${database} node-postgres */`;
    const failed = c.query(ext, [2.02]).then(
      () => null,
      (e: { code?: string; severity?: string; message?: string }) => e,
    );
    await terminate(ext);
    const err = await failed;
    t.equal(err?.code, '57P01', `node-postgres gets 57P01 (${err?.message})`);
    t.equal(err?.severity, 'ERROR', 'as an ERROR');
    t.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'the same pg.Client runs SELECT 1');
    t.equal((await c.query('SELECT $1::int AS two', [2])).rows[0].two, 2, 'and an extended-protocol query');
  });
}

t.test('psql: the statement fails with an ERROR, the next one runs on the same connection', async (t) => {
  const sql = 'SELECT pg_sleep(2.03)';
  const run = psql({
    host: pooler.host,
    port: pooler.port,
    user: APP.username,
    password: APP.password,
    db: 'tx',
    extraArgs: ['-v', 'ON_ERROR_STOP=0', '-c', sql, '-c', "SELECT 'carried on'"],
    timeoutMs: 10_000,
  });
  await terminate(sql);
  const r = await run;
  t.match(r.stderr, /ERROR: {2}server connection lost: terminating connection due to administrator command/, `ERROR on stderr: ${r.stderr.trim()}`);
  t.notMatch(r.stderr, /FATAL|connection.*lost\. /i, 'no FATAL, no lost connection');
  t.equal(r.stdout.trim(), 'carried on', 'the second command ran');
});

t.test('inside a transaction: the server FATAL, then the connection ends', async (t) => {
  const rc = await raw('tx');
  t.teardown(() => rc.destroy());
  t.equal(types(await rc.query('BEGIN')), 'CZ');
  const sql = 'SELECT pg_sleep(2.04) /* in a transaction */';
  rc.send(msg.query(sql));
  await terminate(sql);
  const reply = await rc.readUntilClosed(5000);
  t.same(errors(reply), ['FATAL/FATAL 57P01'], 'the server FATAL');
  t.notOk(rc.isOpen, 'the connection is closed: the transaction is gone');
});

t.test('session mode: the server FATAL, then the connection ends', async (t) => {
  const rc = await raw('sess');
  t.teardown(() => rc.destroy());
  const sql = 'SELECT pg_sleep(2.05) /* session mode */';
  rc.send(msg.query(sql));
  await terminate(sql);
  const reply = await rc.readUntilClosed(5000);
  t.same(errors(reply), ['FATAL/FATAL 57P01'], 'the server FATAL');
  t.notOk(rc.isOpen, 'the connection is closed: the session is gone');
});
