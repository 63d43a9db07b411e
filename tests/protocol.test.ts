// The server side of wire protocol v3 as PgLynx speaks it to clients, in
// front of a real Postgres 15: simple and extended query, pipelining, COPY,
// asynchronous messages, SSL negotiation, bad input and CancelRequest.
// One cluster and one pooler for the whole file: a transaction-mode pool
// (`app`) and a session-mode pool (`app_session`) over the same database.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import t from 'tap';
import { sleep } from './harness/wait.js';
import { primaryShard } from './harness/pool-config.js';
import { pgClient, psql } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';
import {
  RawClient,
  cancelRequest,
  commandTag,
  dataRow,
  errorFields,
  firstError,
  frame,
  msg,
  sslRequest,
  startupPacket,
  types,
  type RawMessage,
} from './harness/raw-client.js';

const USER = 'app';
const PASSWORD = 'apppw';
/** The type of a subtest's `t`. */
type TT = Parameters<Parameters<typeof t.test>[0]>[0];

const pgc = await startPostgres({
  auth: 'scram-sha-256',
  users: [{ name: USER, password: PASSWORD }],
  databases: [{ name: 'app', owner: USER }],
  t,
});
const shards = [primaryShard(pgc, 'app')];
const pooler = await startPglynx(
  configToml({
    port: await freePort(),
    general: { connect_timeout: 5000, max_message_size: 4 << 20 },
    pools: {
      app: { pool_mode: 'transaction', users: [{ username: USER, password: PASSWORD, pool_size: 4 }], shards },
      app_session: { pool_mode: 'session', users: [{ username: USER, password: PASSWORD, pool_size: 4 }], shards },
    },
  }),
  { t, logLevel: 'warn' },
);
const HOST = pooler.host;
const PORT = pooler.port;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'pglynx-protocol-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

const client = (database = 'app', extra: pg.ClientConfig = {}): Promise<pg.Client> =>
  pgClient({ host: HOST, port: PORT, user: USER, password: PASSWORD, database, ...extra });
const raw = (database = 'app'): Promise<RawClient> =>
  RawClient.connect({ host: HOST, port: PORT, user: USER, password: PASSWORD, database });
const psqlApp = (sql: string, env?: Record<string, string>) =>
  psql({ host: HOST, port: PORT, user: USER, password: PASSWORD, db: 'app', sql, env });

/** node-postgres keeps these from BackendKeyData but the typings do not list them. */
const keys = (c: pg.Client): { processID: number; secretKey: number } => c as unknown as { processID: number; secretKey: number };

/** Sends a 16-byte CancelRequest on a new socket; resolves when the pooler closes it. */
function sendCancel(processId: number, secretKey: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: HOST, port: PORT });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('the pooler did not close the CancelRequest connection within 5 s'));
    }, 5000);
    s.on('error', () => {});
    s.once('connect', () => s.write(cancelRequest(processId, secretKey)));
    s.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Waits until Postgres itself shows a backend running `pattern`; returns its pid. */
async function runningQuery(pattern: string): Promise<number> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const rows = await pgc.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()",
      [pattern],
    );
    if (rows.length > 0) return rows[0].pid;
    if (Date.now() > deadline) throw new Error(`no backend runs ${pattern}`);
    await sleep(25);
  }
}

/** The pooler still serves: an old client and a brand-new one both run a query. */
async function stillServes(t: TT, bystander: pg.Client, what: string): Promise<void> {
  const r1 = await bystander.query('SELECT 41 + 1 AS n');
  t.equal(r1.rows[0].n, 42, `${what}: a client connected before still works`);
  const fresh = await client();
  const r2 = await fresh.query('SELECT 7 AS n');
  t.equal(r2.rows[0].n, 7, `${what}: a new client can connect and query`);
  await fresh.end();
}

// ------------------------------------------------------------------ queries

