// A raw-socket PostgreSQL client for tests that need exact control of the
// bytes on the wire: pipelined batches in one write, half-sent COPY, bad
// lengths, unknown message types, garbage startup packets.
//
// It logs in like libpq (StartupMessage, then cleartext / MD5 / SCRAM as the
// server asks) and then hands the test the socket: send() writes bytes as
// they are, readMessages() parses what comes back.
import net from 'node:net';
import { md5PasswordResponse } from '../../pooler/auth/md5.js';
import { pgSasl, serialize, type PgSaslSession } from './pg-sasl.js';
import { parseErrorFields } from '../../pooler/protocol/messages/error.js';

export { serialize };

export interface RawMessage {
  /** The type byte as a character ('Z', 'E', 'D'...). */
  type: string;
  body: Buffer;
}

/** A login or protocol error the server answered with ErrorResponse. */
export class RawServerError extends Error {
  constructor(readonly fields: Map<string, string>) {
    super(`${fields.get('S') ?? 'ERROR'} ${fields.get('C') ?? '?????'}: ${fields.get('M') ?? ''}`);
  }
  get code(): string | undefined {
    return this.fields.get('C');
  }
}

// ------------------------------------------------------------ message builders

/** Any typed message: type byte, Int32 length (itself + body), body. */
export function frame(type: string, body: Buffer | string = Buffer.alloc(0)): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(b.length + 4, 1);
  return Buffer.concat([head, b]);
}

/** A StartupMessage for protocol `major.minor` (3.0 unless told otherwise). */
export function startupPacket(params: Record<string, string>, major = 3, minor = 0): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(params)) parts.push(Buffer.from(`${k}\0${v}\0`, 'utf8'));
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(8);
  head.writeInt32BE(body.length + 8, 0);
  head.writeUInt16BE(major, 4);
  head.writeUInt16BE(minor, 6);
  return Buffer.concat([head, body]);
}

/** The 16-byte CancelRequest packet. */
export function cancelRequest(processId: number, secretKey: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32BE(16, 0);
  b.writeInt32BE(80877102, 4);
  b.writeInt32BE(processId, 8);
  b.writeInt32BE(secretKey, 12);
  return b;
}

/** The 8-byte SSLRequest packet. */
export function sslRequest(): Buffer {
  return serialize.requestSsl();
}

/** Frontend message builders (pg-protocol's serializer). */
export const msg = {
  query: (sql: string): Buffer => serialize.query(sql),
  parse: (text: string, name = '', types: number[] = []): Buffer => serialize.parse({ text, name, types }),
  bind: (values: unknown[] = [], statement = '', portal = ''): Buffer => serialize.bind({ values, statement, portal }),
  describePortal: (name = ''): Buffer => serialize.describe({ type: 'P', name }),
  describeStatement: (name = ''): Buffer => serialize.describe({ type: 'S', name }),
  execute: (portal = '', rows = 0): Buffer => serialize.execute({ portal, rows }),
  closeStatement: (name = ''): Buffer => serialize.close({ type: 'S', name }),
  sync: (): Buffer => serialize.sync(),
  flush: (): Buffer => serialize.flush(),
  terminate: (): Buffer => serialize.end(),
  copyData: (data: Buffer | string): Buffer => serialize.copyData(typeof data === 'string' ? Buffer.from(data, 'utf8') : data),
  copyDone: (): Buffer => serialize.copyDone(),
  copyFail: (message: string): Buffer => serialize.copyFail(message),
};

// ------------------------------------------------------------ message readers

/** ErrorResponse / NoticeResponse fields keyed by their letter (C = SQLSTATE, M = message...). */
export const errorFields = parseErrorFields;

/** The column values of a DataRow (null for SQL NULL), as text. */
export function dataRow(body: Buffer): (string | null)[] {
  const n = body.readInt16BE(0);
  const out: (string | null)[] = [];
  let i = 2;
  for (let c = 0; c < n; c++) {
    const len = body.readInt32BE(i);
    i += 4;
    if (len < 0) out.push(null);
    else {
      out.push(body.toString('utf8', i, i + len));
      i += len;
    }
  }
  return out;
}

