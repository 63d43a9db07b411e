// The server's reply stream of a connection with shared prepared
// statements, framed message by message, minus what the client did not ask
// for: the ParseComplete/CloseComplete of messages the pooler added, and the
// failed attempt of a unit healed after its server lost a pooled statement
// (ReplyFilter decides each; this walks the framed messages for it).

import { Backend } from '../protocol/codes.js';
import { MessageCursor } from '../protocol/cursor.js';
import type { ReplyFilter, RetryableUnit } from './replies.js';

/** What the server connection does with the messages it watches, and with a healed unit. */
export interface FilterHooks {
  /** Types whose bodies the connection reads (ReadyForQuery, ErrorResponse...). */
  readonly watched: Uint8Array;
  /**
   * A watched message kept in the stream; true to drop it after all (a
   * FATAL held back from the client). `end`: where it ends in the bytes
   * passed on (pipelining cuts the stream there).
   */
  onWatched(type: number, body: Buffer, end: number): boolean;
  /** Send the healed unit again (its ReadyForQuery, swallowed, is still owed). */
  rerun(unit: RetryableUnit): void;
}

const EMPTY = Buffer.alloc(0);

/**
 * The bytes of the whole messages in `buffer` (triples from the framer)
 * that go on to the client. `client`: the stream answers a client's
 * batch, not a query of the pooler's own.
 */
export function filterPooledReplies(
  buffer: Buffer,
  messages: readonly number[],
  replies: ReplyFilter,
  client: boolean,
  cursor: MessageCursor,
  hooks: FilterHooks,
): Buffer {
  if (messages.length === 0) return EMPTY;
  const kept: Buffer[] = [];
  let rerun: RetryableUnit | null = null;
  let pieceStart = messages[1];
  let last = pieceStart;
  /** Bytes of `kept`. */
  let keptLength = 0;
  for (const m = cursor.frames(buffer, messages); m.next(); ) {
    const type = m.type;
    let drop = false;
    if (replies.healing) {
      drop = true;
      if (type === Backend.ReadyForQuery) {
        replies.onReady();
        rerun = replies.takeRetry();
      }
    } else if (type === Backend.ParseComplete || type === Backend.CloseComplete) {
      drop = replies.onReply(type);
    } else if (type === Backend.CommandComplete) {
      replies.onCommandComplete(buffer, m.start, m.end, client);
    } else if (type === Backend.ErrorResponse && client && replies.onError(m.body())) {
      drop = true;
    }
    if (!drop && hooks.watched[type]) {
      drop = hooks.onWatched(type, m.body(), keptLength + m.end - pieceStart);
      if (type === Backend.ReadyForQuery) replies.onReady();
    }
    if (!drop && client) drop = replies.onKept(type);
    if (drop) {
      if (m.start > pieceStart) {
        kept.push(buffer.subarray(pieceStart, m.start));
        keptLength += m.start - pieceStart;
      }
      pieceStart = m.end;
    }
    last = m.end;
  }
  if (last > pieceStart) kept.push(buffer.subarray(pieceStart, last));
  if (rerun) hooks.rerun(rerun);
  return kept.length === 1 ? kept[0] : kept.length === 0 ? EMPTY : Buffer.concat(kept);
}
