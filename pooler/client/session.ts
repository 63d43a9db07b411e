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
import { Dirty } from '../server/reset.js';
import type { ErrorVerdict, PluginVerdict, QueryPlugin } from '../plugins/types.js';
import { judgeParses, judgeQuery } from '../plugins/gate.js';
import type { EmbeddingProvider } from '../pgml/rewrite.js';
import { PgmlTransformer } from '../pgml/transformer.js';
import { AT_BOUNDARY, DescribeReplies, replyContext, type ReplyContext } from '../pgml/describe-replies.js';
import { raiseQuery } from '../protocol/messages/raise.js';
import type { Cluster, ClusterMember, RoleTarget } from '../pool/cluster.js';
import { RoutingState, type RoutingSettings } from '../router/route.js';
import { CustomSqlError, mayBeCustom, parseCustomCommand } from '../router/custom-sql.js';
import { answerCustom, type ShardState } from '../router/custom-reply.js';
import { classify } from '../router/classify.js';
import { ClientStatements } from '../prepared/statements.js';
import { rewriteForServer, splitMessages } from '../prepared/rewrite.js';
import { answerBetweenTransactions } from '../prepared/answer.js';
import type { ShardingContext } from '../sharding/context.js';
import { ShardedExecutor, type ShardedClient } from '../sharding/executor.js';
import { ClientTimers } from './timers.js';
import { ClientCounters } from '../stats/client-counters.js';

/** Bound on one client's named statements (oldest forgotten first). */
const MAX_CLIENT_STATEMENTS = 100_000;

/** Who the client is (SHOW CLIENTS, reload re-pointing). */
export interface ClientIdentity {
  database: string;
  user: string;
  applicationName: string;
  remoteAddress: string;
  remotePort: number;
}

export interface SessionSettings {
  idleInTransactionTimeout: number;
  statementTimeout: number;
  /** Query plugins of the pool (empty: the Query text is never decoded). */
  plugins: QueryPlugin[];
  /** The model engine behind pgml.embed, when models are configured. */
  pgml: EmbeddingProvider | null;
  /** Role routing (default_role, query parser, primary reads). */
  routing: RoutingSettings;
  /** Health check of a connection idle longer than delayMs before reuse (PgCat's healthcheck_*). */
  healthcheck: { delayMs: number; timeoutMs: number };
  /** Shard routing of a pool with several shards (null: one shard). */
  sharding: ShardingContext | null;
  /** PgCat's checkout_failure_limit: disconnect after this many failed checkouts (0: never). */
  checkoutFailureLimit: number;
  /** general.max_message_size: the framer refuses a longer message at its header. */
  maxMessageSize: number;
}

export class ClientSession implements ServerOwner {
  server: ServerConnection | null = null;
  private readonly framer: MessageFramer;
  /** Bytes framed while no server was attached, with their bookkeeping. */
  private queued: Buffer[] = [];
  private queuedSyncs = 0;
  /** An extended-protocol batch is open (Parse/Bind/... sent, no Sync yet). */
  private unsynced = false;
  private acquiring = false;
  private closed = false;
  private draining = false;
  /** statement_timeout and idle_client_in_transaction_timeout, for both paths (direct and sharded). */
  private readonly timers = new ClientTimers(() => this.settings, {
    statementTimeout: () => {
      // PgCat's statement_timeout guards against servers that hang: the
      // connection cannot be trusted any more, so it is closed.
      this.log.warn({ pid: this.processId, server: this.server?.address ?? 'shards' }, 'statement timeout');
      this.terminate(SqlState.QueryCanceled, 'canceling statement due to statement timeout');
    },
    idleInTransactionTimeout: () => {
      this.log.info({ pid: this.processId }, 'idle in transaction timeout');
      this.terminate(SqlState.IdleInTransactionTimeout, 'terminating connection due to idle-in-transaction timeout');
    },
  });
  readonly connectedAt = Date.now();
  /** PgCat's SET SERVER ROLE / SET PRIMARY READS, and statement kinds. */
  readonly routing = new RoutingState();
  /** SET SHARD TO / SET SHARDING KEY TO. */
  readonly shardState: ShardState = { shard: null, shardingKey: null };
  /** The cluster member the attached server belongs to. */
  member: ClusterMember | null = null;
  /** Members that failed the batch being placed (not tried again for it). */
  private excluded: Set<ClusterMember> | null = null;
  /** An autocommit read in flight that may be retried elsewhere if its server dies before answering. */
  private retryable: { bytes: Buffer; syncs: number } | null = null;
  private repliedSinceSend = false;
  /** Last time the client sent anything (SHOW CLIENTS). */
  lastRequestAt = Date.now();
  /** performance.now() marks for SHOW STATS times; 0 when not running. */
  private xactStart = 0;
  private busyStart = 0;
  private waitStart = 0;
  /** This client's own counts (SHOW CLIENTS). */
  readonly counters = new ClientCounters();

