// pgml.infer(model, prompt, top) and pgml.similar_to(model, a, b) through
// PgLynx, in front of a real Postgres with no extension. infer: one row per
// candidate next token (token, probability, rank), equal to a softmax of the
// model's last-position logits computed here with onnxruntime-node on the
// same input; usable in any query shape (WHERE, ORDER BY, aggregates, INSERT
// ... SELECT, the select list), in both protocols and in a transaction.
// similar_to: the cosine of the two texts' pgml.embed vectors.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { Tokenizer } from '@huggingface/tokenizers';
import { synthModel } from '../bin/models.js';
import { Decoder, emptyCache } from '../engine/decoder.js';
import { pgClient } from './harness/clients.js';
import { GPT2_TOKENIZER } from './harness/fixtures.js';
import { primaryShard } from './harness/pool-config.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres } from './harness/postgres.js';
import { freePort } from './harness/ports.js';

const dir = mkdtempSync(path.join(tmpdir(), 'pglynx-infer-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
synthModel({ src: GPT2_TOKENIZER, out: dir, seed: 5, gpt2: { layers: 2, hidden: 96 } });

interface Candidate {
  token: string;
  probability: number;
  rank: number;
}

/** The top-k of a softmax over the model's last-position logits for `prompt`, computed here (float64). */
async function expectedTop(prompt: string, k: number): Promise<Candidate[]> {
  const decoder = await Decoder.load(path.join(dir, 'onnx', 'model.onnx'), dir);
  const tokenizer = new Tokenizer(JSON.parse(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>, {});
  const logits = (await decoder.forward([{ cache: emptyCache(decoder.shape), tokens: tokenizer.encode(prompt).ids }]))[0]!;
  await decoder.release();
  const max = Math.max(...logits);
  const exp = Array.from(logits, (l) => Math.exp(l - max));
  const sum = exp.reduce((a, b) => a + b, 0);
  return exp
    .map((e, id) => ({ id, p: e / sum }))
    .sort((a, b) => b.p - a.p)
    .slice(0, k)
    .map(({ id, p }, i) => ({ token: tokenizer.decode([id], { skip_special_tokens: false }), probability: p, rank: i + 1 }));
}

const PROMPT = 'Once upon a time,';

t.test('pgml.infer and pgml.similar_to through the pooler', async (t) => {
  const pg = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'pw' }], settings: { log_statement: 'all' }, t });
  await pg.query(`CREATE TABLE guesses (token text, p float8)`);
  await pg.query(`GRANT ALL ON guesses TO app`);
  const port = await freePort();
  const pooler = await startPglynx(
    configToml({
      port,
      pools: { app: { pool_mode: 'transaction', prepared_statements_cache_size: 100, users: [{ username: 'app', password: 'pw', pool_size: 3 }], shards: [primaryShard(pg)] } },
      extra: { models: { gpt: { path: dir, max_new_tokens: 32, max_batch_size: 8 }, lexical: { builtin: 'hash-384' } } },
    }),
    { t, logLevel: 'warn', timeoutMs: 120_000 },
  );
  const c = await pgClient({ host: '127.0.0.1', port: pooler.port, user: 'app', password: 'pw', database: 'app' });
  t.teardown(() => c.end());
  const top5 = await expectedTop(PROMPT, 5);

  const check = (t: Tap.Test, rows: Candidate[], want: Candidate[]): void => {
    t.equal(rows.length, want.length, `${want.length} candidates`);
    t.same(rows.map((r) => r.rank), want.map((w) => w.rank), 'ranks 1..k');
    t.same(rows.map((r) => r.token), want.map((w) => w.token), 'the same tokens, most probable first');
    const off = Math.max(...rows.map((r, i) => Math.abs(r.probability - want[i]!.probability)));
    t.ok(off < 1e-4, `probabilities equal the softmax computed here (max difference ${off.toExponential(2)})`);
    // A seeded model spreads its mass thin (~1e-5 a token): relative error too, so the comparison can fail.
    const rel = Math.max(...rows.map((r, i) => Math.abs(r.probability - want[i]!.probability) / want[i]!.probability));
    t.ok(rel < 1e-4, `within 1e-4 relative too (${rel.toExponential(2)})`);
    const sum = rows.reduce((a, r) => a + r.probability, 0);
    t.ok(sum <= 1 + 1e-12 && sum > 0, `they sum to at most 1 (${sum})`);
  };

  await t.test('infer in FROM: columns token, probability, rank; softmax of the logits', async (t) => {
    const r = await c.query<Candidate>(`SELECT * FROM pgml.infer('gpt', '${PROMPT}', 5)`);
    t.same(r.fields.map((f) => f.name), ['token', 'probability', 'rank']);
    t.same(r.fields.map((f) => f.dataTypeID), [25, 701, 23], 'text, float8, int');
    check(t, r.rows, top5);
    const all = await c.query<Candidate>(`SELECT * FROM pgml.infer(model => 'gpt', prompt => '${PROMPT}')`);
    check(t, all.rows, await expectedTop(PROMPT, 10));
  });

  await t.test('infer in other query shapes', async (t) => {
    const where = await c.query(`SELECT i.token FROM pgml.infer('gpt', '${PROMPT}', 5) AS i WHERE i.rank <= 2 ORDER BY i.probability`);
    t.same(where.rows.map((r) => r.token), [top5[1]!.token, top5[0]!.token], 'WHERE and ORDER BY over an aliased call');
    const agg = await c.query(`SELECT count(*)::int AS n, sum(probability) AS s FROM pgml.infer('gpt', '${PROMPT}', 5)`);
    t.equal(agg.rows[0].n, 5);
    t.ok(Math.abs(agg.rows[0].s - top5.reduce((a, w) => a + w.probability, 0)) < 1e-4, 'aggregates');
    const renamed = await c.query(`SELECT x.t FROM pgml.infer('gpt', '${PROMPT}', 2) AS x(t, p, r)`);
    t.same(renamed.rows.map((r) => r.t), top5.slice(0, 2).map((w) => w.token), 'column aliases');
    const listed = await c.query(`SELECT pgml.infer('gpt', '${PROMPT}', 3)`);
    t.same(listed.fields.map((f) => f.name), ['infer']);
    t.equal(listed.rows.length, 3, 'in the select list: one record per candidate');
    t.match(listed.rows[0].infer, /^\(.*,1\)$/, 'a (token,probability,rank) record');
    await c.query('BEGIN');
    await c.query(`INSERT INTO guesses SELECT token, probability FROM pgml.infer('gpt', '${PROMPT}', 4)`);
    await c.query('COMMIT');
    t.equal((await pg.query<{ n: number }>('SELECT count(*)::int AS n FROM guesses'))[0]!.n, 4, 'INSERT ... SELECT inside a transaction');
  });

  await t.test('infer, extended protocol with parameters', async (t) => {
    const r = await c.query<Candidate>('SELECT * FROM pgml.infer($1, $2, $3)', ['gpt', PROMPT, 5]);
    check(t, r.rows, top5);
    // A Buffer is sent in binary format (as asyncpg and pgx send a known int4).
    const int4 = Buffer.alloc(4);
    int4.writeInt32BE(5);
    const bin = await c.query<Candidate>('SELECT * FROM pgml.infer($1, $2, $3)', ['gpt', Buffer.from(PROMPT), int4]);
    check(t, bin.rows, top5);
    const q = { name: 'inf', text: 'SELECT token, probability, rank FROM pgml.infer($1, $2) WHERE rank <= $3' };
    const a = await c.query<Candidate>({ ...q, values: ['gpt', PROMPT, 3] });
    check(t, a.rows, top5.slice(0, 3));
    const b = await c.query<Candidate>({ ...q, values: ['gpt', 'Hello', 2] });
    check(t, b.rows, await expectedTop('Hello', 2));
  });

  await t.test('similar_to: the cosine of pgml.embed vectors', async (t) => {
    const pairs: [string, string][] = [
      ['the cat sat on the mat', 'a cat sat on a mat'],
      ['the cat sat on the mat', 'stock markets fell sharply'],
    ];
    for (const [a, b] of pairs) {
      const e = await c.query('SELECT pgml.embed($1, $2) AS a, pgml.embed($1, $3) AS b', ['lexical', a, b]);
      const va = e.rows[0].a as number[];
      const vb = e.rows[0].b as number[];
      const dot = va.reduce((s, x, i) => s + x * vb[i]!, 0);
      const want = dot / (Math.hypot(...va) * Math.hypot(...vb));
      const r = await c.query(`SELECT pgml.similar_to('lexical', '${a}', '${b}')`);
      t.same(r.fields.map((f) => [f.name, f.dataTypeID]), [['similar_to', 701]], 'float8 column similar_to');
      t.ok(Math.abs(r.rows[0].similar_to - want) < 1e-6, `simple: ${r.rows[0].similar_to} vs ${want}`);
      const x = await c.query('SELECT pgml.similar_to($1, $2, $3) AS s', ['lexical', a, b]);
      t.ok(Math.abs(x.rows[0].s - want) < 1e-6, 'extended');
    }
    const same = await c.query(`SELECT v FROM (VALUES ('x'), ('y')) t(v) WHERE pgml.similar_to('lexical', 'hello there', 'hello there') > 0.999`);
    t.equal(same.rows.length, 2, 'inside WHERE');
    const nul = await c.query(`SELECT pgml.similar_to('lexical', NULL, 'b') AS s`);
    t.equal(nul.rows[0].s, null, 'strict: NULL in, NULL out');
  });

  await t.test('errors', async (t) => {
    await t.rejects(c.query(`SELECT * FROM pgml.infer('nope', 'x')`), { code: '42704' }, 'infer: unknown model');
    await t.rejects(c.query('SELECT * FROM pgml.infer($1, $2)', ['nope', 'x']), { code: '42704' }, 'infer: unknown model, extended');
    await t.rejects(c.query(`SELECT * FROM pgml.infer('lexical', 'x')`), { code: '42809' }, 'infer: an embedding model');
    await t.rejects(c.query(`SELECT * FROM pgml.infer('gpt', 'x', 0)`), { code: '22023' }, 'infer: top 0');
    await t.rejects(c.query(`SELECT * FROM guesses, pgml.infer('gpt', token)`), { code: '0A000', message: /constants or parameters/ }, 'infer: a column argument');
    await t.rejects(c.query(`SELECT pgml.similar_to('nope', 'a', 'b')`), { code: '42704' }, 'similar_to: unknown model');
    await t.rejects(c.query('SELECT pgml.similar_to($1, $2, $3)', ['nope', 'a', 'b']), { code: '42704' }, 'similar_to: unknown model, extended');
    await t.rejects(c.query(`SELECT pgml.similar_to('gpt', 'a', 'b')`), { code: '42809' }, 'similar_to: a generation model');
    await t.rejects(c.query(`SELECT pgml.similar_to('lexical', token, 'b') FROM guesses`), { code: '0A000' }, 'similar_to: a column argument');
    await t.rejects(c.query(`SELECT pgml.similar_to('lexical', 'a')`), { code: '42883' }, 'similar_to: missing argument');
    const ok = await c.query('SELECT 1 AS one');
    t.equal(ok.rows[0].one, 1, 'the client carries on');
  });

  await t.test('the server never sees pgml.', async (t) => {
    const log = await pg.log();
    const statements = log.split('\n').filter((l) => /statement:|execute/.test(l) && !l.includes('DO $pglynx$'));
    t.notMatch(statements.join('\n'), /pgml\./, 'no statement mentions pgml.');
  });
});
