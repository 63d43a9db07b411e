// Watches a server → client byte stream for the few message types the pooler
// must understand, without copying or decoding the rest (DataRow, CopyData...).
//
// Chunks are forwarded to the client untouched by the caller; the scanner
// only keeps a 5-byte header across chunk boundaries and gathers the bodies
// of "watched" types (ReadyForQuery, ErrorResponse, ParameterStatus, ...),
// which are small.

export type ScannedMessage = (type: number, body: Buffer) => void;

export class BackendScanner {
  private readonly header = Buffer.alloc(5);
  private headerFill = 0;
  private remaining = 0;
  private type = 0;
  private body: Buffer | null = null;
  private bodyFill = 0;
  /** During a callback: where the delivered message ends in the current chunk. */
  messageEnd = 0;

  /** @param watched 256-entry table: watched[type] true to receive bodies. */
  constructor(private readonly watched: Uint8Array) {}

  static watch(types: number[]): Uint8Array {
    const table = new Uint8Array(256);
    for (const t of types) table[t] = 1;
    return table;
  }

  /** Between chunks: the header bytes of the current message already read, and its body bytes still to come. */
  get position(): { header: Buffer; remaining: number } {
    return { header: Buffer.from(this.header.subarray(0, this.headerFill)), remaining: this.remaining };
  }

  scan(chunk: Buffer, onMessage: ScannedMessage): void {
    let offset = 0;
    const n = chunk.length;
    while (offset < n) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, n - offset);
        if (this.body) {
          chunk.copy(this.body, this.bodyFill, offset, offset + take);
          this.bodyFill += take;
        }
        offset += take;
        this.remaining -= take;
        if (this.remaining === 0 && this.body) {
          const body = this.body;
          this.body = null;
          this.messageEnd = offset;
          onMessage(this.type, body);
        }
        continue;
      }
      // Fast path: a whole header (and maybe body) inside this chunk.
      if (this.headerFill === 0 && n - offset >= 5) {
        const type = chunk[offset];
        const bodyLength = chunk.readInt32BE(offset + 1) - 4;
        offset += 5;
        if (bodyLength < 0) throw new Error(`server sent invalid message length ${bodyLength + 4}`);
        if (this.watched[type]) {
          if (n - offset >= bodyLength) {
            this.messageEnd = offset + bodyLength;
            onMessage(type, chunk.subarray(offset, offset + bodyLength));
            offset += bodyLength;
          } else {
            this.type = type;
            this.body = Buffer.allocUnsafe(bodyLength);
            this.bodyFill = 0;
            this.remaining = bodyLength;
            if (bodyLength === 0) { this.body = null; this.messageEnd = offset; onMessage(type, Buffer.alloc(0)); }
          }
        } else {
          const take = Math.min(bodyLength, n - offset);
          offset += take;
          this.remaining = bodyLength - take;
        }
        continue;
      }
      // Slow path: header split across chunks.
      const take = Math.min(5 - this.headerFill, n - offset);
      chunk.copy(this.header, this.headerFill, offset, offset + take);
      this.headerFill += take;
      offset += take;
      if (this.headerFill < 5) continue;
      this.headerFill = 0;
      this.type = this.header[0];
      const bodyLength = this.header.readInt32BE(1) - 4;
      if (bodyLength < 0) throw new Error(`server sent invalid message length ${bodyLength + 4}`);
      this.remaining = bodyLength;
      if (this.watched[this.type]) {
        this.messageEnd = offset;
        if (bodyLength === 0) onMessage(this.type, Buffer.alloc(0));
        else { this.body = Buffer.allocUnsafe(bodyLength); this.bodyFill = 0; }
      }
    }
  }
}
