// Unit tests of pgml.transform_stream's statement shapes (call-context.ts)
// and of the pooler's answers to it (stream.ts) with a fake engine and a
// fake session host: the rows written as the engine hands out text, before
// it finishes; the extended group answered message by message; errors
// raised through the server once the pooler owns the statement; refusals
// thrown before anything is written; pgml.infer's rewrite in FROM.
import t from 'tap';
import { analyzePgml } from '../../pooler/pgml/analyze.js';
import { StreamAnswers, type StreamHost } from '../../pooler/pgml/stream.js';
import type { GenerationProvider } from '../../pooler/pgml/transform.js';
import { rewriteParseSql, rewriteSimple, type EmbeddingProvider } from '../../pooler/pgml/rewrite.js';
import { MessageCursor } from '../../pooler/protocol/cursor.js';
import { MessageFramer } from '../../pooler/protocol/framer.js';
import { msg } from '../harness/raw-client.js';

/** Type letters of the messages in `bytes` (server replies). */
function types(bytes: Buffer[]): string {
  const { buffer, messages } = new MessageFramer().push(Buffer.concat(bytes));
  let out = '';
  for (const m = new MessageCursor().frames(buffer, messages); m.next(); ) out += String.fromCharCode(m.type);
  return out;
}

function setup(opts: { tx?: number; refusal?: string | null } = {}) {
  const written: Buffer[] = [];
  let release: (() => void) | null = null;
  const engine: GenerationProvider = {
    names: () => ['gpt'],
    task: (m) => (m === 'gpt' ? 'text-generation' : null),
    generate: async (_model, _prompts, args, o) => {
      o?.onText?.('Once');
      o?.onText?.(' upon');
      // Held until the test says: rows must already be out by then.
      await new Promise<void>((r) => (release = r));
      if (o?.signal?.aborted) throw Object.assign(new Error('canceling statement due to user request'), { code: '57014' });
      if ((args as { fail?: boolean }).fail) throw Object.assign(new Error('boom'), { code: 'XX000' });
      return [{ text: 'Once upon' }];
    },
    infer: async () => [],
  };
  const host: StreamHost = {
    forward: () => {},
    refusal: () => opts.refusal ?? null,
    settled: async () => true,
    txStatus: () => opts.tx ?? 0x49,
    busy: () => {},
    write: (b) => void written.push(b),
  };
  const answers = new StreamAnswers(engine, host);
  const cursor = (bytes: Buffer) => {
    const { buffer, messages } = new MessageFramer().push(bytes);
    const c = new MessageCursor().frames(buffer, messages);
    c.next();
    return c;
  };
  return { answers, written, cursor, release: () => release?.() };
}

t.test('statement shapes', async (t) => {
  t.same(analyzePgml("SELECT * FROM pgml.transform_stream('text-generation')")!.stream, { column: 'transform_stream' });
  t.same(analyzePgml("SELECT pgml.transform_stream('t', input => 'x') AS piece")!.stream, { column: 'piece' });
  t.same(analyzePgml("SELECT * FROM pgml.transform_stream('t') AS s")!.stream, { column: 's' });
  t.same(analyzePgml("SELECT * FROM pgml.transform_stream('t') AS s(c)")!.stream, { column: 'c' });
  for (const sql of [
    "SELECT 1, pgml.transform_stream('t')",
    "SELECT pgml.transform_stream('t') FROM x",
    "SELECT * FROM pgml.transform_stream('t') LIMIT 3",
    "SELECT * FROM pgml.transform_stream('t'), y",
    "SELECT * FROM pgml.transform_stream('t') WITH ORDINALITY",
    "SELECT pgml.transform_stream('t'), pgml.embed('m', 'x')",
    "INSERT INTO x SELECT * FROM pgml.transform_stream('t')",
  ]) {
    t.throws(() => analyzePgml(sql), { code: '0A000' }, sql);
  }
  t.throws(() => analyzePgml("SELECT pgml.transform_stream('t', inputs => ARRAY['x'])"), { code: '42883' }, 'no argument named inputs');
  t.throws(() => analyzePgml("SELECT pgml.infer('m')"), { code: '42883' }, 'infer needs a prompt');
});

t.test('simple protocol: rows written as the engine hands out text, then SELECT n and ReadyForQuery', async (t) => {
  const s = setup({ tx: 0x54 });
  const q = s.cursor(msg.query("SELECT * FROM pgml.transform_stream('text-generation', '{}', 'x')"));
  t.ok(s.answers.claims(q));
  const done = s.answers.answer(q, new AbortController().signal);
  await new Promise((r) => setImmediate(r));
  t.equal(types(s.written), 'TDD', 'RowDescription and two rows before the generation ends');
  s.release();
  t.equal(await done, null, 'answered in full');
  t.equal(types(s.written), 'TDDCZ');
  t.equal(s.written.at(-1)![5], 0x54, "ReadyForQuery carries the host's status");
});

