// Splits a client byte stream into whole protocol messages without copying
// them: each message is reported as a [start, end) range over one buffer.
//
// Clients' messages are framed whole because the pooler must read some of
// them (Query text for routing, Terminate, Sync counting). Only a message
// that straddles two reads costs a copy, of that message's bytes, made once:
// the pieces of an unfinished message are kept apart until its last byte
// arrives, so a 64 MB Query read in 64 KB chunks is joined once, not once per
// chunk (which was quadratic and held the event loop for seconds).

import { MAX_MESSAGE_LENGTH } from './codes.js';

export class ProtocolError extends Error {}

export interface FramedBatch {
  /** The buffer every range below points into. */
  buffer: Buffer;
  /** Flattened triples: type, start (of the type byte), end (exclusive). */
  messages: number[];
}

const HEADER = 5; // type byte + int32 length
const EMPTY = Buffer.alloc(0);

export class MessageFramer {
  /** Pieces of the unfinished message (and whatever followed it in the same reads). */
  private pieces: Buffer[] = [];
  private piecesLength = 0;
  /** Bytes the unfinished message needs in all (type byte included); 0 until its header is known. */
  private needed = 0;

  constructor(private readonly maxLength: number = MAX_MESSAGE_LENGTH) {}

  /** Bytes held waiting for the rest of a message. */
  get pendingBytes(): number {
    return this.piecesLength;
  }

  /**
   * Feed one chunk; returns the whole messages it completes. Throws
   * ProtocolError on a length that is negative or over the limit, as soon
   * as the header is seen, so the caller can close just this client before
   * anything of the message is buffered.
   */
  push(chunk: Buffer): FramedBatch {
    let buffer = chunk;
    if (this.pieces.length > 0) {
      this.pieces.push(chunk);
      this.piecesLength += chunk.length;
      if (this.needed === 0 && this.piecesLength >= HEADER) this.needed = this.headerOfPieces();
      if (this.needed === 0 || this.piecesLength < this.needed) return { buffer: EMPTY, messages: [] };
      buffer = Buffer.concat(this.pieces, this.piecesLength);
      this.pieces = [];
      this.piecesLength = 0;
      this.needed = 0;
    }
    const messages: number[] = [];
    let offset = 0;
    while (buffer.length - offset >= HEADER) {
      const end = offset + 1 + this.checkedLength(buffer[offset], buffer.readInt32BE(offset + 1));
      if (end > buffer.length) {
        this.needed = end - offset;
        break;
      }
      messages.push(buffer[offset], offset, end);
      offset = end;
    }
    if (offset < buffer.length) {
      this.pieces.push(buffer.subarray(offset));
      this.piecesLength = buffer.length - offset;
    }
    return { buffer, messages };
  }

  /** Total size of the message whose header is spread over the first pieces. */
  private headerOfPieces(): number {
    const header = Buffer.alloc(HEADER);
    let filled = 0;
    for (const piece of this.pieces) {
      filled += piece.copy(header, filled, 0, Math.min(piece.length, HEADER - filled));
      if (filled === HEADER) break;
    }
    return 1 + this.checkedLength(header[0], header.readInt32BE(1));
  }

  private checkedLength(type: number, length: number): number {
    if (length < 4 || length > this.maxLength) {
      throw new ProtocolError(`invalid message length ${length} for message type 0x${type.toString(16)}`);
    }
    return length;
  }
}
