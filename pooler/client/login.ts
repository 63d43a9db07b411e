// The first moments of a client connection: SSL negotiation (TLS when
// general.tls_certificate is set, 'N' otherwise), CancelRequest,
// StartupMessage, authentication against the passwords in the config (MD5
// or SCRAM-SHA-256). The greeting that follows is greeting.ts's.
//
// Run once per new client connection, so kept lean: no timer (the janitor
// sweeps client_login_timeout), no promise for what has already arrived
// (a whole startup packet, a synchronous lookup, trust).

import type net from 'node:net';
import type { SecureContext } from 'node:tls';
import { Frontend, SqlState } from '../protocol/codes.js';
import { ProtocolError } from '../protocol/framer.js';
import { parseStartupPacket, startupPacketLength, type StartupPacket } from '../protocol/startup.js';
import { errorResponse } from '../protocol/messages/error.js';
import { authenticationMd5, authenticationSasl, authenticationSaslContinue, authenticationSaslFinal } from '../protocol/messages/auth.js';
import { md5Salt, verifyMd5Response } from '../auth/md5.js';
import { ScramServerSession, parseSaslInitialResponse } from '../auth/scram-server.js';
import type { ClientAuthMethod, LoginEntry } from '../auth/login-entry.js';
import { recoverClientKey } from '../auth/passthrough-credentials.js';
import { mockEntry, mockMd5Hash, mockScramSecret, shortName } from '../auth/mock-auth.js';
import { trackedName } from '../server/params.js';
import { acceptTls } from '../tls/client.js';
import { loginSweeper, type PendingLogin } from './janitor.js';

/** What the login needs from the pooler around it. */
export interface LoginDirectory {
  /**
   * The credentials of a pool user, or null when no pool serves (database, user).
   * May be async: auth_query asks the server for the user's secret.
   */
  lookup(database: string, user: string): LoginEntry | null | Promise<LoginEntry | null>;
  cancel(processId: number, secretKey: number): void;
  /** The TLS identity for clients, null to answer SSLRequest with 'N'; asked per login so a reload applies to new clients. */
  tls(): SecureContext | null;
  /** The method users without their own auth_type get (general.auth_type): the one unknown users are challenged with. */
  authType(): ClientAuthMethod;
  /** client_login_timeout in ms (0: none), read when the client connects. */
  loginTimeout(): number;
  /** After the startup packet: false when max_client_conn is reached (the client gets 53300; the login gives its slot back). */
  admit(database: string, user: string): boolean;
}

export interface LoggedIn {
  database: string;
  user: string;
  /** Every startup parameter as sent. */
  startupParams: Map<string, string>;
  /** The tracked subset (application_name, TimeZone...) to keep on servers (read only: may be shared). */
  trackedParams: ReadonlyMap<string, string>;
  /** Bytes that arrived after the authentication exchange. */
  leftover: Buffer | null;
  /** The socket to carry on with: a TLSSocket over the accepted one when the client negotiated TLS. */
  socket: net.Socket;
}

/** Login failed; the client was already sent `code` and closed. */
export class LoginRefused extends Error {
  constructor(
    message: string,
    /** For the log, when the client was told less (a failed authentication and its real reason). */
    readonly detail?: { user: string; database: string; reason: string },
  ) {
    super(message);
  }
}

/** Password and SASL messages are small; anything bigger is an attack or a bug. */
const MAX_AUTH_MESSAGE = 64 * 1024;

/** Reads whole startup packets and typed messages from a socket during login. */
class LoginReader {
  private buf: Buffer = EMPTY;
  private waiter: (() => void) | null = null;
  private failure: Error | null = null;

  // `on`, not `once`: detach() removes them (no wrapper per listener).
  constructor(private readonly socket: net.Socket) {
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    this.wake();
  };

  private readonly onClose = (): void => {
    this.failure ??= new LoginRefused('client disconnected during login');
    this.wake();
  };

  // Keeps the cause, e.g. why a TLS handshake failed.
  private readonly onError = (err: Error): void => {
    this.failure ??= new LoginRefused(`client connection failed during login: ${err.message}`);
    this.wake();
  };

  /** Fail the pending and any later read (client_login_timeout). */
  abort(err: Error): void {
    this.failure ??= err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    if (w) w();
  }

  private more(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      this.waiter = () => (this.failure ? reject(this.failure) : resolve());
    });
  }

  /** The next startup packet: at once when it has arrived whole (no promise), else a promise of it. */
  startupPacket(): StartupPacket | Promise<StartupPacket> {
    const length = startupPacketLength(this.buf);
    if (length === null) return this.more().then(() => this.startupPacket());
    const packet = this.buf.subarray(0, length);
    this.buf = length === this.buf.length ? EMPTY : this.buf.subarray(length);
    return parseStartupPacket(packet);
  }

  /** The body of the next typed message; throws ProtocolError if it is not `expected`. */
  message(expected: number): Buffer | Promise<Buffer> {
    const buf = this.buf;
    if (buf.length >= 5) {
      const type = buf[0];
      const length = buf.readInt32BE(1);
      if (type !== expected) throw new ProtocolError(`expected password response, got message type "${String.fromCharCode(type)}"`);
      if (length < 4 || length > MAX_AUTH_MESSAGE) throw new ProtocolError(`invalid message length ${length}`);
      if (buf.length >= length + 1) {
        this.buf = length + 1 === buf.length ? EMPTY : buf.subarray(length + 1);
        return buf.subarray(5, length + 1);
      }
    }
    return this.more().then(() => this.message(expected));
  }

  /** Stop reading; returns unread bytes. */
  detach(): Buffer | null {
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('close', this.onClose);
    this.socket.removeListener('error', this.onError);
    return this.buf.length ? this.buf : null;
  }
}

