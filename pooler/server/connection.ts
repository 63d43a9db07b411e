// One connection from the pooler to a Postgres server.
//
// After login the connection is a pipe: the bytes a client sends are written
// as they are, and the server's replies are scanned (not decoded) for the
// few messages that decide pooling: ReadyForQuery (how many are still
// expected, and the transaction status), ParameterStatus (session state the
// pooler mirrors), ErrorResponse (for its own internal queries).
//
// This file holds the connection's state and what the pooler does with it
// (connect, send, the pooler's own queries, cancel, close); reading the
// replies and handing them to their owners is reply-reader.ts.

import type net from 'node:net';
import { TxStatus } from '../protocol/codes.js';
import type { ReplyFilter } from '../prepared/replies.js';
import { query as queryMessage } from '../protocol/messages/query.js';
import { TERMINATE } from '../protocol/messages/execute.js';
import { login } from './login.js';
import type { ServerOptions } from './options.js';
import { InternalQuery, type TextRow } from './internal-query.js';
import { negotiateServerTls } from '../tls/server.js';
import { MirrorLink } from './mirror.js';
import { ReusedReadBuffer } from './read-buffer.js';
import { isSocketDir, openServerSocket } from './address.js';
import { sendCancelRequest } from './cancel.js';
import { ServerCounters } from '../stats/server-counters.js';
import { PipelineQueue, type UnitTimings } from './pipeline.js';
import { ReplyReader, type HeldFatal, type ReplyOwner } from './reply-reader.js';

/** Who receives a server's replies while it is checked out (onServerData, onServerIdle, onServerParameter: reply-reader.ts). */
export interface ServerOwner extends ReplyOwner<ServerConnection> {
  /** The connection died while checked out. */
  onServerClosed(server: ServerConnection, reason: Error): void;
}

/** How a connection that died stood towards its client (ServerConnection.lostReply). */
export interface LostReply {
  /** The server's FATAL, held back from the client (it had not seen it). */
  held: HeldFatal | null;
  inTransaction: boolean;
  /** An extended batch was open with nothing owed. */
  openBatch: boolean;
  /** An ErrorResponse reached the client since the last ReadyForQuery. */
  errorShown: boolean;
  /** That error was the server's FATAL. */
  fatalShown: boolean;
  /** ReadyForQuery messages still owed. */
  owed: number;
}

let nextId = 1;

export class ServerConnection {
  readonly id = nextId++;
  readonly createdAt = Date.now();
  /** When the connection last went back to the pool (for idle_timeout). */
  idleSince = Date.now();
  readonly params = new Map<string, string>();
  /**
   * Bumped whenever `params` changes (a ParameterStatus): a client that
   * found the parameters in line at this version need not compare them
   * again at its next checkout of this connection.
   */
  paramsVersion = 0;
  processId = 0;
  secretKey = 0;
  txStatus: number = TxStatus.Idle;
  /** ReadyForQuery messages still owed for Queries/Syncs already sent. */
  pending = 0;
  /** Extended-protocol messages were sent with no Sync after them yet. */
  unsynced = false;
  /** Session state a client changed (SET, PREPARE...) that a reset must undo: Dirty bits (server/reset.ts). */
  dirty = 0;
  /** An ErrorResponse reached the client since the last ReadyForQuery. */
  errorForwarded = false;
  /** ErrorResponses in clients' replies so far (client/session-sets.ts tells a unit that failed by it). */
  errorsSeen = 0;
  /**
   * Parameters clients SET and the pooler keeps on this connection across
   * transactions (name -> SQL text of the value; client/session-sets.ts):
   * the next client's checkout sets or resets the differences.
   */
  readonly sessionSets = new Map<string, string>();
  /** Set on a pool's LISTEN connection (pool/notify-hub.ts): each NotificationResponse, whole, goes here. */
  notificationSink: ((message: Buffer) => void) | null = null;
  /** The server said FATAL (it is going away: shutdown, crash, terminate). */
  fatal = false;
  /**
   * That FATAL, held back from the client (the owner decides: an autocommit
   * client gets an ERROR and carries on, see ClientSession.onServerClosed).
   * Null when it reached the client (its first bytes came in an earlier chunk).
   */
  heldFatal: HeldFatal | null = null;
  /**
   * Prepared-statement bookkeeping (transaction mode with prepared
   * statements): the server's statement cache, and the filter that removes
   * replies the pooler caused from the stream, which is then framed message
   * by message instead of scanned. Null without prepared statements.
   */
  prepared: ReplyFilter | null = null;
  closed = false;
  /** Who gets the replies arriving now: the owner of the unit running (with pipelining, units of other owners may be queued behind it). */
  owner: ServerOwner | null = null;
  /** Pipelining's state (pipeline.ts); null on connections of pools without it. */
  pipeline: PipelineQueue<ServerOwner> | null = null;
  /** Where the run time of each unit goes (its pool's slow statements: pool/slow-statements.ts); set by the pool. */
  unitTimings: UnitTimings | null = null;
  /** Cancel requests sent for this connection whose own connection is still open: no unit is queued behind it meanwhile. */
  cancelsInFlight = 0;

