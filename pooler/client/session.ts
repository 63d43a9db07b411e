// A logged-in client: frames its messages, borrows a server connection for
// each transaction (or the whole session) and pipes bytes both ways.
//
// State lives in the server connection (in flight, transaction status,
// open extended batch); the session decides when to borrow and return it.

import type net from 'node:net';
import type { Logger } from 'pino';
import { Frontend, SqlState, TxStatus } from '../protocol/codes.js';
import { MessageFramer, ProtocolError } from '../protocol/framer.js';
import { errorResponse } from '../protocol/messages/error.js';
import { readyForQuery } from '../protocol/messages/status.js';
import type { ServerConnection, ServerOwner } from '../server/connection.js';
import { PoolError, type Pool } from '../pool/pool.js';
import { parameterSyncQuery, trackedName } from '../server/params.js';
import { changesSessionState } from './session-state.js';

export interface SessionSettings {
  idleInTransactionTimeout: number;
  statementTimeout: number;
}

export class ClientSession implements ServerOwner {
  server: ServerConnection | null = null;
  private readonly framer = new MessageFramer();
  /** Bytes framed while no server was attached, with their bookkeeping. */
  private queued: Buffer[] = [];
  private queuedSyncs = 0;
  /** An extended-protocol batch is open (Parse/Bind/... sent, no Sync yet). */
  private unsynced = false;
  private acquiring = false;
  private closed = false;
  private idleTxTimer: NodeJS.Timeout | null = null;
  private statementTimer: NodeJS.Timeout | null = null;
  /** Transactions and queries completed, for stats. */
  xactCount = 0;
  readonly connectedAt = Date.now();

  constructor(
    readonly socket: net.Socket,
    readonly pool: Pool,
    /** Reported parameters the client expects its server to have (application_name, TimeZone...). */
    readonly params: Map<string, string>,
    readonly processId: number,
    readonly secretKey: number,
    private readonly settings: SessionSettings,
    private readonly log: Logger,
    private readonly onEnd: (session: ClientSession) => void,
  ) {}

  get isSessionMode(): boolean {
    return this.pool.settings.mode === 'session';
  }

  /** Start reading; `leftover` is anything that arrived with the login. */
  start(leftover: Buffer | null): void {
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', () => this.end());
    this.socket.on('close', () => this.end());
    if (leftover && leftover.length > 0) this.onData(leftover);
  }

  /** Cancel whatever the client's server is running (CancelRequest). */
  cancel(): Promise<void> {
    return this.server ? this.server.cancel() : Promise.resolve();
  }

  /** Send a fatal error and close (shutdown, timeouts, protocol errors). */
  terminate(code: string, message: string): void {
    if (this.closed) return;
    this.socket.end(errorResponse(code, message, 'FATAL'));
    this.end();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.clearIdleTxTimer();
    let batch;
    try {
      batch = this.framer.push(chunk);
    } catch (err) {
      this.terminate(SqlState.ProtocolViolation, err instanceof ProtocolError ? err.message : 'invalid message');
      return;
    }
    const { buffer, messages } = batch;
    let runStart = -1;
    let runEnd = -1;
    let syncs = 0;
    for (let i = 0; i < messages.length; i += 3) {
      const type = messages[i];
      const start = messages[i + 1];
      const end = messages[i + 2];
      switch (type) {
        case Frontend.Terminate:
          if (runStart >= 0) this.forward(buffer.subarray(runStart, runEnd), syncs);
          this.end();
          return;
        case Frontend.Query:
        case Frontend.FunctionCall:
          syncs += 1;
          if (type === Frontend.Query && changesSessionState(buffer, start + 5, end)) this.markDirty();
          break;
        case Frontend.Sync:
          syncs += 1;
          this.unsynced = false;
          break;
        case Frontend.Parse:
          if (changesSessionState(buffer, buffer.indexOf(0, start + 5) + 1, end)) this.markDirty();
          this.unsynced = true;
          break;
        case Frontend.Bind:
        case Frontend.Describe:
        case Frontend.Execute:
        case Frontend.Close:
        case Frontend.Flush:
          this.unsynced = true;
          break;
        case Frontend.CopyData:
        case Frontend.CopyDone:
        case Frontend.CopyFail:
          break;
        default:
          this.terminate(SqlState.ProtocolViolation, `invalid frontend message type ${type}`);
          return;
      }
      if (runStart < 0) runStart = start;
      runEnd = end;
    }
    if (runStart >= 0) this.forward(buffer.subarray(runStart, runEnd), syncs);
  }

  private pendingDirty = false;

  private markDirty(): void {
    if (this.server) this.server.dirty = true;
    else this.pendingDirty = true;
  }

  private forward(bytes: Buffer, syncs: number): void {
    const server = this.server;
    if (server && !this.acquiring) {
      if (syncs > 0) this.armStatementTimer();
      if (!server.send(bytes, syncs, this.unsynced)) this.waitForServerDrain(server);
      return;
    }
    // No copy needed: each socket read is a fresh Buffer, never reused.
    this.queued.push(bytes);
    this.queuedSyncs += syncs;
    if (!this.acquiring) void this.attachServer();
  }

  private waitForServerDrain(server: ServerConnection): void {
    this.socket.pause();
    server.onDrain(() => {
      if (!this.closed) this.socket.resume();
    });
  }

