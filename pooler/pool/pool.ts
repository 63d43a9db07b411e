// A pool of server connections for one (database, user) pair.
//
// Clients wait FIFO for a connection (wait-queue.ts); a connection goes back
// to the pool only clean: nothing in flight, no open transaction, session
// state undone when a client changed it. Anything else is closed, never
// handed on.

import { ServerConnection } from '../server/connection.js';
import type { ServerOptions } from '../server/options.js';
import type { PoolSettings } from './pool-settings.js';
import { SqlState, TxStatus } from '../protocol/codes.js';
import { TrafficStats } from '../stats/traffic.js';
import { ReplyFilter } from '../prepared/replies.js';
import { ServerStatements } from '../prepared/statements.js';
import { ALL_DIRTY, Dirty, resetQuery } from '../server/reset.js';
import { shareTarget, type Sharer } from './share.js';
import { PoolError, WaitQueue } from './wait-queue.js';
import { SlowStatements } from './slow-statements.js';
import { NotifyHub } from './notify-hub.js';

export { PoolError } from './wait-queue.js';

/** What release() returns when nothing was left to wait for. */
const DONE: Promise<void> = Promise.resolve();

export interface PoolCounters {
  total: number;
  idle: number;
  active: number;
  connecting: number;
  waiting: number;
  maxWaitMs: number;
}

export class Pool {
  private readonly all = new Set<ServerConnection>();
  private idle: ServerConnection[] = [];
  private readonly waiters = new WaitQueue(this);
  private connecting = 0;
  private closed = false;
  /** PAUSE: hand out nothing until resume(); resolves waiters of pause() once nothing is checked out. */
  private paused = false;
  private pauseWaiters: (() => void)[] = [];
  /** Server parameters clients see at login, learned from the first connection. */
  serverParams: Map<string, string> | null = null;
  /** Traffic of every client of this pool (SHOW STATS, Prometheus). */
  readonly stats = new TrafficStats();
  private hub: NotifyHub | null = null;
  /** Statement texts that run past pipeline_max_wait_ms: never pipelined (slow-statements.ts). */
  readonly slowStatements = new SlowStatements(() => this.settings.pipeline.maxWaitMs);
  /** Every live server connection of this pool (SHOW SERVERS). */
  get connections(): ReadonlySet<ServerConnection> {
    return this.all;
  }

  /** Whether a connection sits idle in the pool. */
  isIdle(conn: ServerConnection): boolean {
    return this.idle.includes(conn);
  }

  constructor(public settings: PoolSettings) {}

  get counters(): PoolCounters {
    const now = Date.now();
    return {
      total: this.all.size,
      idle: this.idle.length,
      active: this.all.size - this.idle.length,
      connecting: this.connecting,
      waiting: this.waiters.length,
      maxWaitMs: this.waiters.maxWaitMs(now),
    };
  }

  /** An idle connection right now, if one is free and nobody waits before us. */
  tryAcquire(): ServerConnection | null {
    if (this.closed || this.paused || this.waiters.length > 0) return null;
    return this.takeIdle();
  }

  /** Wait FIFO for a clean connection. */
  acquire(): Promise<ServerConnection> {
    return new Promise((resolve, reject) => this.wait(resolve, reject));
  }

  /**
   * Wait FIFO for a clean connection, with callbacks (acquire's form for
   * the hot path: no promise per wait). One of them is called once, maybe
   * before this returns. A `sharer` may instead be given a place behind a
   * busy connection's unit (pipelining) when the pool is saturated and
   * nobody waits before it (FIFO: waiters are offered places first, offerBehind).
   */
  wait(onReady: (conn: ServerConnection) => void, onError: (err: PoolError) => void, sharer: Sharer | null = null): void {
    if (this.closed) return onError(new PoolError(SqlState.AdminShutdown, 'pool is shutting down'));
    const conn = this.tryAcquire();
    if (conn) return onReady(conn);
    if (sharer !== null && this.waiters.length === 0 && this.saturated) {
      const busy = shareTarget(this.all, this.settings.pipeline, sharer);
      if (busy) {
        this.stats.totals.pipelined += 1;
        return sharer.onBehind(busy);
      }
    }
    this.waiters.push(onReady, onError, sharer);
    this.pump();
  }

  /** Pipelining is on and no connection is free or can be opened: the only time units are queued behind others. */
  private get saturated(): boolean {
    return this.settings.pipeline.depth > 1 && !this.paused && this.all.size + this.connecting >= this.settings.size;
  }

