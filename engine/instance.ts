// One engine slot: a piscina pool pinned to one worker thread (which owns
// one loaded copy of the model), its queue of inputs, and dynamic batching.
//
// At most one batch is in the worker at a time; inputs that arrive
// meanwhile wait here and form the next batch, so batches grow with load
// on their own. An idle instance waits up to max_batch_delay_ms (from the
// oldest input) for a batch to fill before it runs it.
//
// Isolation: a batch that runs longer than model_timeout_ms is aborted,
// which makes piscina terminate the thread; a thread that dies on its own
// (crash) rejects its task. Either way only that batch's callers fail,
// piscina starts a new thread, and the instance loads the model into it
// before taking batches again; queued inputs go to other instances meanwhile.

import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { Logger } from '../pooler/logger.js';
import type { ModelConfig } from '../config/models.js';
import { EngineCode, EngineError } from './errors.js';
import type { ModelInfo, WorkerData, WorkerReply, WorkerTask } from './worker-protocol.js';
import { LatencyWindow, type ModelStats } from './stats.js';

// From source (tsx, tap) the worker is worker.ts next to this file; built, worker.js.
const WORKER_FILE = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url));

/** Backoff between attempts to load the model into a replacement worker that failed to load it. */
const RELOAD_BACKOFF_MS = [250, 1000, 5000, 30_000];

/** One input of one embed() call, from admission to its result. */
export interface Call {
  readonly text: string;
  readonly arrivedAt: number;
  /** The instance it was given to (null while being rerouted). */
  owner: Instance | null;
  /** In the owner's queue (false once in a batch). */
  queued: boolean;
  settled: boolean;
  resolve(v: Float32Array): void;
  reject(e: EngineError): void;
}

export interface InstanceHooks {
  /** Queued calls this instance cannot run (its worker is being replaced, or it is retiring). */
  reroute(calls: Call[]): void;
}

export type InstanceState = ModelStats['state'];

export class Instance {
  state: InstanceState = 'loading';
  /** Set when a resize removes this instance: it takes no new calls and closes once idle. */
  retiring = false;
  info: ModelInfo | null = null;
  private readonly queue: Call[] = [];
  private inFlight: Call[] | null = null;
  private readonly pool: Piscina<WorkerTask, WorkerReply>;
  private batchTimer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private failedLoads = 0;
  private idleWaiters: (() => void)[] = [];
  readonly latency = new LatencyWindow();
  batches = 0;
  batchedCalls = 0;
  errors = 0;
  restarts = 0;

  constructor(
    readonly model: string,
    readonly index: number,
    /** Live settings (batch size, delay, timeout) follow reloads through this object. */
    private config: ModelConfig,
    workerHooks: string | null,
    private readonly log: Logger,
    private readonly hooks: InstanceHooks,
  ) {
    const workerData: WorkerData = { model, config, hooks: workerHooks };
    this.pool = new Piscina<WorkerTask, WorkerReply>({
      filename: WORKER_FILE,
      name: 'default',
      minThreads: 1,
      maxThreads: 1,
      concurrentTasksPerWorker: 1,
      // Never retire the one thread for idleness: it holds the loaded model.
      idleTimeout: Infinity,
      // The worker awaits ONNX Runtime between tasks' steps; keep its event loop free.
      atomics: 'disabled',
      workerData,
    });
    // An uncaught error in an idle worker: piscina already replaced the thread.
    this.pool.on('error', (err: Error) => {
      if (this.state === 'ready' && !this.inFlight) this.restart(`worker error: ${err.message}`);
    });
  }

  private get label(): string {
    return `model "${this.model}" instance ${this.index}`;
  }

  /** Loads the model into the worker; throws the worker's reason. */
  async load(): Promise<ModelInfo> {
    const reply = await this.pool.run({ op: 'load' });
    if (!reply.ok || !('info' in reply)) throw new Error(reply.ok ? 'unexpected reply to load' : reply.message);
    this.info = reply.info;
    this.failedLoads = 0;
    if (this.state !== 'closed') this.state = 'ready';
    this.pump();
    return reply.info;
  }

  updateConfig(config: ModelConfig): void {
    this.config = config;
    this.pump();
  }

  /** Inputs waiting here plus inputs in the running batch: what `loc` balances on. */
  get outstanding(): number {
    return this.queue.length + (this.inFlight?.length ?? 0);
  }

  get queued(): number {
    return this.queue.length;
  }

  get running(): number {
    return this.inFlight?.length ?? 0;
  }

  enqueue(calls: readonly Call[]): void {
    for (const c of calls) {
      c.owner = this;
      c.queued = true;
      this.queue.push(c);
    }
    this.pump();
  }

  /** A call that timed out while queued here or running here (its result, if any, is dropped). */
  timedOut(call: Call): void {
    this.errors++;
    if (call.queued) {
      const i = this.queue.indexOf(call);
      if (i >= 0) this.queue.splice(i, 1);
      call.queued = false;
      this.checkIdle();
    }
  }

  /** Starts a batch when the worker is free and the batch is full or its oldest input has waited long enough. */
  private pump(): void {
    if (this.state !== 'ready' || this.inFlight || this.queue.length === 0) return;
    const { max_batch_size: max, max_batch_delay_ms: delay } = this.config;
    const waited = performance.now() - this.queue[0]!.arrivedAt;
    if (this.queue.length < max && waited < delay) {
      this.batchTimer ??= setTimeout(() => {
        this.batchTimer = null;
        this.pump();
      }, Math.ceil(delay - waited));
      return;
    }
    if (this.batchTimer) {
      clearTimeout(this.batchTimer);
      this.batchTimer = null;
    }
    const batch = this.queue.splice(0, max);
    for (const c of batch) c.queued = false;
    this.run(batch);
  }

