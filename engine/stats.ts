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
}

export const LATENCY_WINDOW = 2048;

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
