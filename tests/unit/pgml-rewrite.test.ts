// Unit tests of the pgml.embed rewriting (pure functions, a fake engine):
// call discovery with the real parser, literal splicing, the extended
// protocol's added parameters, Bind re-encoding, and errors.
import t from 'tap';
import { analyzePgml, PgmlError } from '../../pooler/pgml/analyze.js';
import {
  appendParams,
  computeBindValues,
  parseBind,
  parseParamTypes,
  REAL_ARRAY_OID,
  rewriteParseSql,
  rewriteSimple,
  TEXT_ARRAY_OID,
  TEXT_OID,
  vectorLiteral,
  type EmbeddingProvider,
} from '../../pooler/pgml/rewrite.js';
import { DescribeReplies } from '../../pooler/pgml/describe-replies.js';
import { errorResponse } from '../../pooler/protocol/messages/error.js';
import { PgmlTransformer } from '../../pooler/pgml/transformer.js';
import { MessageFramer } from '../../pooler/protocol/framer.js';
import { serialize } from '../harness/pg-sasl.js';

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
    ['P', 'B', 'E', 'S', 'Q'],
    'the Parse replaced by Parse/Bind/Execute raising the error before its Sync (raise-batch.ts); the next Query kept',
  );
  t.match(failed.toString('latin1'), /ERRCODE = '42704'/);
});

t.test("PostgresML's named arguments", async (t) => {
  const named = analyzePgml("SELECT pgml.embed(transformer => 'minilm', text => $1, kwargs => '{}')")!;
  t.same(named.calls[0].model, { kind: 'const', value: 'minilm' });
  t.same(named.calls[0].input, { kind: 'param', index: 1 });
  t.equal(named.calls[0].inputIsArray, false);
  const mixed = analyzePgml("SELECT pgml.embed('minilm', kwargs => '{}', text => 'x')")!;
  t.same(mixed.calls[0].input, { kind: 'const', value: 'x' }, 'positional first, then named');
  const inputs = analyzePgml("SELECT pgml.embed(transformer => 'minilm', inputs => $1)")!;
  t.equal(inputs.calls[0].inputIsArray, true, 'inputs => names the text[] overload');
  t.same(parseParamTypes([], inputs), [TEXT_ARRAY_OID, TEXT_ARRAY_OID], 'the client parameter is text[], as in PostgresML');
  t.throws(() => analyzePgml("SELECT pgml.embed(model => 'minilm', text => 'x')"), { code: '42883' }, 'unknown name');
  t.throws(() => analyzePgml("SELECT pgml.embed('minilm', 'x', text => 'y')"), { code: '42601' }, 'given twice');
  t.throws(() => analyzePgml("SELECT pgml.embed(transformer => 'minilm')"), { code: '42883' }, 'no input');
  t.equal(await rewriteSimple("SELECT pgml.embed(text => 'ab', transformer => 'minilm')", analyzePgml("SELECT pgml.embed(text => 'ab', transformer => 'minilm')")!, engine), "SELECT '{2.00000000,97.0000000}'::real[] AS embed");
});

t.test('declared parameter types beyond the highest $n are kept; added ones follow', async (t) => {
  const sql = "SELECT pgml.embed('minilm', $1)";
  const a = analyzePgml(sql)!;
  t.same(parseParamTypes([0, 23], a), [TEXT_OID, 23, REAL_ARRAY_OID]);
  t.equal(rewriteParseSql(sql, a, 2).sql, 'SELECT $3::real[] AS embed');
});

// ------------------------------------------------------------ reply edits

const be = (type: string, body: Buffer): Buffer => {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
};
const paramDesc = (oids: number[]): Buffer => {
  const b = Buffer.alloc(2 + 4 * oids.length);
  b.writeInt16BE(oids.length, 0);
  oids.forEach((o, i) => b.writeInt32BE(o, 2 + 4 * i));
  return be('t', b);
};
const ready = be('Z', Buffer.from('I'));
const rowDesc = be('T', Buffer.from([0, 0]));

t.test('DescribeReplies: cuts the rewrite parameters, mid-message start, skipped Describes, raised errors', async (t) => {
  const edit = { keep: 1, added: [REAL_ARRAY_OID] };
  const dataRow = be('D', Buffer.alloc(40, 7));
  // The stream is 3 bytes into a DataRow's header when the Describe goes out, with one ReadyForQuery owed before it.
  const position = { header: dataRow.subarray(0, 3), remaining: 0 };
  const r = new DescribeReplies();
  r.describe(null, 0, () => null); // an earlier Describe in a group already closed: not counted
  r.sync(false, 0, () => null);
  r.describe(edit, 0, () => ({ owed: 1, position }));
  r.sync(false, 1, () => null);
  t.ok(r.active);
  const stream = Buffer.concat([dataRow.subarray(3), be('C', Buffer.from('SELECT 1\0')), ready, paramDesc([25, REAL_ARRAY_OID]), rowDesc, ready]);
  // Byte by byte: every split point of every message.
  const out = Buffer.concat([...stream].map((byte) => r.edit(Buffer.from([byte]))));
  const expected = Buffer.concat([dataRow.subarray(3), be('C', Buffer.from('SELECT 1\0')), ready, paramDesc([25]), rowDesc, ready]);
  t.same(out, expected, 'the continuation passes through, the rewrite parameter is cut');
  t.notOk(r.active, 'inactive once the replies caught up');
  t.same(r.edit(paramDesc([25, REAL_ARRAY_OID])), paramDesc([25, REAL_ARRAY_OID]), 'nothing recorded: untouched');

  // An error skips the rest of the batch: its Describes are dropped, the next batch's one is cut.
  const s = new DescribeReplies();
  const ctx = () => ({ owed: 0, position: { header: Buffer.alloc(0), remaining: 0 } });
  s.describe(null, 0, ctx); // counted: the open group's plain Describe
  s.describe(edit, 0, ctx);
  s.sync(false, 0, ctx);
  s.describe(edit, 1, ctx);
  s.sync(false, 1, ctx);
  const err = be('E', Buffer.from('SERROR\0C42601\0Msyntax\0\0'));
  const out2 = s.edit(Buffer.concat([err, ready, paramDesc([25, REAL_ARRAY_OID]), rowDesc, ready]));
  t.same(out2, Buffer.concat([err, ready, paramDesc([25]), rowDesc, ready]));

  // The pooler's raise: CONTEXT and the server's source location are dropped.
  const q = new DescribeReplies();
  q.sync(true, 0, ctx);
  const raised = be('E', Buffer.from('SERROR\0VERROR\0C42704\0Mno model\0WPL/pgSQL function inline_code_block line 1 at RAISE\0Fpl_exec.c\0L3911\0Rexec_stmt_raise\0\0'));
  const out3 = q.edit(Buffer.concat([raised, ready]));
  t.same(out3, Buffer.concat([errorResponse('42704', 'no model'), ready]));
  t.notOk(q.active);
});