const EMPTY = Buffer.alloc(0);

function refuse(socket: net.Socket, code: string, message: string, detail?: LoginRefused['detail']): never {
  socket.end(errorResponse(code, message, 'FATAL'));
  throw new LoginRefused(message, detail);
}

/** 'N': no SSL / GSS encryption (libpq's default sslmode=prefer asks at every connection). */
const REFUSED = Buffer.from('N');

/** Postgres's answer once max_connections is reached. */
export const TOO_MANY_CLIENTS = 'sorry, too many clients already';
/** How long a client told it timed out may take to close before it is cut. */
const CLOSE_GRACE_MS = 1000;

/**
 * One connection's login. PgBouncer's client_login_timeout: a client that
 * has not logged in by its deadline (a half-sent startup packet, an
 * unanswered challenge) is told so and closed, so it cannot hold a
 * connection slot; the janitor's login sweep (janitor.ts) calls
 * loginTimedOut, no timer per connection.
 */
class Login implements PendingLogin {
  /** Both become the TLS ones if the client negotiates TLS. */
  socket: net.Socket;
  reader: LoginReader;
  /** TLS was accepted and no packet came through it yet: nothing readable can be sent. */
  handshaking = false;
  readonly loginDeadline: number;

  constructor(
    readonly accepted: net.Socket,
    private readonly timeoutMs: number,
  ) {
    this.socket = accepted;
    this.reader = new LoginReader(accepted);
    this.loginDeadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
  }

  loginTimedOut(): void {
    const message = `client_login_timeout: not logged in after ${this.timeoutMs} ms`;
    this.reader.abort(new LoginRefused(message));
    const { socket, accepted } = this;
    if (this.handshaking) socket.destroy();
    else socket.end(errorResponse(SqlState.ProtocolViolation, message, 'FATAL'));
    setTimeout(() => {
      socket.destroy();
      accepted.destroy();
    }, CLOSE_GRACE_MS).unref();
  }

  /** The first packet that is not an SSLRequest / GSSENCRequest, after answering those. */
  async negotiate(first: StartupPacket, dir: LoginDirectory): Promise<StartupPacket> {
    let packet = first;
    // As in Postgres, each request may come once (libpq sends GSSENC before
    // SSL), and none after TLS is up. A declined client carries on in plain
    // text on the same socket.
    let sslDone = false;
    let gssDone = false;
    while (packet.kind === 'ssl' || packet.kind === 'gssenc') {
      if (packet.kind === 'gssenc') {
        if (gssDone) throw new ProtocolError('unexpected GSSENCRequest: encryption was already negotiated');
        gssDone = true;
        this.socket.write(REFUSED);
      } else {
        if (sslDone) throw new ProtocolError('unexpected SSLRequest: encryption was already negotiated');
        sslDone = true;
        const context = dir.tls();
        if (!context) this.socket.write(REFUSED);
        else {
          // Bytes sent along with the SSLRequest were not encrypted, yet
          // would be read as if they came through TLS (CVE-2021-23214).
          if (this.reader.detach() !== null) throw new ProtocolError('received unencrypted data after SSL request');
          this.socket.write('S');
          this.handshaking = true;
          this.socket = acceptTls(this.socket, context);
          this.reader = new LoginReader(this.socket);
          gssDone = true;
        }
      }
      packet = await this.reader.startupPacket();
      // A packet came through TLS, so the handshake is done.
      this.handshaking = false;
    }
    return packet;
  }
}

/**
 * Run the login exchange. Resolves with the client's identity, or null for
 * a CancelRequest (handled and closed). Rejects with LoginRefused after
 * telling the client why. `release` gives back the connection's
 * max_client_conn slot when it is refused for want of one.
 */
