// The statement texts of a pool known to run longer than
// pipeline_max_wait_ms (pipelining: server/pipeline.ts). The age of the
// unit running on a connection tells only how long it has run so far: a
// slow statement that has just started looks as fresh as a fast one, and a
// fast unit queued behind it waits its whole run (the mixed workload's
// p99). So each unit's run time is measured on its connection, from when it
// starts to run to its last ReadyForQuery, and a text whose smoothed run
// time is past the bound is not pipelined: nothing queues behind it, and it
// queues behind nothing.
//
// The bound is pipeline_max_wait_ms, or a few times the pool's typical run
// time when that is more: a run time seen from the pooler includes the
// pooler's and the server's queues, so on a loaded machine every statement
// looks slower than 1 ms, and a fixed bound would then stop pipelining just
// where it saves most. Slow means slow beside the others.
//
// Keyed by the exact text (a Query's, or the statement's of a Parse or
// Bind): extended-protocol and prepared texts repeat, and so do the simple
// texts of most applications. A simple text carrying fresh literals each
// time is never learned; the age bound still covers it.

/** Texts remembered at most; the oldest learned goes first (Map order). */
const CAPACITY = 512;
/** Longer texts are not remembered (their memory would outweigh what they save). */
const MAX_KEY_LENGTH = 4096;
/** Weight of the newest run in a text's smoothed run time. */
const ALPHA = 0.25;
/** Weight of the newest run in the pool's typical run time (every unit measured). */
const TYPICAL_ALPHA = 1 / 64;
/** Slow: this many times the typical run time, at least. */
const TYPICAL_FACTOR = 3;

export class SlowStatements {
  /** Text -> smoothed run time in ms, for texts seen past the bound. */
  private readonly runMs = new Map<string, number>();
  /** Smoothed run time of every unit measured on the pool, in ms (-1: none yet; the first sets it). */
  private typicalMs = -1;

  /** `maxWaitMs`: read at each use (a reload replaces the pool's settings). */
  constructor(private readonly maxWaitMs: () => number) {}

  get size(): number {
    return this.runMs.size;
  }

  /** Whether `sql` is known to run past the bound. */
  has(sql: string): boolean {
    return this.runMs.size > 0 && this.runMs.has(sql);
  }

  /**
   * A unit whose first statement is `sql` ran `ms` (every measured unit
   * moves the pool's typical run time). Only texts once seen slow are kept; one whose smoothed run time is back within the bound is
   * forgotten (one late reply marks a fast text for a few runs only).
   */
  observe(sql: string, ms: number): void {
    this.typicalMs = this.typicalMs < 0 ? ms : this.typicalMs + TYPICAL_ALPHA * (ms - this.typicalMs);
    const bound = Math.max(this.maxWaitMs(), TYPICAL_FACTOR * this.typicalMs);
    const known = this.runMs.get(sql);
    if (known === undefined) {
      if (ms <= bound || sql.length > MAX_KEY_LENGTH) return;
      if (this.runMs.size >= CAPACITY) this.runMs.delete(this.runMs.keys().next().value as string);
      this.runMs.set(sql, ms);
      return;
    }
    const smoothed = known + ALPHA * (ms - known);
    if (smoothed <= bound) this.runMs.delete(sql);
    else this.runMs.set(sql, smoothed);
  }
}
