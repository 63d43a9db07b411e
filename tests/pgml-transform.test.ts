// pgml.transform (text generation) from SQL through PgLynx, in front of a
// real Postgres 15 with no extension: a GPT-2-shaped decoder (GPT-2's real
// tokenizer, 2 small layers, seeded weights) behind [models.gpt]. Named and
// positional calls, task as jsonb or text, simple and extended protocol with
// parameters, inside a transaction; PostgresML's result shape
// (`[[{"generated_text": prompt + continuation}]]`, column "transform"); the
// errors; pgml.embed unchanged beside it.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { synthModel } from '../bin/models.js';
import { pgClient, psql } from './harness/clients.js';
import { cancelRequest } from './harness/raw-client.js';
import { GPT2_TOKENIZER } from './harness/fixtures.js';
import { greedyText } from './harness/greedy.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres } from './harness/postgres.js';
import { freePort } from './harness/ports.js';

const dir = mkdtempSync(path.join(tmpdir(), 'pglynx-sqlgen-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
synthModel({ src: GPT2_TOKENIZER, out: dir, seed: 11, gpt2: { layers: 2, hidden: 96 } });

/** Greedy continuation computed here, one sequence at a time, over the same graph. */
const greedy = (prompt: string, n: number): Promise<string> => greedyText(dir, prompt, n);

t.test('pgml.transform through the pooler', async (t) => {
  const pg = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'pw' }], settings: { log_statement: 'all' }, t });
  await pg.query(`CREATE TABLE stories (id serial PRIMARY KEY, prompt text, story jsonb)`);
  await pg.query(`GRANT ALL ON stories TO app; GRANT ALL ON SEQUENCE stories_id_seq TO app`);
  const port = await freePort();
  const pooler = await startPglynx(
    configToml({
      port,
      pools: {
        app: {
          pool_mode: 'transaction',
          prepared_statements_cache_size: 100,
          users: [{ username: 'app', password: 'pw', pool_size: 3 }],
          shards: [primaryShard(pg)],
        },
        // Session mode: the client holds its server while the pooler generates (idle, nothing to cancel there).
        app_session: {
          pool_mode: 'session',
          users: [{ username: 'app', password: 'pw', pool_size: 2 }],
          shards: [primaryShard(pg)],
        },
      },
      extra: {
        models: {
          gpt: { path: dir, max_new_tokens: 32, max_batch_size: 8 },
          // One sequence at a time: a sequence that did not leave would hold up the next call.
          long: { path: dir, max_new_tokens: 1000, max_batch_size: 1 },
          lexical: { builtin: 'hash-384' },
        },
      },
    }),
    { t, logLevel: 'warn' },
  );
  const c = await pgClient({ port: pooler.port, user: 'app', password: 'pw', database: 'app' });
  t.teardown(() => c.end());
  const PROMPT = 'Once upon a time,';
  const expected = PROMPT + (await greedy(PROMPT, 8));

  await t.test('named arguments, task as jsonb: PostgresML result shape, column transform', async (t) => {
    const r = await c.query(
      `SELECT pgml.transform(task => '{"task": "text-generation", "model": "gpt"}'::jsonb, inputs => ARRAY['${PROMPT}'], args => '{"max_new_tokens": 8}'::jsonb)`,
    );
    t.same(r.fields.map((f) => f.name), ['transform']);
    t.same(r.rows[0].transform, [[{ generated_text: expected }]], 'greedy text equals the one-at-a-time loop');
  });

  await t.test('positional, task as text, several inputs, return_full_text false', async (t) => {
    const r = await c.query(`SELECT pgml.transform('text-generation', '{"max_new_tokens": 8, "return_full_text": false}', ARRAY['${PROMPT}', 'Hello']) AS out`);
    const out = r.rows[0].out as { generated_text: string }[][];
    t.equal(out.length, 2, 'one result per input');
    t.equal(out[0]![0]!.generated_text, expected.slice(PROMPT.length));
    t.equal(out[1]![0]!.generated_text, await greedy('Hello', 8));
    const empty = await c.query(`SELECT pgml.transform('{"task": "text-generation", "model": "gpt"}') AS out`);
    t.same(empty.rows[0].out, [], 'no inputs, empty result');
  });

  await t.test('extended protocol with parameters; seeded sampling equals the simple protocol', async (t) => {
    const args = '{"max_new_tokens": 12, "temperature": 0.8, "top_p": 0.9, "seed": 7}';
    const simple = await c.query(`SELECT pgml.transform(task => '{"task": "text-generation", "model": "gpt"}'::jsonb, inputs => ARRAY['The pooler'], args => '${args}'::jsonb) AS g`);
    const q = { name: 'gen', text: 'SELECT pgml.transform(task => $1::jsonb, inputs => $2::text[], args => $3::jsonb) AS g' };
    const ext = await c.query({ ...q, values: ['{"task": "text-generation", "model": "gpt"}', ['The pooler'], args] });
    t.same(ext.rows[0].g, simple.rows[0].g, 'same seed, same text over both protocols');
    const again = await c.query({ ...q, values: ['{"task": "text-generation", "model": "gpt"}', [PROMPT], '{"max_new_tokens": 8}'] });
    t.same(again.rows[0].g, [[{ generated_text: expected }]], 'the prepared statement is computed per execution');
    const typed = await c.query('SELECT pgml.transform($1, $2, $3) AS g', ['text-generation', '{"max_new_tokens": 8}', [PROMPT]]);
    t.same(typed.rows[0].g, [[{ generated_text: expected }]], 'untyped parameters get PostgresML types');
  });

  await t.test('inside a transaction, stored with the rest of the row', async (t) => {
    await c.query('BEGIN');
    await c.query(`INSERT INTO stories (prompt, story) VALUES ($1, pgml.transform('text-generation', '{"max_new_tokens": 8}', ARRAY[$1]))`, [PROMPT]);
    await c.query('COMMIT');
    const r = await c.query('SELECT story FROM stories WHERE prompt = $1', [PROMPT]);
    t.same(r.rows[0].story, [[{ generated_text: expected }]]);
    const text = await c.query(`SELECT pgml.transform('text-generation', '{"max_new_tokens": 8}', ARRAY['${PROMPT}'])->0->0->>'generated_text' AS s`);
    t.equal(text.rows[0].s, expected, 'operators apply to the result');
  });

  await t.test('errors', async (t) => {
    await t.rejects(c.query(`SELECT pgml.transform('{"task": "text-generation", "model": "nope"}'::jsonb, '{}', ARRAY['x'])`), { code: '42704' }, 'unknown model');
    await t.rejects(c.query(`SELECT pgml.transform($1::jsonb, '{}', ARRAY['x'])`, ['{"task": "text-generation", "model": "nope"}']), { code: '42704' }, 'unknown model, extended');
    await t.rejects(c.query(`SELECT pgml.transform('text-generation', '{}', ARRAY[prompt]) FROM stories`), { code: '0A000', message: /constants or parameters/ }, 'a column argument');
    await t.rejects(c.query(`SELECT pgml.transform('summarization', '{}', ARRAY['x'])`), { code: '0A000' }, 'another task');
    await t.rejects(c.query(`SELECT pgml.transform('{"task": "text-generation", "model": "lexical"}', '{}', ARRAY['x'])`), { code: '42809' }, 'an embedding model');
    await t.rejects(c.query(`SELECT pgml.transform('text-generation', '{"top_p": 5}', ARRAY['x'])`), { code: '22023' }, 'bad args');
    await t.rejects(c.query(`SELECT pgml.transform('text-generation', 'not json', ARRAY['x'])`), { code: '22P02' }, 'args not JSON');
    const ok = await c.query('SELECT 1 AS one');
    t.equal(ok.rows[0].one, 1, 'the client carries on');
  });

  await t.test('psql and pgml.embed beside it', async (t) => {
    const s = await psql({
      host: '127.0.0.1',
      port: pooler.port,
      user: 'app',
      db: 'app',
      password: 'pw',
      sql: `SELECT pgml.transform('text-generation', '{"max_new_tokens": 8}', ARRAY['${PROMPT}'])->0->0->>'generated_text'`,
    });
    t.equal(s.stdout.replace(/\n$/, ''), expected, `psql: ${s.stderr}`);
    const e = await c.query(`SELECT pgml.embed('lexical', 'hello world')`);
    t.equal((e.rows[0].embed as number[]).length, 384);
  });

  await t.test('cancel and disconnect stop a generation and free its place; the cancel reaches nothing else', async (t) => {
    const LONG = `SELECT pgml.transform('{"task": "text-generation", "model": "long"}', '{"max_new_tokens": 1000}', ARRAY['x'])`;
    const SHORT = `SELECT pgml.transform('{"task": "text-generation", "model": "long"}', '{"max_new_tokens": 4}', ARRAY['y']) AS g`;
    const quick = async (what: string): Promise<void> => {
      const started = Date.now();
      const r = await c.query(SHORT);
      t.equal((r.rows[0].g as unknown[]).length, 1);
      t.ok(Date.now() - started < 2500, `${what}: the next call ran at once (${Date.now() - started} ms)`);
    };
    for (const database of ['app', 'app_session']) {
      const victim = await pgClient({ port: pooler.port, user: 'app', password: 'pw', database });
      t.teardown(() => victim.end().catch(() => {}));
      if (database === 'app_session') await victim.query('SELECT 1'); // its server is attached from now on
      const started = Date.now();
      // The expectation is attached before the cancel goes: the 57014 may come back before the cancel connection closes.
      const cancelled = t.rejects(victim.query(LONG), { code: '57014', message: /canceling statement due to user request/ }, `${database}: the generation was cancelled`);
      await new Promise((r) => setTimeout(r, 200));
      const { processID, secretKey } = victim as unknown as { processID: number; secretKey: number };
      await new Promise<void>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: pooler.port }, () => s.end(cancelRequest(processID, secretKey)));
        s.on('error', () => resolve());
        s.on('close', () => resolve());
      });
      await cancelled;
      t.ok(Date.now() - started < 4000, `${database}: cancelled mid-generation (${Date.now() - started} ms)`);
      await quick(`${database}: after cancel`);
      // Statements long enough for a stray server cancel to land on them: none comes.
      for (let i = 0; i < 2; i++) {
        const after = await victim.query('SELECT pg_sleep(0.2), 2 AS two');
        t.equal(after.rows[0].two, 2, `${database}: the cancelled client carries on, no stray 57014 (${i + 1})`);
      }
      await victim.end();
    }

    const leaver = await pgClient({ port: pooler.port, user: 'app', password: 'pw', database: 'app' });
    leaver.on('error', () => {});
    const gone = leaver.query(LONG).catch(() => null);
    await new Promise((r) => setTimeout(r, 200));
    (leaver as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
    await gone;
    await new Promise((r) => setTimeout(r, 50));
    await quick('after a disconnect');
  });

  await t.test('SHOW MODELS lists the generation slots with their counters', async (t) => {
    const admin = await pgClient({ port: pooler.port, user: 'admin', password: 'admin', database: 'pgcat' });
    t.teardown(() => admin.end());
    const rows = (await admin.query<Record<string, string | null>>('SHOW MODELS')).rows;
    const gpt = rows.find((r) => r['model'] === 'gpt')!;
    t.match(gpt, { instance: '0', loaded: '1', state: 'ready' });
    t.ok(Number(gpt['calls']) >= 10, `generations counted (${gpt['calls']})`);
    t.ok(Number(gpt['avg_batch_size']) >= 1, `sequences per forward pass (${gpt['avg_batch_size']})`);
    t.equal(gpt['queue_depth'], '0');
  });

  await t.test('the server never sees pgml.', async (t) => {
    const log = await pg.log();
    const statements = log.split('\n').filter((l) => /statement:|execute/.test(l) && !l.includes('DO $pglynx$'));
    t.ok(statements.length > 5, 'statements were logged');
    t.notMatch(statements.join('\n'), /pgml\./, 'no statement mentions pgml.');
  });
});