  private run(batch: Call[]): void {
    this.inFlight = batch;
    const abort = new AbortController();
    this.watchdog = setTimeout(() => abort.abort(), this.config.model_timeout_ms);
    const texts = batch.map((c) => c.text);
    this.pool.run({ op: 'embed', texts }, { signal: abort.signal }).then(
      (reply) => this.finished(batch, reply),
      (err: Error) => this.died(batch, abort.signal.aborted, err),
    );
  }

  private endBatch(batch: Call[]): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
    this.inFlight = null;
    this.batches++;
    this.batchedCalls += batch.length;
  }

  private finished(batch: Call[], reply: WorkerReply): void {
    this.endBatch(batch);
    if (reply.ok && 'vectors' in reply) {
      const now = performance.now();
      const { dims, vectors } = reply;
      batch.forEach((c, i) => {
        if (c.settled) return;
        c.settled = true;
        this.latency.record((now - c.arrivedAt) * 1000);
        // Views of the transferred buffer: no copy per caller.
        c.resolve(vectors.subarray(i * dims, (i + 1) * dims));
      });
    } else {
      const message = reply.ok ? 'unexpected reply' : reply.message;
      this.fail(batch, new EngineError(EngineCode.Internal, `${this.label} failed to embed a batch of ${batch.length}: ${message}`));
    }
    this.pump();
    this.checkIdle();
  }

  /** The worker thread is gone: it crashed, or the watchdog had it terminated. */
  private died(batch: Call[], hung: boolean, err: Error): void {
    this.endBatch(batch);
    if (this.state === 'closed') {
      this.fail(batch, new EngineError(EngineCode.Shutdown, `${this.label} was shut down`));
      return;
    }
    const error = hung
      ? new EngineError(
          EngineCode.Timeout,
          `${this.label} did not finish a batch within model_timeout_ms (${this.config.model_timeout_ms} ms); its worker thread was terminated and is being replaced`,
        )
      : new EngineError(EngineCode.Internal, `${this.label}: worker thread crashed (${err.message}); it is being replaced`);
    this.fail(batch, error);
    this.restart(hung ? 'hung batch terminated' : `crashed: ${err.message}`);
  }

  private fail(calls: Call[], error: EngineError): void {
    for (const c of calls) {
      if (c.settled) continue;
      c.settled = true;
      this.errors++;
      c.reject(error);
    }
  }

  /** Piscina has started a fresh thread: load the model into it, sending queued inputs elsewhere meanwhile. */
  private restart(reason: string): void {
    this.restarts++;
    this.state = 'restarting';
    this.log.error({ model: this.model, instance: this.index, reason }, 'engine worker lost; replacing it');
    this.reroute();
    this.reloadWorker();
  }

  private reloadWorker(): void {
    this.load().then(
      () => this.log.info({ model: this.model, instance: this.index }, 'engine worker replaced and loaded'),
      (err: Error) => {
        if (this.state === 'closed') return;
        this.state = 'failed';
        const delay = RELOAD_BACKOFF_MS[Math.min(this.failedLoads++, RELOAD_BACKOFF_MS.length - 1)]!;
        this.log.error({ model: this.model, instance: this.index, err: err.message, retryMs: delay }, 'engine worker could not load its model');
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          if (this.state !== 'closed') this.reloadWorker();
        }, delay);
        this.retryTimer.unref();
      },
    );
  }

  /** Hands queued calls back to the model to place on other instances. */
  reroute(): void {
    if (this.queue.length === 0) return;
    const calls = this.queue.splice(0);
    for (const c of calls) {
      c.owner = null;
      c.queued = false;
    }
    this.hooks.reroute(calls);
    this.checkIdle();
  }

  /** Resolves once nothing is queued here and no batch is running. */
  idle(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private checkIdle(): void {
    if (this.outstanding > 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters.splice(0);
    for (const w of waiters) w();
  }

  /** Ends the worker thread; anything still queued or running fails with `reason`. */
  async close(reason = `${this.label} was shut down`): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const t of [this.batchTimer, this.retryTimer, this.watchdog]) if (t) clearTimeout(t);
    const queued = this.queue.splice(0);
    this.fail(queued, new EngineError(EngineCode.Shutdown, reason));
    if (this.inFlight) this.fail(this.inFlight, new EngineError(EngineCode.Shutdown, reason));
    this.checkIdle();
    await this.pool.destroy();
  }

  stats(): Omit<ModelStats, 'cacheHits' | 'cacheMisses' | 'cacheHitRate' | 'cacheEntries' | 'cacheBytes'> {
    return {
      model: this.model,
      instance: this.index,
      loaded: this.state === 'ready',
      state: this.state,
      queueDepth: this.queue.length,
      inFlight: this.running,
      calls: this.latency.count,
      batches: this.batches,
      avgBatchSize: this.batches === 0 ? 0 : this.batchedCalls / this.batches,
      avgLatencyUs: this.latency.averageUs,
      p99LatencyUs: this.latency.percentileUs(99),
      errors: this.errors,
      restarts: this.restarts,
      dims: this.info?.dims ?? null,
    };
  }
}
