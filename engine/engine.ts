// The engine: every configured model, loaded in worker threads and shared by
// all clients. This is the surface the SQL layer (pgml.embed) and the
// pooler (start, RELOAD, shutdown, SHOW MODELS, metrics) use.
//
// Reload is all or nothing: every new or changed model is loaded before
// anything changes, so a broken model rejects the reload and the old
// models keep serving. Then, at once: new models take calls, replaced and
// removed ones stop taking calls and finish what they hold before their
// workers end, resized ones gain or retire instances.

import type { LoadBalancingMode } from '../config/types.js';
import type { Logger } from '../pooler/logger.js';
import type { ModelConfig, ModelTask } from '../config/models.js';
import { modelSource, modelTask, sameLoad } from './config.js';
import { EngineCode, EngineError } from './errors.js';
import { Generator, type GenerateOptions, type GenResult } from './generator.js';
import type { TokenCandidate } from './gen-protocol.js';
import { Model, type Growth } from './model.js';
import type { ModelStats } from './stats.js';
import type { EmbeddingCache } from './cache.js';

export { EngineError, EngineCode } from './errors.js';
export type { ModelStats } from './stats.js';
export type { GenerateOptions, GenResult } from './generator.js';
export type { TokenCandidate } from './gen-protocol.js';

/** A loaded model: an encoder (pgml.embed) or a decoder (pgml.transform). */
type Served = Model | Generator;

export interface EngineOptions {
  log: Logger;
  /** How calls are spread over a model's instances unless a call says otherwise (default random, as PgCat's pools). */
  loadBalancing?: LoadBalancingMode;
  /** Tests only: a module every worker imports to misbehave on marked inputs (see WorkerData.hooks). */
  workerHooks?: string;
}

export interface EmbedOptions {
  /** The calling pool's load_balancing_mode. */
  loadBalancing?: LoadBalancingMode;
}