  /**
   * `conn` is busy with a unit that others may queue behind (it just
   * started, or one ahead of it finished): give waiting sharers a place on it.
   */
  offerBehind(conn: ServerConnection): void {
    if (this.waiters.length === 0 || !this.saturated) return;
    this.waiters.offerBehind(conn);
  }

  /**
   * Take a connection back from a client. Resets what the client left
   * behind; closes the connection when it cannot be made clean.
   */
  release(conn: ServerConnection, opts?: { sessionReset?: boolean }): Promise<void> {
    // A reload replaced the pool this connection came from (its server
    // changed): it must not join this one.
    if (!this.all.has(conn)) {
      conn.close('pool replaced by reload');
      return DONE;
    }
    if (conn.closed) {
      this.forget(conn);
      return DONE;
    }
    if (!conn.isQuiet) {
      this.discard(conn, 'released with a query in flight');
      return DONE;
    }
    // The common case in transaction mode: nothing to undo, so no promise and no await.
    const sessionReset = opts?.sessionReset ?? false;
    if (conn.txStatus === TxStatus.Idle && !sessionReset && !this.settings.resetAlways && !(conn.dirty && this.settings.cleanupConnections)) {
      conn.dirty = 0;
      this.checkIn(conn);
      return DONE;
    }
    return this.resetThenCheckIn(conn, sessionReset);
  }

  /** Roll back and undo session state before the connection goes back (or is closed when that fails). */
  private async resetThenCheckIn(conn: ServerConnection, sessionReset: boolean): Promise<void> {
    try {
      if (conn.txStatus !== TxStatus.Idle) await conn.query('ROLLBACK');
      if (sessionReset) {
        await conn.query('DISCARD ALL');
        conn.prepared?.statements.clear();
        conn.sessionSets.clear();
      } else if (this.settings.resetAlways) {
        // What a function or procedure changed is invisible to the pooler.
        await conn.query(resetQuery(ALL_DIRTY).sql);
        conn.prepared?.statements.clear();
        conn.sessionSets.clear();
      } else if (conn.dirty && this.settings.cleanupConnections) {
        // Only what the client changed: the pooler's shared statements survive a SET.
        const reset = resetQuery(conn.dirty);
        await conn.query(reset.sql);
        if (reset.dropsStatements) conn.prepared?.statements.clear();
        if (conn.dirty & (Dirty.Params | Dirty.Other)) conn.sessionSets.clear(); // RESET ALL / DISCARD ALL undid them
      }
      conn.dirty = 0;
    } catch {
      return this.discard(conn, 'reset failed');
    }
    this.checkIn(conn);
  }

  /** A clean connection joins the idle list (or is closed: pool closed, lifetime over). */
  private checkIn(conn: ServerConnection): void {
    const now = Date.now();
    if (this.closed || !conn.isIdle || this.expired(conn, now)) return this.discard(conn, 'expired');
    conn.idleSince = now;
    this.idle.push(conn);
    this.pump();
  }

  /**
   * Close every connection (the server was banned: if one connection died,
   * the others are dead or stuck too). Clients holding one see it close and
   * recover: reads are retried elsewhere, transactions get an error.
   */
  purge(reason: string): void {
    for (const conn of [...this.all]) conn.close(reason);
    this.idle = [];
  }

  /** Drop a connection that must not be reused. */
  discard(conn: ServerConnection, reason: string): void {
    conn.close(reason);
    this.forget(conn);
  }

  /** Learn the parameters to show clients at login, connecting if need be. */
  async ensureServerParams(): Promise<Map<string, string>> {
    if (this.serverParams) return this.serverParams;
    const conn = await this.acquire();
    this.serverParams = new Map(conn.params);
    await this.release(conn);
    return this.serverParams;
  }

  /** Periodic upkeep: close idle and expired connections, keep min_pool_size warm. */
  maintain(): void {
    if (this.closed) return;
    const now = Date.now();
    const { idleTimeout, minSize } = this.settings;
    this.idle = this.idle.filter((conn) => {
      const tooIdle = idleTimeout > 0 && now - conn.idleSince > idleTimeout && this.all.size > minSize;
      if (tooIdle || this.expired(conn)) {
        conn.close('idle timeout or lifetime reached');
        this.all.delete(conn);
        return false;
      }
      return true;
    });
    while (this.all.size + this.connecting < Math.min(minSize, this.settings.size)) this.spawn();
  }

