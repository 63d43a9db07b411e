// One configured model: its instances (engine slots), the admission queue
// bound, routing of calls among instances, per-call timeouts and the
// embedding cache.

import { performance } from 'node:perf_hooks';
import type { LoadBalancingMode } from '../config/types.js';
import { chooseInstance } from './routing.js';
import type { Logger } from '../pooler/logger.js';
import { EmbeddingCache } from './cache.js';
import type { ModelConfig } from '../config/models.js';
import { modelSource } from './config.js';
import { EngineCode, EngineError } from './errors.js';
import type { ModelInfo } from './worker-protocol.js';
import { Instance, type Call } from './instance.js';
import type { ModelStats } from './stats.js';

const MB = 1024 * 1024;

export interface ModelDeps {
  log: Logger;
  /** WorkerData.hooks of every instance (tests only). */
  workerHooks: string | null;
}

/** Extra instances loaded by a reload, not yet taking calls. */
export interface Growth {
  commit(): void;
  abort(): Promise<void>;
}

export class Model {
  private instances: Instance[] = [];
  readonly cache: EmbeddingCache;
  info: ModelInfo | null = null;
  /** False once the model is removed or replaced: new calls go elsewhere. */
  accepting = true;
  private turn = 0;

  private constructor(
    readonly name: string,
    public config: ModelConfig,
    private readonly deps: ModelDeps,
  ) {
    this.cache = new EmbeddingCache(config.cache_mb * MB);
  }

  /** Loads every instance; on any failure closes them all and throws an EngineError naming the model. */
  static async load(name: string, config: ModelConfig, deps: ModelDeps): Promise<Model> {
    const model = new Model(name, config, deps);
    const started = performance.now();
    const fresh = await model.spawn(config.instances);
    model.instances = fresh;
    deps.log.info(
      { model: name, source: modelSource(config), instances: config.instances, dims: model.info?.dims, ms: Math.round(performance.now() - started) },
      'model loaded',
    );
    return model;
  }

