// Traffic counters of one pool, with PgBouncer/PgCat's 15-second averages.
//
// The hot path only adds numbers to fields; averages are computed by a timer
// (`roll`), never per query. Times are kept in microseconds; SHOW STATS and
// the exporter print them in PgCat's units (`msOf`): query and transaction
// times in milliseconds, waits in microseconds.

/** Length of the averaging window, as PgBouncer and PgCat (stats_period = 15 s). */
export const STATS_PERIOD_MS = 15_000;

export interface TrafficTotals {
  xactCount: number;
  queryCount: number;
  received: number;
  sent: number;
  xactTimeUs: number;
  queryTimeUs: number;
  waitTimeUs: number;
  errors: number;
  /** Units queued behind another client's on a busy server connection (pipelining). */
  pipelined: number;
}

export interface TrafficAverages {
  /** Transactions per second over the last window. */
  xactCount: number;
  /** Queries per second over the last window. */
  queryCount: number;
  /** Bytes per second from clients. */
  recv: number;
  /** Bytes per second to clients. */
  sent: number;
  /** Errors per second. */
  errors: number;
  /** Mean transaction duration (µs) over the window's transactions. */
  xactTimeUs: number;
  /** Mean query duration (µs). */
  queryTimeUs: number;
  /** Time (µs) clients waited for a server per second of the window, as PgCat's avg_wait_time. */
  waitTimeUs: number;
}

/**
 * PgCat reports query times in whole milliseconds (Duration::as_millis).
 * PgLynx sums exact durations and truncates the sum, so fast queries add
 * up instead of each counting as 0 ms.
 */
export const msOf = (us: number): number => Math.floor(us / 1000);

function zero(): TrafficTotals {
  return { xactCount: 0, queryCount: 0, received: 0, sent: 0, xactTimeUs: 0, queryTimeUs: 0, waitTimeUs: 0, errors: 0, pipelined: 0 };
}

export class TrafficStats {
  readonly totals: TrafficTotals = zero();
  averages: TrafficAverages = { xactCount: 0, queryCount: 0, recv: 0, sent: 0, errors: 0, xactTimeUs: 0, queryTimeUs: 0, waitTimeUs: 0 };
  private previous: TrafficTotals = zero();
  private previousAt = Date.now();

  /** Close a window: averages become the rates and means since the last roll. */
  roll(now = Date.now()): void {
    const seconds = Math.max((now - this.previousAt) / 1000, 0.001);
    const t = this.totals;
    const p = this.previous;
    const xacts = t.xactCount - p.xactCount;
    const queries = t.queryCount - p.queryCount;
    this.averages = {
      xactCount: Math.round(xacts / seconds),
      queryCount: Math.round(queries / seconds),
      recv: Math.round((t.received - p.received) / seconds),
      sent: Math.round((t.sent - p.sent) / seconds),
      errors: Math.round((t.errors - p.errors) / seconds),
      xactTimeUs: xacts > 0 ? Math.round((t.xactTimeUs - p.xactTimeUs) / xacts) : 0,
      queryTimeUs: queries > 0 ? Math.round((t.queryTimeUs - p.queryTimeUs) / queries) : 0,
      waitTimeUs: Math.round((t.waitTimeUs - p.waitTimeUs) / seconds),
    };
    this.previous = { ...t };
    this.previousAt = now;
  }
}
