// Observability of text generation (issue 13 point 8), through a running
// pooler in front of a real Postgres 15: after pgml.transform calls from
// concurrent clients, SHOW MODELS in the admin console shows a generation
// slot's tokens, tokens/s, sequences per decode step, time to first token and
// inter-token latency (p50 <= p99 <= the longest call seen by a client), its
// running and queued sequences while they run, NULL generation columns on an
// embedding model's rows, and the Prometheus exporter the same figures as
// pglynx_engine_* metrics.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { synthModel } from '../bin/models.js';
import { pgClient } from './harness/clients.js';
import { GPT2_TOKENIZER } from './harness/fixtures.js';
import { primaryShard } from './harness/pool-config.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';

type Row = Record<string, string | null>;
const GEN_COLUMNS = ['tokens', 'tokens_per_s', 'decode_batch_size', 'ttft_p50_us', 'ttft_p99_us', 'itl_p50_us', 'itl_p99_us'];

const dir = mkdtempSync(path.join(tmpdir(), 'pglynx-genstats-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
synthModel({ src: GPT2_TOKENIZER, out: dir, seed: 11, gpt2: { layers: 2, hidden: 96 } });

const pg = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'pw' }], t });
const metricsPort = await freePort();
const pooler = await startPglynx(
  configToml({
    port: await freePort(),
    general: { enable_prometheus_exporter: true, prometheus_exporter_port: metricsPort },
    pools: { app: { pool_mode: 'transaction', users: [{ username: 'app', password: 'pw', pool_size: 3 }], shards: [primaryShard(pg)] } },
    extra: {
      models: {
        gpt: { path: dir, max_new_tokens: 32, max_batch_size: 8 },
        // One sequence at a time, long ones: a second call must wait in the queue.
        solo: { path: dir, max_new_tokens: 1000, max_batch_size: 1 },
        lexical: { builtin: 'hash-384' },
      },
    },
  }),
  // Three models load at start-up; a busy machine (tests run side by side) needs more than the default 20 s.
  { t, logLevel: 'warn', timeoutMs: 60_000 },
);
const admin = await pgClient({ port: pooler.port, user: 'admin', password: 'admin', database: 'pgcat' });
const clients = await Promise.all(Array.from({ length: 8 }, () => pgClient({ port: pooler.port, user: 'app', password: 'pw', database: 'app' })));
t.teardown(async () => {
  await admin.end();
  await Promise.all(clients.map((c) => c.end()));
});