  /**
   * Borrow a server, bring its session parameters in line, send what queued
   * up. The common case (an idle server whose parameters already match) is
   * synchronous: no pause of the client socket, no promise hops.
   */
  private async attachServer(): Promise<void> {
    const ready = this.pool.tryAcquire();
    if (ready && parameterSyncQuery(this.params, ready.params) === null) {
      this.bind(ready);
      return;
    }
    this.acquiring = true;
    this.socket.pause();
    let server: ServerConnection;
    try {
      server = ready ?? (await this.pool.acquire());
      const sync = parameterSyncQuery(this.params, server.params);
      if (sync) {
        try {
          await server.query(sync);
        } catch (err) {
          this.pool.discard(server, 'parameter sync failed');
          throw err;
        }
      }
    } catch (err) {
      this.acquiring = false;
      this.failQueued(err instanceof PoolError ? err.code : SqlState.ConnectionFailure, (err as Error).message);
      return;
    }
    this.acquiring = false;
    if (this.closed) {
      void this.pool.release(server);
      return;
    }
    if (this.bind(server)) this.socket.resume();
  }

  /** Attach a server and send it everything queued; false when waiting for the server socket to drain. */
  private bind(server: ServerConnection): boolean {
    this.server = server;
    server.owner = this;
    if (this.pendingDirty) server.dirty = true;
    this.pendingDirty = false;
    const bytes = this.queued.length === 1 ? this.queued[0] : Buffer.concat(this.queued);
    const syncs = this.queuedSyncs;
    this.queued = [];
    this.queuedSyncs = 0;
    if (syncs > 0) this.armStatementTimer();
    if (server.send(bytes, syncs, this.unsynced)) return true;
    this.waitForServerDrain(server);
    return false;
  }

  /** Answer queued requests with an error, as the server would have. */
  private failQueued(code: string, message: string): void {
    const syncs = this.queuedSyncs;
    this.queued = [];
    this.queuedSyncs = 0;
    this.unsynced = false;
    if (this.closed) return;
    const replies = [errorResponse(code, message)];
    // One ReadyForQuery per Sync/Query the client is waiting on; an open
    // extended batch gets its ReadyForQuery when its Sync arrives.
    for (let i = 0; i < syncs; i++) replies.push(readyForQuery(TxStatus.Idle));
    this.socket.write(Buffer.concat(replies));
    this.socket.resume();
  }

  // ServerOwner: replies from the attached server.

  onServerData(chunk: Buffer): void {
    if (!this.socket.write(chunk) && this.server) {
      const server = this.server;
      server.pauseReading();
      this.socket.once('drain', () => server.resumeReading());
    }
  }

  onServerIdle(server: ServerConnection): void {
    this.clearStatementTimer();
    this.xactCount += server.txStatus === TxStatus.Idle ? 1 : 0;
    if (server.txStatus !== TxStatus.Idle) {
      this.armIdleTxTimer();
      return;
    }
    if (this.isSessionMode) return;
    this.server = null;
    void this.pool.release(server);
  }

  onServerParameter(name: string, value: string): void {
    const tracked = trackedName(name);
    if (tracked) this.params.set(tracked, value);
  }

  onServerClosed(server: ServerConnection, reason: Error): void {
    this.clearStatementTimer();
    this.server = null;
    // The server may have said why itself (FATAL 57P01...); one error per statement.
    const message = `server connection lost: ${reason.message}`;
    const inTransaction = server.txStatus !== TxStatus.Idle;
    if (inTransaction || this.isSessionMode || (server.unsynced && server.pending === 0)) {
      if (server.errorForwarded) {
        this.socket.end();
        this.end();
      } else {
        this.terminate(SqlState.ConnectionFailure, message);
      }
      return;
    }
    // An autocommit statement was in flight: answer it with an error and let
    // the client go on with another server.
    const replies = server.errorForwarded ? [] : [errorResponse(SqlState.ConnectionFailure, message)];
    for (let i = 0; i < Math.max(server.pending, 1); i++) replies.push(readyForQuery(TxStatus.Idle));
    this.unsynced = false;
    this.socket.write(Buffer.concat(replies));
  }

  // Timers.

  private armIdleTxTimer(): void {
    const ms = this.settings.idleInTransactionTimeout;
    if (ms <= 0) return;
    this.idleTxTimer = setTimeout(() => {
      this.log.info({ pid: this.processId }, 'idle in transaction timeout');
      this.terminate(SqlState.IdleInTransactionTimeout, 'terminating connection due to idle-in-transaction timeout');
    }, ms);
  }

  private clearIdleTxTimer(): void {
    if (this.idleTxTimer) clearTimeout(this.idleTxTimer);
    this.idleTxTimer = null;
  }

  private armStatementTimer(): void {
    const ms = this.settings.statementTimeout;
    if (ms <= 0 || this.statementTimer) return;
    this.statementTimer = setTimeout(() => {
      this.statementTimer = null;
      const server = this.server;
      if (!server) return;
      // PgCat's statement_timeout guards against servers that hang: the
      // connection cannot be trusted any more, so it is closed.
      this.log.warn({ pid: this.processId, server: server.address }, 'statement timeout');
      this.terminate(SqlState.QueryCanceled, 'canceling statement due to statement timeout');
    }, ms);
  }

  private clearStatementTimer(): void {
    if (this.statementTimer) clearTimeout(this.statementTimer);
    this.statementTimer = null;
  }

  /** The client is gone: give its server back clean, or close it. */
  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearIdleTxTimer();
    this.clearStatementTimer();
    const server = this.server;
    this.server = null;
    if (server) {
      server.owner = null;
      if (server.isQuiet) void this.pool.release(server, { sessionReset: this.isSessionMode });
      else this.pool.discard(server, 'client left with a query in flight');
    }
    if (!this.socket.destroyed) this.socket.end();
    this.onEnd(this);
  }
}
