// One client's own counters, for SHOW CLIENTS (PgCat's transaction_count,
// query_count, error_count, maxwait / maxwait_us). The session bumps plain
// fields where it already counts the pool's SHOW STATS totals; nothing
// here runs a timer or allocates per query.

export class ClientCounters {
  /** Transactions ended (an autocommit statement counts as one, BEGIN..COMMIT as one). */
  transactions = 0;
  /** Queries sent to a server: one per simple Query or extended-protocol Sync. */
  queries = 0;
  /** Times the pooler failed this client: no server to be had, or its server lost mid-use. */
  errors = 0;
  /** The longest the client has waited for a server, in µs. */
  maxWaitUs = 0;

  waited(us: number): void {
    if (us > this.maxWaitUs) this.maxWaitUs = us;
  }
}
