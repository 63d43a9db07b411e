// Builds one backend message: type byte, int32 length, body. The pooler
// writes few messages of its own (auth, errors, admin rows), so clarity
// matters more than speed here; pass-through traffic never comes here.

export class MessageWriter {
  private parts: Buffer[] = [];
  private size = 0;

  int32(n: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeInt32BE(n);
    return this.raw(b);
  }

  int16(n: number): this {
    const b = Buffer.allocUnsafe(2);
    b.writeInt16BE(n);
    return this.raw(b);
  }

  byte(n: number): this {
    return this.raw(Buffer.from([n]));
  }

  /** A NUL-terminated string. */
  cstring(s: string): this {
    return this.raw(Buffer.from(s + '\0', 'utf8'));
  }

  raw(b: Buffer): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }

  /** Finish as a message of the given type (a char code). */
  finish(type: number): Buffer {
    const head = Buffer.allocUnsafe(5);
    head[0] = type;
    head.writeInt32BE(this.size + 4, 1);
    return Buffer.concat([head, ...this.parts], this.size + 5);
  }
}
