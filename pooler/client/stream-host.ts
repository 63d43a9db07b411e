// What the pooler needs from a client session to answer a
// pgml.transform_stream statement itself (pgml/stream.ts): send what came
// before it on, wait until every reply owed to the client is written, know
// the transaction status to report, and write to the client.

import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { TxStatus } from '../protocol/codes.js';
import { MessageFramer } from '../protocol/framer.js';
import type { StreamHost } from '../pgml/stream.js';
import { ClientState } from './client-state.js';
import type { SessionCore } from './session-core.js';

/** Where client messages go on (the session's batch walk). */
export interface WalkSink {
  walk(buffer: Buffer, messages: number[]): void;
}

export function streamHost(s: SessionCore, sink: WalkSink): StreamHost {
  /** Nothing sent is unanswered: between statements, idle or inside a transaction. */
  const settledNow = (): boolean =>
    (s.clientState === ClientState.Idle || s.clientState === ClientState.InTransaction) && s.queued.length === 0 && !(s.checkout.server?.pending ?? 0);
  return {
    forward(bytes: Buffer): void {
      if (s.closed) return;
      const framed = new MessageFramer().push(bytes);
      sink.walk(framed.buffer, framed.messages);
    },
    refusal(): string | null {
      if (s.settings.sharding) return 'pgml.transform_stream is not available in a sharded pool';
      if (s.unsynced) return 'pgml.transform_stream cannot follow extended-protocol messages not yet ended by a Sync';
      return null;
    },
    async settled(): Promise<boolean> {
      // Replies come from the server's socket; the session's state says when the last one is through.
      // Usually settled at once (drivers wait for ReadyForQuery before sending on); else a few turns, then a backoff to 5 ms.
      for (let turn = 0; !s.closed; turn++) {
        if (settledNow()) return true;
        if (turn < 8) await nextTurn();
        else await sleep(Math.min(5, turn - 7));
      }
      return false;
    },
    busy(active: boolean): void {
      // The janitor's idle_client_in_transaction_timeout must not end a client receiving rows.
      if (active) s.clocks.idleInTransactionSince = 0;
      else if (s.clientState === ClientState.InTransaction && s.settings.idleInTransactionTimeout > 0) s.clocks.idleInTransactionSince = Date.now();
    },
    txStatus(): number {
      const server = s.checkout.server;
      return s.clientState === ClientState.InTransaction && server ? server.txStatus : TxStatus.Idle;
    },
    write(bytes: Buffer): void {
      if (s.closed) return;
      s.pool.stats.totals.sent += bytes.length;
      s.write(bytes);
    },
  };
}
