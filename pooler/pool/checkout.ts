// A server connection checked out of its pool by one owner (a client
// session, a shard link). The guard is the only place that points a server
// at its owner and the only place that decides, when the owner lets go,
// whether the server goes back to its pool (nothing in flight: reset and
// reused) or is closed (a reply still owed would reach the next client).
//
// One guard lives as long as its owner and is refilled at each checkout, so
// a transaction-mode client allocates nothing per transaction here.

import type { ServerConnection, ServerOwner } from '../server/connection.js';
import type { Pool } from './pool.js';

export class Checkout {
  /** The checked-out server; null between checkouts. */
  server: ServerConnection | null = null;
  /** The pool `server` came from (kept after release: the pool last used). */
  pool: Pool | null = null;

  constructor(private readonly owner: ServerOwner) {}

  /** Take `server` (just acquired from `pool`): its replies go to the owner from now on. */
  hold(pool: Pool, server: ServerConnection): void {
    this.pool = pool;
    this.server = server;
    server.owner = this.owner;
  }

  /**
   * Let go of the server: back to its pool when nothing is in flight (the
   * pool rolls back and resets it: `sessionReset` for a session-mode
   * client), closed otherwise, with `reason` in the log.
   */
  release(reason: string, sessionReset = false): void {
    const server = this.server;
    const pool = this.pool;
    if (!server || !pool) return;
    this.server = null;
    server.owner = null;
    if (server.isQuiet) void pool.release(server, sessionReset ? { sessionReset } : undefined);
    else pool.discard(server, reason);
  }

  /** The server died under the owner (the connection already let go of it): forget it. */
  lost(): void {
    this.server = null;
  }
}
