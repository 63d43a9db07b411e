// The fleet's embedding cache: Redis as a second level behind each
// member's local cache (engine/cache.ts), so an embedding computed by one
// pooler is a hit on the others.
//
// It wraps the engine as the pgml layer's EmbeddingProvider. For inputs the
// local cache lacks, Redis is asked once (MGET) and waited on for at most
// fleet_redis_wait_ms; what it has is used (and kept locally), the rest is
// computed by the engine and written back with fleet_embedding_ttl_ms,
// without waiting. Vectors are stored as raw little-endian float32 bytes,
// keyed by model name, a hash of the model's identity (source, dims) and a
// hash of the text. Redis down or slow: the engine computes, as without a fleet.

import { createHash } from 'node:crypto';
import type { Engine } from '../../engine/engine.js';
import type { EmbeddingProvider } from '../pgml/rewrite.js';
import type { GenerationProvider } from '../pgml/transform.js';
import { KEY_PREFIX } from './membership.js';
import { within, type RedisLink } from './redis-link.js';

export interface FleetCacheCounters {
  /** Inputs found in Redis (not computed here). */
  remoteHits: number;
  /** Inputs asked of Redis and not found there (or not in time). */
  remoteMisses: number;
  /** Vectors written to Redis. */
  writes: number;
}

/** After a lookup that Redis did not answer in time, calls skip Redis for this long (a hung Redis costs one wait a second, not one per call). */
const BACKOFF_MS = 1000;

const sha = (algo: string, s: string): string => createHash(algo).update(s).digest('hex');

function toVector(buf: Buffer): Float32Array {
  // Copied out: the Buffer may be a view at an offset that is not 4-aligned.
  const copy = new ArrayBuffer(buf.byteLength);
  new Uint8Array(copy).set(buf);
  return new Float32Array(copy);
}

export class FleetEmbeddings implements EmbeddingProvider, GenerationProvider {
  readonly counters: FleetCacheCounters = { remoteHits: 0, remoteMisses: 0, writes: 0 };
  /** performance.now() before which lookups skip Redis (it was slow). */
  private skipUntil = 0;

  constructor(
    private readonly engine: Engine,
    private readonly link: RedisLink,
    private readonly waitMs: number,
    private readonly ttlMs: number,
  ) {}

  has(model: string): boolean {
    return this.engine.has(model);
  }

  names(): string[] {
    return this.engine.names();
  }

  task(model: string): string | null {
    return this.engine.task(model);
  }

  generate(...args: Parameters<GenerationProvider['generate']>): ReturnType<GenerationProvider['generate']> {
    return this.engine.generate(...args);
  }

  infer(...args: Parameters<GenerationProvider['infer']>): ReturnType<GenerationProvider['infer']> {
    return this.engine.infer(...args);
  }

  async embed(model: string, inputs: string[]): Promise<Float32Array[]> {
    const local = this.engine.embeddingCache(model);
    if (!local || !this.link.connected || performance.now() < this.skipUntil) return this.engine.embed(model, inputs);
    const asked = [...new Set(inputs.filter((t) => !local.cache.has(t)))];
    if (asked.length === 0) return this.engine.embed(model, inputs);

    const prefix = `${KEY_PREFIX}emb:${model}:${sha('sha1', local.identity).slice(0, 16)}:`;
    const keyOf = (text: string): string => prefix + sha('sha256', text);
    const found = await within<(Buffer | null)[] | 'late' | null>(
      this.link.commands.mgetBuffer(...asked.map(keyOf)).catch(() => null),
      this.waitMs,
      'late',
    );
    if (found === 'late') this.skipUntil = performance.now() + BACKOFF_MS;
    const dims = this.engine.dims(model);
    const remote = new Map<string, Float32Array>();
    asked.forEach((text, i) => {
      const buf = Array.isArray(found) ? found[i] : null;
      if (buf && buf.byteLength > 0 && buf.byteLength % 4 === 0 && (dims === null || buf.byteLength === dims * 4)) {
        const v = toVector(buf);
        remote.set(text, v);
        local.cache.set(text, v);
      }
    });
    this.counters.remoteHits += remote.size;
    this.counters.remoteMisses += asked.length - remote.size;

    // The engine computes what neither level had (and counts local hits as before).
    const out = new Array<Float32Array>(inputs.length);
    const rest: number[] = [];
    inputs.forEach((text, i) => {
      const v = remote.get(text);
      if (v) out[i] = v.slice();
      else rest.push(i);
    });
    if (rest.length > 0) {
      const computed = await this.engine.embed(model, rest.map((i) => inputs[i]!));
      rest.forEach((i, j) => (out[i] = computed[j]!));
      this.store(asked.filter((t) => !remote.has(t)), inputs, out, keyOf);
    }
    return out;
  }

  /** Writes computed vectors to Redis without waiting; a failure only costs a later recomputation. */
  private store(texts: string[], inputs: string[], out: Float32Array[], keyOf: (t: string) => string): void {
    if (texts.length === 0 || !this.link.connected) return;
    const at = new Map(inputs.map((t, i) => [t, i]));
    const pipeline = this.link.commands.pipeline();
    for (const text of texts) {
      const v = out[at.get(text) ?? -1];
      if (!v) continue;
      pipeline.set(keyOf(text), Buffer.from(v.buffer, v.byteOffset, v.byteLength), 'PX', this.ttlMs);
    }
    pipeline.exec().then(
      () => (this.counters.writes += texts.length),
      () => {},
    );
  }
}
