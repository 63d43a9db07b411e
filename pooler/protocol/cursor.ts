// Typed access to received messages without copying them. A MessageView is
// one message at [start, end) of a buffer, with lazy accessors (nothing is
// decoded until asked); a MessageCursor is a view that moves through a batch:
// the framer's flat (type, start, end) triples, or whole messages laid end to
// end in a buffer. One cursor can be reset and reused for every batch, so
// walking costs no allocation per message.
//
//   const c = new MessageCursor();
//   for (c.frames(buffer, messages); c.next(); ) {
//     if (c.type === Frontend.Parse) define(c.statementName(), c.sql());
//   }
//
// Frontend and backend type codes overlap ('D' Describe / DataRow, 'C'
// Close / CommandComplete, 'E' Execute / ErrorResponse, 'S' Sync /
// ParameterStatus): the frontend accessors read the client's messages, the
// backend ones a server's; each is only meaningful for its message type.

import { Frontend } from './codes.js';
import { ProtocolError } from './framer.js';
import { bindParts, bindPortal, bindStatement, type BindParts } from './messages/bind.js';
import { parseDataRow, type Cell } from './messages/data-row.js';
import { errorFieldsAt } from './messages/error.js';
import { executePortal } from './messages/execute.js';
import { parseDeclaredTypes, parseName, parseNameEnd, parseSql, parseSqlStart, parseTail } from './messages/parse.js';
import { querySql } from './messages/query.js';
import { parseRowDescription, type FieldDesc } from './messages/row-description.js';
import { commandTag } from './messages/rows.js';
import { parseParameterStatus } from './messages/status.js';
import { cstringEnd } from './messages/strings.js';
import { Target, targetKind, targetName } from './messages/target.js';

const EMPTY = Buffer.alloc(0);

export class MessageView {
  buffer: Buffer = EMPTY;
  /** Type byte (a char code: Frontend.* or Backend.*). */
  type = 0;
  /** Offset of the type byte in `buffer`. */
  start = 0;
  /** Offset just past the message. */
  end = 0;

  /** A view of one whole message held in its own buffer. */
  static of(msg: Buffer): MessageView {
    return new MessageView().at(msg, 0, msg.length);
  }

  /** Point the view at the message [start, end) of `buffer`. */
  at(buffer: Buffer, start: number, end: number): this {
    this.buffer = buffer;
    this.type = buffer[start];
    this.start = start;
    this.end = end;
    return this;
  }

  /** The message's length field: everything but the type byte. */
  get length(): number {
    return this.end - this.start - 1;
  }

  /** The whole message (type byte and length included), a view. */
  bytes(): Buffer {
    return this.buffer.subarray(this.start, this.end);
  }

  /** The body (after type and length), a view. */
  body(): Buffer {
    return this.buffer.subarray(this.start + 5, this.end);
  }

  // ---------------------------------------------------------------- frontend

  /** Statement text of a Query or a Parse. */
  sql(): string {
    if (this.type === Frontend.Query) return querySql(this.buffer, this.start, this.end);
    if (this.type === Frontend.Parse) return parseSql(this.buffer, this.start, this.end);
    throw new TypeError(`sql() of message 0x${this.type.toString(16)}`);
  }

  /** Where the statement text of a Query or Parse starts in `buffer` (for scanners that read bytes in place). */
  sqlStart(): number {
    return this.type === Frontend.Parse ? parseSqlStart(this.buffer, this.start, this.end) : this.start + 5;
  }

  /** Where that text ends (its terminator). */
  sqlEnd(): number {
    return this.type === Frontend.Parse ? cstringEnd(this.buffer, this.sqlStart(), this.end) : this.end - 1;
  }

  /**
   * The prepared statement a message names: a Parse's name, a Bind's
   * statement, a Describe's or Close's target when it is a statement ('' for
   * the unnamed one; null when a Describe or Close targets a portal).
   */
  statementName(): string | null {
    switch (this.type) {
      case Frontend.Parse:
        return parseName(this.buffer, this.start, this.end);
      case Frontend.Bind:
        return bindStatement(this.buffer, this.start, this.end);
      case Frontend.Describe:
      case Frontend.Close:
        return this.target() === Target.Statement ? this.targetName() : null;
      default:
        throw new TypeError(`statementName() of message 0x${this.type.toString(16)}`);
    }
  }

  /** The portal a Bind creates or an Execute runs, or a Describe's/Close's portal target (null when it targets a statement). */
  portal(): string | null {
    switch (this.type) {
      case Frontend.Bind:
        return bindPortal(this.buffer, this.start, this.end);
      case Frontend.Execute:
        return executePortal(this.buffer, this.start, this.end);
      case Frontend.Describe:
      case Frontend.Close:
        return this.target() === Target.Portal ? this.targetName() : null;
      default:
        throw new TypeError(`portal() of message 0x${this.type.toString(16)}`);
    }
  }

