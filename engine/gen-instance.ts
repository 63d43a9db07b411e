// One generation slot, main-thread side: a piscina pool pinned to one worker
// thread that runs the decode loop (gen-worker.ts), the slot's admission
// into the running batch, and replacement after a crash or hang.
//
// Admission happens here so the limits follow reloads and the queue can be
// counted and cancelled without asking the worker: a queued sequence is sent
// to the worker when the running batch has fewer than max_batch_size
// sequences and the KV cache they may reach (prompt bytes, an upper bound of
// byte-level tokens, plus max_new_tokens) fits in kv_cache_mb. The worker
// joins it at its next step.
//
// Isolation: the loop is one long piscina task. If it makes no progress for
// model_timeout_ms while sequences run, the task is aborted (piscina
// terminates the thread); a thread that dies on its own rejects the task.
// Either way only the running sequences fail, piscina starts a new thread,
// and the slot loads the model into it and serves again.

import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { Logger } from '../pooler/logger.js';
import type { ModelConfig } from '../config/models.js';
import { EngineCode, EngineError } from './errors.js';
import type { ModelInfo, WorkerData } from './worker-protocol.js';
import type { FinishReason, FromWorker, GenTask, TokenCandidate, ToWorker } from './gen-protocol.js';
import type { GenerateParams } from './sampling.js';
import { LatencyWindow, RateWindow, type ModelStats } from './stats.js';

const WORKER_FILE = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './gen-worker.ts' : './gen-worker.js', import.meta.url));
const RELOAD_BACKOFF_MS = [250, 1000, 5000, 30_000];
const MB = 1024 * 1024;

export interface GenResult {
  text: string;
  promptTokens: number;
  tokens: number;
  reason: FinishReason;
  /** pgml.infer: the top next-token candidates, most probable first. */
  top?: TokenCandidate[];
}

/** One prompt of one generate() call, from admission to its result. */
export interface GenCall {
  readonly id: number;
  readonly prompt: string;
  readonly params: GenerateParams;
  readonly arrivedAt: number;
  /** Streaming: called with each piece of new text. */
  readonly onText: ((delta: string) => void) | null;
  /** > 0: a one-forward-pass call for this many next-token candidates (pgml.infer), not a generation. */
  readonly top: number;
  owner: GenInstance | null;
  queued: boolean;
  settled: boolean;
  /** KV bytes reserved while running. */
  kvBytes: number;
  /** When its last token was reported (performance.now()), for inter-token latency. */
  lastTokenAt?: number;
  resolve(r: GenResult): void;
  reject(e: EngineError): void;
}

export interface GenInstanceHooks {
  reroute(calls: GenCall[]): void;
}

type Reply = { ok: true; info: ModelInfo } | { ok: true } | { ok: false; message: string };

export class GenInstance {
  state: ModelStats['state'] = 'loading';
  retiring = false;
  info: ModelInfo | null = null;
  private readonly queue: GenCall[] = [];
  private readonly running = new Map<number, GenCall>();
  private kvUsed = 0;
  private readonly pool: Piscina<GenTask, Reply>;
  private port: MessagePort | null = null;
  private abort: AbortController | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private failedLoads = 0;
  private idleWaiters: (() => void)[] = [];
  readonly latency = new LatencyWindow();
  readonly firstToken = new LatencyWindow();
  readonly interToken = new LatencyWindow();
  readonly tokenRate = new RateWindow();
  steps = 0;
  stepSequences = 0;
  decodeSteps = 0;
  decodeSequences = 0;
  tokens = 0;
  errors = 0;
  restarts = 0;

  constructor(
    readonly model: string,
    readonly index: number,
    private config: ModelConfig,
    workerHooks: string | null,
    private readonly log: Logger,
    private readonly hooks: GenInstanceHooks,
  ) {
    const workerData: WorkerData = { model, config, hooks: workerHooks };
    this.pool = new Piscina<GenTask, Reply>({
      filename: WORKER_FILE,
      minThreads: 1,
      maxThreads: 1,
      // The long serve task and the load task never overlap, but load must not wait behind serve.
      concurrentTasksPerWorker: 2,
      idleTimeout: Infinity,
      atomics: 'disabled',
      workerData,
    });
    this.pool.on('error', (err: Error) => {
      if (this.state === 'ready' && this.running.size === 0) this.restart(`worker error: ${err.message}`);
    });
  }

  private get label(): string {
    return `model "${this.model}" instance ${this.index}`;
  }

