// One configured text-generation model: its slots (GenInstance, one decode
// loop each), admission (max_queue), routing of prompts among slots, and
// per-call timeouts. The embedding counterpart is model.ts.

import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { LoadBalancingMode } from '../config/types.js';
import { chooseInstance } from './routing.js';
import type { ModelConfig } from '../config/models.js';
import { modelSource } from './config.js';
import { EngineCode, EngineError } from './errors.js';
import type { ModelInfo } from './worker-protocol.js';
import { GenInstance, type GenCall, type GenResult } from './gen-instance.js';
import type { Growth, ModelDeps } from './model.js';
import { parseGenerateArgs } from './sampling.js';
import type { ModelStats } from './stats.js';

export type { GenResult } from './gen-instance.js';

export interface GenerateOptions {
  loadBalancing?: LoadBalancingMode;
  /** Streaming (one prompt): called with each piece of new text as it is generated. */
  onText?: (delta: string) => void;
  /** Aborting fails the call with 57014 and frees its place in the batch at the next step. */
  signal?: AbortSignal;
  /** pgml.infer: no generation, each prompt's top next-token candidates from one forward pass (GenResult.top). */
  top?: number;
}

let nextId = 1;

export class Generator {
  private instances: GenInstance[] = [];
  info: ModelInfo | null = null;
  accepting = true;
  private turn = 0;

  private constructor(
    readonly name: string,
    public config: ModelConfig,
    private readonly deps: ModelDeps,
  ) {}

  static async load(name: string, config: ModelConfig, deps: ModelDeps): Promise<Generator> {
    const g = new Generator(name, config, deps);
    const started = performance.now();
    g.instances = await g.spawn(config.instances);
    deps.log.info(
      { model: name, task: 'text-generation', source: modelSource(config), instances: config.instances, ms: Math.round(performance.now() - started) },
      'model loaded',
    );
    return g;
  }

  private async spawn(count: number): Promise<GenInstance[]> {
    const base = this.instances.length;
    const fresh = Array.from(
      { length: count },
      (_, i) => new GenInstance(this.name, base + i, this.config, this.deps.workerHooks, this.deps.log, { reroute: (calls) => this.place(calls) }),
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

  async grow(count: number): Promise<Growth> {
    const fresh = await this.spawn(count - this.instances.length);
    return {
      commit: () => {
        this.instances.push(...fresh);
      },
      abort: async () => {
        await Promise.all(fresh.map((inst) => inst.close()));
      },
    };
  }

  update(config: ModelConfig): void {
    this.config = config;
    const retiring = this.instances.length > config.instances ? this.instances.splice(config.instances) : [];
    for (const inst of this.instances) inst.updateConfig(config);
    for (const inst of retiring) {
      inst.retiring = true;
      inst.reroute();
      void inst.idle().then(() => inst.close());
    }
  }

  /** Prompts waiting for a place in a running batch. */
  get queued(): number {
    let n = 0;
    for (const inst of this.instances) n += inst.queued;
    return n;
  }

  /**
   * One result per prompt, in order. Rejects with an EngineError: 22023 /
   * 0A000 bad args, 53300 queue full, 54000 more prompts than max_queue,
   * 57014 timeout or cancelled, XX000 worker crash, 57P01 shutting down.
   */
  generate(prompts: readonly string[], args: unknown, mode: LoadBalancingMode, opts: GenerateOptions = {}): Promise<GenResult[]> {
    const { max_queue: maxQueue, model_timeout_ms: timeoutMs, max_new_tokens: ceiling } = this.config;
    let params;
    try {
      params = parseGenerateArgs(args, ceiling, () => randomInt(2 ** 32 - 1));
    } catch (err) {
      return Promise.reject(err);
    }
    if (prompts.length > maxQueue) {
      return Promise.reject(new EngineError(EngineCode.TooManyInputs, `model "${this.name}": ${prompts.length} prompts in one call exceed its max_queue (${maxQueue})`));
    }
    const waiting = this.queued;
    if (waiting + prompts.length > maxQueue) {
      return Promise.reject(
        new EngineError(EngineCode.TooBusy, `model "${this.name}" is too busy: ${waiting} prompts are already waiting (max_queue ${maxQueue}); try again later`),
      );
    }
    let target: GenInstance;
    try {
      target = this.route(mode);
    } catch (err) {
      return Promise.reject(err);
    }
    if (opts.signal?.aborted) return Promise.reject(cancelled(this.name));
    const arrivedAt = performance.now();
    const calls: GenCall[] = [];
    const results = prompts.map(
      (prompt) =>
        new Promise<GenResult>((resolve, reject) => {
          const settle = (): void => {
            clearTimeout(timer);
            opts.signal?.removeEventListener('abort', onAbort);
          };
          const stop = (error: EngineError): void => {
            if (call.settled) return;
            call.settled = true;
            settle();
            call.owner?.drop(call);
            reject(error);
          };
          const timer = setTimeout(() => {
            const where = call.queued || !call.owner ? 'waiting for a place in a running batch' : 'while generating';
            stop(new EngineError(EngineCode.Timeout, `model "${this.name}": no result within model_timeout_ms (${timeoutMs} ms), ${where}`));
          }, timeoutMs);
          const onAbort = (): void => stop(cancelled(this.name));
          opts.signal?.addEventListener('abort', onAbort, { once: true });
          const call: GenCall = {
            id: nextId++,
            prompt,
            params,
            arrivedAt,
            onText: opts.onText ?? null,
            top: opts.top ?? 0,
            owner: null,
            queued: false,
            settled: false,
            kvBytes: 0,
            resolve: (r) => {
              settle();
              resolve(r);
            },
            reject: (e) => {
              settle();
              reject(e);
            },
          };
          calls.push(call);
        }),
    );
    target.enqueue(calls);
    return Promise.all(results);
  }

  private place(calls: GenCall[]): void {
    const live = calls.filter((c) => !c.settled);
    if (live.length === 0) return;
    const candidates = this.instances.filter((i) => i.state !== 'closed' && !i.retiring);
    if (candidates.length === 0) {
      for (const c of live) {
        c.settled = true;
        c.reject(new EngineError(EngineCode.Shutdown, `model "${this.name}" was removed`));
      }
      return;
    }
    for (const c of live) this.route('loc').enqueue([c]);
  }

  /** Among ready slots by the pool's mode; `loc` prefers the one with the fewest running + queued sequences. */
  private route(mode: LoadBalancingMode): GenInstance {
    return chooseInstance(this.instances, mode, this.turn++, this.name);
  }

  async drain(): Promise<void> {
    this.accepting = false;
    await Promise.all(this.instances.map((i) => i.idle()));
    await this.close();
  }

  async close(reason?: string): Promise<void> {
    this.accepting = false;
    await Promise.all(this.instances.map((i) => i.close(reason)));
  }

  stats(): ModelStats[] {
    const none = { cacheHits: 0, cacheMisses: 0, cacheHitRate: 0, cacheEntries: 0, cacheBytes: 0 };
    return this.instances.map((i) => ({ ...i.stats(), ...none }));
  }
}

function cancelled(model: string): EngineError {
  return new EngineError(EngineCode.Timeout, `canceling statement due to user request (model "${model}")`);
}
