// One server connection's own counters, for SHOW SERVERS (PgCat's
// transaction_count, query_count, bytes_sent, bytes_received). Bumped by
// the connection where client traffic passes (send, received chunks,
// ReadyForQuery); the pooler's own statements (health checks, resets,
// parameter sync) count as bytes but not as queries or transactions.

export class ServerCounters {
  /** Bytes written to the server. */
  sent = 0;
  /** Bytes read from the server. */
  received = 0;
  /** Client queries: one per simple Query or extended-protocol Sync. */
  queries = 0;
  /** Client transactions ended (a ReadyForQuery back to idle). */
  transactions = 0;
}
