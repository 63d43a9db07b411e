// The one place protocol messages are written, in either direction. Bytes go
// into one growable buffer that is reused from message to message; a
// finished message (or run of messages) is copied out once, at its exact
// size. Building is synchronous: begin, write the fields, end, take, with no
// await in between (compute awaited values first), so the shared buffer is
// never written by two builders at once.
//
// Not pg-protocol's `serialize`: it writes frontend messages only (the pooler
// also writes backend ones), allocates a fresh buffer after every message,
// and its ESM entry cannot be loaded under tap's TypeScript loader.

const INITIAL_SIZE = 4096;
/** A buffer grown past this (a large row, a long statement) is dropped after use so it is not held forever. */
const KEEP_SIZE = 1 << 20;

export class MessageBuilder {
  private buf = Buffer.allocUnsafe(INITIAL_SIZE);
  private at = 0;
  /** Where the open message's type byte is; -1 when none is open. */
  private header = -1;
  /** The open message has no type byte. */
  private untyped = false;

  /** Start a message of type `type` (a char code). */
  begin(type: number): this {
    // Still open: a build abandoned by an exception; its bytes are dropped.
    if (this.header >= 0) this.at = 0;
    this.ensure(5);
    this.header = this.at;
    this.untyped = false;
    this.buf[this.at] = type;
    this.at += 5;
    return this;
  }

  /** Start a packet with no type byte (StartupMessage, SSLRequest, CancelRequest): int32 length, body. */
  beginUntyped(): this {
    if (this.header >= 0) this.at = 0;
    this.ensure(4);
    this.header = this.at;
    this.untyped = true;
    this.at += 4;
    return this;
  }

  /** Close the open message (writes its length). */
  end(): this {
    if (this.header < 0) throw new Error('MessageBuilder: no message is open');
    if (this.untyped) this.buf.writeInt32BE(this.at - this.header, this.header);
    else this.buf.writeInt32BE(this.at - this.header - 1, this.header + 1);
    this.header = -1;
    this.untyped = false;
    return this;
  }

  /** Everything built since the last take, as one new buffer; the builder starts over. */
  take(): Buffer {
    if (this.header >= 0) throw new Error('MessageBuilder: take() with a message open');
    const out = Buffer.allocUnsafe(this.at);
    this.buf.copy(out, 0, 0, this.at);
    this.at = 0;
    if (this.buf.length > KEEP_SIZE) this.buf = Buffer.allocUnsafe(INITIAL_SIZE);
    return out;
  }

  /** Close the open message and take it. */
  finish(): Buffer {
    return this.end().take();
  }

  byte(n: number): this {
    this.ensure(1);
    this.buf[this.at++] = n;
    return this;
  }

  int16(n: number): this {
    this.ensure(2);
    this.buf.writeInt16BE(n, this.at);
    this.at += 2;
    return this;
  }

  int32(n: number): this {
    this.ensure(4);
    this.buf.writeInt32BE(n, this.at);
    this.at += 4;
    return this;
  }

  /** An unsigned int32 (OIDs). */
  uint32(n: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(n >>> 0, this.at);
    this.at += 4;
    return this;
  }

  /** A string without its terminator. */
  string(s: string): this {
    const len = Buffer.byteLength(s, 'utf8');
    this.ensure(len);
    this.buf.write(s, this.at, len, 'utf8');
    this.at += len;
    return this;
  }

  /** A NUL-terminated string. */
  cstring(s: string): this {
    return this.string(s).byte(0);
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
    return this;
  }

  /** int32 length then the bytes; -1 for null (a Bind parameter, a DataRow column). */
  lengthPrefixed(b: Uint8Array | null): this {
    if (b === null) return this.int32(-1);
    return this.int32(b.length).bytes(b);
  }

  /** int32 length then the string's UTF-8 bytes; -1 for null. */
  lengthPrefixedString(s: string | null): this {
    if (s === null) return this.int32(-1);
    const len = Buffer.byteLength(s, 'utf8');
    this.int32(len);
    this.ensure(len);
    this.buf.write(s, this.at, len, 'utf8');
    this.at += len;
    return this;
  }

  private ensure(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }
}

/**
 * The builder every message constructor uses (the event loop is single
 * threaded and building never awaits, so one suffices).
 */
export const builder = new MessageBuilder();

/** A message with no body (Sync, Flush, ParseComplete...), built once. */
export function bodiless(type: number): Buffer {
  return Buffer.from([type, 0, 0, 0, 4]);
}
