// Server replies edited so a client sees answers to ITS statements, not to
// the pgml rewrite of them:
// - Describe (statement) of a rewritten statement: the server's
//   ParameterDescription lists the added `$K::real[]` parameters; the client
//   must see only its own (pgx and asyncpg check the count against what they
//   bind). The RowDescription needs no edit: the rewrite keeps PostgresML's
//   column (`embed`, real[]).
// - The error the pooler had the server raise (raise.ts, a DO block): the
//   server adds `CONTEXT: PL/pgSQL function inline_code_block ...` and its
//   own source location; the client gets the pooler's ErrorResponse instead.
// - The raise of an extended batch (raise-batch.ts: Parse/Bind/Execute before
//   the client's Sync): its ParseComplete and BindComplete are held back
//   until its marked error shows they were its own, then dropped. Skipped by
//   an earlier error of the batch, it gets no reply at all.
//
// Replies come back in request order. Every Describe (statement) produces
// one ParameterDescription or is skipped by an error (the server then skips
// to the next Sync); every Query/Sync/FunctionCall produces one
// ReadyForQuery. So the outgoing messages are recorded in order from the
// first one that needs an edit until the replies catch up: Describes
// (edited or not) and ReadyForQuery-owing messages, preceded by what was
// already owed. The reply stream is framed only while something is
// recorded; otherwise chunks pass untouched (no cost for other traffic).

import { Backend } from '../protocol/codes.js';
import { MessageCursor, MessageView, declaredLength } from '../protocol/cursor.js';
import { MessageFramer } from '../protocol/framer.js';
import { errorResponse } from '../protocol/messages/error.js';
import { parameterDescription, parameterTypes } from '../protocol/messages/parameter-description.js';
import { isRaised } from './raise-batch.js';

const PARAMETER_DESCRIPTION = Backend.ParameterDescription;
const ERROR_RESPONSE = Backend.ErrorResponse;
const READY_FOR_QUERY = Backend.ReadyForQuery;
const PARSE_COMPLETE = Backend.ParseComplete;
const BIND_COMPLETE = Backend.BindComplete;
/** Messages the server may send at any point: they neither answer a request nor end a hold. */
const ASYNC = new Set<number>([Backend.NoticeResponse, Backend.NotificationResponse, Backend.ParameterStatus]);

/** Where the server's reply stream stands between chunks (see ServerConnection.replyPosition). */
export interface ReplyPosition {
  /** Header bytes of the current message already passed on (0 to 4). */
  header: Buffer;
  /** Body bytes of the current message still to come. */
  remaining: number;
}

export const AT_BOUNDARY: ReplyPosition = { header: Buffer.alloc(0), remaining: 0 };

/** What the session knows when the first edit is recorded. */
export interface ReplyContext {
  /** ReadyForQuery messages owed to the client for what was already forwarded. */
  owed: number;
  /** Where the attached server's reply stream stands (AT_BOUNDARY with none attached). */
  position: ReplyPosition;
}

/** A ParameterDescription to cut back to the client's parameters. */
export interface DescribeEdit {
  /** The client's parameter count. */
  keep: number;
  /** Types of the parameters the rewrite added (checked before cutting). */
  added: number[];
}

type Entry =
  /** A ReadyForQuery-owing message; `raise`: a Query from raise.ts. */
  | { sync: true; raise: boolean }
  /** A Describe (statement), and the edit of its ParameterDescription. */
  | { sync: false; edit: DescribeEdit | null }
  /** Parse/Bind/Execute from raise-batch.ts. */
  | { sync: false; edit: null; raised: true };

export class DescribeReplies {
  private queue: Entry[] = [];
  /** Describe (statement) messages sent since the last ReadyForQuery-owing one, while nothing is recorded. */
  private open = 0;
  private framer: MessageFramer | null = null;
  private readonly cursor = new MessageCursor();
  /** Partial header of a message already passed on, when editing started mid-message. */
  private carry: Buffer | null = null;
  /** Bytes of a message already started to pass on before framing. */
  private skip = 0;
  /** ParseComplete (and BindComplete) that may be a raise's, held until the next reply tells. */
  private held: Buffer[] = [];

  /** Replies must go through edit(). */
  get active(): boolean {
    return this.framer !== null;
  }

  /**
   * An outgoing Describe (statement). `syncsBefore` counts the
   * ReadyForQuery-owing messages earlier in the same not-yet-forwarded batch.
   */
  describe(edit: DescribeEdit | null, syncsBefore: number, context: () => ReplyContext | null): void {
    if (this.queue.length === 0) {
      if (!edit) {
        this.open += 1;
        return;
      }
      if (!this.start(syncsBefore, context)) return;
    }
    this.queue.push({ sync: false, edit });
  }

  /** An outgoing Query/Sync/FunctionCall; `raise` marks a Query from raise.ts. */
  sync(raise: boolean, syncsBefore: number, context: () => ReplyContext | null): void {
    if (this.queue.length === 0) {
      if (!raise) {
        this.open = 0;
        return;
      }
      if (!this.start(syncsBefore, context)) return;
    }
    this.queue.push({ sync: true, raise });
  }

  /**
   * Outgoing Parse/Bind/Execute raising the pooler's error (raise-batch.ts),
   * the last messages before their batch's Sync.
   */
  raised(syncsBefore: number, context: () => ReplyContext | null): void {
    if (this.queue.length === 0 && !this.start(syncsBefore, context)) return;
    this.queue.push({ sync: false, edit: null, raised: true });
  }