export async function clientLogin(accepted: net.Socket, dir: LoginDirectory, release: () => void): Promise<LoggedIn | null> {
  const timeoutMs = dir.loginTimeout();
  const login = new Login(accepted, timeoutMs);
  if (timeoutMs > 0) loginSweeper.add(login, timeoutMs);
  try {
    let packet = await login.reader.startupPacket();
    // Most clients ask for SSL first (libpq's sslmode=prefer).
    if (packet.kind === 'ssl' || packet.kind === 'gssenc') packet = await login.negotiate(packet, dir);
    const socket = login.socket;
    if (packet.kind === 'cancel') {
      dir.cancel(packet.processId, packet.secretKey);
      socket.end();
      return null;
    }
    if (packet.kind !== 'startup') throw new ProtocolError('unexpected startup packet'); // negotiate() returns no other
    const params = packet.params;
    const user = params.get('user')!;
    const database = params.get('database') || user;
    // As Postgres, after the startup packet (a CancelRequest is never
    // refused), so that libpq, which reads only once it has sent it, shows the error.
    if (!dir.admit(database, user)) {
      // A refused client no longer counts, even before it closes.
      release();
      refuse(socket, SqlState.TooManyConnections, TOO_MANY_CLIENTS);
    }
    // Not knowing the user or pool must look like a wrong password (as PgBouncer).
    const found = dir.lookup(database, user);
    const entry = (found instanceof Promise ? await found : found)
      ?? mockEntry(dir.authType(), `no pool configured for database "${shortName(database)}" and user "${shortName(user)}"`);
    const authenticated = authenticate(socket, login.reader, user, database, entry);
    if (authenticated) await authenticated;
    let trackedParams: Map<string, string> | null = null;
    for (const [k, v] of params) {
      const name = trackedName(k);
      if (name) (trackedParams ??= new Map()).set(name, v);
    }
    return { database, user, startupParams: params, trackedParams: trackedParams ?? NO_PARAMS, leftover: login.reader.detach(), socket };
  } catch (err) {
    const socket = login.socket;
    login.reader.detach();
    if (err instanceof LoginRefused) throw err;
    if (err instanceof ProtocolError) refuse(socket, SqlState.ProtocolViolation, err.message);
    socket.destroy();
    throw new LoginRefused((err as Error).message);
  } finally {
    if (timeoutMs > 0) loginSweeper.delete(login);
  }
}

/** No tracked startup parameters (shared: never written). */
const NO_PARAMS: ReadonlyMap<string, string> = new Map();

/** Authenticate the client: undefined when it is in at once (trust), else the exchange's promise. */
function authenticate(socket: net.Socket, reader: LoginReader, user: string, database: string, entry: LoginEntry): Promise<void> | undefined {
  if (entry.authMethod === 'trust' && !entry.unknown) {
    entry.onAuthenticated?.(null);
    return undefined;
  }
  return challenge(socket, reader, user, database, entry);
}

async function challenge(socket: net.Socket, reader: LoginReader, user: string, database: string, entry: LoginEntry): Promise<void> {
  const wrong = (): never => refuse(socket, SqlState.InvalidPassword, `password authentication failed for user "${shortName(user)}"`, {
    user: shortName(user),
    database: shortName(database),
    reason: entry.unknown ?? 'wrong password',
  });
  // A user without a password (and no auth_query) is challenged too: no answer passes.
  if (entry.authMethod === 'scram-sha-256' && !entry.scram && entry.password === null) {
    entry = { ...entry, scram: mockScramSecret(user), unknown: entry.unknown ?? 'the user has no password' };
  } else if (entry.password === null && !entry.scram) {
    entry = { ...entry, authMethod: 'md5', password: mockMd5Hash(), unknown: entry.unknown ?? 'the user has no password' };
  }
  if (entry.authMethod === 'scram-sha-256' && entry.scram) {
    const secret = entry.scram;
    socket.write(authenticationSasl(['SCRAM-SHA-256']));
    const initial = parseSaslInitialResponse(await reader.message(Frontend.Password));
    if (initial.mechanism !== 'SCRAM-SHA-256') refuse(socket, SqlState.ProtocolViolation, `unsupported SASL mechanism "${shortName(initial.mechanism)}"`);
    const scram = new ScramServerSession(secret);
    let serverFirst: string;
    let clientFinal: string;
    let serverFinal: string;
    try {
      serverFirst = scram.clientFirst(initial.data);
      socket.write(authenticationSaslContinue(serverFirst));
      clientFinal = (await reader.message(Frontend.Password)).toString('utf8');
      serverFinal = scram.clientFinal(clientFinal);
    } catch (err) {
      if (err instanceof LoginRefused || err instanceof ProtocolError) throw err;
      // The proof was made with the cached secret's salt, so a changed
      // password cannot be checked now; refetching lets the next login in.
      await entry.refresh?.();
      return wrong();
    }
    socket.write(authenticationSaslFinal(serverFinal));
    // Only auth_query users need the key; the others skip the extra HMAC.
    entry.onAuthenticated?.(recoverClientKey(secret, initial.data, serverFirst, clientFinal));
    return;
  }
  if (entry.password === null) return wrong();
  const salt = md5Salt();
  socket.write(authenticationMd5(salt));
  const body = await reader.message(Frontend.Password);
  const response = body.toString('utf8', 0, body.indexOf(0) < 0 ? body.length : body.indexOf(0));
  if (verifyMd5Response(response, user, entry.password, salt)) return entry.onAuthenticated?.(null);
  // A changed password answers the same challenge: check it against the secret fetched anew.
  const fresh = await entry.refresh?.();
  if (!fresh || fresh.authMethod !== 'md5' || fresh.password === null || !verifyMd5Response(response, user, fresh.password, salt)) return wrong();
  fresh.onAuthenticated?.(null);
}
