// Reads of a plain server socket into one reused buffer (net.Socket's
// `onread`), instead of a new ArrayBuffer per read and the Readable
// stream's push / 'data' emit / nextTick for each one.
//
// The buffer is read into again only when whoever got the last chunk is
// done with it: the client socket wrote it out at once (nothing queued)
// and no reply editor or framer kept a piece. Otherwise (the default when
// the consumer does not say) the next read gets a new buffer, so bytes a
// slow client has not taken yet are never overwritten.

import type net from 'node:net';

/** As large as the chunks libuv reads by default. */
const READ_SIZE = 64 * 1024;

/** Takes one chunk; returns true when nothing keeps a reference to it. */
export type ChunkSink = (chunk: Buffer) => boolean;

export class ReusedReadBuffer {
  private buffer = Buffer.allocUnsafe(READ_SIZE);
  /** The last chunk is still referenced: the next read needs other memory. */
  private held = false;
  /**
   * Where chunks go once the connection is logged in. Before that (the
   * login reads with 'data' listeners) they are emitted as 'data' and
   * counted as held.
   */
  sink: ChunkSink | null = null;
  /** The socket these options were given to (set once it exists). */
  socket: net.Socket | null = null;

  /** The `onread` option for net.connect. */
  readonly onread: net.OnReadOpts = {
    buffer: () => this.next(),
    callback: (bytes: number, buf: Uint8Array): boolean => {
      const chunk = (buf as Buffer).subarray(0, bytes);
      if (this.sink) this.held = !this.sink(chunk);
      else {
        this.held = true;
        this.socket?.emit('data', chunk);
      }
      return true;
    },
  };

  private next(): Buffer {
    if (this.held) {
      this.held = false;
      this.buffer = Buffer.allocUnsafe(READ_SIZE);
    }
    return this.buffer;
  }
}
