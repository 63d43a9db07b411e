// A logged-in client: its socket, and the state machine that says what it
// is doing (client-state.ts). Every state change goes through transition(),
// which is also the one place that decides whether the client's socket is
// read (besides backpressure from a full server socket).
//
// The parts, one concern each: batch.ts walks what the client sent; a
// binding runs it, direct.ts on one server (attach.ts finds it,
// server-lost.ts handles its death) or sharded-binding.ts on the shards a
// unit concerns; replies.ts writes replies and rewrites pgml calls.

import type net from 'node:net';
import type { Logger } from 'pino';
import { SqlState } from '../protocol/codes.js';
import { MessageFramer, ProtocolError } from '../protocol/framer.js';
import { errorResponse } from '../protocol/messages/error.js';
import type { ServerConnection, ServerOwner } from '../server/connection.js';
import type { Pool } from '../pool/pool.js';
import { Checkout } from '../pool/checkout.js';
import type { Cluster, ClusterMember } from '../pool/cluster.js';
import { trackedName } from '../server/params.js';
import { DescribeReplies } from '../pgml/describe-replies.js';
import { RoutingState } from '../router/route.js';
import type { ShardState } from '../sharding/shard-state.js';
import { ClientStatements } from '../prepared/statements.js';
import type { ShardedExecutor } from '../sharding/executor.js';
import { ClientCounters } from '../stats/client-counters.js';
import { ClientState, clientStateLabel } from './client-state.js';
import { ClientClocks, clientJanitor, type SweptClient } from './janitor.js';
import { SessionTimes } from './session-times.js';
import type { SessionCore } from './session-core.js';
import type { ClientIdentity, SessionSettings } from './session-settings.js';
import { BatchWalker } from './batch.js';
import { ServerAttach } from './attach.js';
import { onDirectIdle, sendToServer } from './direct.js';
import { onServerLost } from './server-lost.js';
import { ClientReplies } from './replies.js';
import { shardedExecutor } from './sharded-binding.js';
import { readIntoSharedBuffer } from './socket-reads.js';
import { StrayCancelGuard } from './stray-cancel-guard.js';
import { settleHeldReply } from './stray-cancel.js';
import { SessionSets } from './session-sets.js';
import { ClientListens } from './listens.js';

export type { ClientIdentity, SessionSettings } from './session-settings.js';

/**
 * A client waiting for a server is read on until this much queues behind
 * its batch (most send nothing more while they wait: no pause and resume
 * of the socket per wait), then paused until the server comes.
 */
const MAX_QUEUED_WHILE_WAITING = 64 * 1024;

/** Bound on one client's named statements (oldest forgotten first). */
const MAX_CLIENT_STATEMENTS = 100_000;

/** What a client is bound to; a reload hands over new ones (rebind). */
export interface SessionBinding {
  cluster: Cluster;
  pool: Pool;
  settings: SessionSettings;
}

export class ClientSession implements ServerOwner, SweptClient, SessionCore {
  clientState: ClientState = ClientState.Idle;
  private readonly times = new SessionTimes();
  /** Reading from the socket is paused (see transition). */
  private readingPaused = false;
  /** The server whose socket is full: the client waits for it to drain (not read while it is the attached one). */
  private fullServer: ServerConnection | null = null;
  private draining = false;
  readonly connectedAt = Date.now();
  /** Date.now() of the client's last message (SHOW CLIENTS, the janitor). */
  lastRequestAt = Date.now();
  /** Bumped whenever `params` changes (a SET the server reports). */
  paramsVersion = 0;
  readonly clocks = new ClientClocks();
  readonly counters = new ClientCounters();
  readonly routing = new RoutingState();
  readonly shardState: ShardState = { shard: null, shardingKey: null };
  readonly checkout: Checkout = new Checkout(this);
  readonly replyEdits = new DescribeReplies();
  private readonly framer: MessageFramer;
  private readonly batches: BatchWalker = new BatchWalker(this, this);
  private readonly attach: ServerAttach = new ServerAttach(this);
  private readonly replies: ClientReplies = new ClientReplies(this, this.batches, () => this.updateReading());
  // The direct binding's state (session-core.ts).
  member: ClusterMember | null = null;
  queued: Buffer[] = [];
  queuedSyncs = 0;
  unsynced = false;
  pendingDirty = 0;
  excluded: Set<ClusterMember> | null = null;
  retryable: { bytes: Buffer; syncs: number } | null = null;
  repliedSinceSend = false;
  readonly stray = new StrayCancelGuard();
  readonly sets = new SessionSets();
  readonly listens: ClientListens = new ClientListens(this, () => {
    if (this.queued.length > 0 && this.clientState === ClientState.Idle) this.attach.attach();
  });
  checkoutFailures = 0;
  sharded: ShardedExecutor | null = null;
  statements: ClientStatements | null = null;

  constructor(
    readonly socket: net.Socket,
    public cluster: Cluster,
    public pool: Pool,
    readonly identity: ClientIdentity,
    readonly params: Map<string, string>,
    readonly processId: number,
    readonly secretKey: number,
    public settings: SessionSettings,
    readonly log: Logger,
    private readonly onEnd: (session: ClientSession) => void,
  ) {
    this.framer = new MessageFramer(settings.maxMessageSize);
  }

