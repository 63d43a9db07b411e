// The clients waiting for a connection of one pool (pool.ts): served first
// come, first served, each failing at its checkout deadline. One timer per
// pool, armed for the earliest deadline, not one per waiter. With
// pipelining, a waiter that may share (share.ts) can also be given a place
// behind a busy connection's unit instead (offerBehind).

import type { ServerConnection } from '../server/connection.js';
import type { PoolSettings } from './pool-settings.js';
import type { TrafficStats } from '../stats/traffic.js';
import { SqlState } from '../protocol/codes.js';
import { hasRoomBehind, type Sharer } from './share.js';

/** A pooler-side failure to hand out a connection, with the SQLSTATE the client gets. */
export class PoolError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

interface Waiter {
  resolve(conn: ServerConnection): void;
  reject(err: PoolError): void;
  since: number;
  /** Date.now() past which it fails (checkout timeout); Infinity: never. */
  deadline: number;
  /** Its unit may also be queued behind a busy connection's (pipelining); null: it needs a connection of its own. */
  sharer: Sharer | null;
}

/** Waiters looked at for a place behind a connection's unit, from the front of the queue. */
const SHARE_SCAN = 32;

/** What the queue reads of its pool (Pool; an interface, so this file imports nothing of pool.ts). */
export interface WaitingPool {
  /** Replaced by a reload: read at each use. */
  readonly settings: PoolSettings;
  readonly stats: TrafficStats;
  /** Paused pools hold their waiters past the deadline. */
  readonly isPaused: boolean;
}

export class WaitQueue {
  private readonly waiters: Waiter[] = [];
  /** Fires at the earliest waiter deadline (expire); null while none is armed. */
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly pool: WaitingPool) {}

  get length(): number {
    return this.waiters.length;
  }

  /** How long the first in line has waited, in ms (0 when nobody waits). */
  maxWaitMs(now: number): number {
    return this.waiters.length ? now - this.waiters[0].since : 0;
  }

  /** Join the end of the queue; `resolve` or `reject` is called once, later. */
  push(resolve: (conn: ServerConnection) => void, reject: (err: PoolError) => void, sharer: Sharer | null): void {
    const since = Date.now();
    const timeout = this.pool.settings.checkoutTimeout;
    this.waiters.push({ resolve, reject, since, deadline: timeout > 0 ? since + timeout : Infinity, sharer });
    if (timeout > 0 && !this.timer) this.timer = setTimeout(this.expire, timeout);
  }

  /** Hand `conn` to the first in line (there is one). */
  serveFirst(conn: ServerConnection): void {
    this.waiters.shift()!.resolve(conn);
  }

  /** Fail the first in line, if any (a connect failed: it learns why instead of waiting for its timeout). */
  failFirst(err: PoolError): void {
    this.waiters.shift()?.reject(err);
  }

  /** Fail the waiters past their deadline and re-arm for the next one. */
  private readonly expire = (): void => {
    this.timer = null;
    const now = Date.now();
    let next = Infinity;
    for (let i = 0; i < this.waiters.length; ) {
      const w = this.waiters[i];
      if (w.deadline <= now) {
        const timeout = this.pool.settings.checkoutTimeout;
        // Paused pools hold clients: they wait, they do not fail (another full timeout).
        if (this.pool.isPaused) w.deadline = timeout > 0 ? now + timeout : Infinity;
        else {
          this.waiters.splice(i, 1);
          this.pool.stats.totals.errors += 1;
          w.reject(new PoolError(SqlState.TooManyConnections, `could not get connection from the pool: timed out after ${timeout} ms`));
          continue;
        }
      }
      if (w.deadline < next) next = w.deadline;
      i++;
    }
    if (next !== Infinity) this.timer = setTimeout(this.expire, Math.max(1, next - now));
  };

  /**
   * `conn` is busy with a unit that others may queue behind (the pool is
   * saturated): give the sharers near the front of the queue that accept it
   * a place on it, while it has room.
   */
  offerBehind(conn: ServerConnection): void {
    const settings = this.pool.settings.pipeline;
    const now = performance.now();
    for (let i = 0; i < this.waiters.length && i < SHARE_SCAN && hasRoomBehind(conn, settings, now); ) {
      const sharer = this.waiters[i].sharer;
      if (sharer === null || !sharer.accepts(conn)) {
        i++;
        continue;
      }
      this.waiters.splice(i, 1);
      this.pool.stats.totals.pipelined += 1;
      sharer.onBehind(conn);
    }
    if (this.waiters.length === 0) this.stopTimer();
  }

  /** Nobody waits any more: the deadline timer goes. */
  stopTimer(): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
  }

  /** The pool closes: every waiter fails. */
  close(): void {
    this.stopTimer();
    for (const w of this.waiters.splice(0)) w.reject(new PoolError(SqlState.AdminShutdown, 'pool is shutting down'));
  }
}