/** The tag of a CommandComplete ("SELECT 1", "INSERT 0 1"...). */
export function commandTag(body: Buffer): string {
  const end = body.indexOf(0);
  return body.toString('utf8', 0, end < 0 ? body.length : end);
}

// ------------------------------------------------------------ the client

export interface RawConnectOptions {
  host: string;
  port: number;
  user: string;
  database: string;
  password?: string;
  /** Extra startup parameters. */
  params?: Record<string, string>;
  /** Bound on the whole login. Default 10 s. */
  timeoutMs?: number;
}

export class RawClient {
  /** Bytes received and not yet consumed. */
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private isClosed = false;
  /** Resolves when the socket is closed (by either side). */
  readonly closed: Promise<void>;
  /** Socket errors seen (ECONNRESET, EPIPE...): expected in bad-input tests. */
  readonly errors: Error[] = [];
  /** ParameterStatus values from the greeting and later. */
  readonly params = new Map<string, string>();
  /** Authentication request codes the server sent (0 ok, 3 cleartext, 5 md5, 10 SASL...). */
  readonly authCodes: number[] = [];
  /** Mechanisms offered in AuthenticationSASL, if any. */
  saslMechanisms: string[] = [];
  processId = 0;
  secretKey = 0;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      this.wake();
    });
    socket.on('error', (err) => this.errors.push(err));
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.isClosed = true;
        this.wake();
        resolve();
      });
    });
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  /** A TCP connection with nothing sent yet (for startup-packet tests). */
  static open(host: string, port: number, timeoutMs = 10_000): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`raw client: connect to ${host}:${port} timed out`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new RawClient(socket));
      });
    });
  }

  /** Connect, send a StartupMessage, authenticate and read up to the first ReadyForQuery. */
  static async connect(o: RawConnectOptions): Promise<RawClient> {
    const c = await RawClient.open(o.host, o.port, o.timeoutMs);
    try {
      await c.login(o);
    } catch (err) {
      c.destroy();
      throw err;
    }
    return c;
  }

  /** The login exchange on an open socket; throws RawServerError on an ErrorResponse. */
  async login(o: RawConnectOptions): Promise<void> {
    const deadline = Date.now() + (o.timeoutMs ?? 10_000);
    const left = (): number => Math.max(1, deadline - Date.now());
    this.send(serialize.startup({ user: o.user, database: o.database, ...o.params }));
    let sasl: PgSaslSession | null = null;
    for (;;) {
      const m = await this.next(left());
      switch (m.type) {
        case 'E':
          throw new RawServerError(errorFields(m.body));
        case 'R': {
          const code = m.body.readInt32BE(0);
          this.authCodes.push(code);
          const password = (): string => {
            if (o.password === undefined) throw new Error(`raw client: server asked for a password (auth code ${code})`);
            return o.password;
          };
          if (code === 0) break;
          if (code === 3) this.send(serialize.password(password()));
          else if (code === 5) this.send(serialize.password(md5PasswordResponse(o.user, password(), m.body.subarray(4, 8))));
          else if (code === 10) {
            this.saslMechanisms = m.body
              .toString('utf8', 4)
              .split('\0')
              .filter((s) => s !== '');
            sasl = pgSasl.startSession(this.saslMechanisms);
            this.send(serialize.sendSASLInitialResponseMessage(sasl.mechanism, sasl.response));
          } else if (code === 11) {
            if (!sasl) throw new Error('raw client: SASLContinue without SASL');
            await pgSasl.continueSession(sasl, password(), m.body.toString('utf8', 4));
            this.send(serialize.sendSCRAMClientFinalMessage(sasl.response));
          } else if (code === 12) {
            if (!sasl) throw new Error('raw client: SASLFinal without SASL');
            pgSasl.finalizeSession(sasl, m.body.toString('utf8', 4));
          } else throw new Error(`raw client: unsupported authentication request ${code}`);
          break;
        }
        case 'S': {
          const [k, v] = m.body.toString('utf8').split('\0');
          this.params.set(k, v);
          break;
        }
        case 'K':
          this.processId = m.body.readInt32BE(0);
          this.secretKey = m.body.readInt32BE(4);
          break;
        case 'Z':
          return;
        default:
          break; // NoticeResponse, NegotiateProtocolVersion
      }
    }
  }

  /** Write bytes as they are, in one socket write. Errors (peer gone) are recorded, not thrown. */
  send(...bufs: Buffer[]): void {
    if (this.socket.destroyed) return;
    this.socket.write(bufs.length === 1 ? bufs[0] : Buffer.concat(bufs));
  }

  /** Take `n` raw bytes (e.g. the 'N'/'S' answer to an SSLRequest). */
  async readBytes(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.isClosed) throw new Error(`raw client: closed after ${this.buf.length} of ${n} bytes`);
      await this.wait(deadline);
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** The next whole message; throws on timeout or if the socket closes first. */
  async next(timeoutMs = 5000): Promise<RawMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.take();
      if (m) return m;
      if (this.isClosed) throw new Error('raw client: connection closed');
      await this.wait(deadline);
    }
  }

  /**
   * Messages up to and including the first of type `until` (or the first
   * one `until` accepts). Throws on timeout or close, with what arrived so far.
   */
  async readMessages(until: string | ((m: RawMessage) => boolean), timeoutMs = 5000): Promise<RawMessage[]> {
    const stop = typeof until === 'string' ? (m: RawMessage) => m.type === until : until;
    const deadline = Date.now() + timeoutMs;
    const out: RawMessage[] = [];
    for (;;) {
      const m = this.take();
      if (m) {
        out.push(m);
        if (stop(m)) return out;
        continue;
      }
      const got = out.map((x) => x.type).join('');
      if (this.isClosed) throw new Error(`raw client: connection closed while waiting (got "${got}")`);
      try {
        await this.wait(deadline);
      } catch {
        throw new Error(`raw client: timed out after ${timeoutMs} ms waiting (got "${got}")`);
      }
    }
  }

  /** `n` ReadyForQuery messages and everything before them. */
  async readUntilReady(n = 1, timeoutMs = 5000): Promise<RawMessage[]> {
    let seen = 0;
    return this.readMessages((m) => m.type === 'Z' && ++seen === n, timeoutMs);
  }

  /** Every message until the server closes the connection (throws on timeout). */
  async readUntilClosed(timeoutMs = 5000): Promise<RawMessage[]> {
    const deadline = Date.now() + timeoutMs;
    const out: RawMessage[] = [];
    for (;;) {
      const m = this.take();
      if (m) {
        out.push(m);
        continue;
      }
      if (this.isClosed) return out;
      try {
        await this.wait(deadline);
      } catch {
        throw new Error(`raw client: still open after ${timeoutMs} ms (got "${out.map((x) => x.type).join('')}")`);
      }
    }
  }

  /** Simple query; resolves with everything up to ReadyForQuery. */
  async query(sql: string, timeoutMs = 5000): Promise<RawMessage[]> {
    this.send(msg.query(sql));
    return this.readUntilReady(1, timeoutMs);
  }

  destroy(): void {
    this.socket.destroy();
  }

  end(): void {
    if (!this.socket.destroyed) this.socket.end(msg.terminate());
  }

  private take(): RawMessage | null {
    if (this.buf.length < 5) return null;
    const length = this.buf.readInt32BE(1);
    if (this.buf.length < length + 1) return null;
    const m = { type: String.fromCharCode(this.buf[0]), body: this.buf.subarray(5, length + 1) };
    this.buf = this.buf.subarray(length + 1);
    return m;
  }

  private wait(deadline: number): Promise<void> {
    const ms = deadline - Date.now();
    if (ms <= 0) return Promise.reject(new Error('raw client: timeout'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error('raw client: timeout'));
      }, ms);
      this.waiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    if (w) w();
  }
}

/** Summaries for assertions: the type letters in order, e.g. "12TDCZ". */
export function types(ms: RawMessage[]): string {
  return ms.map((m) => m.type).join('');
}

/** The first ErrorResponse's fields, or null. */
export function firstError(ms: RawMessage[]): Map<string, string> | null {
  const e = ms.find((m) => m.type === 'E');
  return e ? errorFields(e.body) : null;
}