  get server(): ServerConnection | null {
    return this.checkout.server;
  }

  /** Shard connections a sharded client holds now (SHOW SERVERS). */
  shardServers(): ServerConnection[] {
    return this.sharded ? this.sharded.servers() : [];
  }

  get closed(): boolean {
    return this.clientState === ClientState.Closed;
  }

  /** SHOW CLIENTS / SHOW POOLS: active (a server, a statement or a transaction), waiting, idle. */
  get state(): 'active' | 'waiting' | 'idle' {
    return clientStateLabel(this.clientState, this.checkout.server !== null);
  }

  /** How long the client has waited for a server so far, in ms; 0 when not waiting. */
  get waitingMs(): number {
    return this.clientState === ClientState.Waiting ? this.times.waitingMs(performance.now()) : 0;
  }

  get isSessionMode(): boolean {
    return this.pool.settings.mode === 'session';
  }

  /** Start reading; `leftover` is anything that arrived with the login. */
  start(leftover: Buffer | null): void {
    clientJanitor.add(this);
    const onChunk = (chunk: Buffer): void => this.onData(chunk);
    // A plain socket is read without the stream (socket-reads.ts); TLS and the like through 'data'.
    if (!readIntoSharedBuffer(this.socket, onChunk)) this.socket.on('data', onChunk);
    this.socket.on('error', () => this.end());
    this.socket.on('close', () => this.end());
    if (leftover && leftover.length > 0) this.onData(leftover);
  }

  /** A reload's new cluster, pool and settings; a client holding a server keeps its pool until it gives the server back. */
  rebind(to: SessionBinding): void {
    this.cluster = to.cluster;
    if (!this.checkout.server) this.pool = to.pool;
    this.settings = to.settings;
    clientJanitor.fit(to.settings);
  }

  /**
   * The one transition function: records SHOW STATS times, decides whether
   * the socket is read, and lets a draining client go once it is idle.
   */
  transition(next: ClientState): void {
    const prev = this.clientState;
    if (prev === ClientState.Closed) return;
    if (prev !== next) {
      this.clientState = next;
      if (next === ClientState.Closed) return;
      if (prev === ClientState.Waiting || next === ClientState.Waiting || prev === ClientState.Active || next === ClientState.Active) {
        this.times.change(prev, next, performance.now(), this.pool.stats, this.counters);
      }
    }
    // Also when the state stays: the attached server may have changed (a read retried elsewhere).
    this.updateReading();
    if (prev !== next && next === ClientState.Idle) {
      if (this.draining) this.shutdownNow();
      else this.listens.flush(); // notifications held while it was busy
    }
  }

  forgetTransaction(): void {
    this.times.forget();
  }

  /**
   * Read the client unless it waits for a server (past a bound), a pgml rewrite runs, the
   * sharded executor runs its units (it collects replies whole), or the
   * server socket is full.
   */
  private updateReading(): void {
    const state = this.clientState;
    const pause =
      (state === ClientState.Waiting && (this.sharded !== null || this.queuedBeyond(MAX_QUEUED_WHILE_WAITING))) ||
      (this.fullServer !== null && this.fullServer === this.checkout.server) ||
      this.replies.heldBeyond(MAX_QUEUED_WHILE_WAITING) ||
      (state === ClientState.Active && this.sharded !== null);
    if (pause === this.readingPaused || state === ClientState.Closed) return;
    this.readingPaused = pause;
    if (pause) this.socket.pause();
    else this.socket.resume();
  }

  /** More than `limit` bytes wait for a server. */
  private queuedBeyond(limit: number): boolean {
    let bytes = 0;
    for (const b of this.queued) bytes += b.length;
    return bytes > limit;
  }

  waitForServerDrain(): void {
    const server = this.checkout.server;
    if (!server || this.fullServer === server) return;
    this.fullServer = server;
    this.updateReading();
    // Rare (a slow server): a closure per event is fine. A server that dies full never drains; it stops mattering once detached.
    server.onDrain(() => {
      if (this.fullServer !== server) return;
      this.fullServer = null;
      this.updateReading();
    });
  }

  /** Cancel whatever the client's server is running (CancelRequest). */
  cancel(): Promise<void> {
    this.replies.cancel(); // pgml generation in progress for this client stops (57014)
    this.stray.cancelAsked(); // a 57014 now is the client's own
    const server = this.checkout.server;
    return server ? server.cancelFor(this) : Promise.resolve();
  }

  /** Graceful shutdown: leave now if idle, otherwise right after the transaction in flight ends. */
  drain(): void {
    this.draining = true;
    if (this.clientState === ClientState.Idle && (this.checkout.server?.isIdle ?? true)) this.shutdownNow();
  }

  private shutdownNow(): void {
    this.terminate(SqlState.AdminShutdown, 'terminating connection due to administrator command');
  }