  /** The server is gone or the recorded messages were answered by the pooler: forget everything. */
  reset(): void {
    this.queue = [];
    this.held = [];
    this.open = 0;
    this.framer = null;
    this.carry = null;
    this.skip = 0;
  }

  private start(syncsBefore: number, context: () => ReplyContext | null): boolean {
    const ctx = context();
    if (!ctx) return false;
    // Replies still due for earlier requests come first and pass unedited.
    for (let i = 0; i < ctx.owed + syncsBefore; i++) this.queue.push({ sync: true, raise: false });
    for (let i = 0; i < this.open; i++) this.queue.push({ sync: false, edit: null });
    this.open = 0;
    if (!this.framer) {
      this.framer = new MessageFramer();
      this.carry = ctx.position.header.length > 0 ? Buffer.from(ctx.position.header) : null;
      this.skip = ctx.position.remaining;
    }
    return true;
  }

  /** A chunk of server replies on its way to the client, edited (partial messages are held back). */
  edit(chunk: Buffer): Buffer {
    const framer = this.framer;
    if (!framer) return chunk;
    const out: Buffer[] = [];
    let offset = 0;
    // First the rest of a message that started before editing did.
    if (this.carry) {
      const take = Math.min(5 - this.carry.length, chunk.length);
      this.carry = Buffer.concat([this.carry, chunk.subarray(0, take)]);
      offset = take;
      if (this.carry.length === 5) {
        this.skip = declaredLength(this.carry, 0) - 4;
        this.carry = null;
      }
    }
    if (this.skip > 0 && offset < chunk.length) {
      const take = Math.min(this.skip, chunk.length - offset);
      offset += take;
      this.skip -= take;
    }
    if (offset > 0) out.push(chunk.subarray(0, offset));
    if (offset < chunk.length && !this.carry && this.skip === 0) {
      const { buffer, messages } = framer.push(offset === 0 ? chunk : chunk.subarray(offset));
      for (const m = this.cursor.frames(buffer, messages); m.next(); ) this.reply(m, out);
    }
    if (this.queue.length === 0 && framer.pendingBytes === 0 && !this.carry && this.skip === 0 && this.held.length === 0) this.framer = null;
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }

  /** One reply, edited, onto `out` (or held back). */
  private reply(m: MessageView, out: Buffer[]): void {
    const front = this.queue[0];
    const type = m.type;
    if (ASYNC.has(type)) {
      out.push(m.bytes());
      return;
    }
    // A raise's replies come last before its Sync's: a ParseComplete then a BindComplete may be its own.
    if (front !== undefined && 'raised' in front) {
      if (type === PARSE_COMPLETE || (type === BIND_COMPLETE && this.held.length === 1)) {
        if (type === PARSE_COMPLETE) this.release(out);
        this.held.push(m.bytes());
        return;
      }
      if (type === ERROR_RESPONSE && isRaised(m.errorFields())) {
        this.held = [];
        this.queue.shift();
        out.push(asPoolerError(m));
        return;
      }
    }
    this.release(out);
    out.push(this.answer(m, front));
  }

  /** What was held back was the client's after all. */
  private release(out: Buffer[]): void {
    if (this.held.length === 0) return;
    out.push(...this.held);
    this.held = [];
  }

  private answer(m: MessageView, front: Entry | undefined): Buffer {
    const msg = m.bytes();
    switch (m.type) {
      case PARAMETER_DESCRIPTION:
        // With a ReadyForQuery-owing entry in front, this answers an earlier batch.
        if (!front || front.sync || 'raised' in front) return msg;
        this.queue.shift();
        return front.edit ? cut(m, front.edit) : msg;
      case ERROR_RESPONSE:
        if (front?.sync) return front.raise ? asPoolerError(m) : msg;
        // The server skips the rest of the batch: its Describes and a raise get no reply.
        while (this.queue.length > 0 && !this.queue[0].sync) this.queue.shift();
        return msg;
      case READY_FOR_QUERY:
        while (this.queue.length > 0 && !this.queue[0].sync) this.queue.shift();
        this.queue.shift();
        return msg;
      default:
        return msg;
    }
  }
}

/** The ParameterDescription with only the client's parameters (unchanged if it is not the rewrite's). */
function cut(m: MessageView, edit: DescribeEdit): Buffer {
  const types = parameterTypes(m.buffer, m.start, m.end);
  if (!types || types.length !== edit.keep + edit.added.length) return m.bytes();
  for (let i = 0; i < edit.added.length; i++) {
    if (types[edit.keep + i] !== edit.added[i]) return m.bytes();
  }
  return parameterDescription(types.slice(0, edit.keep));
}

/** The server-raised error as the pooler's own: no PL/pgSQL CONTEXT, no server source location. */
function asPoolerError(m: MessageView): Buffer {
  const f = m.errorFields();
  return errorResponse(f.get('C') ?? 'XX000', f.get('M') ?? '');
}

/** The context for a client whose attached server (if any) owes `server.pending` ReadyForQuery, with `queuedSyncs` more not yet sent. */
export function replyContext(server: { pending: number; replyPosition: ReplyPosition } | null, queuedSyncs: number): ReplyContext {
  return server ? { owed: server.pending + queuedSyncs, position: server.replyPosition } : { owed: queuedSyncs, position: AT_BOUNDARY };
}
