// The read side of a server connection (connection.ts): each read from the
// server is scanned (not decoded) for the few messages that decide pooling
// (ReadyForQuery, ParameterStatus, ErrorResponse), or framed message by
// message when prepared statements are shared (replies the pooler caused
// are removed: prepared/filter-stream.ts), and then handed to whoever owns
// that part of the stream: the pooler's own query (internal-query.ts), the
// owner of the unit running, and with pipelining (pipeline.ts) each owner
// whose unit finished in this read, cut where its last ReadyForQuery ends.
//
// The state the replies move (pending, txStatus, params...) stays on the
// connection, where the pool and the clients read it. This file reaches it
// through ReplyHost, generic over the connection type, so that it imports
// nothing of connection.ts (tests/unit/import-cycles.test.ts).

import type net from 'node:net';
import { Backend, TxStatus } from '../protocol/codes.js';
import { BackendScanner } from '../protocol/scanner.js';
import { builder } from '../protocol/serializer.js';
import { MessageFramer } from '../protocol/framer.js';
import { MessageCursor } from '../protocol/cursor.js';
import { parseErrorFields } from '../protocol/messages/error.js';
import { parseParameterStatus } from '../protocol/messages/status.js';
import type { ReplyFilter } from '../prepared/replies.js';
import { filterPooledReplies, type FilterHooks } from '../prepared/filter-stream.js';
import { rewriteForServer } from '../prepared/rewrite.js';
import type { ServerCounters } from '../stats/server-counters.js';
import type { InternalQuery } from './internal-query.js';
import type { PipelineQueue } from './pipeline.js';
import { Dirty } from './reset.js';

/** What of a connection's owner (connection.ts ServerOwner) the replies reach. */
export interface ReplyOwner<Server> {
  /**
   * Raw server bytes for the client. Return true when nothing keeps a
   * reference to `chunk` once this returns (written out at once): the
   * connection then reads into the same memory again (read-buffer.ts).
   */
  onServerData(chunk: Buffer): boolean | void;
  /** Every expected ReadyForQuery arrived and no extended batch is open. */
  onServerIdle(server: Server): void;
  /** The client's own statement changed a reported parameter (SET application_name...). */
  onServerParameter(name: string, value: string): void;
  /** Its unit, queued behind others' (pipelining), starts to run now. */
  onTurn?(): void;
  /** Its unit waits behind one that a cancel was just sent for: the cancel may land on it (client/stray-cancel.ts). */
  onStrayCancelRisk?(): void;
}

/** A server's FATAL held back from the client (see ServerConnection.heldFatal). */
export interface HeldFatal {
  code: string;
  message: string;
  bytes: Buffer;
}

/** The connection state the replies read and move (ServerConnection: see its fields). */
export interface ReplyHost<Server> {
  owner: ReplyOwner<Server> | null;
  readonly pipeline: PipelineQueue<ReplyOwner<Server>> | null;
  readonly prepared: ReplyFilter | null;
  readonly counters: ServerCounters;
  readonly params: Map<string, string>;
  paramsVersion: number;
  txStatus: number;
  pending: number;
  readonly unsynced: boolean;
  dirty: number;
  errorForwarded: boolean;
  errorsSeen: number;
  notificationSink: ((message: Buffer) => void) | null;
  fatal: boolean;
  heldFatal: HeldFatal | null;
  cancel(): Promise<void>;
  /** The stream cannot be followed any more: close at once, without Terminate. */
  abort(reason: Error): void;
}

const WATCHED = BackendScanner.watch([Backend.ReadyForQuery, Backend.ParameterStatus, Backend.ErrorResponse, Backend.NotificationResponse]);

