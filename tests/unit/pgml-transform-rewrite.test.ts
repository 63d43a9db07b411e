// Unit tests of the pgml.transform rewriting (pure functions, a fake
// engine): call discovery beside pgml.embed, the jsonb literal (dollar
// quoted, so backslashes and quotes survive whatever
// standard_conforming_strings says), the extended protocol's added jsonb
// parameter and the types given to parameters only the call used.
import t from 'tap';
import { analyzePgml } from '../../pooler/pgml/analyze.js';
import { computeBindValues, JSONB_OID, parseParamTypes, rewriteParseSql, rewriteSimple, TEXT_ARRAY_OID, TEXT_OID, type EmbeddingProvider } from '../../pooler/pgml/rewrite.js';

const calls: { model: string; prompts: string[]; args: unknown }[] = [];
const engine: EmbeddingProvider = {
  has: (m) => m === 'gpt' || m === 'minilm',
  embed: async (_m, inputs) => inputs.map((s) => Float32Array.from([s.length])),
  names: () => ['minilm', 'gpt'],
  task: (m) => (m === 'gpt' ? 'text-generation' : m === 'minilm' ? 'embedding' : null),
  generate: async (model, prompts, args) => {
    calls.push({ model, prompts, args });
    return prompts.map((p) => ({ text: ` after ${p} it's "quoted"\\n $pglynx_json$` }));
  },
};

t.test('simple protocol: a dollar-quoted jsonb literal named transform', async (t) => {
  const sql = `SELECT pgml.transform(task => '{"task": "text-generation", "model": "gpt"}'::jsonb, inputs => ARRAY['a'], args => '{"max_new_tokens": 3}'::jsonb)`;
  const out = await rewriteSimple(sql, analyzePgml(sql)!, engine);
  const m = /^SELECT (\$pglynx_json\d*\$)(.*)\1::jsonb AS transform$/s.exec(out);
  t.ok(m, out);
  t.same(JSON.parse(m![2]!), [[{ generated_text: `a after a it's "quoted"\\n $pglynx_json$` }]]);
  t.same(calls.at(-1), { model: 'gpt', prompts: ['a'], args: { max_new_tokens: 3 } });
  const positional = "SELECT pgml.transform('text-generation', '{}', ARRAY['x', NULL])->0 AS first";
  const out2 = await rewriteSimple(positional, analyzePgml(positional)!, engine);
  t.match(out2, /::jsonb->0 AS first$/, 'not bare: no alias, operators still apply');
  t.same(calls.at(-1)!.model, 'gpt', 'a bare task uses the first text-generation model');
  t.match(out2, /\[\[\{"generated_text":"x after x/);
  t.match(out2, /,null\]/, 'a NULL input gives null');
});

t.test('pgml.embed and pgml.transform in one statement', async (t) => {
  const sql = "SELECT pgml.embed('minilm', 'abc') AS e, pgml.transform('text-generation', '{}', ARRAY['q']) AS g";
  const a = analyzePgml(sql)!;
  t.same(a.calls.map((c) => c.fn), ['embed', 'transform']);
  t.match(await rewriteSimple(sql, a, engine), /^SELECT '\{3\.00000000\}'::real\[\] AS e, \$pglynx_json\d*\$.*::jsonb AS g$/s);
});

t.test('extended protocol: an added jsonb parameter computed per Bind', async (t) => {
  const sql = 'SELECT pgml.transform($1, $2, $3)';
  const a = analyzePgml(sql)!;
  const { sql: rewritten, plan } = rewriteParseSql(sql, a);
  t.equal(rewritten, 'SELECT $4::jsonb AS transform');
  t.same(parseParamTypes([], a), [TEXT_OID, JSONB_OID, TEXT_ARRAY_OID, JSONB_OID], 'task text, args jsonb, inputs text[], then the result');
  const [value] = await computeBindValues(plan, ['{"task": "text-generation", "model": "gpt"}', '{"seed": 1}', '{"one","two, three"}'], engine);
  t.same(JSON.parse(value!).map((r: { generated_text: string }[]) => r[0]!.generated_text.split(' after')[0]), ['one', 'two, three']);
});

t.test('errors', async (t) => {
  t.throws(() => analyzePgml("SELECT pgml.transform('text-generation', '{}', ARRAY[body]) FROM t"), { code: '0A000' });
  t.throws(() => analyzePgml("SELECT pgml.transform(task => 'text-generation', bogus => 1)"), { code: '42883' });
  const unknown = `SELECT pgml.transform('{"task": "text-generation", "model": "nope"}', '{}', ARRAY['x'])`;
  await t.rejects(rewriteSimple(unknown, analyzePgml(unknown)!, engine), { code: '42704' });
  const embedding = `SELECT pgml.transform('{"model": "minilm"}', '{}', ARRAY['x'])`;
  await t.rejects(rewriteSimple(embedding, analyzePgml(embedding)!, engine), { code: '42809' });
  const other = "SELECT pgml.transform('translation', '{}', ARRAY['x'])";
  await t.rejects(rewriteSimple(other, analyzePgml(other)!, engine), { code: '0A000' });
  const badJson = "SELECT pgml.transform('text-generation', '{oops', ARRAY['x'])";
  await t.rejects(rewriteSimple(badJson, analyzePgml(badJson)!, engine), { code: '22P02' });
  const noGen: EmbeddingProvider = { has: () => true, embed: engine.embed };
  const q = "SELECT pgml.transform('text-generation', '{}', ARRAY['x'])";
  await t.rejects(rewriteSimple(q, analyzePgml(q)!, noGen), { code: '0A000' }, 'an engine without generation');
});
