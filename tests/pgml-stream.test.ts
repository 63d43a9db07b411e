// pgml.transform_stream through PgLynx, in front of a real Postgres with no
// extension: rows (`["<text>"]`, one per piece of generated text, column
// transform_stream) reach the client while the sequence is still being
// decoded; simple and extended protocol with parameters, named prepared
// statements, inside a transaction (ReadyForQuery 'T', an error aborts the
// block), PostgresML's errors, cancel mid-stream (57014 after the rows
// already sent, the slot freed at once) and disconnect mid-stream.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { synthModel } from '../bin/models.js';
import { pgClient } from './harness/clients.js';
import { GPT2_TOKENIZER } from './harness/fixtures.js';
import { greedyText } from './harness/greedy.js';
import { primaryShard } from './harness/pool-config.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres } from './harness/postgres.js';
import { freePort } from './harness/ports.js';
import { cancelRequest, commandTag, dataRow, errorFields, msg, RawClient, serialize, type RawMessage } from './harness/raw-client.js';

const dir = mkdtempSync(path.join(tmpdir(), 'pglynx-stream-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
synthModel({ src: GPT2_TOKENIZER, out: dir, seed: 11, gpt2: { layers: 2, hidden: 96 } });

/** Greedy continuation computed here, one sequence at a time, over the same graph. */
const greedy = (prompt: string, n: number): Promise<string> => greedyText(dir, prompt, n);

/** The text of a stream's DataRows (each `["piece"]`). */
function joined(ms: RawMessage[]): string {
  return ms
    .filter((m) => m.type === 'D')
    .map((m) => (JSON.parse(dataRow(m.body)[0]!) as string[])[0]!)
    .join('');
}

const TASK = '{"task": "text-generation", "model": "gpt"}';
const PROMPT = 'Once upon a time,';

t.test('pgml.transform_stream through the pooler', async (t) => {
  const pg = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'pw' }], settings: { log_statement: 'all' }, t });
  await pg.query(`CREATE TABLE notes (id serial PRIMARY KEY, body text)`);
  await pg.query(`GRANT ALL ON notes TO app; GRANT ALL ON SEQUENCE notes_id_seq TO app`);
  const port = await freePort();
  const pooler = await startPglynx(
    configToml({
      port,
      // Short: a stream inside a transaction outlasts it and must not be cut (the client is not idle).
      general: { idle_client_in_transaction_timeout: 300 },
      pools: {
        app: {
          pool_mode: 'transaction',
          users: [{ username: 'app', password: 'pw', pool_size: 3 }],
          shards: [primaryShard(pg)],
        },
        sess: { pool_mode: 'session', users: [{ username: 'app', password: 'pw', pool_size: 2 }], shards: [primaryShard(pg)] },
        // One connection, pipelining on: clients' reads queue behind each other's between their streams.
        piped: {
          pool_mode: 'transaction',
          pipeline_depth: 4,
          pipeline_max_wait_ms: 60_000,
          users: [{ username: 'app', password: 'pw', pool_size: 1 }],
          shards: [primaryShard(pg)],
        },
      },
      extra: {
        models: {
          gpt: { path: dir, max_new_tokens: 1000, max_batch_size: 8 },
          // One sequence at a time: a sequence that did not leave would hold up the next call.
          one: { path: dir, max_new_tokens: 4000, max_batch_size: 1, model_timeout_ms: 60_000 },
        },
      },
    }),
    { t, logLevel: 'warn', timeoutMs: 120_000 },
  );
  const login = { host: '127.0.0.1', port: pooler.port, user: 'app', password: 'pw', database: 'app' };
  const c = await pgClient(login);
  t.teardown(() => c.end());
  const expected = await greedy(PROMPT, 24);

  await t.test('simple protocol: rows arrive while the sequence is decoded, then SELECT n and ReadyForQuery I', async (t) => {
    const raw = await RawClient.connect(login);
    t.teardown(() => raw.destroy());
    const N = 300;
    const sent = performance.now();
    raw.send(msg.query(`SELECT * FROM pgml.transform_stream('${TASK}'::jsonb, '{"max_new_tokens": ${N}}'::jsonb, '${PROMPT}')`));
    const got: RawMessage[] = [];
    let firstRowAt = 0;
    for (;;) {
      const m = await raw.next(30_000);
      got.push(m);
      if (m.type === 'D' && firstRowAt === 0) firstRowAt = performance.now();
      if (m.type === 'Z') break;
    }
    const doneAt = performance.now();
    const types = got.map((m) => m.type).join('');
    t.match(types, /^TD+CZ$/, 'RowDescription, rows, CommandComplete, ReadyForQuery');
    const rows = got.filter((m) => m.type === 'D').length;
    t.equal(commandTag(got.at(-2)!.body), `SELECT ${rows}`, 'the tag counts the rows sent');
    t.equal(got.at(-1)!.body.toString('latin1'), 'I');
    t.ok(joined(got).startsWith(expected), 'greedy text equals the one-at-a-time loop');
    // Buffered rows would all come together at the end; streamed ones come as each token is decoded.
    t.ok(firstRowAt - sent < (doneAt - sent) / 4, `first row after ${(firstRowAt - sent).toFixed(0)} ms of ${(doneAt - sent).toFixed(0)} ms`);
  });

  await t.test('node-postgres: column name, alias, positional and named arguments', async (t) => {
    const r = await c.query(`SELECT pgml.transform_stream('${TASK}', '{"max_new_tokens": 24}', '${PROMPT}')`);
    t.same(r.fields.map((f) => f.name), ['transform_stream']);
    t.equal(r.rows.map((row) => (row.transform_stream as string[])[0]).join(''), expected);
    t.ok(r.rows.every((row) => Array.isArray(row.transform_stream) && row.transform_stream.length === 1), 'each row is a one-element jsonb array');
    const named = await c.query(`SELECT * FROM pgml.transform_stream(input => '${PROMPT}', task => 'text-generation', args => '{"max_new_tokens": 24}'::jsonb) AS chunk`);
    t.same(named.fields.map((f) => f.name), ['chunk']);
    t.equal(named.rows.map((row) => (row.chunk as string[])[0]).join(''), expected, 'task alone uses the first text-generation model');
    t.equal(named.rowCount, named.rows.length);
  });

  await t.test('extended protocol with parameters, unnamed and named statements', async (t) => {
    const args = '{"max_new_tokens": 24}';
    const r = await c.query('SELECT * FROM pgml.transform_stream($1::jsonb, $2::jsonb, $3)', [TASK, args, PROMPT]);
    t.same(r.fields.map((f) => f.name), ['transform_stream']);
    t.equal(r.rows.map((row) => (row.transform_stream as string[])[0]).join(''), expected);
    // Buffers go in binary format: jsonb with its version byte, text as its bytes.
    const jsonb = (s: string): Buffer => Buffer.concat([Buffer.from([1]), Buffer.from(s)]);
    const bin = await c.query('SELECT * FROM pgml.transform_stream($1::jsonb, $2::jsonb, $3)', [jsonb(TASK), jsonb(args), Buffer.from(PROMPT)]);
    t.equal(bin.rows.map((row) => (row.transform_stream as string[])[0]).join(''), expected, 'binary parameters');
    const q = { name: 'stream1', text: 'SELECT pgml.transform_stream(task => $1, args => $2, input => $3) AS piece' };
    const a = await c.query({ ...q, values: [TASK, '{"max_new_tokens": 6}', 'Hello'] });
    const b = await c.query({ ...q, values: [TASK, args, PROMPT] });
    t.equal(a.rows.map((row) => (row.piece as string[])[0]).join(''), await greedy('Hello', 6), 'the prepared statement runs per execution');
    t.equal(b.rows.map((row) => (row.piece as string[])[0]).join(''), expected);
    const ok = await c.query('SELECT 2 AS two');
    t.equal(ok.rows[0].two, 2, 'ordinary statements go on after it');
  });

  await t.test('raw extended protocol: Describe statement, binary result, Close', async (t) => {
    const raw = await RawClient.connect(login);
    t.teardown(() => raw.destroy());
    raw.send(msg.parse('SELECT * FROM pgml.transform_stream($1, $2, $3)', 's1'), msg.describeStatement('s1'), msg.sync());
    const described = await raw.readUntilReady();
    t.equal(described.map((m) => m.type).join(''), '1tTZ', 'ParseComplete, ParameterDescription, RowDescription, ReadyForQuery');
    t.equal(described[1]!.body.readInt16BE(0), 3, 'three parameters');
    t.same([described[1]!.body.readUInt32BE(2), described[1]!.body.readUInt32BE(6), described[1]!.body.readUInt32BE(10)], [25, 3802, 25], 'text, jsonb, text');
    // Results in binary format.
    const bind = serialize.bind({ values: [TASK, '{"max_new_tokens": 5}', PROMPT], statement: 's1', portal: '', binary: true });
    raw.send(bind, msg.describePortal(), msg.execute(), msg.closeStatement('s1'), msg.sync());
    const ran = await raw.readUntilReady();
    t.match(ran.map((m) => m.type).join(''), /^2TD+C3Z$/, 'BindComplete, RowDescription, rows, CommandComplete, CloseComplete, ReadyForQuery');
    const first = ran.find((m) => m.type === 'D')!;
    t.equal(first.body.readInt32BE(2) > 1 && first.body[6], 1, 'binary jsonb starts with its version byte');
    raw.send(msg.bind([], 's1'), msg.execute(), msg.sync());
    const gone = await raw.readUntilReady();
    t.equal(errorFields(gone.find((m) => m.type === 'E')!.body).get('C'), '26000', 'the closed statement is gone (the server says so)');
  });

  await t.test('inside a transaction: ReadyForQuery T, the block commits; an error aborts it', async (t) => {
    const raw = await RawClient.connect(login);
    t.teardown(() => raw.destroy());
    await raw.query('BEGIN');
    await raw.query(`INSERT INTO notes (body) VALUES ('in tx')`);
    const streamed = await raw.query(`SELECT pgml.transform_stream('${TASK}', '{"max_new_tokens": 8}', '${PROMPT}')`, 30_000);
    t.equal(streamed.at(-1)!.body.toString('latin1'), 'T', 'still in the transaction');
    t.ok(expected.startsWith(joined(streamed)));
    raw.send(msg.parse('SELECT * FROM pgml.transform_stream($1, $2, $3)'), msg.bind([TASK, '{"max_new_tokens": 4}', PROMPT]), msg.describePortal(), msg.execute(), msg.sync());
    const ext = await raw.readUntilReady(1, 30_000);
    t.equal(ext.at(-1)!.body.toString('latin1'), 'T', 'extended protocol: still in the transaction');
    await raw.query('COMMIT');
    t.equal((await pg.query(`SELECT count(*)::int AS n FROM notes WHERE body = 'in tx'`))[0]!.n, 1, 'committed');

    await c.query('BEGIN');
    await c.query(`INSERT INTO notes (body) VALUES ('rolled back')`);
    await t.rejects(c.query(`SELECT * FROM pgml.transform_stream('{"task": "text-generation", "model": "nope"}', '{}', 'x')`), { code: '42704' });
    await t.rejects(c.query('SELECT 1'), { code: '25P02' }, 'the failed statement aborted the transaction');
    await t.rejects(c.query(`SELECT * FROM pgml.transform_stream('${TASK}', '{}', 'x')`), { code: '25P02' }, 'a stream in an aborted transaction');
    await c.query('ROLLBACK');
    t.equal((await pg.query(`SELECT count(*)::int AS n FROM notes WHERE body = 'rolled back'`))[0]!.n, 0);
  });

  await t.test('a stream longer than idle_client_in_transaction_timeout inside a transaction', async (t) => {
    const raw = await RawClient.connect(login);
    t.teardown(() => raw.destroy());
    await raw.query('BEGIN');
    const started = performance.now();
    const streamed = await raw.query(`SELECT * FROM pgml.transform_stream('${TASK}', '{"max_new_tokens": 900}', '${PROMPT}')`, 60_000);
    const ms = performance.now() - started;
    t.match(streamed.map((m) => m.type).join(''), /^TD+CZ$/);
    t.equal(streamed.at(-1)!.body.toString('latin1'), 'T');
    const committed = await raw.query('COMMIT');
    t.equal(committed.at(-1)!.body.toString('latin1'), 'I', `the client outlived the 300 ms timeout over a ${ms.toFixed(0)} ms stream`);
  });

  await t.test('session mode and pipelined pools', async (t) => {
    const s = await pgClient({ ...login, database: 'sess' });
    t.teardown(() => s.end());
    await s.query('SET application_name = streamer');
    const r = await s.query(`SELECT pgml.transform_stream('${TASK}', '{"max_new_tokens": 24}', '${PROMPT}') AS p`);
    t.equal(r.rows.map((row) => (row.p as string[])[0]).join(''), expected, 'session mode');
    await s.query('BEGIN');
    const inTx = await s.query('SELECT * FROM pgml.transform_stream($1, $2, $3)', [TASK, '{"max_new_tokens": 4}', PROMPT]);
    t.equal(inTx.rows.length > 0, true);
    await s.query('COMMIT');
    t.equal((await s.query('SHOW application_name')).rows[0].application_name, 'streamer', 'the session kept its server');

    const clients = await Promise.all(Array.from({ length: 6 }, () => pgClient({ ...login, database: 'piped' })));
    t.teardown(() => Promise.all(clients.map((c) => c.end())));
    const results = await Promise.all(
      clients.map(async (c, i) => {
        const before = await c.query('SELECT pg_sleep(0.02), $1::int AS i', [i]);
        const rows = await c.query(`SELECT * FROM pgml.transform_stream('${TASK}', '{"max_new_tokens": 24}', '${PROMPT}')`);
        const after = await c.query(`SELECT ${i} AS i`);
        return { before: before.rows[0].i as number, text: rows.rows.map((row) => (row.transform_stream as string[])[0]).join(''), after: after.rows[0].i as number };
      }),
    );
    results.forEach((r, i) => {
      t.equal(r.before, i, `client ${i}: its own read before`);
      t.equal(r.text, expected, `client ${i}: its stream`);
      t.equal(r.after, i, `client ${i}: its own read after`);
    });
  });

  await t.test('errors', async (t) => {
    const nope = `'{"task": "text-generation", "model": "nope"}'`;
    await t.rejects(c.query(`SELECT * FROM pgml.transform_stream(${nope}, '{}', 'x')`), { code: '42704' }, 'unknown model');
    await t.rejects(c.query('SELECT * FROM pgml.transform_stream($1, $2, $3)', [nope.slice(1, -1), '{}', 'x']), { code: '42704' }, 'unknown model, extended');
    await t.rejects(c.query(`SELECT pgml.transform_stream('${TASK}', '{}', 'x') FROM notes`), { code: '0A000' }, 'not the whole statement');
    await t.rejects(c.query(`SELECT * FROM pgml.transform_stream('${TASK}', '{}', (SELECT 'x'))`), { code: '0A000', message: /constants or parameters/ }, 'an expression argument');
    await t.rejects(c.query(`SELECT 1, pgml.transform_stream('${TASK}', '{}', 'x')`), { code: '0A000', message: /whole statement/ }, 'beside other columns');
    await t.rejects(c.query(`SELECT * FROM pgml.transform_stream('${TASK}', '{"top_p": 5}', 'x')`), { code: '22023' }, 'bad args');
    await t.rejects(c.query(`SELECT * FROM pgml.transform_stream('${TASK}', 'nope', 'x')`), { code: '22P02' }, 'args not JSON');
    const ok = await c.query('SELECT 1 AS one');
    t.equal(ok.rows[0].one, 1, 'the client carries on');
  });

  await t.test('cancel mid-stream: 57014 after the rows sent, the slot is free at once, others unaffected', async (t) => {
    const raw = await RawClient.connect(login);
    t.teardown(() => raw.destroy());
    const other = pgClient(login).then(async (o) => {
      try {
        return await o.query(`SELECT pgml.transform('${TASK}', '{"max_new_tokens": 24}', ARRAY['${PROMPT}']) AS g`);
      } finally {
        await o.end();
      }
    });
    raw.send(msg.query(`SELECT * FROM pgml.transform_stream('{"task": "text-generation", "model": "one"}', '{"max_new_tokens": 4000}', '${PROMPT}')`));
    const before = await raw.readMessages((m) => m.type === 'D', 30_000);
    await raw.readMessages('D');
    const s = net.connect(pooler.port, '127.0.0.1', () => s.end(cancelRequest(raw.processId, raw.secretKey)));
    const rest = await raw.readUntilReady(1, 30_000);
    const all = [...before, ...rest];
    t.match(all.map((m) => m.type).join(''), /^TD+EZ$/, 'rows, then the error, then ReadyForQuery');
    t.equal(errorFields(rest.find((m) => m.type === 'E')!.body).get('C'), '57014');
    const started = performance.now();
    const next = await c.query(`SELECT pgml.transform('{"task": "text-generation", "model": "one"}', '{"max_new_tokens": 4}', ARRAY['Hi']) AS g`);
    const ms = performance.now() - started;
    t.equal((next.rows[0].g as unknown[]).length, 1);
    t.ok(ms < 800, `the one-sequence slot took the next call at once (${ms.toFixed(0)} ms)`);
    t.same((await other).rows[0].g, [[{ generated_text: PROMPT + expected }]], 'another client generating meanwhile got its text');

    // The same over the extended protocol, with parameters.
    raw.send(
      msg.parse('SELECT * FROM pgml.transform_stream($1, $2, $3)'),
      msg.bind(['{"task": "text-generation", "model": "one"}', '{"max_new_tokens": 4000}', PROMPT]),
      msg.describePortal(),
      msg.execute(),
      msg.sync(),
    );
    const head = await raw.readMessages((m) => m.type === 'D', 30_000);
    const c2 = net.connect(pooler.port, '127.0.0.1', () => c2.end(cancelRequest(raw.processId, raw.secretKey)));
    const tail = await raw.readUntilReady(1, 30_000);
    t.match([...head, ...tail].map((m) => m.type).join(''), /^12TD+EZ$/, 'extended: rows, then the error, then ReadyForQuery');
    t.equal(errorFields(tail.find((m) => m.type === 'E')!.body).get('C'), '57014');
    t.equal(tail.at(-1)!.body.toString('latin1'), 'I');
  });

  await t.test('disconnect mid-stream frees the sequence', async (t) => {
    const raw = await RawClient.connect(login);
    raw.send(msg.query(`SELECT * FROM pgml.transform_stream('{"task": "text-generation", "model": "one"}', '{"max_new_tokens": 4000}', '${PROMPT}')`));
    await raw.readMessages((m) => m.type === 'D', 30_000);
    raw.destroy();
    const started = performance.now();
    const next = await c.query(`SELECT pgml.transform('{"task": "text-generation", "model": "one"}', '{"max_new_tokens": 4}', ARRAY['Hi']) AS g`);
    const ms = performance.now() - started;
    t.equal((next.rows[0].g as unknown[]).length, 1);
    t.ok(ms < 800, `the slot was freed (${ms.toFixed(0)} ms)`);
  });

  await t.test('the server never sees pgml.', async (t) => {
    const log = await pg.log();
    const statements = log.split('\n').filter((l) => /statement:|execute/.test(l) && !l.includes('DO $pglynx$'));
    t.notMatch(statements.join('\n'), /pgml\./, 'no statement mentions pgml.');
  });
});
