// A cancel that lands on the wrong unit (pipelining: server/pipeline.ts).
// A CancelRequest names a backend, not a statement: when the pooler cancels
// the unit a server runs while other clients' units are queued behind it,
// and that unit ends before the signal lands, the next unit is cancelled
// instead, and its client gets a 57014 it never asked for. Nothing on the
// wire tells the two apart, so the units exposed this way (queued behind a
// unit when a cancel was sent for it) have their reply held until it is
// whole: a read whose client did not ask for a cancel and that came back
// as 57014 is run again once (stray-cancel.ts), and the client sees only
// the second answer. This file keeps one client's held reply.

import { Backend, SqlState } from '../protocol/codes.js';
import { MessageCursor } from '../protocol/cursor.js';
import { ProtocolError } from '../protocol/framer.js';

/** A held reply bigger than this is let through (and its unit not retried): holding must stay cheap. */
const MAX_HELD_BYTES = 1 << 20;

/** A unit sent behind others' on a shared server, kept until its reply is in. */
interface SentUnit {
  readonly bytes: Buffer;
  readonly syncs: number;
  /** Already run again once for a stray cancel. */
  readonly retried: boolean;
}

/** What to do with a held reply once the unit is done. */
export type StrayVerdict = { retry: SentUnit } | { forward: Buffer } | null;

export class StrayCancelGuard {
  private unit: SentUnit | null = null;
  private held: Buffer[] | null = null;
  private heldBytes = 0;
  /** The client sent a CancelRequest since its unit went out: a 57014 is its own. */
  private asked = false;

  /** The client's unit went out behind other clients' (`bytes`, `syncs` Query/Sync). */
  sentBehind(bytes: Buffer, syncs: number): void {
    // The same bytes again: this is the retry (run once only).
    this.unit = { bytes, syncs, retried: this.unit !== null && this.unit.bytes === bytes };
    this.asked = false;
  }

  /** The client's unit went out on a server of its own: nothing to guard. */
  sentAlone(): void {
    this.unit = null;
    this.asked = false;
  }

  /** The client asked for a cancel. */
  cancelAsked(): void {
    this.asked = true;
  }

  /** A cancel went to the server for the unit ahead of this client's: hold its reply. */
  exposed(): void {
    if (this.unit !== null && this.held === null) {
      this.held = [];
      this.heldBytes = 0;
    }
  }

  get holding(): boolean {
    return this.held !== null;
  }

  /**
   * Keep a chunk of the held reply (copied: the connection reads into
   * the same memory again). Returns what must go to the client now when
   * the reply grew too big to hold, else null.
   */
  hold(chunk: Buffer): Buffer | null {
    const held = this.held!;
    held.push(Buffer.from(chunk));
    this.heldBytes += chunk.length;
    if (this.heldBytes <= MAX_HELD_BYTES) return null;
    this.held = null;
    this.unit = null;
    return Buffer.concat(held);
  }

  /**
   * The unit's reply is whole. `isRead` judges its bytes. Null when
   * nothing was held.
   */
  settle(isRead: (bytes: Buffer) => boolean): StrayVerdict {
    const held = this.held;
    if (held === null) return null;
    this.held = null;
    const reply = held.length === 1 ? held[0] : Buffer.concat(held);
    const unit = this.unit;
    if (unit !== null && !unit.retried && !this.asked && cancelledIn(reply) && isRead(unit.bytes)) return { retry: unit };
    return { forward: reply };
  }
}

const cursor = new MessageCursor();

/** Whether whole backend messages `reply` hold an ErrorResponse 57014. */
export function cancelledIn(reply: Buffer): boolean {
  try {
    for (const m = cursor.over(reply); m.next(); ) {
      if (m.type === Backend.ErrorResponse && m.errorFields().get('C') === SqlState.QueryCanceled) return true;
    }
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err; // a reply cut short: no 57014 in what came
  }
  return false;
}