  /** Transaction mode with prepared statements renamed and shared across connections. */
  get sharesPreparedStatements(): boolean {
    return this.settings.preparedCacheSize > 0 && this.settings.mode === 'transaction';
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Stop handing out connections; resolves once none is checked out. */
  pause(): Promise<void> {
    this.paused = true;
    return new Promise((resolve) => {
      this.pauseWaiters.push(resolve);
      this.checkPaused();
    });
  }

  resume(): void {
    this.paused = false;
    this.pump();
  }

  private checkPaused(): void {
    if (!this.paused || this.all.size > this.idle.length) return;
    for (const w of this.pauseWaiters.splice(0)) w();
  }

  /** Apply new settings (reload); waiters and live connections carry on. */
  update(settings: PoolSettings): void {
    this.settings = settings;
    this.pump();
  }

  /** The pool's LISTEN connection and its listeners (notify-hub.ts), made at the first LISTEN. */
  get notifyHub(): NotifyHub {
    return (this.hub ??= new NotifyHub(() => this.settings.server, null));
  }

  close(): void {
    this.closed = true;
    this.hub?.close();
    this.waiters.close();
    for (const conn of this.idle) conn.close('pool closed');
    this.idle = [];
  }

  private expired(conn: ServerConnection, now = Date.now()): boolean {
    const lifetime = this.settings.serverLifetime;
    return lifetime > 0 && now - conn.createdAt > lifetime;
  }

  private takeIdle(): ServerConnection | null {
    while (this.idle.length > 0) {
      const conn = this.settings.roundRobin ? this.idle.shift()! : this.idle.pop()!;
      if (conn.closed) {
        this.all.delete(conn);
      } else if (this.expired(conn)) {
        // server_lifetime is enforced at checkout, not only by the periodic sweep.
        conn.close('server_lifetime reached');
        this.all.delete(conn);
      } else {
        this.trackStatements(conn);
        return conn;
      }
    }
    return null;
  }

  /**
   * Shared prepared statements need a ReplyFilter on every connection a
   * client gets. Set at checkout (the connection is idle, nothing in
   * flight), not only at connect: a reload that turns the cache on or
   * resizes it reaches connections opened before it. A filter stays once
   * set (its statements live on the server), whatever a later reload says.
   */
  private trackStatements(conn: ServerConnection): void {
    if (!this.sharesPreparedStatements) return;
    const size = this.settings.preparedCacheSize;
    if (!conn.prepared) conn.prepared = new ReplyFilter(new ServerStatements(size));
    else conn.prepared.statements.capacity = size;
  }

  private forget(conn: ServerConnection): void {
    this.all.delete(conn);
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    this.pump();
  }

  /** Hand idle connections to waiters in order; open new ones while under size. */
  private pump(): void {
    if (this.paused) {
      this.checkPaused();
      return;
    }
    while (this.waiters.length > 0) {
      const conn = this.takeIdle();
      if (!conn) break;
      this.waiters.serveFirst(conn);
    }
    if (this.waiters.length === 0) this.waiters.stopTimer();
    const wanted = this.waiters.length - this.connecting;
    for (let i = 0; i < wanted && this.all.size + this.connecting < this.settings.size; i++) this.spawn();
  }

  private spawn(): void {
    this.connecting += 1;
    void this.connect().then(
      (conn) => {
        this.connecting -= 1;
        if (this.closed) {
          conn.close('pool closed');
          return;
        }
        this.all.add(conn);
        if (!this.serverParams) this.serverParams = new Map(conn.params);
        conn.onClose(() => this.forget(conn));
        conn.idleSince = Date.now();
        this.idle.push(conn);
        this.pump();
      },
      (err: Error) => {
        this.connecting -= 1;
        this.stats.totals.errors += 1;
        // A failed connect fails the client that has waited longest, so it
        // learns why instead of waiting for its timeout.
        this.waiters.failFirst(new PoolError(SqlState.ConnectionFailure, err.message));
        this.pump();
      },
    );
  }

  /** Open one server connection (the seam unit tests override: tests/unit/pool-checkout.test.ts). */
  protected openServer(options: ServerOptions): Promise<ServerConnection> {
    return ServerConnection.connect(options);
  }

  /** Open and prewarm one connection. */
  private async connect(): Promise<ServerConnection> {
    const conn = await this.openServer(this.settings.server);
    conn.unitTimings = this.slowStatements;
    this.trackStatements(conn);
    try {
      for (const sql of this.settings.prewarm) await conn.query(sql);
    } catch (err) {
      conn.close('prewarm failed');
      throw new Error(`prewarm query failed on ${conn.address}: ${(err as Error).message}`);
    }
    return conn;
  }

}