export class ReplyReader<Server extends ReplyHost<Server>> {
  /** The pooler's own query running now (runInternal): replies until its ReadyForQuery are its, nobody else's. */
  internal: InternalQuery | null = null;
  /** WATCHED, plus DataRow while an internal query wants rows (client rows are never decoded). */
  private readonly watched = WATCHED.slice();
  private readonly scanner = new BackendScanner(this.watched);
  private framer: MessageFramer | null = null;
  private cursor: MessageCursor | null = null;
  /** Where the held FATAL starts in the chunk being scanned (it is the server's last message). */
  private fatalAt = -1;
  /** Framed path: where the watched message being handled ends in the bytes passed on. */
  private framedEnd = 0;
  /** A ReadyForQuery in this read left nothing owed. */
  private becameQuiet = false;
  /** Where in the current chunk the ReadyForQuery that made the connection quiet ends. */
  private quietAt = 0;

  constructor(
    private readonly conn: Server,
    /** For units healed after a lost prepared statement, sent again (filterHooks.rerun). */
    private readonly socket: net.Socket,
  ) {}

  /** Where the reply stream passed to the owner stands between chunks (a reply editor starting mid-stream resumes from here). */
  get position(): { header: Buffer; remaining: number } {
    // The framed path hands over whole messages only.
    return this.conn.prepared ? { header: Buffer.alloc(0), remaining: 0 } : this.scanner.position;
  }

  /** The replies from now on answer `query` (sent next) until its ReadyForQuery. */
  runInternal(query: InternalQuery): void {
    this.internal = query;
    if (query.rows) this.watched[Backend.DataRow] = 1;
  }

  /** One read from the server; returns true when nothing keeps a reference to `chunk` (see read-buffer.ts). */
  onData(chunk: Buffer): boolean {
    const conn = this.conn;
    this.becameQuiet = false;
    conn.counters.received += chunk.length;
    // The scanner copies what it keeps; the framed path keeps the piece of
    // a message cut at the end of the read. Besides, only the owner (its
    // client's write) may hold the chunk.
    let kept = false;
    try {
      if (conn.prepared) {
        chunk = this.filterReplies(chunk, conn.prepared);
        kept = this.framer !== null && this.framer.pendingBytes > 0;
      } else {
        this.scanner.scan(chunk, this.onMessage);
        if (this.fatalAt >= 0) chunk = chunk.subarray(0, this.fatalAt);
        this.fatalAt = -1;
      }
    } catch (err) {
      conn.abort(err as Error);
      return false;
    }
    const internal = this.internal;
    if (internal) {
      if (this.becameQuiet) {
        this.internal = null;
        this.watched[Backend.DataRow] = 0;
        internal.settle();
      }
      return !kept;
    }
    let done = !kept;
    // Units queued behind others (pipelining) that started in this read: each earlier one's reply ends where the next begins.
    let from = 0;
    if (conn.pipeline !== null && conn.pipeline.ends.length > 0) {
      from = this.handOver(chunk, conn.pipeline);
      if (from < 0) {
        from = -from;
        done = false;
      }
    }
    const owner = conn.owner;
    if (!owner) return done; // async notices while pooled are dropped
    // Bytes after the ReadyForQuery that ends the client's turn are not its
    // reply (a dying server's FATAL, a late notice): they go to the client
    // only if it still holds the connection.
    const cut = this.becameQuiet && this.quietAt > 0 && this.quietAt < chunk.length ? this.quietAt : chunk.length;
    if (cut > from && owner.onServerData(from === 0 && cut === chunk.length ? chunk : chunk.subarray(from, cut)) !== true) done = false;
    if (this.becameQuiet && !conn.unsynced && conn.owner === owner) owner.onServerIdle(conn);
    if (cut < chunk.length && conn.owner === owner && owner.onServerData(chunk.subarray(cut)) !== true) done = false;
    return done;
  }

  /**
   * Hand each unit that finished in this read its part, and make the unit
   * behind it the one running. Returns where the running unit's part
   * starts (negated when an owner kept a reference to the chunk).
   */
  private handOver(chunk: Buffer, q: PipelineQueue<ReplyOwner<Server>>): number {
    const conn = this.conn;
    const ends = q.ends;
    const now = performance.now();
    let from = 0;
    let kept = false;
    for (let i = 0; i < ends.length; i++) {
      const at = ends[i];
      const finished = conn.owner;
      if (finished && at > from && finished.onServerData(chunk.subarray(from, at)) !== true) kept = true;
      from = at;
      const next = q.advance(now);
      conn.owner = next.owner;
      next.owner.onTurn?.();
      // The finished owner lets go (Checkout.release: no longer the owner, it leaves the server to the next one).
      finished?.onServerIdle(conn);
      if (next.cancelWanted) void conn.cancel();
    }
    ends.length = 0;
    return kept ? -from : from;
  }