export class Engine {
  private models = new Map<string, Served>();
  /** Removed or replaced models still finishing their calls. */
  private readonly draining = new Set<Served>();
  /** Reloads run one after another. */
  private reloading: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly log: Logger,
    private loadBalancing: LoadBalancingMode,
    private readonly workerHooks: string | null,
  ) {}

  /** Loads every model; throws an EngineError naming the first model that cannot be loaded. */
  static async start(models: Record<string, ModelConfig>, opts: EngineOptions): Promise<Engine> {
    const engine = new Engine(opts.log, opts.loadBalancing ?? 'random', opts.workerHooks ?? null);
    await engine.apply(models);
    return engine;
  }

  has(model: string): boolean {
    return this.models.has(model);
  }

  /** Configured model names. */
  names(): string[] {
    return [...this.models.keys()];
  }

  /** What a configured model serves (null when there is no such model). */
  task(model: string): ModelTask | null {
    const m = this.models.get(model);
    if (!m) return null;
    return m instanceof Generator ? 'text-generation' : 'embedding';
  }

  /** Output dimensions of a loaded model (null when unknown). */
  dims(model: string): number | null {
    return this.models.get(model)?.info?.dims ?? null;
  }

  /**
   * One vector per input, in input order. The arrays are the caller's
   * (views of the batch's buffer or copies from the cache). Rejects with an
   * EngineError: 42704 unknown model, 53300 queue full, 54000 more inputs
   * than max_queue, 57014 timeout, XX000 worker crash, 57P01 shutting down.
   */
  embed(model: string, inputs: string[], opts: EmbedOptions = {}): Promise<Float32Array[]> {
    if (this.closed) return Promise.reject(new EngineError(EngineCode.Shutdown, 'the model engine is shutting down'));
    const m = this.models.get(model);
    if (!m) return Promise.reject(this.unknown(model));
    if (m instanceof Generator) {
      return Promise.reject(new EngineError(EngineCode.WrongTask, `model "${model}" is a text-generation model; pgml.embed needs an embedding model`));
    }
    if (inputs.length === 0) return Promise.resolve([]);
    return m.embed(inputs, opts.loadBalancing ?? this.loadBalancing);
  }

  /**
   * Generates a continuation of each prompt (one result per prompt, in
   * order). `args` are Hugging Face generate() arguments (max_new_tokens,
   * do_sample, temperature, top_k, top_p, repetition_penalty, seed, stop).
   * Rejects like embed(), plus 22023 / 0A000 for bad args and 42809 for an
   * embedding model.
   */
  generate(model: string, prompts: string[], args: unknown = {}, opts: GenerateOptions = {}): Promise<GenResult[]> {
    if (this.closed) return Promise.reject(new EngineError(EngineCode.Shutdown, 'the model engine is shutting down'));
    const m = this.models.get(model);
    if (!m) return Promise.reject(this.unknown(model));
    if (!(m instanceof Generator)) {
      return Promise.reject(new EngineError(EngineCode.WrongTask, `model "${model}" is an embedding model; text generation needs a decoder (task = "text-generation")`));
    }
    if (prompts.length === 0) return Promise.resolve([]);
    return m.generate(prompts, args, opts.loadBalancing ?? this.loadBalancing, opts);
  }

  /**
   * The `top` most probable next tokens after `prompt` (pgml.infer): one
   * forward pass in a slot of the generation model, batched with its decode
   * steps. Rejects like generate().
   */
  async infer(model: string, prompt: string, top: number, opts: Omit<GenerateOptions, 'top' | 'onText'> = {}): Promise<TokenCandidate[]> {
    const m = this.models.get(model);
    if (m instanceof Generator && (!Number.isInteger(top) || top < 1)) {
      throw new EngineError(EngineCode.InvalidArgument, `pgml.infer: top must be a positive integer, got ${top}`);
    }
    const [r] = await this.generate(model, [prompt], { max_new_tokens: 1 }, { ...opts, top });
    return r!.top ?? [];
  }

  /**
   * The local cache of an embedding model and what identifies its vectors
   * beyond the name (its source and dims), for the fleet's second-level
   * cache (pooler/fleet/embedding-cache.ts); null for other models.
   */
  embeddingCache(model: string): { cache: EmbeddingCache; identity: string } | null {
    const m = this.models.get(model);
    if (!(m instanceof Model)) return null;
    return { cache: m.cache, identity: `${modelSource(m.config)}|${m.info?.dims ?? '?'}` };
  }

  private unknown(model: string): EngineError {
    const known = this.names();
    const hint = known.length === 0 ? 'no models are configured ([models.<name>] in pgcat.toml)' : `configured models: ${known.join(', ')}`;
    return new EngineError(EngineCode.UnknownModel, `model "${model}" does not exist; ${hint}`);
  }

  /** Applies a new `[models]` table; throws (and changes nothing) when a new or changed model cannot be loaded. */
  reload(models: Record<string, ModelConfig>, opts: { loadBalancing?: LoadBalancingMode } = {}): Promise<void> {
    const run = this.reloading.then(async () => {
      await this.apply(models);
      if (opts.loadBalancing) this.loadBalancing = opts.loadBalancing;
    });
    this.reloading = run.catch(() => {});
    return run;
  }

  private async apply(next: Record<string, ModelConfig>): Promise<void> {
    if (this.closed) throw new EngineError(EngineCode.Shutdown, 'the model engine is shut down');
    const deps = { log: this.log, workerHooks: this.workerHooks };
    const created = new Map<string, Served>();
    const grown: Growth[] = [];
    // Load everything new first, in parallel; keep every outcome so a failure cleans up all of it.
    const outcomes = await Promise.allSettled(
      Object.entries(next).map(async ([name, config]) => {
        const old = this.models.get(name);
        if (!old || !sameLoad(old.config, config)) {
          created.set(name, modelTask(config) === 'text-generation' ? await Generator.load(name, config, deps) : await Model.load(name, config, deps));
        }
        else if (config.instances > old.config.instances) grown.push(await old.grow(config.instances));
      }),
    );
    const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failure) {
      await Promise.all([...[...created.values()].map((m) => m.close()), ...grown.map((g) => g.abort())]);
      throw failure.reason;
    }

    const retired: Served[] = [];
    for (const [name, model] of this.models) {
      if (!Object.hasOwn(next, name)) {
        this.models.delete(name);
        retired.push(model);
        this.log.info({ model: name }, 'model removed; it finishes the calls it holds');
      }
    }
    for (const [name, model] of created) {
      const old = this.models.get(name);
      if (old) {
        retired.push(old);
        this.log.info({ model: name }, 'model replaced; the old instances finish the calls they hold');
      }
      this.models.set(name, model);
    }
    // Config order, not load-completion order: "the first text-generation model" must mean the first in the file.
    this.models = new Map(Object.keys(next).map((name) => [name, this.models.get(name)!]));
    for (const g of grown) g.commit();
    for (const [name, config] of Object.entries(next)) if (!created.has(name)) this.models.get(name)!.update(config);
    for (const model of retired) {
      this.draining.add(model);
      model
        .drain()
        .catch((err: Error) => this.log.error({ model: model.name, err: err.message }, 'model shutdown failed'))
        .finally(() => this.draining.delete(model));
    }
  }

  stats(): ModelStats[] {
    return [...this.models.values()].flatMap((m) => m.stats());
  }

  /** Ends every worker; calls still queued or running fail with 57P01. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.reloading;
    const models = [...this.models.values(), ...this.draining];
    this.models.clear();
    this.draining.clear();
    await Promise.all(models.map((m) => m.close('the model engine is shutting down')));
  }
}