t.test('simple query', async (t) => {
  const r = await psqlApp('SELECT 1 + 1');
  t.equal(r.code, 0, `psql exits 0: ${r.stderr}`);
  t.equal(r.stdout.trim(), '2', 'psql gets the result');

  const c = await raw();
  t.teardown(() => c.destroy());
  const two = await c.query("SELECT 1 AS a, NULL::text AS b; SELECT 'two' AS c");
  t.equal(types(two), 'TDCTDCZ', 'two statements in one Query: rows of both, one ReadyForQuery');
  const rows = two.filter((m) => m.type === 'D').map((m) => dataRow(m.body));
  t.same(rows, [['1', null], ['two']], 'values, including NULL');
  t.same(
    two.filter((m) => m.type === 'C').map((m) => commandTag(m.body)),
    ['SELECT 1', 'SELECT 1'],
    'command tags',
  );
  t.equal(two.at(-1)!.body.toString('latin1'), 'I', 'ReadyForQuery says idle');

  t.equal(types(await c.query('')), 'IZ', 'empty query: EmptyQueryResponse + ReadyForQuery');

  const bad = await c.query('SELECT * FROM no_such_table');
  t.equal(types(bad), 'EZ', 'a failing statement: ErrorResponse + ReadyForQuery');
  t.equal(firstError(bad)?.get('C'), '42P01', 'the server’s SQLSTATE reaches the client');

  const tx = await c.query('BEGIN; SELECT 1');
  t.equal(tx.at(-1)!.body.toString('latin1'), 'T', 'ReadyForQuery reports an open transaction');
  const aborted = await c.query('SELECT 1/0');
  t.equal(aborted.at(-1)!.body.toString('latin1'), 'E', 'ReadyForQuery reports a failed transaction');
  const rb = await c.query('ROLLBACK');
  t.equal(types(rb), 'CZ', 'ROLLBACK');
  t.equal(rb.at(-1)!.body.toString('latin1'), 'I', 'idle again');

  // A message trickling in one byte per write is framed whole.
  const bytes = msg.query("SELECT 'slow' AS s");
  for (const b of bytes) {
    c.send(Buffer.from([b]));
    await sleep(2);
  }
  const slow = await c.readUntilReady();
  t.equal(types(slow), 'TDCZ', 'a Query sent one byte per write');
  t.same(dataRow(slow[1].body), ['slow']);

  const big = await c.query('SELECT g, repeat($$x$$, 100) FROM generate_series(1, 20000) g', 15_000);
  t.equal(big.filter((m) => m.type === 'D').length, 20000, '20,000 rows (several MB) arrive whole');
  t.equal(commandTag(big.at(-2)!.body), 'SELECT 20000', 'and the right tag');

  c.send(msg.terminate());
  t.same(await c.readUntilClosed(5000), [], 'Terminate: the pooler closes the connection without a reply');
});

t.test('extended protocol through node-postgres parameterized queries', async (t) => {
  const c = await client();
  t.teardown(() => c.end());
  const r = await c.query('SELECT $1::int + $2::int AS s, $3::text AS q, $4::text AS n', [2, 3, "it's \"quoted\"", null]);
  t.same(r.rows, [{ s: 5, q: "it's \"quoted\"", n: null }], 'parameters of several types, NULL included');
  const many = await c.query('SELECT g FROM generate_series(1, $1::int) g', [5000]);
  t.equal(many.rowCount, 5000, '5,000 rows through the extended protocol');
  t.equal(many.rows[4999].g, 5000);
  await t.rejects(c.query('SELECT 1 / $1::int', [0]), { code: '22012' }, 'an error in Execute comes back with its SQLSTATE');
  const after = await c.query('SELECT $1::text AS v', ['after error']);
  t.equal(after.rows[0].v, 'after error', 'the client goes on after an extended-protocol error');
  // Named prepared statements need one server for the whole session: session mode.
  const sc = await client('app_session');
  const named: number[] = [];
  for (let i = 0; i < 3; i++) named.push((await sc.query({ name: 'twice', text: 'SELECT $1::int * 2 AS d', values: [i] })).rows[0].d);
  t.same(named, [0, 2, 4], 'session mode: a named prepared statement parsed once, executed three times');
  await sc.end();
});

