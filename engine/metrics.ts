// Prometheus metrics of the model engine, `pglynx_engine_*` (PgCat has no
// engine, so these are PgLynx's own names, in Prometheus' conventions:
// counters end in _total, times are in the unit their name says).
//
// Like the pool metrics, they are set from the engine's own counters when
// Prometheus scrapes (pooler/stats/prometheus.ts calls the refresh
// function), never on the embedding path.

import { Counter, Gauge, type Registry } from 'prom-client';
import type { Engine } from './engine.js';
import type { ModelStats } from './stats.js';

interface Spec {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  /** Per instance (labels model, instance) or per model (label model; taken from its first instance). */
  per: 'instance' | 'model';
  /** null: no sample for this row (generation figures of an embedding instance). */
  value(s: ModelStats): number | null;
}

const SPECS: Spec[] = [
  { name: 'instance_loaded', type: 'gauge', per: 'instance', help: '1 when the instance has its model loaded and takes batches, else 0', value: (s) => (s.loaded ? 1 : 0) },
  { name: 'queue_depth', type: 'gauge', per: 'instance', help: 'Inputs waiting for the instance', value: (s) => s.queueDepth },
  { name: 'in_flight', type: 'gauge', per: 'instance', help: 'Inputs in the batch the instance is running', value: (s) => s.inFlight },
  { name: 'calls_total', type: 'counter', per: 'instance', help: 'Inputs embedded by the instance (cache hits excluded)', value: (s) => s.calls },
  { name: 'batches_total', type: 'counter', per: 'instance', help: 'Batches the instance ran', value: (s) => s.batches },
  { name: 'avg_batch_size', type: 'gauge', per: 'instance', help: 'Mean inputs per batch since start', value: (s) => s.avgBatchSize },
  { name: 'avg_latency_us', type: 'gauge', per: 'instance', help: 'Mean time from a call reaching the engine to its result, in microseconds', value: (s) => s.avgLatencyUs },
  { name: 'p99_latency_us', type: 'gauge', per: 'instance', help: '99th percentile of that time over the last 2048 calls, in microseconds', value: (s) => s.p99LatencyUs },
  { name: 'errors_total', type: 'counter', per: 'instance', help: 'Inputs that failed on the instance (crash, hang, timeout, model error)', value: (s) => s.errors },
  { name: 'restarts_total', type: 'counter', per: 'instance', help: 'Worker threads replaced after a crash or a hang', value: (s) => s.restarts },
  { name: 'cache_hits_total', type: 'counter', per: 'model', help: 'Embedding cache hits', value: (s) => s.cacheHits },
  { name: 'cache_misses_total', type: 'counter', per: 'model', help: 'Embedding cache misses', value: (s) => s.cacheMisses },
  { name: 'cache_hit_rate', type: 'gauge', per: 'model', help: 'Embedding cache hits / lookups since start', value: (s) => s.cacheHitRate },
  { name: 'cache_entries', type: 'gauge', per: 'model', help: 'Vectors in the embedding cache', value: (s) => s.cacheEntries },
  { name: 'cache_bytes', type: 'gauge', per: 'model', help: 'Bytes the embedding cache accounts for', value: (s) => s.cacheBytes },
  // Text-generation slots only; SHOW MODELS shows the same figures (its running sequences and queued prompts are in_flight and queue_depth).
  { name: 'generated_tokens_total', type: 'counter', per: 'instance', help: 'Tokens the generation slot produced (one per sequence per forward pass)', value: (s) => s.generation?.tokens ?? null },
  { name: 'tokens_per_second', type: 'gauge', per: 'instance', help: 'Tokens the generation slot produced per second over the last 10 s', value: (s) => s.generation?.tokensPerSecond ?? null },
  { name: 'decode_steps_total', type: 'counter', per: 'instance', help: 'Decode steps (forward passes over running sequences, prefills excluded) of the generation slot', value: (s) => s.generation?.decodeSteps ?? null },
  { name: 'decode_batch_size', type: 'gauge', per: 'instance', help: 'Mean sequences per decode step since start', value: (s) => s.generation?.decodeBatchSize ?? null },
  { name: 'ttft_p50_us', type: 'gauge', per: 'instance', help: 'Median time from a prompt reaching the engine to its first token, over the last 2048 prompts, in microseconds', value: (s) => s.generation?.ttftP50Us ?? null },
  { name: 'ttft_p99_us', type: 'gauge', per: 'instance', help: '99th percentile of the time to first token over the last 2048 prompts, in microseconds', value: (s) => s.generation?.ttftP99Us ?? null },
  { name: 'itl_p50_us', type: 'gauge', per: 'instance', help: 'Median time between two tokens of one sequence, over the last 2048 tokens, in microseconds', value: (s) => s.generation?.itlP50Us ?? null },
  { name: 'itl_p99_us', type: 'gauge', per: 'instance', help: '99th percentile of the inter-token latency over the last 2048 tokens, in microseconds', value: (s) => s.generation?.itlP99Us ?? null },
];

type Bound = { spec: Spec; metric: Counter<string> | Gauge<string> };

/** Registers the engine metrics on `registry`; returns the function that sets them before a scrape. */
export function registerEngineMetrics(registry: Registry, engine: () => Engine | null): () => void {
  const bound: Bound[] = SPECS.map((spec) => {
    const config = {
      name: `pglynx_engine_${spec.name}`,
      help: spec.help,
      labelNames: spec.per === 'instance' ? ['model', 'instance'] : ['model'],
      registers: [registry],
    };
    return { spec, metric: spec.type === 'counter' ? new Counter(config) : new Gauge(config) };
  });
  const instances = new Gauge({ name: 'pglynx_engine_instances', help: 'Instances (engine slots) of each model', labelNames: ['model'], registers: [registry] });

  return () => {
    const stats = engine()?.stats() ?? [];
    const firstOfModel = new Map<string, ModelStats>();
    const count = new Map<string, number>();
    for (const s of stats) {
      if (!firstOfModel.has(s.model)) firstOfModel.set(s.model, s);
      count.set(s.model, (count.get(s.model) ?? 0) + 1);
    }
    // Reset, then set: removed models and instances disappear, counters are exact totals.
    for (const { spec, metric } of bound) {
      metric.reset();
      const rows = spec.per === 'instance' ? stats : [...firstOfModel.values()];
      for (const s of rows) {
        const value = spec.value(s);
        if (value === null) continue;
        const labels = spec.per === 'instance' ? { model: s.model, instance: String(s.instance) } : { model: s.model };
        if (metric instanceof Counter) metric.inc(labels, value);
        else metric.set(labels, value);
      }
    }
    instances.reset();
    for (const [model, n] of count) instances.set({ model }, n);
  };
}