  /** The read side: scans the replies and hands them out (reply-reader.ts). */
  private readonly replies: ReplyReader<ServerConnection>;
  private closeListeners: ((reason: Error) => void)[] = [];
  /** Copies of this connection's traffic (empty unless the server has mirrors). */
  private mirrorLinks: MirrorLink<ServerOptions>[] = [];
  /** Traffic of this connection (SHOW SERVERS). */
  readonly counters = new ServerCounters();

  private constructor(
    readonly options: ServerOptions,
    private readonly socket: net.Socket,
    /** Plain sockets read into a reused buffer; null over TLS (the TLS socket reads for itself). */
    private readonly reads: ReusedReadBuffer | null,
  ) {
    this.replies = new ReplyReader<ServerConnection>(this, socket);
  }

  static async connect(options: ServerOptions): Promise<ServerConnection> {
    // Before the StartupMessage, as libpq does; the rest runs over whichever
    // socket results. Never over a Unix socket (libpq does not either).
    const tls = options.tls?.enabled && !isSocketDir(options.host) ? options.tls : null;
    const reads = tls ? null : new ReusedReadBuffer();
    const plain = await openServerSocket(options.host, options.port, options.connectTimeout, options.lookup, reads?.onread);
    if (reads) reads.socket = plain;
    plain.setNoDelay(true);
    if (options.keepAliveIdleMs > 0) plain.setKeepAlive(true, options.keepAliveIdleMs);
    const socket = tls ? await negotiateServerTls(plain, options.host, options.port, tls, options.connectTimeout) : plain;
    const conn = new ServerConnection(options, socket, reads);
    try {
      const result = await login(socket, options, options.connectTimeout);
      for (const [k, v] of result.params) conn.params.set(k, v);
      conn.processId = result.processId;
      conn.secretKey = result.secretKey;
    } catch (err) {
      socket.destroy();
      throw err;
    }
    conn.listen();
    const mirrors = options.mirrors;
    if (mirrors) conn.mirrorLinks = mirrors.targets.map((options) => new MirrorLink({ options, connect: ServerConnection.connect }, mirrors.log));
    return conn;
  }

  get address(): string {
    return `${this.options.host}:${this.options.port}`;
  }

  /** The pooler's end of the connection (SHOW SERVERS local_addr / local_port). */
  get localAddress(): string {
    return this.socket.localAddress ?? '';
  }

  get localPort(): number {
    return this.socket.localPort ?? 0;
  }

  /** Nothing in flight, no open batch, no open transaction. */
  get isIdle(): boolean {
    return !this.closed && this.pending === 0 && !this.unsynced && this.txStatus === TxStatus.Idle;
  }

  /** Nothing in flight; possibly inside a transaction. */
  get isQuiet(): boolean {
    return !this.closed && this.pending === 0 && !this.unsynced;
  }