  /** A Parse's statement name is not empty (checked without decoding it). */
  isNamedParse(): boolean {
    return this.buffer[this.start + 5] !== 0;
  }

  /** Index of the NUL ending a Parse's name (Parse only). */
  parseNameEnd(): number {
    return parseNameEnd(this.buffer, this.start, this.end);
  }

  /** A Parse without its name: text and declared types, as bytes (a view). */
  parseTail(): Buffer {
    return parseTail(this.buffer, this.start, this.end);
  }

  /** A Parse's declared parameter type OIDs. */
  paramTypes(): number[] {
    return parseDeclaredTypes(this.buffer, this.start, this.end);
  }

  /** A Bind in parts: portal, statement, parameter formats and values (views), result formats. */
  bind(): BindParts {
    return bindParts(this.buffer, this.start, this.end);
  }

  /** Describe/Close: Target.Statement ('S') or Target.Portal ('P'). */
  target(): number {
    return targetKind(this.buffer, this.start);
  }

  /** Describe/Close: the name of the statement or portal. */
  targetName(): string {
    return targetName(this.buffer, this.start, this.end);
  }

  // ----------------------------------------------------------------- backend

  /** ErrorResponse/NoticeResponse fields by letter (C: SQLSTATE, M: message...). */
  errorFields(): Map<string, string> {
    return errorFieldsAt(this.buffer, this.start, this.end);
  }

  /** DataRow columns (views, null for NULL). */
  columns(): Cell[] {
    return parseDataRow(this.body());
  }

  /** RowDescription fields. */
  fields(): FieldDesc[] {
    return parseRowDescription(this.body());
  }

  /** CommandComplete tag. */
  commandTag(): string {
    return commandTag(this.buffer, this.start, this.end);
  }

  /** ParameterStatus: [name, value]. */
  parameter(): [string, string] {
    return parseParameterStatus(this.body());
  }

  /** ReadyForQuery: the transaction status byte (TxStatus.*). */
  txStatus(): number {
    return this.buffer[this.start + 5];
  }
}

/** A MessageView that walks a batch; reset it with frames() or over() and call next() until false. */
export class MessageCursor extends MessageView {
  private triples: readonly number[] | null = null;
  /** Next triple index, or next offset when walking a buffer. */
  private pos = 0;
  private limit = 0;

  /** Walk the framer's output: (type, start, end) triples over `buffer`. */
  frames(buffer: Buffer, triples: readonly number[]): this {
    this.buffer = buffer;
    this.triples = triples;
    this.pos = 0;
    this.limit = triples.length;
    return this;
  }

  /**
   * Walk whole messages laid end to end in `buffer` from `from` to `to`
   * (a unit the pooler holds, a server's collected reply). A length that
   * runs past `to` ends the walk with a ProtocolError.
   */
  over(buffer: Buffer, from = 0, to = buffer.length): this {
    this.buffer = buffer;
    this.triples = null;
    this.pos = from;
    this.limit = to;
    return this;
  }

  /** Move to the next message; false at the end of the batch. */
  next(): boolean {
    const t = this.triples;
    if (t) {
      if (this.pos >= this.limit) return false;
      this.type = t[this.pos]!;
      this.start = t[this.pos + 1]!;
      this.end = t[this.pos + 2]!;
      this.pos += 3;
      return true;
    }
    const at = this.pos;
    if (at >= this.limit) return false;
    if (this.limit - at < 5) throw new ProtocolError('truncated message header');
    const length = this.buffer.readInt32BE(at + 1);
    const end = at + 1 + length;
    if (length < 4 || end > this.limit) throw new ProtocolError(`malformed message of type 0x${this.buffer[at].toString(16)}`);
    this.type = this.buffer[at];
    this.start = at;
    this.end = end;
    this.pos = end;
    return true;
  }

  /** Messages left after the current one (framed batches only; -1 when walking a buffer). */
  get remaining(): number {
    return this.triples ? (this.limit - this.pos) / 3 : -1;
  }
}

/** Count of messages in a framed batch. */
export function messageCount(triples: readonly number[]): number {
  return triples.length / 3;
}

/** Type of message `i` of a framed batch (negative: from the end; 0 past either end). */
export function messageType(triples: readonly number[], i: number): number {
  const k = i < 0 ? triples.length + 3 * i : 3 * i;
  return k >= 0 && k < triples.length ? triples[k]! : 0;
}

/** The length field of the message whose type byte is at `at` (its size minus the type byte). */
export function declaredLength(buf: Buffer, at: number): number {
  return buf.readInt32BE(at + 1);
}