const showModels = async (model: string): Promise<Row[]> => (await admin.query<Row>('SHOW MODELS')).rows.filter((r) => r['model'] === model);
const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
/** The value of pglynx_engine_<name> for these labels, or undefined when there is no such sample. */
const metric = (text: string, name: string, labels: string): number | undefined => {
  const m = new RegExp(`^pglynx_engine_${name}\\{${labels}\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
};
const transform = (max: number, prompt: string): string =>
  `SELECT pgml.transform('{"task": "text-generation", "model": "gpt"}'::jsonb, '{"max_new_tokens": ${max}}'::jsonb, ARRAY['${prompt}'])`;

t.test('before any generation: zero figures; embedding rows have NULL generation columns', async (t) => {
  const res = await admin.query('SHOW MODELS');
  t.same(res.fields.map((f) => f.name).slice(-GEN_COLUMNS.length), GEN_COLUMNS, 'the generation columns come last');
  const [gpt] = await showModels('gpt');
  t.match(gpt, { tokens: '0', tokens_per_s: '0.0', decode_batch_size: '0.00', ttft_p50_us: '0', itl_p99_us: '0' });
  const [lexical] = await showModels('lexical');
  for (const c of GEN_COLUMNS) t.equal(lexical![c], null, `lexical ${c} is NULL`);
});

t.test('after concurrent generations, SHOW MODELS and the exporter agree', async (t) => {
  const words = 'the pooler shares a few loaded decoders among many clients as servers share a GPU'.split(' ');
  const NEW_TOKENS = 16;
  const callMs: number[] = [];
  // Two rounds of 8 concurrent calls, prompts of 1 to 15 words.
  for (let round = 0; round < 2; round++) {
    await Promise.all(
      clients.map(async (c, i) => {
        const started = performance.now();
        await c.query(transform(NEW_TOKENS, words.slice(0, 1 + ((i * 7 + round * 3) % 15)).join(' ')));
        callMs.push(performance.now() - started);
      }),
    );
  }
  const longestUs = Math.max(...callMs) * 1000;
  const [gpt] = await showModels('gpt');
  const n = (c: string): number => Number(gpt![c]);
  // Greedy on these seeded weights never picks EOS here, so every call ran its 16 passes.
  t.equal(n('tokens'), 16 * NEW_TOKENS, 'one token per pass per sequence: 16 calls x 16');
  t.ok(n('tokens_per_s') > 0, `tokens/s (${gpt!['tokens_per_s']})`);
  t.ok(n('decode_batch_size') >= 1 && n('decode_batch_size') <= 8, `sequences per decode step within 1..max_batch_size (${gpt!['decode_batch_size']})`);
  t.ok(n('avg_batch_size') >= 1, 'sequences per forward pass');
  t.ok(n('ttft_p50_us') > 0 && n('ttft_p50_us') <= n('ttft_p99_us'), `TTFT p50 ${n('ttft_p50_us')} <= p99 ${n('ttft_p99_us')} us`);
  t.ok(n('ttft_p99_us') <= longestUs, `TTFT p99 within the longest call seen by a client (${Math.round(longestUs)} us)`);
  t.ok(n('ttft_p99_us') <= n('p99_latency_us'), 'TTFT p99 within the p99 of whole calls');
  t.ok(n('itl_p50_us') > 0 && n('itl_p50_us') <= n('itl_p99_us'), `ITL p50 ${n('itl_p50_us')} <= p99 ${n('itl_p99_us')} us`);
  t.ok(n('itl_p99_us') <= longestUs, 'ITL p99 within the longest call');
  t.ok(n('ttft_p50_us') + (NEW_TOKENS - 1) * n('itl_p50_us') <= longestUs * 2, 'TTFT plus 15 inter-token gaps fit a call');
  t.match(gpt, { in_flight: '0', queue_depth: '0', errors: '0' });

  const text = await scrape();
  const labels = 'model="gpt",instance="0"';
  t.equal(metric(text, 'generated_tokens_total', labels), n('tokens'), 'generated_tokens_total');
  t.equal(metric(text, 'decode_batch_size', labels)?.toFixed(2), gpt!['decode_batch_size'], 'decode_batch_size');
  for (const c of ['ttft_p50_us', 'ttft_p99_us', 'itl_p50_us', 'itl_p99_us']) {
    t.equal(Math.round(metric(text, c, labels) ?? NaN), n(c), c);
  }
  const rate = metric(text, 'tokens_per_second', labels) ?? NaN;
  // The window slides between the two reads; both see the same tokens unless 10 s have passed.
  t.ok(rate > 0 && Math.abs(rate - n('tokens_per_s')) <= n('tokens_per_s') * 0.5 + 1, `tokens_per_second ${rate} ~ ${gpt!['tokens_per_s']}`);
  const steps = metric(text, 'decode_steps_total', labels) ?? NaN;
  t.ok(steps >= NEW_TOKENS - 1 && steps <= 16 * (NEW_TOKENS - 1), `decode_steps_total ${steps}`);
  t.match(text, /# TYPE pglynx_engine_generated_tokens_total counter/);
  t.match(text, /# TYPE pglynx_engine_ttft_p99_us gauge/);
  t.equal(metric(text, 'generated_tokens_total', 'model="lexical",instance="0"'), undefined, 'no generation metrics for an embedding model');
});

t.test('running and queued sequences while they run', async (t) => {
  const long = (c: (typeof clients)[number]): Promise<unknown> =>
    c.query(`SELECT pgml.transform('{"task": "text-generation", "model": "solo"}'::jsonb, '{"max_new_tokens": 1000}'::jsonb, ARRAY['Once upon a time,'])`);
  const calls = [long(clients[0]!), long(clients[1]!)];
  let seen: Row | undefined;
  let scraped = '';
  for (let i = 0; i < 500 && !seen; i++) {
    const [solo] = await showModels('solo');
    if (solo!['in_flight'] === '1' && solo!['queue_depth'] === '1' && Number(solo!['tokens']) > 0) {
      seen = solo;
      scraped = await scrape();
    } else await new Promise((r) => setTimeout(r, 10));
  }
  t.ok(seen, 'one sequence running and producing tokens, one queued behind it (max_batch_size 1)');
  t.equal(metric(scraped, 'in_flight', 'model="solo",instance="0"'), 1, 'pglynx_engine_in_flight');
  await Promise.all(calls);
  const [after] = await showModels('solo');
  t.match(after, { in_flight: '0', queue_depth: '0', tokens: '2000', decode_batch_size: '1.00' });
});