  async load(): Promise<ModelInfo> {
    const reply = await this.pool.run({ op: 'load' });
    if (!reply.ok || !('info' in reply)) throw new Error(reply.ok ? 'unexpected reply to load' : reply.message);
    this.info = reply.info;
    this.failedLoads = 0;
    if (this.state !== 'closed') {
      this.serve();
      this.state = 'ready';
    }
    this.pump();
    return reply.info;
  }

  /** Starts the worker's decode loop, talking over a fresh MessageChannel. */
  private serve(): void {
    const { port1, port2 } = new MessageChannel();
    const abort = new AbortController();
    this.port = port1;
    this.abort = abort;
    port1.on('message', (m: FromWorker) => this.onMessage(m));
    this.pool.run({ op: 'serve', port: port2 }, { transferList: [port2], signal: abort.signal }).then(
      () => {},
      (err: Error) => {
        if (this.abort === abort) this.died(abort.signal.aborted, err);
      },
    );
  }

  updateConfig(config: ModelConfig): void {
    this.config = config;
    this.pump();
  }

  get outstanding(): number {
    return this.queue.length + this.running.size;
  }

  get queued(): number {
    return this.queue.length;
  }

  get runningCount(): number {
    return this.running.size;
  }

  enqueue(calls: readonly GenCall[]): void {
    for (const c of calls) {
      c.owner = this;
      c.queued = true;
      this.queue.push(c);
    }
    this.pump();
  }

  /** A call that timed out or was cancelled: out of the queue, or out of the running batch at the next step. */
  drop(call: GenCall, counted = true): void {
    if (counted) this.errors++;
    if (call.queued) {
      const i = this.queue.indexOf(call);
      if (i >= 0) this.queue.splice(i, 1);
      call.queued = false;
    } else if (this.running.delete(call.id)) {
      this.kvUsed -= call.kvBytes;
      this.port?.postMessage({ t: 'cancel', id: call.id } satisfies ToWorker);
      this.pump();
    }
    this.checkIdle();
  }

  private kvNeed(call: GenCall): number {
    const g = this.info?.generation;
    if (!g) return 0;
    const tokens = Math.min(Buffer.byteLength(call.prompt, 'utf8') + 1 + call.params.maxNewTokens, g.maxPositions);
    return tokens * g.kvBytesPerToken;
  }

  private pump(): void {
    if (this.state !== 'ready' || !this.port) return;
    const budget = this.config.kv_cache_mb * MB;
    while (this.queue.length > 0 && this.running.size < this.config.max_batch_size) {
      const call = this.queue[0]!;
      const need = this.kvNeed(call);
      // One sequence always runs, however large: a slot that never admits it would only time it out.
      if (this.running.size > 0 && this.kvUsed + need > budget) break;
      this.queue.shift();
      call.queued = false;
      call.kvBytes = need;
      this.kvUsed += need;
      this.running.set(call.id, call);
      this.port.postMessage({ t: 'add', id: call.id, prompt: call.prompt, params: call.params, stream: call.onText !== null, top: call.top } satisfies ToWorker);
      if (!this.watchdog) this.touch();
    }
  }

