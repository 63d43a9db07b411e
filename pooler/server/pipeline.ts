// The units queued on one server connection behind the one running now
// (pipelining: pipeline_depth > 1). Postgres answers what arrives on a
// socket in order, each simple Query and each extended batch ending in Sync
// as its own implicit transaction, so a server can be sent the next
// waiting client's autocommit unit before the running one's reply is back.
// Replies are handed to their owners by counting ReadyForQuery: a unit owed
// n of them is done at its n-th, and the bytes after it are the next
// unit's.
//
// The connection (connection.ts) keeps its `owner`: the owner of the unit
// running now, the head. This queue holds the owners behind it and, while
// one read is scanned, where each finished head's reply ends in it.

/** A unit sent behind the head (Owner: the connection's ServerOwner; generic, so this file imports nothing). */
export interface QueuedUnit<Owner> {
  /** Replaced by a stand-in when its owner leaves before it is answered (pool/checkout.ts). */
  owner: Owner;
  /** ReadyForQuery messages that end it. */
  readonly owed: number;
  /** Its client asked for a cancel while it waited: sent once it runs (it would hit the unit ahead otherwise). */
  cancelWanted: boolean;
  /** The text of its first statement, for its run time (null: not measured). */
  readonly key: string | null;
}

/** Where a finished unit's run time goes (the pool's pool/slow-statements.ts). */
export interface UnitTimings {
  observe(key: string, ms: number): void;
}

export class PipelineQueue<Owner> {
  /** Units behind the head, in the order they were sent. */
  readonly behind: QueuedUnit<Owner>[] = [];
  /** ReadyForQuery still owed to units behind the head (the head is done when the connection's `pending` falls to this). */
  owedBehind = 0;
  /** Offsets in the read being scanned where a head's last ReadyForQuery ends (one per unit that finished in it). */
  readonly ends: number[] = [];
  /**
   * performance.now() when the head started to run: a unit is not queued
   * behind one that has run longer than pipeline_max_wait_ms.
   */
  headSince = 0;
  /**
   * Units may be queued behind what was sent: every unit on the
   * connection is an autocommit unit that ends back at idle (the owner of
   * each says so when it sends: markSent).
   */
  open = false;
  /** Units ever sent behind another on this connection (SHOW SERVERS, Prometheus). */
  queuedTotal = 0;
  /** The text of the head's first statement (null: not measured). */
  headKey: string | null = null;

  /** `timings`: where each head's run time goes when it finishes (null: nowhere). */
  constructor(private readonly timings: UnitTimings | null = null) {}

  /** Units on the connection: the head and those behind it. */
  get depth(): number {
    return this.behind.length + 1;
  }

  /** Queue `owner`'s unit (owed `owed` ReadyForQuery) behind what the connection runs. */
  push(owner: Owner, owed: number, key: string | null = null): void {
    this.behind.push({ owner, owed, cancelWanted: false, key });
    this.owedBehind += owed;
    this.queuedTotal += 1;
  }

  /**
   * A ReadyForQuery arrived and `pending` are still owed on the connection:
   * records where the head's reply ends when this one finishes it. `at` is
   * the message's end in the read.
   */
  onReady(pending: number, at: number): void {
    const next = this.ends.length;
    if (next < this.behind.length && pending === this.owedBehind) {
      this.ends.push(at);
      this.owedBehind -= this.behind[next].owed;
    }
  }

  /** A new head of the owner's own starts to run (nothing behind it). */
  start(key: string | null, now: number): void {
    this.headKey = key;
    this.headSince = now;
  }

  /** The head's last ReadyForQuery arrived at `now`: its run time is measured. */
  finishHead(now: number): void {
    if (this.headKey !== null && this.timings !== null) this.timings.observe(this.headKey, now - this.headSince);
    this.headKey = null;
  }

  /** The head finished: the unit after it becomes the head (its reply starts where the last one ended). */
  advance(now: number): QueuedUnit<Owner> {
    this.finishHead(now);
    const next = this.behind.shift()!;
    this.start(next.key, now);
    return next;
  }

  /** Whether `owner` has a unit waiting behind the head. */
  waiting(owner: Owner): QueuedUnit<Owner> | null {
    for (const u of this.behind) if (u.owner === owner) return u;
    return null;
  }

  /** The connection died: every unit behind the head (their owners learn it). */
  drain(): QueuedUnit<Owner>[] {
    const all = this.behind.splice(0);
    this.owedBehind = 0;
    this.ends.length = 0;
    return all;
  }
}