t.test('a pipelined batch in one write: three Syncs, a Flush in the middle', async (t) => {
  const c = await raw();
  t.teardown(() => c.destroy());
  const tag = `s${process.pid}_${Date.now()}`;
  const parts: Buffer[] = [];
  for (const i of [1, 2, 3]) {
    const name = `${tag}_${i}`;
    parts.push(
      msg.parse(`SELECT $1::int * 10 AS v, '${i}'::text AS tag`, name),
      msg.bind([String(i)], name),
      msg.describePortal(),
      msg.execute(),
    );
    if (i === 3) {
      // An unnamed statement in the last batch, with a Flush between Bind and Describe.
      parts.push(msg.parse('SELECT $1::text AS u'), msg.bind(['unnamed']), msg.flush(), msg.describePortal(), msg.execute());
    }
    parts.push(msg.sync());
  }
  c.send(Buffer.concat(parts)); // one socket write
  const got = await c.readUntilReady(3, 10_000);
  t.equal(types(got), '12TDCZ12TDCZ12TDC12TDCZ', 'every reply, in order, three ReadyForQuery');
  t.same(
    got.filter((m) => m.type === 'D').map((m) => dataRow(m.body)),
    [['10', '1'], ['20', '2'], ['30', '3'], ['unnamed']],
    'each portal got its own parameters',
  );
  t.ok(
    got.filter((m) => m.type === 'Z').every((m) => m.body.toString('latin1') === 'I'),
    'all ReadyForQuery idle',
  );

  // An open batch across writes: Flush, read the results, Sync later.
  c.send(msg.parse('SELECT 5 AS five'), msg.bind(), msg.execute(), msg.flush());
  const early = await c.readMessages('C', 5000);
  t.equal(types(early), '12DC', 'Flush delivers results before Sync');
  await sleep(200);
  c.send(msg.sync());
  t.equal(types(await c.readUntilReady(1)), 'Z', 'the later Sync gets its ReadyForQuery');

  // An error mid-batch: the server skips to the Sync; the pooler must still count it.
  c.send(
    msg.parse('SELECT 1 / (random() * 0)::int'), // volatile: not folded at Bind, fails in Execute
    msg.bind(),
    msg.execute(),
    msg.parse('SELECT 1 AS skipped'),
    msg.bind(),
    msg.execute(),
    msg.sync(),
    msg.query('SELECT 99'),
  );
  const errBatch = await c.readUntilReady(2);
  t.equal(types(errBatch), '12EZTDCZ', 'error skips to Sync; the next Query still answered');
  t.equal(firstError(errBatch)?.get('C'), '22012');

});

// ------------------------------------------------------------------ COPY