  /**
   * The worker reported progress. While it holds sequences it must report
   * again within model_timeout_ms or be terminated. A sequence dropped here
   * (timeout, cancel) still counts until the worker says it is idle: a step
   * that hangs must not outlive its callers unnoticed.
   */
  private touch(idle = false): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
    if (idle && this.running.size === 0) return;
    const abort = this.abort;
    this.watchdog = setTimeout(() => abort?.abort(), this.config.model_timeout_ms);
  }

  private onMessage(m: FromWorker): void {
    this.touch(m.t === 'idle');
    if (m.t === 'idle') return;
    if (m.t === 'step') {
      const now = performance.now();
      // Every sequence of a pass, prefill or decode, got one token from it.
      this.steps++;
      this.stepSequences += m.size;
      this.tokens += m.size;
      this.tokenRate.add(m.size, now);
      for (const id of m.firstTokenIds) {
        const c = this.running.get(id);
        if (!c) continue;
        this.firstToken.record((now - c.arrivedAt) * 1000);
        c.lastTokenAt = now;
      }
      if (m.decodedIds.length > 0) {
        this.decodeSteps++;
        this.decodeSequences += m.decodedIds.length;
        for (const id of m.decodedIds) {
          const c = this.running.get(id);
          if (c?.lastTokenAt === undefined) continue;
          this.interToken.record((now - c.lastTokenAt) * 1000);
          c.lastTokenAt = now;
        }
      }
      return;
    }
    const call = this.running.get(m.id);
    if (!call) return; // cancelled or timed out meanwhile
    if (m.t === 'text') {
      if (!call.settled) call.onText?.(m.delta);
      return;
    }
    this.running.delete(m.id);
    this.kvUsed -= call.kvBytes;
    if (!call.settled) {
      call.settled = true;
      if (m.t === 'done') {
        this.latency.record((performance.now() - call.arrivedAt) * 1000);
        call.resolve({ text: m.text, promptTokens: m.promptTokens, tokens: m.tokens, reason: m.reason, top: m.top });
      } else {
        this.errors++;
        call.reject(new EngineError(EngineCode.Internal, `${this.label}: ${m.message}`));
      }
    }
    this.pump();
    this.checkIdle();
  }

  /** The worker thread is gone (crash, or terminated by the watchdog). */
  private died(hung: boolean, err: Error): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
    this.port?.close();
    this.port = null;
    this.abort = null;
    const lost = [...this.running.values()];
    this.running.clear();
    this.kvUsed = 0;
    if (this.state === 'closed') {
      this.fail(lost, new EngineError(EngineCode.Shutdown, `${this.label} was shut down`));
      return;
    }
    const error = hung
      ? new EngineError(
          EngineCode.Timeout,
          `${this.label} made no progress within model_timeout_ms (${this.config.model_timeout_ms} ms); its worker thread was terminated and is being replaced`,
        )
      : new EngineError(EngineCode.Internal, `${this.label}: worker thread crashed (${err.message}); it is being replaced`);
    this.fail(lost, error);
    this.restarts++;
    this.state = 'restarting';
    this.log.error({ model: this.model, instance: this.index, reason: hung ? 'hung' : err.message }, 'generation worker lost; replacing it');
    this.reroute();
    this.reloadWorker();
    this.checkIdle();
  }

  private restart(reason: string): void {
    this.restarts++;
    this.state = 'restarting';
    this.abort = null;
    this.port?.close();
    this.port = null;
    this.log.error({ model: this.model, instance: this.index, reason }, 'generation worker lost; replacing it');
    this.reroute();
    this.reloadWorker();
  }

  private reloadWorker(): void {
    this.load().then(
      () => this.log.info({ model: this.model, instance: this.index }, 'generation worker replaced and loaded'),
      (err: Error) => {
        if (this.state === 'closed') return;
        this.state = 'failed';
        const delay = RELOAD_BACKOFF_MS[Math.min(this.failedLoads++, RELOAD_BACKOFF_MS.length - 1)]!;
        this.log.error({ model: this.model, instance: this.index, err: err.message, retryMs: delay }, 'generation worker could not load its model');
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          if (this.state !== 'closed') this.reloadWorker();
        }, delay);
        this.retryTimer.unref();
      },
    );
  }

  private fail(calls: GenCall[], error: EngineError): void {
    for (const c of calls) {
      if (c.settled) continue;
      c.settled = true;
      this.errors++;
      c.reject(error);
    }
  }

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

  idle(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private checkIdle(): void {
    if (this.outstanding > 0 || this.idleWaiters.length === 0) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  async close(reason = `${this.label} was shut down`): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const t of [this.retryTimer, this.watchdog]) if (t) clearTimeout(t);
    this.fail(this.queue.splice(0), new EngineError(EngineCode.Shutdown, reason));
    this.fail([...this.running.values()], new EngineError(EngineCode.Shutdown, reason));
    this.running.clear();
    this.checkIdle();
    const abort = this.abort;
    this.abort = null;
    this.port?.postMessage({ t: 'close' } satisfies ToWorker);
    this.port?.close();
    this.port = null;
    abort?.abort();
    await this.pool.destroy();
  }

  stats(): Omit<ModelStats, 'cacheHits' | 'cacheMisses' | 'cacheHitRate' | 'cacheEntries' | 'cacheBytes'> {
    return {
      model: this.model,
      instance: this.index,
      loaded: this.state === 'ready',
      state: this.state,
      queueDepth: this.queue.length,
      inFlight: this.running.size,
      calls: this.latency.count,
      batches: this.steps,
      avgBatchSize: this.steps === 0 ? 0 : this.stepSequences / this.steps,
      avgLatencyUs: this.latency.averageUs,
      p99LatencyUs: this.latency.percentileUs(99),
      errors: this.errors,
      restarts: this.restarts,
      dims: null,
      generation: {
        tokens: this.tokens,
        tokensPerSecond: this.tokenRate.perSecond(performance.now()),
        decodeSteps: this.decodeSteps,
        decodeBatchSize: this.decodeSteps === 0 ? 0 : this.decodeSequences / this.decodeSteps,
        ttftP50Us: this.firstToken.percentileUs(50),
        ttftP99Us: this.firstToken.percentileUs(99),
        itlP50Us: this.interToken.percentileUs(50),
        itlP99Us: this.interToken.percentileUs(99),
      },
    };
  }
}
