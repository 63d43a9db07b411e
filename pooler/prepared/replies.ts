// Server replies the client did not ask for, to be removed from the stream.
//
// The pooler adds messages to a client's batch (a Parse before a Bind on a
// server that lacks the statement, a Close to evict one). Replies come back
// in the order requests were sent, so every Parse and Close sent to the
// server is recorded here, in order, marked keep or drop. An error makes
// the server skip to the next Sync; the replies it skipped never come, so
// ReadyForQuery retires whatever was recorded before its Sync.
//
// The filter also keeps the pooler's view of the server true when
// statements vanish: a CommandComplete "DEALLOCATE ALL" / "DISCARD ALL"
// (whoever sent it, in either protocol: the server's own tag is the one
// reliable witness, as PgBouncer reads it) forgets them all, and a 26000
// "prepared statement ... does not exist" for a pooler-managed name is
// healed: the error is kept from the client, the statement re-prepared and
// the unit sent again, once.

import type { ClientStatements, ServerStatements } from './statements.js';
import { Backend } from '../protocol/codes.js';
import { parseErrorFields } from '../protocol/messages/error.js';
import { commandTagIs } from '../protocol/messages/rows.js';

interface Expected {
  /** 0x31 ParseComplete or 0x33 CloseComplete. */
  type: number;
  drop: boolean;
  /** Statement a Parse defines, confirmed by its ParseComplete. */
  defines: string | null;
  /** Index of the ReadyForQuery that ends this request's batch. */
  batch: number;
}

export const PARSE_COMPLETE = Backend.ParseComplete;
export const CLOSE_COMPLETE = Backend.CloseComplete;

const UNDEFINED_PREPARED_STATEMENT = '26000';
const POOLED_NAME = /pglynx_[0-9a-f]{20}/;
const TAG_DEALLOCATE_ALL = Buffer.from('DEALLOCATE ALL\0');
const TAG_DISCARD_ALL = Buffer.from('DISCARD ALL\0');

/**
 * Replies that come before any effect of a unit, the same every time it
 * runs: a unit that failed after only these can run again, minus these.
 */
const PREAMBLE = new Set<number>([Backend.ParseComplete, Backend.BindComplete, Backend.CloseComplete, Backend.ParameterDescription, Backend.RowDescription, Backend.NoData]);

/** A unit sent at an idle boundary, kept so it can run again. */
export interface RetryableUnit {
  /** The unit's client messages, whole, end to end. */
  messages: Buffer;
  client: ClientStatements;
}

export class ReplyFilter {
  private readonly queue: Expected[] = [];
  /** Syncs (and simple Queries) sent so far. */
  private sentSyncs = 0;
  /** ReadyForQuery messages received so far. */
  private readySeen = 0;

  /** The client whose messages were rewritten last (its names die with DEALLOCATE ALL). */
  client: ClientStatements | null = null;
  /** The unit in flight, while it may still be run again. */
  retryable: RetryableUnit | null = null;
  /** Preamble replies of `retryable` the client has already seen. */
  private shown = 0;
  /** Preamble replies of the rerun to drop (the client saw them the first time). */
  private skip = 0;
  /** A healable 26000 arrived: the rest of the unit, up to its ReadyForQuery, is dropped. */
  healing = false;

  constructor(readonly statements: ServerStatements) {}

  /** A unit goes to the server; `retryable` when it starts at an idle boundary and relies on pooled statements. */
  sending(client: ClientStatements, retryable: RetryableUnit | null): void {
    this.client = client;
    this.retryable = retryable;
    this.shown = 0;
  }

  /** CommandComplete: DEALLOCATE ALL / DISCARD ALL emptied the server (its client's names too, as Postgres would). */
  onCommandComplete(buf: Buffer, start: number, end: number, byClient: boolean): void {
    if (!commandTagIs(buf, start, end, TAG_DEALLOCATE_ALL) && !commandTagIs(buf, start, end, TAG_DISCARD_ALL)) return;
    this.statements.clear();
    if (byClient) this.client?.clear();
  }

  /**
   * ErrorResponse (not the pooler's own query). A 26000 for a pooled name
   * means the server lost it: forget it; returns true when the unit will be
   * healed (drop the error and the rest of the unit).
   */
  onError(body: Buffer): boolean {
    const fields = parseErrorFields(body);
    if (fields.get('C') !== UNDEFINED_PREPARED_STATEMENT) {
      this.retryable = null;
      return false;
    }
    const name = POOLED_NAME.exec(fields.get('M') ?? '')?.[0];
    if (name) this.statements.lost(name);
    if (!name || !this.retryable) {
      this.retryable = null;
      return false;
    }
    this.healing = true;
    return true;
  }

  /** The unit to run again after its ReadyForQuery; the rerun's first preamble replies are dropped. */
  takeRetry(): RetryableUnit {
    const unit = this.retryable!;
    this.retryable = null;
    this.healing = false;
    this.skip = this.shown;
    this.shown = 0;
    return unit;
  }

  /** A reply about to reach the client: true to drop it (a rerun's repeated preamble). */
  onKept(type: number): boolean {
    if (!PREAMBLE.has(type)) {
      this.retryable = null;
      this.skip = 0;
      return false;
    }
    if (this.skip > 0) {
      this.skip -= 1;
      return true;
    }
    if (this.retryable) this.shown += 1;
    return false;
  }

  /** A Parse or Close goes to the server. */
  expect(type: number, drop: boolean, defines: string | null = null): void {
    this.queue.push({ type, drop, defines, batch: this.sentSyncs });
    if (defines) this.statements.sent(defines);
  }

  /** Sync/Query/FunctionCall messages went to the server. */
  synced(count: number): void {
    this.sentSyncs += count;
  }

  /** True when any reply is due to be dropped (the stream must be framed). */
  get dropping(): boolean {
    return this.queue.some((e) => e.drop);
  }

  /** A ParseComplete/CloseComplete arrived: should the client not see it? */
  onReply(type: number): boolean {
    const i = this.queue.findIndex((e) => e.type === type);
    if (i < 0) return false;
    const [e] = this.queue.splice(i, 1);
    if (e.defines) this.statements.confirmed(e.defines);
    return e.drop;
  }

  /** ReadyForQuery: requests of the finished batch that got no reply were skipped. */
  onReady(): void {
    if (!this.healing) {
      this.retryable = null;
      this.skip = 0;
    }
    const batch = this.readySeen;
    this.readySeen += 1;
    while (this.queue.length > 0 && this.queue[0].batch <= batch) {
      const e = this.queue.shift()!;
      if (e.defines) this.statements.failed(e.defines);
    }
  }
}
