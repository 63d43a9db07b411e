// A server connection checked out of its pool by one owner (a client
// session, a shard link). The guard is the only place that points a server
// at its owner and the only place that decides, when the owner lets go,
// whether the server goes back to its pool (nothing in flight: reset and
// reused) or is closed (a reply still owed would reach the next client).
//
// One guard lives as long as its owner and is refilled at each checkout, so
// a transaction-mode client allocates nothing per transaction here.
//
// With pipelining (server/pipeline.ts) a server may carry units of several
// owners at once: the guard of a unit queued behind another holds the
// server without being its owner yet (follow), and whoever lets go while
// others' units are still on the server leaves it to them.

import type { ServerConnection, ServerOwner } from '../server/connection.js';
import type { Pool } from './pool.js';

export class Checkout {
  /** The checked-out server; null between checkouts. */
  server: ServerConnection | null = null;
  /** The pool `server` came from (kept after release: the pool last used). */
  pool: Pool | null = null;

  constructor(readonly owner: ServerOwner) {}

  /** The server when the owner may send to it directly: it is the server's owner and no other unit is queued behind its own. */
  get direct(): ServerConnection | null {
    const server = this.server;
    return server !== null && server.owner === this.owner && !server.hasUnitsBehind ? server : null;
  }

  /** Take `server` (just acquired from `pool`): its replies go to the owner from now on. */
  hold(pool: Pool, server: ServerConnection): void {
    this.pool = pool;
    this.server = server;
    server.owner = this.owner;
  }

  /**
   * Queue a unit of `owed` ReadyForQuery behind what `server` (a busy
   * connection of `pool`) runs; the replies come to the owner once the
   * units ahead are answered. The caller sends the unit right after.
   * `key`: the text of its first statement, whose run time is measured.
   */
  follow(pool: Pool, server: ServerConnection, owed: number, key: string | null): void {
    this.pool = pool;
    this.server = server;
    server.queueBehind(this.owner, owed, key);
  }

  /**
   * Let go of the server: back to its pool when nothing is in flight (the
   * pool rolls back and resets it: `sessionReset` for a session-mode
   * client), closed otherwise, with `reason` in the log. A server that
   * carries other owners' units is left to them.
   */
  release(reason: string, sessionReset = false): void {
    const server = this.server;
    const pool = this.pool;
    if (!server || !pool) return;
    this.server = null;
    if (server.owner !== this.owner) {
      // Our unit is done (the next one runs now: room for another behind it), or it still waits behind
      // another and its owner is leaving: its replies go nowhere, and whoever is last gives the server back.
      const queued = server.pipeline?.waiting(this.owner);
      if (queued) queued.owner = new Leftover(pool);
      else pool.offerBehind(server);
      return;
    }
    if (server.hasUnitsBehind) {
      // Leaving mid-unit with others' units behind ours: they carry on; the rest of our reply is dropped.
      server.owner = new Leftover(pool);
      return;
    }
    server.owner = null;
    if (server.isQuiet) void pool.release(server, sessionReset ? { sessionReset } : undefined);
    else pool.discard(server, reason);
  }

  /** The server died under the owner (the connection already let go of it): forget it. */
  lost(): void {
    this.server = null;
  }
}

/**
 * Stands in for an owner that left while its unit was on a pipelined
 * server: its replies are dropped, and if its unit is the last one, the
 * server goes back to the pool once answered.
 */
class Leftover implements ServerOwner {
  constructor(private readonly pool: Pool) {}

  onServerData(): boolean {
    return true;
  }

  onServerIdle(server: ServerConnection): void {
    if (server.owner !== this) {
      this.pool.offerBehind(server); // units behind ours run on
      return;
    }
    server.owner = null;
    void this.pool.release(server);
  }

  onServerClosed(): void {}

  onServerParameter(): void {}
}