  constructor(
    readonly socket: net.Socket,
    /** The servers this client may use (replaced on reload). */
    public cluster: Cluster,
    /** The pool of the server in use, or last used (one member of the cluster). */
    public pool: Pool,
    readonly identity: ClientIdentity,
    /** Reported parameters the client expects its server to have (application_name, TimeZone...). */
    readonly params: Map<string, string>,
    readonly processId: number,
    readonly secretKey: number,
    /** Replaced on reload. */
    public settings: SessionSettings,
    private readonly log: Logger,
    private readonly onEnd: (session: ClientSession) => void,
  ) {
    this.framer = new MessageFramer(settings.maxMessageSize);
  }

  /** PgBouncer's client states: active (has a server), waiting (for one), idle. */
  get state(): 'active' | 'waiting' | 'idle' {
    if (this.acquiring) return 'waiting';
    return this.server || this.sharded?.active ? 'active' : 'idle';
  }

  /** How long the client has waited for a server so far, in ms; 0 when not waiting (SHOW CLIENTS, SHOW POOLS). */
  get waitingMs(): number {
    return this.acquiring && this.waitStart > 0 ? performance.now() - this.waitStart : 0;
  }

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
    this.pgml?.cancel(); // generation in progress for this client stops (57014)
    return this.server ? this.server.cancel() : Promise.resolve();
  }

  /**
   * Graceful shutdown: leave now if between transactions, otherwise right
   * after the transaction in flight ends (it is neither cut nor lost).
   */
  drain(): void {
    this.draining = true;
    if ((this.server ? this.server.isIdle : true) && !this.sharded?.active) this.shutdownNow();
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

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.timers.activity();
    this.pool.stats.totals.received += chunk.length;
    this.lastRequestAt = Date.now();
    let batch;
    try {
      batch = this.framer.push(chunk);
    } catch (err) {
      this.terminate(SqlState.ProtocolViolation, err instanceof ProtocolError ? err.message : 'invalid message');
      return;
    }
    const { buffer, messages } = batch;
    const pgml = this.settings.pgml ? (this.pgml ??= this.pgmlTransformer(this.settings.pgml)) : null;
    if (this.transforming > 0 || pgml?.involved(buffer, messages)) {
      this.transformThenProcess(buffer, messages);
      return;
    }
    pgml?.observe(buffer, messages);
    this.processBatch(buffer, messages);
  }

  /**
   * pgml.embed: compute embeddings (async, in the engine) and rewrite, then
   * process the result like any batch. Later batches queue behind it, so
   * the client's messages still reach the server in order.
   */
  private transforming = 0;
  private transformChain: Promise<void> = Promise.resolve();
  private pgml: PgmlTransformer | null = null;

  /** The client's pgml rewriter; replies are edited against what it records (see describe-replies.ts). */
  private pgmlTransformer(engine: EmbeddingProvider): PgmlTransformer {
    return new PgmlTransformer(engine, this.replyEdits, this.replyContext);
  }

  /** Server replies to edit before the client sees them: pgml Describes, errors raised for the pooler. */
  private readonly replyEdits = new DescribeReplies();
  private readonly replyContext = (): ReplyContext | null => {
    // A sharded executor writes whole messages; while it runs units, what it still owes is not known here.
    if (this.settings.sharding) return this.sharded?.busy ? null : { owed: 0, position: AT_BOUNDARY };
    return replyContext(this.server, this.queuedSyncs);
  };

  /** Have the server raise an error for the pooler (raise.ts), in order; the client gets it as the pooler's. */
  private forwardRaise(code: string, message: string): void {
    this.replyEdits.sync(true, 0, this.replyContext);
    this.forward(raiseQuery(code, message), 1);
  }

  private transformThenProcess(buffer: Buffer, messages: number[]): void {
    this.transforming += 1;
    this.socket.pause();
    this.transformChain = this.transformChain.then(async () => {
      try {
        const pgml = (this.pgml ??= this.pgmlTransformer(this.settings.pgml!));
        let out: Buffer;
        if (pgml.involved(buffer, messages)) out = await pgml.transform(buffer, messages);
        else {
          pgml.observe(buffer, messages);
          out = buffer.subarray(messages[1], messages[messages.length - 1]);
        }
        if (this.closed || out.length === 0) return;
        const framed = new MessageFramer().push(out);
        this.processBatch(framed.buffer, framed.messages);
      } catch (err) {
        this.log.error({ err }, 'pgml rewrite failed');
        this.terminate(SqlState.InternalError, `pgml: ${(err as Error).message}`);
      } finally {
        this.transforming -= 1;
        if (this.transforming === 0 && !this.closed && !this.acquiring) this.socket.resume();
      }
    });
  }

  private processBatch(buffer: Buffer, messages: number[]): void {
    if (messages.length === 0) return;
    const refused = this.settings.plugins.length > 0 ? judgeParses(this.settings.plugins, buffer, messages, this.identity) : null;
    // A refused Parse is never answered for the server (nor is what follows it up to Sync).
    if (!refused && !this.refusedParse && this.pool.sharesPreparedStatements && this.isBetweenTransactions(-1)) {
      // Deferred Parses and the client's DEALLOCATE need no server (prepared/answer.ts).
      const reply = answerBetweenTransactions(buffer, messages, (this.statements ??= new ClientStatements(MAX_CLIENT_STATEMENTS)));
      if (reply) {
        this.socket.write(reply);
        return;
      }
    }
    let runStart = -1;
    let runEnd = -1;
    let syncs = 0;
    for (let i = 0; i < messages.length; i += 3) {
      const type = messages[i];
      const start = messages[i + 1];
      const end = messages[i + 2];
      // After a refused Parse, Postgres ignores everything up to Sync; so does the pooler.
      if (this.refusedParse && type !== Frontend.Sync && type !== Frontend.Terminate) continue;
      switch (type) {
        case Frontend.Terminate:
          if (runStart >= 0) this.forward(buffer.subarray(runStart, runEnd), syncs);
          this.end();
          return;
        case Frontend.Query:
          const custom = mayBeCustom(buffer, start + 5, end - 1) ? customReply(buffer.toString('utf8', start + 5, end - 1), this) : null;
          if (custom) {
            // What came before it in this batch goes first: replies stay in order.
            if (runStart >= 0) this.forward(buffer.subarray(runStart, runEnd), syncs);
            runStart = -1;
            syncs = 0;
            this.answerCustomSql(custom);
            continue;
          }
          if (this.settings.plugins.length > 0) {
            const verdict = judgeQuery(this.settings.plugins, buffer.toString('utf8', start + 5, end - 1), this.identity);
            if (verdict && (verdict.kind === 'error' || this.isBetweenTransactions(runStart))) {
              if (runStart >= 0) this.forward(buffer.subarray(runStart, runEnd), syncs);
              runStart = -1;
              syncs = 0;
              this.answerFromPooler(verdict);
              continue;
            }
          }
          syncs += 1;
          this.markDirty(changesSessionState(buffer, start + 5, end));
          break;
        case Frontend.FunctionCall:
          syncs += 1;
          // A fast-path call names its function by OID (pg_advisory_lock, set_config...): unseen, so reset all.
          this.markDirty(Dirty.Other);
          break;
        case Frontend.Sync:
          if (this.refusedParse) {
            // The refused Parse's error, then ReadyForQuery, in stream order (answerFromPooler).
            const verdict = this.refusedParse;
            this.refusedParse = null;
            this.unsynced = false;
            this.answerFromPooler(verdict);
            continue;
          }
          syncs += 1;
          this.unsynced = false;
          break;
        case Frontend.Parse:
          if (refused?.has(start)) {
            // What came before it still runs; its error is given at Sync.
            if (runStart >= 0) this.forward(buffer.subarray(runStart, runEnd), syncs);
            runStart = -1;
            syncs = 0;
            this.refusedParse = refused.get(start)!;
            continue;
          }
          this.markDirty(changesSessionState(buffer, buffer.indexOf(0, start + 5) + 1, end));
          // A named statement kept under the client's name outlives the transaction (PgCat marks it too).
          if (buffer[start + 5] !== 0 && !this.pool.sharesPreparedStatements) this.markDirty(Dirty.Statements);
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

  /** A plugin refused a Parse of the open extended batch: its error is the answer at Sync. */
  private refusedParse: ErrorVerdict | null = null;
  /** Dirty bits (server/reset.ts) seen before a server was attached. */
  private pendingDirty = 0;
  /** The executor of a sharded pool's client (created on first use). */
  private sharded: ShardedExecutor | null = null;

  private shardedClient(): ShardedClient {
    const session = this;
    return {
      get cluster() {
        return session.cluster;
      },
      get sharding() {
        return session.settings.sharding!;
      },
      shardState: this.shardState,
      params: this.params,
      get statements() {
        return session.pool.sharesPreparedStatements ? (session.statements ??= new ClientStatements(MAX_CLIENT_STATEMENTS)) : null;
      },
      role: (bytes) => this.routing.route(bytes, this.settings.routing),
      write: (bytes) => {
        if (this.replyEdits.active) bytes = this.replyEdits.edit(bytes);
        this.pool.stats.totals.sent += bytes.length;
        this.socket.write(bytes);
      },
      pause: (paused) => {
        if (paused) this.socket.pause();
        else if (this.transforming === 0 && !this.closed) this.socket.resume();
      },
      terminate: (code, message) => this.terminate(code, message),
      // The same clocks and drain as a server's ReadyForQuery on the direct path (onServerIdle).
      unitStarted: () => {
        this.timers.started();
        this.counters.queries += 1;
      },
      unitsDone: (txStatus) => {
        this.timers.settled(txStatus !== TxStatus.Idle);
        // SHOW CLIENTS: units pipelined back to back count as one transaction.
        if (txStatus === TxStatus.Idle) this.counters.transactions += 1;
        if (txStatus === TxStatus.Idle && this.draining) this.shutdownNow();
      },
    };
  }
  /** The client's named statements, when its pool shares prepared statements. */
  private statements: ClientStatements | null = null;

  /**
   * PgCat's SET SHARD / SERVER ROLE / PRIMARY READS and SHOW: answered by the
   * pooler when nothing is in flight (replies must stay in order). Returns
   * whether `sql` was one of them.
   */
  private answerCustomSql(reply: Buffer): void {
    const quiet = !this.acquiring && this.queued.length === 0 && (!this.server || this.server.isQuiet) && !this.sharded?.busy;
    if (!quiet) {
      this.forwardRaise(SqlState.FeatureNotSupported, 'PgCat commands cannot be pipelined behind other queries');
      return;
    }
    const status = this.server ? this.server.txStatus : TxStatus.Idle;
    this.socket.write(Buffer.concat([reply, readyForQuery(status)]));
  }

  /** No server attached and nothing on its way to one (before this batch's run). */
  private isBetweenTransactions(runStart: number): boolean {
    return runStart < 0 && !this.acquiring && this.queued.length === 0 && (!this.server || this.server.isIdle) && !this.sharded?.active;
  }

  /**
   * A plugin answered the Query. Between transactions the pooler replies
   * itself; with a server attached, replies must stay in order, so an error
   * is raised by the server (aborting the transaction, as a real error does).
   * A canned reply is only given between transactions (the caller checks).
   */
  private answerFromPooler(verdict: NonNullable<PluginVerdict>): void {
    if (this.isBetweenTransactions(-1)) {
      const body = verdict.kind === 'reply' ? verdict.messages : errorResponse(verdict.code, verdict.message);
      this.socket.write(Buffer.concat([body, readyForQuery(TxStatus.Idle)]));
      return;
    }
    if (verdict.kind === 'error') this.forwardRaise(verdict.code, verdict.message);
  }

  private markDirty(dirt: number): void {
    if (dirt === 0) return;
    if (this.server) this.server.dirty |= dirt;
    else this.pendingDirty |= dirt;
  }

  private forward(bytes: Buffer, syncs: number): void {
    if (this.settings.sharding) {
      // Several shards: units are routed and run by the sharded executor.
      (this.sharded ??= new ShardedExecutor(this.shardedClient(), this.log)).push(bytes);
      return;
    }
    const server = this.server;
    if (server && !this.acquiring) {
      if (!this.sendToServer(server, bytes, syncs)) this.waitForServerDrain(server);
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
    // `??`: no await (no promise hop) when a server fits at once.
    const member = this.chooseMember() ?? (await this.waitForMember());
    if (!member) return; // the batch was answered with an error
    this.member = member;
    this.pool = member.pool;
    const ready = this.pool.tryAcquire();
    if (ready && parameterSyncQuery(this.params, ready.params) === null && !this.needsHealthcheck(ready)) {
      // A retry after a failed attempt arrives here with the socket paused.
      if (this.bind(ready) && this.socket.isPaused() && this.transforming === 0) this.socket.resume();
      return;
    }
    this.acquiring = true;
    this.waitStart = performance.now();
    this.socket.pause();
    let server: ServerConnection;
    try {
      server = ready ?? (await this.pool.acquire());
      if (this.needsHealthcheck(server)) await this.healthcheck(server);
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
      // A server that cannot be reached is banned and the batch placed elsewhere (once).
      const unreachable = !(err instanceof PoolError) || err.code === SqlState.ConnectionFailure;
      if (unreachable && this.tryElsewhere(member, (err as Error).message)) return;
      this.checkoutFailed(err instanceof PoolError ? err.code : SqlState.ConnectionFailure, (err as Error).message);
      return;
    }
    this.acquiring = false;
    this.excluded = null;
    if (this.closed) {
      void this.pool.release(server);
      return;
    }
    if (this.bind(server)) this.socket.resume();
  }

  /** The cluster member for the queued batch: its shard and role, load-balanced. */
  private chooseMember(): ClusterMember | null {
    const members = this.cluster.members;
    if (members.length === 1 && !this.excluded) return members[0];
    const { shard, role, primaryReads } = this.target();
    return this.cluster.choose(shard, role, primaryReads, this.excluded ?? undefined);
  }

  private target(): { shard: number; role: RoleTarget; primaryReads: boolean } {
    const shard = typeof this.shardState.shard === 'number' ? this.shardState.shard : 0;
    return { shard, ...this.routing.route(this.queued[0] ?? Buffer.alloc(0), this.settings.routing) };
  }

  /**
   * No server fits the batch. While roles may still change (start-up before
   * the first probe, a promotion), wait for the role probe within the
   * checkout timeout; otherwise fail at once. Null once the batch is answered.
   */
  private async waitForMember(): Promise<ClusterMember | null> {
    const { shard, role, primaryReads } = this.target();
    const noServer = 'no server available for this query (all candidates are down or banned)';
    if (!this.cluster.mayFindLater(shard, role)) {
      this.checkoutFailed(SqlState.ConnectionFailure, noServer);
      return null;
    }
    const timeoutMs = this.pool.settings.checkoutTimeout;
    this.acquiring = true; // later messages queue behind this batch
    this.socket.pause();
    const found = await this.cluster.chooseWhenKnown(shard, role, primaryReads, performance.now() + timeoutMs, this.excluded ?? undefined);
    this.acquiring = false;
    if (this.closed) return null;
    if (found === 'timeout') {
      this.checkoutFailed(SqlState.ConnectionFailure, `no ${role} server available: none found by the role probe within ${timeoutMs} ms`);
      return null;
    }
    if (!found) this.checkoutFailed(SqlState.ConnectionFailure, noServer);
    return found;
  }

  /** Ban `member` and place the queued batch on another server; false when there is none. */
  private tryElsewhere(member: ClusterMember, reason: string): boolean {
    if (this.closed || this.cluster.members.length === 1) return false;
    this.cluster.ban(member, reason);
    this.excluded ??= new Set();
    if (this.excluded.has(member)) return false;
    this.excluded.add(member);
    void this.attachServer();
    return true;
  }

  private needsHealthcheck(server: ServerConnection): boolean {
    const { delayMs } = this.settings.healthcheck;
    return delayMs > 0 && Date.now() - server.idleSince > delayMs;
  }

  /** PgCat's health check: an empty query within healthcheck_timeout, or the server is dropped. */
  private async healthcheck(server: ServerConnection): Promise<void> {
    const { timeoutMs } = this.settings.healthcheck;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        server.query(';'),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`health check timed out after ${timeoutMs} ms`)), timeoutMs))),
      ]);
    } catch (err) {
      this.pool.discard(server, 'health check failed');
      throw new PoolError(SqlState.ConnectionFailure, `health check of ${server.address} failed: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Attach a server and send it everything queued; false when waiting for the server socket to drain. */
  private bind(server: ServerConnection): boolean {
    this.server = server;
    server.owner = this;
    server.dirty |= this.pendingDirty;
    this.pendingDirty = 0;
    const bytes = this.queued.length === 1 ? this.queued[0] : Buffer.concat(this.queued);
    const syncs = this.queuedSyncs;
    this.queued = [];
    this.queuedSyncs = 0;
    // Transparent read retry: an autocommit read on a shard with somewhere else to go.
    this.retryable =
      this.cluster.members.length > 1 && !this.isSessionMode && server.txStatus === TxStatus.Idle && syncs > 0 && this.isRead(bytes)
        ? { bytes, syncs }
        : null;
    this.repliedSinceSend = false;
    if (this.waitStart > 0) {
      const waitedUs = Math.round((performance.now() - this.waitStart) * 1000);
      this.pool.stats.totals.waitTimeUs += waitedUs;
      this.counters.waited(waitedUs);
      this.waitStart = 0;
    }
    if (this.sendToServer(server, bytes, syncs)) return true;
    this.waitForServerDrain(server);
    return false;
  }

  /** A batch of reads only (Query or extended), by the real parser. */
  private isRead(bytes: Buffer): boolean {
    let offset = 0;
    let read = false;
    while (offset + 5 <= bytes.length) {
      const type = bytes[offset];
      const end = offset + 1 + bytes.readInt32BE(offset + 1);
      if (type === Frontend.Query || type === Frontend.Parse) {
        const textStart = type === Frontend.Query ? offset + 5 : bytes.indexOf(0, offset + 5) + 1;
        if (classify(bytes.toString('utf8', textStart, bytes.indexOf(0, textStart))) !== 'read') return false;
        read = true;
      } else if (type === Frontend.CopyData || type === Frontend.FunctionCall) return false;
      offset = end;
    }
    return read;
  }

  /** Write to the attached server, starting the clocks of SHOW STATS. */
  private sendToServer(server: ServerConnection, bytes: Buffer, syncs: number): boolean {
    if (server.replies) {
      // Prepared statements shared across servers: names rewritten for this one.
      this.statements ??= new ClientStatements(MAX_CLIENT_STATEMENTS);
      bytes = rewriteForServer(splitMessages(bytes), this.statements, server.replies, server.isIdle, server);
    }
    if (syncs > 0) {
      this.timers.started();
      this.pool.stats.totals.queryCount += syncs;
      this.counters.queries += syncs;
      const now = performance.now();
      if (server.pending === 0) this.busyStart = now;
      if (this.xactStart === 0) this.xactStart = now;
    }
    return server.send(bytes, syncs, this.unsynced);
  }

  /**
   * No server for the queued requests: answer them with the error, then
   * apply PgCat's checkout_failure_limit, failures over the client's life
   * (PgCat never resets its count), so a client stuck on an overloaded
   * pooler reconnects, maybe to another one behind the load balancer.
   */
  private checkoutFailures = 0;
  private checkoutFailed(code: string, message: string): void {
    this.failQueued(code, message);
    this.counters.errors += 1;
    this.checkoutFailures += 1;
    const limit = this.settings.checkoutFailureLimit;
    if (limit > 0 && this.checkoutFailures >= limit) {
      this.terminate(SqlState.TooManyConnections, `checkout failure limit reached (${this.checkoutFailures} / ${limit})`);
    }
  }

  /** Answer queued requests with an error, as the server would have. */
  private failQueued(code: string, message: string): void {
    const syncs = this.queuedSyncs;
    this.queued = [];
    this.queuedSyncs = 0;
    this.unsynced = false;
    this.replyEdits.reset();
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
    // A dying server's FATAL is not here: the connection holds it back (heldFatal, see onServerClosed).
    if (this.replyEdits.active) {
      chunk = this.replyEdits.edit(chunk);
      if (chunk.length === 0) return;
    }
    this.pool.stats.totals.sent += chunk.length;
    this.repliedSinceSend = true;
    if (!this.socket.write(chunk) && this.server) {
      const server = this.server;
      server.pauseReading();
      this.socket.once('drain', () => server.resumeReading());
    }
  }

  onServerIdle(server: ServerConnection): void {
    this.timers.settled(server.txStatus !== TxStatus.Idle);
    const totals = this.pool.stats.totals;
    const now = performance.now();
    if (this.busyStart > 0) totals.queryTimeUs += Math.round((now - this.busyStart) * 1000);
    this.busyStart = 0;
    if (server.txStatus === TxStatus.Idle && this.xactStart > 0) {
      totals.xactCount += 1;
      this.counters.transactions += 1;
      totals.xactTimeUs += Math.round((now - this.xactStart) * 1000);
      this.xactStart = 0;
    }
    if (server.txStatus !== TxStatus.Idle) return;
    if (!this.isSessionMode) {
      this.server = null;
      void this.pool.release(server);
    }
    if (this.draining) this.shutdownNow();
  }

  onServerParameter(name: string, value: string): void {
    const tracked = trackedName(name);
    if (tracked) this.params.set(tracked, value);
  }

  onServerClosed(server: ServerConnection, reason: Error): void {
    this.timers.settled(false);
    this.replyEdits.reset();
    this.pool.stats.totals.errors += 1;
    this.counters.errors += 1;
    this.busyStart = 0;
    this.xactStart = 0;
    this.server = null;
    const retry = this.retryable;
    this.retryable = null;
    if (retry && !this.repliedSinceSend && this.member && !this.closed) {
      // The read never got an answer: run it on another server; the client sees nothing.
      this.log.warn({ server: server.address, reason: reason.message }, 'server died under a read; retrying it elsewhere');
      this.queued.unshift(retry.bytes);
      this.queuedSyncs += retry.syncs;
      if (this.tryElsewhere(this.member, reason.message)) return;
      this.queued.shift();
      this.queuedSyncs -= retry.syncs;
    }
    // The server may have said why itself (FATAL 57P01...), held back by the
    // connection (heldFatal) or already shown; one error per statement.
    const held = server.heldFatal;
    const message = `server connection lost: ${held ? held.message : reason.message}`;
    const inTransaction = server.txStatus !== TxStatus.Idle;
    const errorShown = server.errorForwarded;
    // After a FATAL the client saw, it expects the connection to end, as with Postgres.
    if (inTransaction || this.isSessionMode || (server.unsynced && server.pending === 0) || (errorShown && server.fatal && !held)) {
      // Its transaction or session is gone: the server's own FATAL, then the end.
      if (errorShown || held) {
        if (held) this.socket.end(held.bytes);
        else this.socket.end();
        this.end();
      } else {
        this.terminate(SqlState.ConnectionFailure, message);
      }
      return;
    }
    // An autocommit statement was in flight: answer it with an error (not
    // FATAL: the client keeps its connection) and let it go on with another server.
    const replies = errorShown ? [] : [errorResponse(held?.code ?? SqlState.ConnectionFailure, message)];
    for (let i = 0; i < Math.max(server.pending, 1); i++) replies.push(readyForQuery(TxStatus.Idle));
    this.unsynced = false;
    this.socket.write(Buffer.concat(replies));
  }

  /** The client is gone: give its server back clean, or close it. */
  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.sharded?.close();
    this.pgml?.cancel();
    this.timers.clear();
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

/** The pooler's answer to PgCat's SQL (SET SHARD, SET SERVER ROLE...), or null when `sql` is not one of its commands. */
function customReply(sql: string, session: ClientSession): Buffer | null {
  try {
    const cmd = parseCustomCommand(sql);
    return cmd ? answerCustom(cmd, session.routing, session.shardState, session.settings.sharding) : null;
  } catch (err) {
    if (!(err instanceof CustomSqlError)) throw err;
    return errorResponse(err.code, err.message);
  }
}
