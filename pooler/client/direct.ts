// The direct binding: the client's statements run on one server, held by
// the session's Checkout for a transaction (transaction mode) or for the
// whole session. attach.ts finds the server; this file sends to it and
// gives it back when the transaction is over.

import { Frontend, TxStatus } from '../protocol/codes.js';
import type { ServerConnection } from '../server/connection.js';
import { classify } from '../router/classify.js';
import { rewriteForServer } from '../prepared/rewrite.js';
import { MessageCursor } from '../protocol/cursor.js';
import { ProtocolError } from '../protocol/framer.js';
import { ClientState } from './client-state.js';
import { mayPipeline, unitKey } from './pipeline-unit.js';
import type { SessionCore } from './session-core.js';

/** Attach `server` (just checked out of the session's pool) and send it everything queued. */
export function bind(s: SessionCore, server: ServerConnection): void {
  s.checkout.hold(s.pool, server);
  if (s.pendingDirty !== 0) server.markDirty(s.pendingDirty);
  s.pendingDirty = 0;
  sendQueued(s, server, false);
  // Others' units may queue behind this one when it allows it (pipelining).
  if (s.pool.settings.pipeline.depth > 1) s.pool.offerBehind(server);
}

/**
 * Queue everything queued (an autocommit unit that may be pipelined:
 * attach.ts checked) behind the units `server` runs for other clients;
 * its replies come once theirs are in.
 */
export function bindBehind(s: SessionCore, server: ServerConnection): void {
  const statements = s.pool.sharesPreparedStatements ? s.clientStatements() : null;
  s.checkout.follow(s.pool, server, s.queuedSyncs, unitKey(s.queued[0], statements));
  sendQueued(s, server, true);
}

function sendQueued(s: SessionCore, server: ServerConnection, behind: boolean): void {
  const bytes = s.queued.length === 1 ? s.queued[0] : Buffer.concat(s.queued);
  const syncs = s.queuedSyncs;
  // A unit behind others' may be hit by a cancel meant for one ahead (stray-cancel.ts).
  if (behind) s.stray.sentBehind(bytes, syncs);
  else s.stray.sentAlone();
  s.queued = [];
  s.queuedSyncs = 0;
  s.excluded = null;
  // Transparent read retry: an autocommit read on a shard with somewhere else to go.
  s.retryable =
    s.cluster.members.length > 1 && !s.isSessionMode && server.txStatus === TxStatus.Idle && syncs > 0 && isRead(bytes)
      ? { bytes, syncs }
      : null;
  s.repliedSinceSend = false;
  sendToServer(s, server, bytes, syncs);
}

/** Write to the attached server: the client is active, its statement clock runs. */
export function sendToServer(s: SessionCore, server: ServerConnection, bytes: Buffer, syncs: number): void {
  const pipeline = s.pool.settings.pipeline;
  if (pipeline.depth > 1 && server.owner === s.checkout.owner) {
    // The client's own unit (not queued behind others'): may others' units queue behind it?
    const statements = s.pool.sharesPreparedStatements ? s.clientStatements() : null;
    server.ownUnit(syncs > 0 && mayPipeline(bytes, statements, pipeline.writes, s.pool.slowStatements), unitKey(bytes, statements));
  }
  if (server.prepared) {
    // Prepared statements shared across servers: names rewritten for this one.
    bytes = rewriteForServer(bytes, s.clientStatements(), server.prepared, server.isIdle, server);
  }
  if (syncs > 0) {
    s.pool.stats.totals.queryCount += syncs;
    s.counters.queries += syncs;
    // Queued behind other clients' units (pipelining), the clock starts when the unit does (ClientSession.onTurn): waiting is not running.
    if (s.clocks.statementSince === 0 && s.settings.statementTimeout > 0 && server.owner === s.checkout.owner) s.clocks.statementSince = Date.now();
  }
  s.clocks.idleInTransactionSince = 0;
  s.sets.sentOn(server);
  s.transition(ClientState.Active);
  if (!server.send(bytes, syncs, s.unsynced)) s.waitForServerDrain();
}

/** Every reply is in: the transaction goes on (idle in it) or is over (the server goes back in transaction mode). */
export function onDirectIdle(s: SessionCore, server: ServerConnection): void {
  s.clocks.statementSince = 0;
  s.sets.settle(server);
  if (server.txStatus !== TxStatus.Idle) {
    if (s.settings.idleInTransactionTimeout > 0) s.clocks.idleInTransactionSince = Date.now();
    s.transition(ClientState.InTransaction);
    return;
  }
  if (!s.isSessionMode) s.checkout.release('released with a query in flight');
  s.transition(ClientState.Idle);
}

const cursor = new MessageCursor();

/** A batch of reads only (Query or extended), by the real parser; a malformed one is not retried (the server will say why). */
export function isRead(bytes: Buffer): boolean {
  let read = false;
  try {
    for (const m = cursor.over(bytes); m.next(); ) {
      const type = m.type;
      if (type === Frontend.Query || type === Frontend.Parse) {
        if (classify(m.sql()) !== 'read') return false;
        read = true;
      } else if (type === Frontend.CopyData || type === Frontend.FunctionCall) return false;
    }
  } catch (err) {
    if (err instanceof ProtocolError) return false;
    throw err;
  }
  return read;
}