  /** Framed path (shared prepared statements): whole messages only, minus replies the client did not ask for. */
  private filterReplies(chunk: Buffer, replies: ReplyFilter): Buffer {
    this.framer ??= new MessageFramer();
    const { buffer, messages } = this.framer.push(chunk);
    return filterPooledReplies(buffer, messages, replies, this.internal === null, (this.cursor ??= new MessageCursor()), this.filterHooks);
  }

  private readonly filterHooks: FilterHooks = {
    watched: this.watched,
    onWatched: (type, body, end) => {
      this.framedEnd = end;
      this.onMessage(type, body);
      return this.conn.heldFatal !== null && type === Backend.ErrorResponse;
    },
    rerun: (unit) => {
      const prepared = this.conn.prepared;
      if (prepared) this.socket.write(rewriteForServer(unit.messages, unit.client, prepared));
    },
  };

  private readonly onMessage = (type: number, body: Buffer): void => {
    const conn = this.conn;
    switch (type) {
      case Backend.ReadyForQuery:
        // Each client ReadyForQuery back to idle ends a transaction (an autocommit statement is one).
        if (body[0] === TxStatus.Idle && !this.internal) conn.counters.transactions += 1;
        conn.txStatus = body[0];
        conn.errorForwarded = false;
        if (conn.pending > 0) conn.pending -= 1;
        if (conn.pending === 0) {
          this.becameQuiet = true;
          this.quietAt = conn.prepared ? -1 : this.scanner.messageEnd;
          if (conn.pipeline !== null) {
            conn.pipeline.open = false;
            if (conn.pipeline.headKey !== null) conn.pipeline.finishHead(performance.now());
          }
        } else if (conn.pipeline !== null && conn.pipeline.behind.length > 0) {
          conn.pipeline.onReady(conn.pending, conn.prepared ? this.framedEnd : this.scanner.messageEnd);
        }
        break;
      case Backend.ParameterStatus: {
        const [name, value] = parseParameterStatus(body);
        conn.params.set(name, value);
        conn.paramsVersion += 1;
        if (!this.internal && conn.owner) {
          // The server says a client changed a setting (also inside a DO block or a function, unseen in its text).
          conn.dirty |= name === 'session_authorization' ? Dirty.Other : Dirty.Params;
          conn.owner.onServerParameter(name, value);
        }
        break;
      }
      case Backend.NotificationResponse:
        // A pool's LISTEN connection hands it on (pool/notify-hub.ts); a client's own server passes it through.
        if (conn.notificationSink) conn.notificationSink(builder.begin(Backend.NotificationResponse).bytes(body).finish());
        break;
      case Backend.DataRow: // watched only while an internal query wants rows
        this.internal?.onRow(body);
        break;
      case Backend.ErrorResponse:
        if (parseErrorFields(body).get('V') === 'FATAL') {
          conn.fatal = true;
          if (!this.internal && this.holdFatal(body)) break;
        }
        if (!this.internal) {
          conn.errorForwarded = true;
          conn.errorsSeen += 1;
        }
        else this.internal.onError(body);
        break;
    }
  };

  /** Keep a client's FATAL out of the stream when it is whole in this chunk (framed: always). */
  private holdFatal(body: Buffer): boolean {
    const framed = this.conn.prepared !== null;
    const start = framed ? 0 : this.scanner.messageEnd - body.length - 5;
    if (start < 0) return false;
    if (!framed) this.fatalAt = start;
    const f = parseErrorFields(body);
    const bytes = builder.begin(Backend.ErrorResponse).bytes(body).finish();
    this.conn.heldFatal = { code: f.get('C') ?? '08006', message: f.get('M') ?? 'server connection lost', bytes };
    return true;
  }
}