t.test('simple protocol: a failure after rows is raised through the server', async (t) => {
  const s = setup();
  const abort = new AbortController();
  const done = s.answers.answer(s.cursor(msg.query("SELECT * FROM pgml.transform_stream('text-generation', '{}', 'x')")), abort.signal);
  await new Promise((r) => setImmediate(r));
  abort.abort();
  s.release();
  const raise = await done;
  t.ok(raise && raise.includes(Buffer.from('57014')), 'a raise Query for 57014');
  t.equal(types(s.written), 'TDD', 'the rows sent stay sent; no CommandComplete');
});

t.test('refusals throw before anything is written', async (t) => {
  const s = setup({ refusal: 'not here' });
  await t.rejects(s.answers.answer(s.cursor(msg.query("SELECT * FROM pgml.transform_stream('text-generation')")), new AbortController().signal), { code: '0A000' });
  await t.rejects(s.answers.answer(s.cursor(msg.parse("SELECT * FROM pgml.transform_stream('text-generation')")), new AbortController().signal), { code: '0A000' });
  t.equal(s.written.length, 0);
});

t.test('extended protocol: a group answered message by message', async (t) => {
  const s = setup();
  const sig = new AbortController().signal;
  const parse = s.cursor(msg.parse('SELECT * FROM pgml.transform_stream($1, $2, $3)', 's1'));
  t.ok(s.answers.claims(parse));
  await s.answers.answer(parse, sig);
  await s.answers.answer(s.cursor(msg.describeStatement('s1')), sig);
  const bind = s.cursor(msg.bind(['text-generation', '{}', 'x'], 's1'));
  t.ok(s.answers.claims(bind), 'a Bind of the stream statement is the pooler\'s');
  await s.answers.answer(bind, sig);
  const exec = s.answers.answer(s.cursor(msg.execute()), sig);
  await new Promise((r) => setImmediate(r));
  s.release();
  await exec;
  t.equal(await s.answers.answer(s.cursor(msg.sync()), sig), null);
  t.equal(types(s.written), '1tT2DDCZ', 'ParseComplete, ParameterDescription, RowDescription, BindComplete, rows, CommandComplete, ReadyForQuery');
  t.notOk(s.answers.claims(s.cursor(msg.execute())), 'the portal is gone after the Sync');
  t.ok(s.answers.claims(s.cursor(msg.bind([], 's1'))), 'the named statement stays');
  s.answers.forget('s1');
  t.notOk(s.answers.claims(s.cursor(msg.bind([], 's1'))), 'a Parse of another statement under its name replaces it');
});

t.test('extended protocol: an error in the group skips to the Sync, which becomes the raise', async (t) => {
  const s = setup();
  const sig = new AbortController().signal;
  await s.answers.answer(s.cursor(msg.parse("SELECT * FROM pgml.transform_stream('{\"task\": \"text-generation\", \"model\": \"nope\"}')")), sig);
  await s.answers.answer(s.cursor(msg.bind([])), sig);
  const raise = await s.answers.answer(s.cursor(msg.sync()), sig);
  t.ok(raise && raise.includes(Buffer.from('42704')), 'the unknown model is raised at the Sync');
  t.equal(s.written.length, 0, 'nothing answered after the error');
  await s.answers.answer(s.cursor(msg.parse('SELECT * FROM pgml.transform_stream($1)')), sig);
  t.ok(s.answers.claims(s.cursor(msg.query('SELECT 1'))), 'a Query inside an open group');
  const q = await s.answers.answer(s.cursor(msg.query('SELECT 1')), sig);
  t.ok(q && q.includes(Buffer.from('0A000')), 'gets 0A000 and its ReadyForQuery');
  t.notOk(s.answers.claims(s.cursor(msg.query('SELECT 1'))), 'and ends the group');
});

t.test('pgml.infer in FROM: a subquery, aliased unless the call is', async (t) => {
  const engine: EmbeddingProvider = {
    has: () => true,
    embed: async () => [],
    names: () => ['gpt'],
    task: () => 'text-generation',
    generate: async () => [],
    infer: async () => [{ token: ' the', probability: 0.5 }],
  };
  const bare = "SELECT * FROM pgml.infer('gpt', 'x')";
  t.match(await rewriteSimple(bare, analyzePgml(bare)!, engine), /^SELECT \* FROM \(SELECT \* FROM jsonb_to_recordset\(.*\) AS infer\(token text, probability float8, rank int\)\) AS infer$/s);
  const aliased = "SELECT i.token FROM pgml.infer('gpt', 'x') AS i";
  t.match(await rewriteSimple(aliased, analyzePgml(aliased)!, engine), /\) AS i$/);
  t.notMatch(await rewriteSimple(aliased, analyzePgml(aliased)!, engine), /\) AS infer AS i/);
  const listed = "SELECT pgml.infer('gpt', 'x', 3)";
  t.match(await rewriteSimple(listed, analyzePgml(listed)!, engine), /^SELECT unnest\(ARRAY\(SELECT ROW\(token, probability, rank\) FROM .*\)\) AS infer$/s);
  const ext = 'SELECT * FROM pgml.infer($1, $2, $3)';
  t.match(rewriteParseSql(ext, analyzePgml(ext)!).sql, /jsonb_to_recordset\(\$4::jsonb\)/, 'one added jsonb parameter');
});
