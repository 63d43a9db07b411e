// The direct binding's server died under the client. An autocommit read
// that got no answer yet is run again elsewhere (the client sees nothing);
// an autocommit statement gets an ERROR and the client carries on; a
// transaction or a session that is gone ends the client, with the server's
// own FATAL when it said one.

import { SqlState, TxStatus } from '../protocol/codes.js';
import { errorResponse } from '../protocol/messages/error.js';
import { readyForQuery } from '../protocol/messages/status.js';
import type { LostReply, ServerConnection } from '../server/connection.js';
import { ClientState } from './client-state.js';
import type { SessionCore } from './session-core.js';
import type { ServerAttach } from './attach.js';

/** `lost`: how the connection stood towards this client's unit (ServerConnection.lostReply). */
export function onServerLost(s: SessionCore, attach: ServerAttach, server: ServerConnection, reason: Error, lost: LostReply): void {
  s.checkout.lost();
  s.clocks.stop();
  s.replyEdits.reset();
  s.pool.stats.totals.errors += 1;
  s.counters.errors += 1;
  s.forgetTransaction();
  s.sets.forget();
  const retry = s.retryable;
  s.retryable = null;
  if (retry && !s.repliedSinceSend && s.member && !s.closed) {
    // The read never got an answer: run it on another server; the client sees nothing.
    s.log.warn({ server: server.address, reason: reason.message }, 'server died under a read; retrying it elsewhere');
    s.queued.unshift(retry.bytes);
    s.queuedSyncs += retry.syncs;
    if (attach.tryElsewhere(s.member, reason.message)) return;
    s.queued.shift();
    s.queuedSyncs -= retry.syncs;
  }
  // The server may have said why itself (FATAL 57P01...), held back by the
  // connection or already shown; one error per statement.
  const message = `server connection lost: ${lost.held ? lost.held.message : reason.message}`;
  if (lost.inTransaction || s.isSessionMode || lost.openBatch || lost.fatalShown) {
    // Its transaction or session is gone: the server's own FATAL, then the end.
    if (lost.errorShown || lost.held) {
      if (lost.held) s.socket.end(lost.held.bytes);
      else s.socket.end();
      s.end();
    } else {
      s.terminate(SqlState.ConnectionFailure, message);
    }
    return;
  }
  // An autocommit statement was in flight: answer it with an error (not
  // FATAL: the client keeps its connection) and let it go on with another server.
  const replies = lost.errorShown ? [] : [errorResponse(lost.held?.code ?? SqlState.ConnectionFailure, message)];
  for (let i = 0; i < Math.max(lost.owed, 1); i++) replies.push(readyForQuery(TxStatus.Idle));
  s.unsynced = false;
  s.write(Buffer.concat(replies));
  s.transition(ClientState.Idle);
}
