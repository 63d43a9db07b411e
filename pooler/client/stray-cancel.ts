// Running again a pipelined read that a cancel meant for the unit ahead
// of it hit (see stray-cancel-guard.ts for why that can happen).

import type { ServerConnection } from '../server/connection.js';
import type { SessionCore } from './session-core.js';
import type { ServerAttach } from './attach.js';
import { isRead, onDirectIdle } from './direct.js';

/**
 * The client's unit is done (its last ReadyForQuery is in). A held reply
 * goes to the client through `toClient`, or, hit by a stray cancel, the
 * unit runs again: the server is let go and the unit queued first. True
 * when the unit runs again (the caller does nothing more).
 */
export function settleHeldReply(s: SessionCore, attach: ServerAttach, server: ServerConnection, toClient: (reply: Buffer) => void): boolean {
  const verdict = s.stray.settle(isRead);
  if (verdict === null) return false;
  if ('forward' in verdict) {
    toClient(verdict.forward);
    return false;
  }
  s.log.info({ server: server.address }, 'a cancel meant for the unit ahead hit a pipelined read: running it again');
  onDirectIdle(s, server);
  s.queued.unshift(verdict.retry.bytes);
  s.queuedSyncs += verdict.retry.syncs;
  attach.attach();
  return true;
}