  /** Send a fatal error and close (shutdown, timeouts, protocol errors). */
  terminate(code: string, message: string): void {
    if (this.closed) return;
    this.socket.end(errorResponse(code, message, 'FATAL'));
    this.end();
  }

  // The janitor (janitor.ts).

  statementTimedOut(): void {
    // PgCat's statement_timeout guards against servers that hang: the connection cannot be trusted any more, so it is closed.
    this.log.warn({ pid: this.processId, server: this.checkout.server?.address ?? 'shards' }, 'statement timeout');
    this.terminate(SqlState.QueryCanceled, 'canceling statement due to statement timeout');
  }

  idleInTransactionTimedOut(): void {
    this.log.info({ pid: this.processId }, 'idle in transaction timeout');
    this.terminate(SqlState.IdleInTransactionTimeout, 'terminating connection due to idle-in-transaction timeout');
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.pool.stats.totals.received += chunk.length;
    this.lastRequestAt = Date.now();
    let batch;
    try {
      batch = this.framer.push(chunk);
    } catch (err) {
      this.terminate(SqlState.ProtocolViolation, err instanceof ProtocolError ? err.message : 'invalid message');
      return;
    }
    try {
      if (!this.replies.rewrite(batch.buffer, batch.messages)) this.batches.walk(batch.buffer, batch.messages);
    } catch (err) {
      // A message whose insides do not add up (a Parse without its terminators): the client is broken, as Postgres says.
      if (!(err instanceof ProtocolError)) throw err;
      this.terminate(SqlState.ProtocolViolation, err.message);
    }
  }

  /** Run client bytes (whole messages; `syncs` Queries / Syncs / FunctionCalls among them) on the binding. */
  forward(bytes: Buffer, syncs: number): void {
    if (this.settings.sharding) {
      // Several shards: units are routed and run by the sharded executor.
      (this.sharded ??= shardedExecutor(this, (b) => this.replies.fromShards(b))).push(bytes);
      return;
    }
    const server = this.checkout.server;
    if (server && this.clientState !== ClientState.Waiting) {
      const direct = this.checkout.direct;
      if (direct) {
        sendToServer(this, direct, bytes, syncs);
        return;
      }
      // Its unit shares the server with other clients' (pipelining): what it sends next goes after its turn (onServerIdle).
      this.queued.push(bytes);
      this.queuedSyncs += syncs;
      return;
    }
    // No copy needed: each socket read is a fresh Buffer, never reused.
    this.queued.push(bytes);
    this.queuedSyncs += syncs;
    if (this.clientState !== ClientState.Waiting) this.attach.attach();
    else this.updateReading(); // a client sending on while it waits is stopped past a bound
  }

  /** Have the server raise an error for the pooler (raise.ts), in order; the client gets it as the pooler's. */
  forwardRaise(code: string, message: string): void {
    this.replies.raise(code, message, this);
  }

  clientStatements(): ClientStatements {
    return (this.statements ??= new ClientStatements(MAX_CLIENT_STATEMENTS));
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  // ServerOwner: replies from the attached server.

  /** True: the chunk is done with (see ClientReplies.fromServer). */
  onServerData(chunk: Buffer): boolean {
    if (this.stray.holding) {
      const tooBig = this.stray.hold(chunk);
      if (tooBig) this.replies.fromServer(tooBig);
      return true; // copied
    }
    return this.replies.fromServer(chunk);
  }

  onServerIdle(server: ServerConnection): void {
    if (this.stray.holding && settleHeldReply(this, this.attach, server, this.heldToClient)) return;
    onDirectIdle(this, server);
    // What it sent while its unit shared the server with others' (pipelining) goes now.
    if (this.queued.length > 0 && this.clientState === ClientState.Idle) this.attach.attach();
  }

  private readonly heldToClient = (reply: Buffer): void => {
    this.replies.fromServer(reply);
  };

  /** Its unit, queued behind others' (pipelining), runs now: its statement_timeout clock starts. */
  onTurn(): void {
    if (this.settings.statementTimeout > 0 && this.clocks.statementSince === 0) this.clocks.statementSince = Date.now();
  }

  /** A cancel went to the server for the unit ahead of this client's (pipelining): it may hit this one instead. */
  onStrayCancelRisk(): void {
    this.stray.exposed();
  }

  onServerParameter(name: string, value: string): void {
    const tracked = trackedName(name);
    if (tracked && this.params.get(tracked) !== value) {
      this.params.set(tracked, value);
      this.paramsVersion += 1;
    }
  }

  onServerClosed(server: ServerConnection, reason: Error): void {
    onServerLost(this, this.attach, server, reason, server.lostReply(this));
  }

  /** The client is gone: give its server back clean, or close it. */
  end(): void {
    if (this.closed) return;
    this.transition(ClientState.Closed);
    clientJanitor.delete(this);
    this.clocks.stop();
    this.sharded?.close();
    this.replies.cancel();
    this.listens.leave();
    this.checkout.release('client left with a query in flight', this.isSessionMode);
    if (!this.socket.destroyed) this.socket.end();
    this.onEnd(this);
  }
}
