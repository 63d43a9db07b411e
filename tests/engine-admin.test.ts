// The engine inside a running pooler (a real child process in front of a
// real Postgres 15): the model loads at start-up, SHOW MODELS in the admin
// console and the pglynx_engine_* Prometheus metrics follow pgml.embed
// calls, RELOAD resizes a model or is rejected by a broken one while the old
// model keeps serving, and a broken model stops start-up with its name.
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx, type TomlValue } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';

type Row = Record<string, string | null>;
const APP = { username: 'app', password: 'apppw' };

const main = await startPostgres({ users: [{ name: 'app', password: 'apppw' }], databases: [{ name: 'app', owner: 'app' }], t });
const port = await freePort();
const metricsPort = await freePort();
const config = (models: Record<string, TomlValue>): string =>
  configToml({
    port,
    general: { enable_prometheus_exporter: true, prometheus_exporter_port: metricsPort },
    pools: { app: { users: [{ ...APP, pool_size: 2 }], shards: [primaryShard(main, 'app')] } },
    extra: { models },
  });
const lexical = (instances: number): Record<string, TomlValue> => ({ lexical: { builtin: 'hash-384', instances } });
const pooler = await startPglynx(config(lexical(2)), { t, logLevel: 'info', timeoutMs: 60_000 });

const admin = await pgClient({ host: pooler.host, port: pooler.port, user: 'admin', password: 'admin', database: 'pgcat' });
const app = await pgClient({ host: pooler.host, port: pooler.port, ...{ user: APP.username, password: APP.password }, database: 'app' });
t.teardown(async () => {
  await admin.end();
  await app.end();
});

const showModels = async (): Promise<Row[]> => (await admin.query<Row>('SHOW MODELS')).rows;
const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();

t.test('SHOW MODELS lists every instance with its counters', async (tt) => {
  const res = await admin.query('SHOW MODELS');
  tt.same(res.fields.map((f) => f.name).slice(0, 10), [
    'model', 'instance', 'loaded', 'queue_depth', 'calls', 'avg_batch_size', 'avg_latency_us', 'p99_latency_us', 'errors', 'cache_hit_rate',
  ]);
  const rows = res.rows as Row[];
  tt.same(rows.map((r) => [r['model'], r['instance'], r['loaded'], r['calls'], r['state']]), [
    ['lexical', '0', '1', '0', 'ready'],
    ['lexical', '1', '1', '0', 'ready'],
  ], 'two loaded instances, no calls yet');

  const { rows: out } = await app.query<{ embed: number[] }>("SELECT pgml.embed('lexical', 'hello pooled world') AS embed");
  tt.equal(out[0]!.embed.length, 384, 'pgml.embed through the pooler');
  await app.query("SELECT pgml.embed('lexical', 'hello pooled world')");
  const after = await showModels();
  tt.equal(after.reduce((n, r) => n + Number(r['calls']), 0), 1, 'one call reached an instance');
  tt.equal(after[0]!['cache_hit_rate'], '0.5000', 'the second was a cache hit');
  const served = after.find((r) => r['calls'] === '1')!;
  tt.equal(served['avg_batch_size'], '1.00');
  tt.ok(Number(served['avg_latency_us']) > 0 && Number(served['p99_latency_us']) >= Number(served['avg_latency_us']) - 1, 'latencies are measured');
  tt.equal(served['errors'], '0');
  tt.equal(served['dims'], '384');

  const r = await admin.query('SHOW HELP').catch((err: Error) => err);
  tt.notOk(r instanceof Error, 'SHOW HELP still works');
});

t.test('Prometheus: pglynx_engine_* per instance and per model', async (tt) => {
  const text = await metrics();
  tt.match(text, /# TYPE pglynx_engine_calls_total counter/);
  tt.match(text, /pglynx_engine_instance_loaded\{model="lexical",instance="0"\} 1/);
  tt.match(text, /pglynx_engine_instance_loaded\{model="lexical",instance="1"\} 1/);
  tt.match(text, /pglynx_engine_cache_hits_total\{model="lexical"\} 1/);
  tt.match(text, /pglynx_engine_cache_misses_total\{model="lexical"\} 1/);
  tt.match(text, /pglynx_engine_instances\{model="lexical"\} 2/);
  const calls = [...text.matchAll(/^pglynx_engine_calls_total\{model="lexical",instance="\d"\} (\d+)$/gm)].map((m) => Number(m[1]));
  tt.same(calls.sort(), [0, 1], 'calls_total per instance');
  for (const name of ['queue_depth', 'in_flight', 'batches_total', 'avg_batch_size', 'avg_latency_us', 'p99_latency_us', 'errors_total', 'restarts_total', 'cache_hit_rate', 'cache_entries', 'cache_bytes']) {
    tt.match(text, new RegExp(`^pglynx_engine_${name}\\{model="lexical"`, 'm'), `pglynx_engine_${name}`);
  }
});

t.test('RELOAD: a broken model is rejected and the old one serves; resizing works', async (tt) => {
  pooler.writeConfig(config({ ...lexical(2), broken: { path: '/nonexistent/model' } }));
  const err = await admin.query('RELOAD').catch((e: Error) => e);
  tt.ok(err instanceof Error, 'RELOAD fails');
  tt.match((err as Error).message, /model "broken" \(path \/nonexistent\/model\) could not be loaded: no ONNX model in \/nonexistent\/model/);
  tt.same((await showModels()).map((r) => r['model']), ['lexical', 'lexical'], 'the old models are unchanged');
  const { rows } = await app.query<{ embed: number[] }>("SELECT pgml.embed('lexical', 'still serving')");
  tt.equal(rows[0]!.embed.length, 384, 'and keep serving');

  pooler.writeConfig(config({ lexical: { builtin: 'hash-384', instances: 1 }, second: { builtin: 'hash-384' } }));
  await admin.query('RELOAD');
  tt.same((await showModels()).map((r) => [r['model'], r['instance']]), [['lexical', '0'], ['second', '0']], 'resized and added');
  const both = await app.query<{ a: number[]; b: number[] }>("SELECT pgml.embed('lexical', 'x') AS a, pgml.embed('second', 'x') AS b");
  tt.same(both.rows[0]!.a, both.rows[0]!.b, 'the same builtin gives the same vector under either name');
});

t.test('a broken model stops start-up with a message naming it', async (tt) => {
  const badPort = await freePort();
  const bad = configToml({
    port: badPort,
    pools: { app: { users: [{ ...APP, pool_size: 1 }], shards: [primaryShard(main, 'app')] } },
    extra: { models: { broken: { path: '/nonexistent/model' } } },
  });
  const err = await startPglynx(bad, { logLevel: 'info', timeoutMs: 60_000 }).then(
    async (p) => {
      await p.stop();
      return null;
    },
    (e: Error) => e,
  );
  tt.ok(err, 'the pooler did not start');
  tt.match(err?.message ?? '', /model \\?"broken\\?" \(path \/nonexistent\/model\) could not be loaded/);
});
