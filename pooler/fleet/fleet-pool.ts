// A connection Pool whose connections each hold a lease of the fleet's
// budget (budgets.ts): it opens a server connection only once a lease is
// granted, and the lease goes back when the connection closes; a pool over
// its share while another member waits closes connections as they are
// checked in. Everything else is the Pool's own; waiting clients wait as
// for a pool at its size.

import { Pool } from '../pool/pool.js';
import type { PoolSettings } from '../pool/pool-settings.js';
import type { ServerConnection } from '../server/connection.js';
import type { ServerOptions } from '../server/options.js';
import type { ConnectionBudgets } from './budgets.js';

export class FleetPool extends Pool {
  constructor(
    settings: PoolSettings,
    private readonly budgets: ConnectionBudgets,
  ) {
    super(settings);
  }

  /** Over its share while another member waits: a quiet connection checked in closes, and its lease goes to that member. */
  override release(conn: ServerConnection, opts?: { sessionReset?: boolean }): Promise<void> {
    if (this.budgets.overShare(this) && conn.isQuiet && !conn.closed) {
      this.discard(conn, 'fleet: connection returned to the shared budget for a member that waits');
      return Promise.resolve();
    }
    return super.release(conn, opts);
  }

  protected override async openServer(options: ServerOptions): Promise<ServerConnection> {
    const lease = await this.budgets.acquire(this);
    try {
      const conn = await super.openServer(options);
      conn.onClose(() => lease.release());
      return conn;
    } catch (err) {
      lease.release();
      throw err;
    }
  }
}
