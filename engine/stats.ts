// What the engine reports per model instance (SHOW MODELS, Prometheus), and
// the latency window behind its p99.

/** One row per (model, instance). Cache figures are the model's, repeated on each of its rows. */
export interface ModelStats {
  model: string;
  instance: number;
  /** The instance's worker has the model loaded and takes batches. */
  loaded: boolean;
  state: 'loading' | 'ready' | 'restarting' | 'failed' | 'closed';
  /** Inputs waiting for this instance (not yet in a batch). */
  queueDepth: number;
  /** Inputs in the batch the worker is running now. */
  inFlight: number;
  /** Inputs embedded by this instance (cache hits are not calls). */
  calls: number;
  batches: number;
  avgBatchSize: number;
  /** From arrival at the engine to the result, in microseconds. */
  avgLatencyUs: number;
  /** Over the last LATENCY_WINDOW calls. */
  p99LatencyUs: number;
  /** Inputs that failed here: crashes, hangs, timeouts, model errors. */
  errors: number;
  /** Times the worker was replaced (crash or hang). */
  restarts: number;
  /** Output dimensions, once loaded. */
  dims: number | null;
  cacheHits: number;
  cacheMisses: number;
  /** hits / (hits + misses); 0 before any lookup. */
  cacheHitRate: number;
  cacheEntries: number;
  cacheBytes: number;
  /** Text-generation slots only (absent for embedding instances). */
  generation?: GenerationStats;
}

/**
 * A generation slot's figures, measured on the main thread from the messages
 * its decode loop sends (a step's sequences, first tokens, results). Running
 * sequences and queued prompts are ModelStats.inFlight and queueDepth.
 */
export interface GenerationStats {
  /** Tokens generated since start (one per sequence per forward pass, EOS included). */
  tokens: number;
  /** Tokens generated per second over the last RATE_WINDOW_MS (or since the first token, if more recent). */
  tokensPerSecond: number;
  decodeSteps: number;
  /** Sequences per decode step (prefill passes excluded), since start. */
  decodeBatchSize: number;
  /** From a prompt reaching the engine (queue included) to its first token, over the last LATENCY_WINDOW prompts. */
  ttftP50Us: number;
  ttftP99Us: number;
  /** Between two consecutive tokens of one sequence, over the last LATENCY_WINDOW tokens. */
  itlP50Us: number;
  itlP99Us: number;
}

export const LATENCY_WINDOW = 2048;
export const RATE_WINDOW_MS = 10_000;
const RATE_BUCKET_MS = 100;

/** Running totals plus a ring of recent latencies, for the average and the p99. */
export class LatencyWindow {
  private readonly ring = new Float64Array(LATENCY_WINDOW);
  private next = 0;
  private filled = 0;
  count = 0;
  sumUs = 0;

  record(us: number): void {
    this.ring[this.next] = us;
    this.next = (this.next + 1) % LATENCY_WINDOW;
    if (this.filled < LATENCY_WINDOW) this.filled++;
    this.count++;
    this.sumUs += us;
  }

  get averageUs(): number {
    return this.count === 0 ? 0 : this.sumUs / this.count;
  }

  /** Sorting 2,048 numbers on demand is cheaper than keeping a histogram on the hot path. */
  percentileUs(p: number): number {
    if (this.filled === 0) return 0;
    const sorted = this.ring.slice(0, this.filled).sort();
    return sorted[Math.min(this.filled - 1, Math.ceil((p / 100) * this.filled) - 1)]!;
  }
}

/** Events per second over the last RATE_WINDOW_MS, counted in 100 ms buckets (one add is O(1)). */
export class RateWindow {
  private readonly counts = new Float64Array(RATE_WINDOW_MS / RATE_BUCKET_MS);
  /** Which 100 ms period each bucket holds now. */
  private readonly periods = new Float64Array(RATE_WINDOW_MS / RATE_BUCKET_MS).fill(-1);
  private firstAt = -1;

  add(n: number, nowMs: number): void {
    if (this.firstAt < 0) this.firstAt = nowMs;
    const period = Math.floor(nowMs / RATE_BUCKET_MS);
    const i = period % this.counts.length;
    if (this.periods[i] !== period) {
      this.periods[i] = period;
      this.counts[i] = 0;
    }
    this.counts[i] += n;
  }

  perSecond(nowMs: number): number {
    if (this.firstAt < 0) return 0;
    const period = Math.floor(nowMs / RATE_BUCKET_MS);
    const oldest = period - this.counts.length + 1;
    let sum = 0;
    for (let i = 0; i < this.counts.length; i++) if (this.periods[i]! >= oldest && this.periods[i]! <= period) sum += this.counts[i]!;
    // A burst that began less than a window ago is divided by the time since it began, not by the whole window.
    const spanMs = Math.min(RATE_WINDOW_MS, Math.max(RATE_BUCKET_MS, nowMs - Math.max(this.firstAt, oldest * RATE_BUCKET_MS)));
    return (sum * 1000) / spanMs;
  }
}