  /** Session state a client's statement leaves on this connection (Dirty bits): the pool's reset undoes it. */
  markDirty(bits: number): void {
    this.dirty |= bits;
  }

  /** What `owner` needs to answer its client when this connection died under it (client/server-lost.ts). */
  lostReply(owner: ServerOwner): LostReply {
    const held = this.heldFatal;
    const queued = owner !== this.owner ? this.pipeline?.waiting(owner) : null;
    if (queued) {
      // A unit queued behind another: autocommit, nothing of its reply seen yet.
      return { held, inTransaction: false, openBatch: false, errorShown: false, fatalShown: false, owed: queued.owed };
    }
    return {
      held,
      inTransaction: this.txStatus !== TxStatus.Idle,
      openBatch: this.unsynced && this.pending === 0,
      errorShown: this.errorForwarded,
      // After a FATAL the client saw, it expects the connection to end, as with Postgres.
      fatalShown: this.errorForwarded && this.fatal && !held,
      owed: this.pending - (this.pipeline?.owedBehind ?? 0),
    };
  }

  /** Where the reply stream passed to the owner stands between chunks (a reply editor starting mid-stream resumes from here). */
  get replyPosition(): { header: Buffer; remaining: number } {
    return this.replies.position;
  }

  onClose(listener: (reason: Error) => void): void {
    this.closeListeners.push(listener);
  }

  /**
   * Forward client bytes. `syncs` counts the Query/Sync/FunctionCall
   * messages in them (each owes one ReadyForQuery); `unsynced` says whether
   * an extended-protocol batch is left open after them.
   */
  send(bytes: Buffer, syncs: number, unsynced: boolean): boolean {
    if (this.mirrorLinks.length > 0) this.mirror(bytes, syncs, unsynced);
    this.pending += syncs;
    this.unsynced = unsynced;
    this.counters.sent += bytes.length;
    this.counters.queries += syncs;
    return this.socket.write(bytes);
  }

  /**
   * Queue `owner`'s unit behind the one running (pipelining): its replies,
   * `owed` ReadyForQuery long, go to it once the units ahead are answered.
   * The caller sends the unit right after.
   */
  queueBehind(owner: ServerOwner, owed: number, key: string | null): void {
    (this.pipeline ??= new PipelineQueue<ServerOwner>(this.unitTimings)).push(owner, owed, key);
  }

  /**
   * The owner is sending a unit of its own (the connection is checked out
   * to it, nothing of others' queued behind): `pipelinable` says whether
   * others' units may queue behind it (client/pipeline-unit.ts). A unit
   * sent while an earlier one of the owner's runs keeps the stricter verdict.
   * `key`: the text of its first statement, whose run time is measured.
   */
  ownUnit(pipelinable: boolean, key: string | null): void {
    const q = (this.pipeline ??= new PipelineQueue<ServerOwner>(this.unitTimings));
    if (this.isQuiet) {
      q.open = pipelinable;
      q.start(key, performance.now());
    } else {
      q.open &&= pipelinable;
    }
  }

  /** Other owners' units are queued behind the one running (pipelining). */
  get hasUnitsBehind(): boolean {
    return this.pipeline !== null && this.pipeline.behind.length > 0;
  }

  /** A unit may be queued behind what runs now: see pool/share.ts for the depth and wait bounds. */
  get takesUnitsBehind(): boolean {
    const q = this.pipeline;
    return (
      q !== null && q.open && this.owner !== null && this.pending > 0 && !this.unsynced && !this.closed && this.txStatus === TxStatus.Idle &&
      this.cancelsInFlight === 0 && this.replies.internal === null && !(this.prepared?.healing ?? false) && this.socket.writableLength === 0
    );
  }

  /** Run a statement for the pooler itself; nothing reaches a client. */
  query(sql: string): Promise<void> {
    return this.runInternal(sql, null).then(() => undefined);
  }

