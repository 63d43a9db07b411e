// Server replies the client did not ask for, to be removed from the stream.
//
// The pooler adds messages to a client's batch (a Parse before a Bind on a
// server that lacks the statement, a Close to evict one). Replies come back
// in the order requests were sent, so every Parse and Close sent to the
// server is recorded here, in order, marked keep or drop. An error makes
// the server skip to the next Sync; the replies it skipped never come, so
// ReadyForQuery retires whatever was recorded before its Sync.

import type { ServerStatements } from './statements.js';

interface Expected {
  /** 0x31 ParseComplete or 0x33 CloseComplete. */
  type: number;
  drop: boolean;
  /** Statement a Parse defines, confirmed by its ParseComplete. */
  defines: string | null;
  /** Index of the ReadyForQuery that ends this request's batch. */
  batch: number;
}

export const PARSE_COMPLETE = 0x31;
export const CLOSE_COMPLETE = 0x33;

export class ReplyFilter {
  private readonly queue: Expected[] = [];
  /** Syncs (and simple Queries) sent so far. */
  private sentSyncs = 0;
  /** ReadyForQuery messages received so far. */
  private readySeen = 0;

  constructor(readonly statements: ServerStatements) {}

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
    const batch = this.readySeen;
    this.readySeen += 1;
    while (this.queue.length > 0 && this.queue[0].batch <= batch) {
      const e = this.queue.shift()!;
      if (e.defines) this.statements.failed(e.defines);
    }
  }
}