t.test('COPY FROM STDIN / TO STDOUT with psql \\copy', async (t) => {
  const create = await psqlApp('CREATE TABLE copy_t (id int PRIMARY KEY, name text)');
  t.equal(create.code, 0, `create table: ${create.stderr}`);
  const inFile = path.join(tmp, 'in.tsv');
  const outFile = path.join(tmp, 'out.tsv');
  const lines = Array.from({ length: 10_000 }, (_, i) => `${i + 1}\tname number ${i + 1}`);
  writeFileSync(inFile, `${lines.join('\n')}\n`);

  const copyIn = await psqlApp(`\\copy copy_t FROM '${inFile}'`);
  t.equal(copyIn.code, 0, `\\copy FROM exits 0: ${copyIn.stderr}`);
  const [{ n }] = await pgc.query<{ n: string }>('SELECT count(*) AS n FROM copy_t', [], 'app');
  t.equal(Number(n), 10_000, '10,000 rows arrived in Postgres');

  const copyOut = await psqlApp(`\\copy (SELECT * FROM copy_t ORDER BY id) TO '${outFile}'`);
  t.equal(copyOut.code, 0, `\\copy TO exits 0: ${copyOut.stderr}`);
  const out = readFileSync(outFile, 'utf8').split('\n').filter((l) => l !== '');
  t.equal(out.length, 10_000, 'the file has 10,000 lines');
  t.same(out, lines, 'and exactly the rows sent');

  const stdout = await psqlApp('COPY (SELECT id FROM copy_t WHERE id <= 500 ORDER BY id) TO STDOUT');
  t.equal(stdout.code, 0, `COPY TO STDOUT: ${stdout.stderr}`);
  t.equal(stdout.stdout.trim().split('\n').length, 500, 'COPY TO STDOUT: 500 lines');

  // A COPY the server rejects part way: error to the client, nothing committed, connection usable.
  const badFile = path.join(tmp, 'bad.tsv');
  writeFileSync(badFile, `20001\tok\nnot-a-number\toops\n`);
  const bad = await psqlApp(`\\copy copy_t FROM '${badFile}'`);
  t.not(bad.code, 0, 'bad COPY data fails');
  t.match(bad.stderr, /invalid input syntax/, `with the server's error: ${bad.stderr.trim()}`);
  const [{ n: after }] = await pgc.query<{ n: string }>('SELECT count(*) AS n FROM copy_t', [], 'app');
  t.equal(Number(after), 10_000, 'the failed COPY added no rows');

  // Raw: CopyFail from the client aborts the COPY and the session goes on.
  const c = await raw();
  c.send(msg.query('COPY copy_t FROM STDIN'));
  t.equal(types(await c.readMessages('G')), 'G', 'CopyInResponse');
  c.send(msg.copyData('30001\tx\n'), msg.copyFail('client gave up'));
  const failed = await c.readUntilReady();
  t.equal(types(failed), 'EZ', 'CopyFail: ErrorResponse + ReadyForQuery');
  t.match(firstError(failed)?.get('M') ?? '', /client gave up/);
  t.equal(types(await c.query('SELECT 1')), 'TDCZ', 'the client goes on after CopyFail');
  c.destroy();
});

// ------------------------------------------------------------------ asynchronous messages

t.test('NoticeResponse', async (t) => {
  const c = await client();
  t.teardown(() => c.end());
  const notices: string[] = [];
  c.on('notice', (n) => notices.push(n.message ?? ''));
  await c.query("DO $$ BEGIN RAISE NOTICE 'hi'; END $$");
  t.same(notices, ['hi'], "the notice reaches node-postgres's 'notice' event");
});

t.test('NotificationResponse (session mode)', async (t) => {
  const listener = await client('app_session');
  const notifier = await client('app');
  t.teardown(async () => {
    await listener.end();
    await notifier.end();
  });
  const got: { channel: string; payload?: string }[] = [];
  const arrived = new Promise<void>((resolve) =>
    listener.on('notification', (n) => {
      got.push({ channel: n.channel, payload: n.payload });
      if (got.length === 2) resolve();
    }),
  );
  await listener.query('LISTEN lynx_events');
  await notifier.query("NOTIFY lynx_events, 'first'");
  await notifier.query("SELECT pg_notify('lynx_events', 'second')");
  await Promise.race([arrived, sleep(5000)]);
  t.same(
    got,
    [
      { channel: 'lynx_events', payload: 'first' },
      { channel: 'lynx_events', payload: 'second' },
    ],
    'both notifications reach the idle listener',
  );
});

t.test('ParameterStatus and tracked parameters', async (t) => {
  const a = await client();
  const holder = await client();
  t.teardown(async () => {
    await a.end();
    await holder.end();
  });
  const reported: Record<string, string> = {};
  (a.connection as unknown as NodeJS.EventEmitter).on(
    'parameterStatus',
    (m: { parameterName: string; parameterValue: string }) => (reported[m.parameterName] = m.parameterValue),
  );
  await a.query("SET application_name = 'x'");
  t.equal(reported.application_name, 'x', 'SET application_name: the client gets ParameterStatus');

  const next = await a.query('SHOW application_name');
  t.equal(next.rows[0].application_name, 'x', 'the next transaction still has application_name x');

  // Hold the most recently used server so the client must borrow another one.
  await holder.query('BEGIN');
  await holder.query('SELECT 1');
  const other = await a.query('SHOW application_name');
  t.equal(other.rows[0].application_name, 'x', 'on another server too');
  await holder.query('COMMIT');

  const b = await client('app', { application_name: 'b' });
  const fresh = await client();
  t.teardown(async () => {
    await b.end();
    await fresh.end();
  });
  t.equal((await b.query('SHOW application_name')).rows[0].application_name, 'b', 'startup application_name is applied');
  t.equal((await fresh.query('SHOW application_name')).rows[0].application_name, '', "a new client does not inherit another client's x");
  await a.query('BEGIN');
  t.equal((await a.query('SHOW application_name')).rows[0].application_name, 'x', 'and the first client still sees x');
  await a.query('COMMIT');
});