  /**
   * Run a query for the pooler itself (auth_query, the role probe) and get
   * its rows, each column as text (null for NULL). Not for client traffic.
   */
  queryRows(sql: string): Promise<TextRow[]> {
    return this.runInternal(sql, []).then((rows) => rows ?? []);
  }

  private runInternal(sql: string, rows: TextRow[] | null): Promise<TextRow[] | null> {
    if (this.closed) return Promise.reject(new Error('server connection is closed'));
    if (this.replies.internal || !this.isQuiet) return Promise.reject(new Error('server connection is busy'));
    return new Promise((resolve, reject) => {
      this.replies.runInternal(new InternalQuery(resolve, reject, rows));
      this.pending += 1;
      this.prepared?.synced(1);
      const bytes = queryMessage(sql);
      if (this.mirrorLinks.length > 0) this.mirror(bytes, 1, false, this.txStatus === TxStatus.Idle);
      this.counters.sent += bytes.length;
      this.socket.write(bytes);
    });
  }

  /** Bytes written but not yet handed to the kernel (a slow peer shows here). */
  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  private mirror(bytes: Buffer, syncs: number, unsynced: boolean, atBoundary = this.isIdle): void {
    for (const link of this.mirrorLinks) link.copy(bytes, syncs, unsynced, atBoundary);
  }

  /** Ask the server to cancel what this connection is running (server/cancel.ts). */
  cancel(): Promise<void> {
    this.cancelsInFlight += 1;
    // If what runs ends before the signal lands, the unit behind it is cancelled instead: its owner guards its reply.
    if (this.pipeline !== null) for (const u of this.pipeline.behind) u.owner.onStrayCancelRisk?.();
    return sendCancelRequest(this.options, this.processId, this.secretKey).finally(() => {
      this.cancelsInFlight -= 1;
    });
  }

  /**
   * Cancel `owner`'s unit: now when it is the one running, once it runs
   * when it is still queued behind another (a cancel now would hit that
   * one); nothing when nothing of the owner's runs or it is not on this
   * connection any more.
   */
  cancelFor(owner: ServerOwner): Promise<void> {
    // Nothing of the owner's runs (it is idle in a transaction, or the pooler computes its pgml call first):
    // a cancel now would land on whatever it sends next.
    if (owner === this.owner) return this.isQuiet ? Promise.resolve() : this.cancel();
    const queued = this.pipeline?.waiting(owner);
    if (queued) queued.cancelWanted = true;
    return Promise.resolve();
  }

  /** Run `cb` once the server socket has flushed what was written. */
  onDrain(cb: () => void): void {
    this.socket.once('drain', cb);
  }

  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** Close politely when idle, abruptly otherwise. */
  close(reason = 'closed by pooler'): void {
    if (this.closed) return;
    if (this.isIdle) this.socket.end(TERMINATE);
    this.teardown(new Error(reason));
    this.socket.destroy();
  }

  /** Close at once, without Terminate: the reply stream cannot be followed (reply-reader.ts). */
  abort(reason: Error): void {
    this.teardown(reason);
    this.socket.destroy();
  }

  private listen(): void {
    const replies = this.replies;
    if (this.reads) this.reads.sink = (chunk) => replies.onData(chunk);
    else this.socket.on('data', (chunk: Buffer) => replies.onData(chunk));
    this.socket.on('error', (err) => this.teardown(err));
    this.socket.on('close', () => this.teardown(new Error('server closed the connection unexpectedly')));
  }

  private teardown(reason: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const link of this.mirrorLinks) link.close();
    this.mirrorLinks = [];
    const internal = this.replies.internal;
    if (internal) {
      internal.reject(reason);
      this.replies.internal = null;
    }
    const owner = this.owner;
    this.owner = null;
    if (owner) owner.onServerClosed(this, reason);
    // Units queued behind it die with it; each owner answers its own (lostReply).
    if (this.pipeline !== null) {
      for (const u of this.pipeline.behind.slice()) u.owner.onServerClosed(this, reason);
      this.pipeline.drain();
    }
    for (const l of this.closeListeners) l(reason);
    this.closeListeners = [];
  }
}
