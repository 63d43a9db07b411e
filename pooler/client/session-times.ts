// SHOW STATS times of one client, driven by its state changes (see
// ClientSession.transition): time waiting for a server, time with
// statements in flight (query time), time from the first statement of a
// transaction to its end (transaction time). performance.now() marks, 0
// while a clock is stopped.

import type { TrafficStats } from '../stats/traffic.js';
import type { ClientCounters } from '../stats/client-counters.js';
import { ClientState } from './client-state.js';

export class SessionTimes {
  private waitStart = 0;
  private busyStart = 0;
  private xactStart = 0;

  /** How long the client has waited so far, in ms (0: not waiting). */
  waitingMs(now: number): number {
    return this.waitStart > 0 ? now - this.waitStart : 0;
  }

  /** The transaction in flight is gone (its server died): not counted. */
  forget(): void {
    this.busyStart = 0;
    this.xactStart = 0;
  }

  /** Count the change from `prev` to `next` into the pool's totals and the client's counters. */
  change(prev: ClientState, next: ClientState, now: number, stats: TrafficStats, counters: ClientCounters): void {
    const totals = stats.totals;
    if (next === ClientState.Waiting) this.waitStart = now;
    else if (prev === ClientState.Waiting && this.waitStart > 0) {
      const waitedUs = Math.round((now - this.waitStart) * 1000);
      totals.waitTimeUs += waitedUs;
      counters.waited(waitedUs);
      this.waitStart = 0;
    }
    if (next === ClientState.Active) {
      this.busyStart = now;
      if (this.xactStart === 0) this.xactStart = now;
    } else if (prev === ClientState.Active) {
      if (this.busyStart > 0) totals.queryTimeUs += Math.round((now - this.busyStart) * 1000);
      this.busyStart = 0;
      if (next === ClientState.Idle && this.xactStart > 0) {
        totals.xactCount += 1;
        counters.transactions += 1;
        totals.xactTimeUs += Math.round((now - this.xactStart) * 1000);
        this.xactStart = 0;
      }
    }
  }
}