// ------------------------------------------------------------------ SSL

t.test('SSLRequest is answered N', async (t) => {
  const prefer = await psqlApp('SELECT 1', { PGSSLMODE: 'prefer' });
  t.equal(prefer.code, 0, `sslmode=prefer connects in plain text: ${prefer.stderr}`);
  t.equal(prefer.stdout.trim(), '1');
  const require = await psqlApp('SELECT 1', { PGSSLMODE: 'require' });
  t.not(require.code, 0, 'sslmode=require fails');
  t.match(require.stderr, /SSL/, `with a message about SSL: ${require.stderr.trim()}`);

  const c = await RawClient.open(HOST, PORT);
  t.teardown(() => c.destroy());
  c.send(sslRequest());
  t.equal((await c.readBytes(1)).toString('latin1'), 'N', "raw SSLRequest: a single 'N'");
  await c.login({ host: HOST, port: PORT, user: USER, password: PASSWORD, database: 'app' });
  t.equal(types(await c.query('SELECT 1')), 'TDCZ', 'then a plain-text login on the same socket works');
});

// ------------------------------------------------------------------ bad input

async function expectProtocolViolation(t: TT, c: RawClient, what: string): Promise<void> {
  let got: RawMessage[] = [];
  try {
    got = await c.readUntilClosed(5000);
  } catch (err) {
    t.fail(`${what}: the pooler did not close the connection: ${(err as Error).message}`);
    return;
  }
  const e = got.find((m) => m.type === 'E');
  t.ok(e, `${what}: an ErrorResponse before the close (got "${types(got)}")`);
  if (e) t.equal(errorFields(e.body).get('C'), '08P01', `${what}: SQLSTATE 08P01 (${errorFields(e.body).get('M')})`);
  t.notOk(c.isOpen, `${what}: disconnected`);
}

t.test('malformed messages close only the offending client', async (t) => {
  const bystander = await client();
  t.teardown(() => bystander.end());
  const cases: [string, Buffer][] = [
    ['a frame with length 2', Buffer.from([0x51, 0, 0, 0, 2])],
    ['a negative length', Buffer.from([0x51, 0xff, 0xff, 0xff, 0xff])],
    ["an unknown message type 'z'", frame('z', 'hello')],
    ['length 0x7fffffff', Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff, 0x53, 0x45, 0x4c])],
  ];
  for (const [what, bytes] of cases) {
    const c = await raw();
    c.send(bytes);
    await expectProtocolViolation(t, c, what);
    c.destroy();
    await stillServes(t, bystander, what);
  }

  // max_message_size (4 MiB here): refused at the header, before the body is sent.
  const big = await raw();
  big.send(Buffer.from([0x51, 0, 0x50, 0, 0])); // Query header announcing 5 MiB
  await expectProtocolViolation(t, big, 'a message over max_message_size');
  big.destroy();
  await stillServes(t, bystander, 'a message over max_message_size');
  const r = await bystander.query<{ n: number }>(`SELECT length('${'x'.repeat(3 << 20)}') AS n`);
  t.equal(r.rows[0].n, 3 << 20, 'a 3 MiB Query under the limit runs');

  // Garbage while a transaction is open: the client goes, its transaction does not commit.
  await bystander.query('CREATE TABLE IF NOT EXISTS garbage_t (x int)');
  const c = await raw();
  t.equal(types(await c.query('BEGIN; INSERT INTO garbage_t VALUES (1)')), 'CCZ');
  c.send(frame('z', 'x'));
  await expectProtocolViolation(t, c, 'garbage inside a transaction');
  c.destroy();
  await sleep(200);
  const [{ n }] = await pgc.query<{ n: string }>('SELECT count(*) AS n FROM garbage_t', [], 'app');
  t.equal(Number(n), 0, 'its open transaction was rolled back');
  await stillServes(t, bystander, 'garbage inside a transaction');
});