  /** Starts `count` instances numbered after the current ones and loads them all (all or nothing). */
  private async spawn(count: number): Promise<Instance[]> {
    const base = this.instances.length;
    const fresh = Array.from(
      { length: count },
      (_, i) => new Instance(this.name, base + i, this.config, this.deps.workerHooks, this.deps.log, { reroute: (calls) => this.place(calls) }),
    );
    const results = await Promise.allSettled(fresh.map((inst) => inst.load()));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) {
      await Promise.all(fresh.map((inst) => inst.close()));
      const reason = failure.reason instanceof Error ? failure.reason.message : String(failure.reason);
      throw new EngineError(EngineCode.LoadFailed, `model "${this.name}" (${modelSource(this.config)}) could not be loaded: ${reason}`);
    }
    this.info ??= (results[0] as PromiseFulfilledResult<ModelInfo> | undefined)?.value ?? null;
    return fresh;
  }

  /** Reload that raises `instances`: the new ones load first and join on commit(). */
  async grow(count: number): Promise<Growth> {
    const fresh = await this.spawn(count - this.instances.length);
    return {
      commit: () => {
        this.instances.push(...fresh);
        this.deps.log.info({ model: this.name, instances: this.instances.length }, 'model instances added');
      },
      abort: async () => {
        await Promise.all(fresh.map((inst) => inst.close()));
      },
    };
  }

  /** Reload with the same model: new limits now; fewer instances retire once their running batch is done. */
  update(config: ModelConfig): void {
    this.config = config;
    this.cache.resize(config.cache_mb * MB);
    const retiring = this.instances.length > config.instances ? this.instances.splice(config.instances) : [];
    for (const inst of this.instances) inst.updateConfig(config);
    for (const inst of retiring) {
      inst.retiring = true;
      inst.reroute();
      void inst.idle().then(() => inst.close());
    }
    if (retiring.length > 0) this.deps.log.info({ model: this.name, instances: this.instances.length }, 'model instances removed');
  }

  /** Inputs waiting for an instance (admitted, not yet in a batch). */
  get queued(): number {
    let n = 0;
    for (const inst of this.instances) n += inst.queued;
    return n;
  }

  /** One vector per input, in order; cache hits skip the queue. */
  embed(inputs: readonly string[], mode: LoadBalancingMode): Promise<Float32Array[]> {
    const out = new Array<Float32Array>(inputs.length);
    const misses: number[] = [];
    for (let i = 0; i < inputs.length; i++) {
      const hit = this.cache.get(inputs[i]!);
      if (hit) out[i] = hit.slice();
      else misses.push(i);
    }
    if (misses.length === 0) return Promise.resolve(out);
    const { max_queue: maxQueue, model_timeout_ms: timeoutMs } = this.config;
    if (misses.length > maxQueue) {
      return Promise.reject(
        new EngineError(EngineCode.TooManyInputs, `model "${this.name}": ${misses.length} inputs in one call exceed its max_queue (${maxQueue})`),
      );
    }
    const waiting = this.queued;
    if (waiting + misses.length > maxQueue) {
      return Promise.reject(
        new EngineError(
          EngineCode.TooBusy,
          `model "${this.name}" is too busy: ${waiting} inputs are already waiting (max_queue ${maxQueue}); try again later`,
        ),
      );
    }
    let target: Instance;
    try {
      target = this.route(mode);
    } catch (err) {
      return Promise.reject(err);
    }
    const arrivedAt = performance.now();
    const calls: Call[] = [];
    const pending = misses.map(
      (i) =>
        new Promise<void>((resolve, reject) => {
          const text = inputs[i]!;
          const timer = setTimeout(() => {
            if (call.settled) return;
            call.settled = true;
            const where = call.queued || !call.owner ? 'waiting for a free instance' : 'while its batch was running';
            call.owner?.timedOut(call);
            reject(new EngineError(EngineCode.Timeout, `model "${this.name}": no result within model_timeout_ms (${timeoutMs} ms), ${where}`));
          }, timeoutMs);
          const call: Call = {
            text,
            arrivedAt,
            owner: null,
            queued: false,
            settled: false,
            resolve: (v) => {
              clearTimeout(timer);
              out[i] = v;
              this.cache.set(text, v);
              resolve();
            },
            reject: (e) => {
              clearTimeout(timer);
              reject(e);
            },
          };
          calls.push(call);
        }),
    );
    target.enqueue(calls);
    return Promise.all(pending).then(() => out);
  }

  /** Calls rerouted from an instance that cannot run them: spread them over the others. */
  private place(calls: Call[]): void {
    const live = calls.filter((c) => !c.settled);
    if (live.length === 0) return;
    const candidates = this.instances.filter((i) => i.state !== 'closed' && !i.retiring);
    if (candidates.length === 0) {
      // The model is going away with no instance left to run them.
      for (const c of live) {
        c.settled = true;
        c.reject(new EngineError(EngineCode.Shutdown, `model "${this.name}" was removed`));
      }
      return;
    }
    for (const c of live) this.route('loc').enqueue([c]);
  }

  /** The instance for one call (`loc`: least outstanding inputs). */
  private route(mode: LoadBalancingMode): Instance {
    return chooseInstance(this.instances, mode, this.turn++, this.name);
  }

  /** Stops taking calls, lets queued and running ones finish (or time out), then ends the workers. */
  async drain(): Promise<void> {
    this.accepting = false;
    await Promise.all(this.instances.map((i) => i.idle()));
    await this.close();
  }

  async close(reason?: string): Promise<void> {
    this.accepting = false;
    await Promise.all(this.instances.map((i) => i.close(reason)));
    this.cache.clear();
  }

  stats(): ModelStats[] {
    const { hits, misses } = this.cache;
    const cache = {
      cacheHits: hits,
      cacheMisses: misses,
      cacheHitRate: hits + misses === 0 ? 0 : hits / (hits + misses),
      cacheEntries: this.cache.size,
      cacheBytes: this.cache.usedBytes,
    };
    return this.instances.map((i) => ({ ...i.stats(), ...cache }));
  }
}
