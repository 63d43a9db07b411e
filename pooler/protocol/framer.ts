// Splits a client byte stream into whole protocol messages without copying
// them: each message is reported as a [start, end) range over one buffer.
//
// Clients' messages are framed whole because the pooler must read some of
// them (Query text for routing, Terminate, Sync counting). Only a message
// that straddles two reads costs a copy, of that message's bytes.

import { MAX_MESSAGE_LENGTH } from './codes.js';

export class ProtocolError extends Error {}

export interface FramedBatch {
  /** The buffer every range below points into. */
  buffer: Buffer;
  /** Flattened triples: type, start (of the type byte), end (exclusive). */
  messages: number[];
}

export class MessageFramer {
  private tail: Buffer | null = null;

  constructor(private readonly maxLength: number = MAX_MESSAGE_LENGTH) {}

  /** Bytes held waiting for the rest of a message. */
  get pendingBytes(): number {
    return this.tail ? this.tail.length : 0;
  }

  /**
   * Feed one chunk; returns the whole messages it completes. Throws
   * ProtocolError on a length that is negative or over the limit, so the
   * caller can close just this client.
   */
  push(chunk: Buffer): FramedBatch {
    const buffer = this.tail ? Buffer.concat([this.tail, chunk]) : chunk;
    this.tail = null;
    const messages: number[] = [];
    let offset = 0;
    while (buffer.length - offset >= 5) {
      const length = buffer.readInt32BE(offset + 1);
      if (length < 4 || length > this.maxLength) {
        throw new ProtocolError(`invalid message length ${length} for message type 0x${buffer[offset].toString(16)}`);
      }
      const end = offset + 1 + length;
      if (end > buffer.length) break;
      messages.push(buffer[offset], offset, end);
      offset = end;
    }
    if (offset < buffer.length) this.tail = buffer.subarray(offset);
    return { buffer, messages };
  }

  /** Hand back bytes not yet framed (used when a session changes hands). */
  takeTail(): Buffer | null {
    const t = this.tail;
    this.tail = null;
    return t;
  }
}