t.test('bad startup packets', async (t) => {
  const bystander = await client();
  t.teardown(() => bystander.end());

  const oversized = Buffer.alloc(100_000, 0x41);
  oversized.writeInt32BE(100_000, 0);
  oversized.writeInt32BE(196608, 4);
  const noUser = startupPacket({ database: 'app' });
  const junk = Buffer.alloc(16, 0x7a);
  junk.writeInt32BE(16, 0);
  const cases: [string, Buffer][] = [
    ['a startup packet of length 100000', oversized],
    ['a protocol 2.0 startup packet', startupPacket({ user: USER, database: 'app' }, 2, 0)],
    ['a startup packet with an unknown request code', junk],
    ['a startup packet without a user', noUser],
    ['a startup packet of length 3', Buffer.from([0, 0, 0, 3, 0, 0, 0, 0])],
  ];
  for (const [what, bytes] of cases) {
    const c = await RawClient.open(HOST, PORT);
    c.send(bytes);
    let got: RawMessage[] = [];
    try {
      got = await c.readUntilClosed(5000);
    } catch (err) {
      t.fail(`${what}: not disconnected: ${(err as Error).message}`);
    }
    t.notOk(c.isOpen, `${what}: disconnected`);
    t.ok(
      got.every((m) => m.type === 'E'),
      `${what}: nothing but an ErrorResponse is sent (got "${types(got)}"${got[0] ? `: ${errorFields(got[0].body).get('M')}` : ''})`,
    );
    c.destroy();
    await stillServes(t, bystander, what);
  }
  const v2 = await RawClient.open(HOST, PORT);
  v2.send(startupPacket({ user: USER, database: 'app' }, 2, 0));
  const v2got = await v2.readUntilClosed(5000).catch(() => [] as RawMessage[]);
  t.match(firstError(v2got)?.get('M') ?? '', /protocol/i, 'protocol 2.0 is refused with an error naming the protocol');
  v2.destroy();
});

// ------------------------------------------------------------------ CancelRequest

t.test('CancelRequest', async (t) => {
  const c = await client();
  t.teardown(() => c.end());
  const { processID, secretKey } = keys(c);
  t.ok(processID !== 0 && processID !== null, `BackendKeyData gave a process id (${processID})`);

  // Wrong secret key, and wrong process id with the right key: no effect.
  let started = Date.now();
  const slow = c.query('SELECT pg_sleep(2) AS slept');
  await runningQuery('SELECT pg_sleep(2)%');
  await sendCancel(processID, secretKey ^ 0x5a5a);
  await sendCancel(processID ^ 0x1, secretKey);
  const r = await slow;
  t.equal(r.rowCount, 1, 'a cancel with the wrong key does not cancel');
  t.ok(Date.now() - started >= 1900, `the query ran its full 2 s (${Date.now() - started} ms)`);

  // The right key cancels.
  started = Date.now();
  const doomed = c.query('SELECT pg_sleep(10)').then(
    () => null,
    (e: Error & { code?: string }) => e,
  );
  await runningQuery('SELECT pg_sleep(10)%');
  await sendCancel(processID, secretKey);
  t.equal((await doomed)?.code, '57014', 'the right key cancels: 57014');
  t.ok(Date.now() - started < 5000, `quickly (${Date.now() - started} ms)`);
  const after = await c.query('SELECT 1 AS one');
  t.equal(after.rows[0].one, 1, 'the client goes on after the cancel');
  const still = await pgc.query("SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(10)%' AND state = 'active'");
  t.equal(still.length, 0, 'nothing left running on the server');
});
