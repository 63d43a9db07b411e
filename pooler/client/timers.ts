// The client's two clocks, PgCat's statement_timeout and
// idle_client_in_transaction_timeout, driven the same way whoever runs the
// client's statements (one attached server, or the sharded executor):
//
// - started(): work went out; the statement clock runs (if not already),
//   and the client is not idle in a transaction any more;
// - settled(inTransaction): everything sent was answered; the statement
//   clock stops, and inside a transaction the idle clock starts;
// - activity(): the client sent something; the idle clock stops.
//
// The session decides what a timeout does (it owns the socket).

export interface TimeoutSettings {
  readonly statementTimeout: number;
  readonly idleInTransactionTimeout: number;
}

export interface TimeoutActions {
  statementTimeout(): void;
  idleInTransactionTimeout(): void;
}

export class ClientTimers {
  private statementTimer: NodeJS.Timeout | null = null;
  private idleTxTimer: NodeJS.Timeout | null = null;

  constructor(
    /** Read when a clock starts: settings are replaced on reload. */
    private readonly settings: () => TimeoutSettings,
    private readonly on: TimeoutActions,
  ) {}

  started(): void {
    this.activity();
    const ms = this.settings().statementTimeout;
    if (ms <= 0 || this.statementTimer) return;
    this.statementTimer = setTimeout(() => {
      this.statementTimer = null;
      this.on.statementTimeout();
    }, ms);
  }

  settled(inTransaction: boolean): void {
    if (this.statementTimer) clearTimeout(this.statementTimer);
    this.statementTimer = null;
    if (!inTransaction || this.idleTxTimer) return;
    const ms = this.settings().idleInTransactionTimeout;
    if (ms <= 0) return;
    this.idleTxTimer = setTimeout(() => {
      this.idleTxTimer = null;
      this.on.idleInTransactionTimeout();
    }, ms);
  }

  activity(): void {
    if (this.idleTxTimer) clearTimeout(this.idleTxTimer);
    this.idleTxTimer = null;
  }

  clear(): void {
    this.settled(false);
    this.activity();
  }
}
