// Unit tests of the pgml.embed rewriting (pure functions, a fake engine):
// call discovery with the real parser, literal splicing, the extended
// protocol's added parameters, Bind re-encoding, and errors.
import t from 'tap';
import { analyzePgml, PgmlError } from '../pooler/pgml/analyze.js';
import { appendParams, computeBindValues, parseBind, rewriteParseSql, rewriteSimple, vectorLiteral, type EmbeddingProvider } from '../pooler/pgml/rewrite.js';
import { PgmlTransformer } from '../pooler/pgml/transformer.js';
import { MessageFramer } from '../pooler/protocol/framer.js';
import { serialize } from '../pooler/auth/pg-sasl.js';

// A deterministic fake: the vector is [length of text, code of first char].
const engine: EmbeddingProvider = {
  has: (m) => m === 'minilm',
  embed: async (_m, inputs) => inputs.map((s) => Float32Array.from([s.length, s.charCodeAt(0) || 0])),
};

t.test('finds calls with byte offsets, multi-byte text before them', async (t) => {
  const sql = "SELECT 'é', pgml.embed('minilm', 'hello')";
  const a = analyzePgml(sql)!;
  t.equal(a.calls.length, 1);
  t.equal(await rewriteSimple(sql, a, engine), "SELECT 'é', '{5.00000000,104.000000}'::real[] AS embed");
  t.equal(analyzePgml('SELECT 1'), null, 'no pgml: no parse');
});

t.test('simple protocol shapes', async (t) => {
  const cases: [string, string][] = [
    ["SELECT pgml.embed('minilm', 'ab') AS e", "SELECT '{2.00000000,97.0000000}'::real[] AS e"],
    ["INSERT INTO d (b, e) VALUES ('x', pgml.embed('minilm', 'x'))", "INSERT INTO d (b, e) VALUES ('x', '{1.00000000,120.000000}'::real[])"],
    ["SELECT id FROM d ORDER BY e <-> pgml.embed('minilm', 'q')::vector LIMIT 5", "SELECT id FROM d ORDER BY e <-> '{1.00000000,113.000000}'::real[]::vector LIMIT 5"],
    ["SELECT pgml.embed('minilm', NULL)", 'SELECT NULL::real[] AS embed'],
    ["SELECT pgml.embed('minilm', ARRAY['a', NULL])", "SELECT unnest(ARRAY['{1.00000000,97.0000000}',NULL]::text[])::real[] AS embed"],
    ["SELECT pgml.embed('minilm', 'a'), pgml.embed('minilm', 'bb')", "SELECT '{1.00000000,97.0000000}'::real[] AS embed, '{2.00000000,98.0000000}'::real[] AS embed"],
  ];
  for (const [input, expected] of cases) t.equal(await rewriteSimple(input, analyzePgml(input)!, engine), expected, input);
});

t.test('errors', async (t) => {
  t.throws(() => analyzePgml("SELECT pgml.embed('minilm', body) FROM docs"), { code: '0A000' });
  t.ok(PgmlError, 'errors carry a SQLSTATE');
  const unknown = "SELECT pgml.embed('nope', 'x')";
  await t.rejects(rewriteSimple(unknown, analyzePgml(unknown)!, engine), { code: '42704' });
});

t.test('extended protocol: parameter added at Parse, computed at Bind', async (t) => {
  const sql = "INSERT INTO d (b, e) VALUES ($1, pgml.embed('minilm', $1))";
  const { sql: rewritten, plan } = rewriteParseSql(sql, analyzePgml(sql)!);
  t.equal(rewritten, 'INSERT INTO d (b, e) VALUES ($1, $2::real[])');
  t.equal(plan.firstParam, 2);
  t.same(await computeBindValues(plan, ['hey'], engine), [vectorLiteral(Float32Array.from([3, 104]))]);
  const bind = serialize.bind({ statement: 's', values: ['hey'] });
  const parts = parseBind(bind);
  t.equal(parts.statement, 's');
  const out = parseBind(appendParams(parts, ['{1,2}', null]));
  t.same(out.values.map((v) => v?.toString() ?? null), ['hey', '{1,2}', null], 'values appended');
});

t.test('transformer: Parse rewritten, Bind computed, failure raised in order', async (t) => {
  const pgml = new PgmlTransformer(engine);
  const batch = Buffer.concat([
    serialize.parse({ name: 'q', text: "SELECT pgml.embed('minilm', $1)" }),
    serialize.bind({ statement: 'q', values: ['abc'] }),
    serialize.execute(),
    serialize.sync(),
  ]);
  const framed = new MessageFramer().push(batch);
  t.ok(pgml.involved(framed.buffer, framed.messages));
  const out = await pgml.transform(framed.buffer, framed.messages);
  t.match(out.toString('latin1'), /SELECT \$2::real\[\] AS embed/, 'the call becomes $2; $1 keeps a declared type');
  t.match(out.toString('latin1'), /\{3\.00000000,97\.0000000\}/);
  const bad = new MessageFramer().push(Buffer.concat([serialize.bind({ statement: 'q', values: [null] }), serialize.execute(), serialize.sync()]));
  const nullOut = await pgml.transform(bad.buffer, bad.messages);
  t.equal(parseBind(new MessageFramer().push(nullOut).buffer).values[1], null, 'NULL input gives NULL');
  const failing = new MessageFramer().push(
    Buffer.concat([serialize.parse({ name: 'x', text: "SELECT pgml.embed('nope', $1)" }), serialize.sync(), serialize.query('SELECT 1')]),
  );
  const failed = await pgml.transform(failing.buffer, failing.messages);
  const msgs = new MessageFramer().push(failed);
  t.same(
    msgs.messages.filter((_, i) => i % 3 === 0).map((c) => String.fromCharCode(c)),
    ['Q', 'Q'],
    'Parse+Sync replaced by one raising Query; the next Query kept',
  );
  t.match(failed.toString('latin1'), /ERRCODE = '42704'/);
});
