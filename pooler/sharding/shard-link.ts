// One shard's server connection while a sharded client uses it: borrowed
// from the shard's pool, sent one unit at a time, its reply collected whole
// (up to the ReadyForQuery that ends it) so the executor can check and
// merge replies before the client sees any of them.

import { Backend, Frontend, SqlState } from '../protocol/codes.js';
import { MessageCursor } from '../protocol/cursor.js';
import { query } from '../protocol/messages/query.js';
import type { ServerConnection, ServerOwner } from '../server/connection.js';
import { parameterSyncQuery, trackedName } from '../server/params.js';
import { rewriteForServer } from '../prepared/rewrite.js';
import type { ClientStatements } from '../prepared/statements.js';
import type { ClusterMember } from '../pool/cluster.js';
import { Checkout } from '../pool/checkout.js';
import { PoolError } from '../pool/pool.js';
import { changesSessionState } from '../client/session-state.js';
import { mayPipeline, unitKey } from '../client/pipeline-unit.js';
import { Dirty } from '../server/reset.js';
import type { Sharer } from '../pool/share.js';

/** A shard that failed: the client's error names it. */
export class ShardError extends Error {
  constructor(
    readonly shard: number,
    readonly code: string,
    message: string,
    /** No server could be had for the shard (counts toward checkout_failure_limit, as on the direct path). */
    readonly checkout = false,
  ) {
    super(`shard ${shard}: ${message}`);
  }
}

/** The first ErrorResponse in a reply, if any: [SQLSTATE, message]. */
export function replyError(reply: Buffer): [string, string] | null {
  try {
    for (const m = new MessageCursor().over(reply); m.next(); ) {
      if (m.type !== Backend.ErrorResponse) continue;
      const f = m.errorFields();
      return [f.get('C') ?? 'XX000', f.get('M') ?? 'error'];
    }
  } catch {
    // A reply cut short (the server closed mid-message): no error in what came.
  }
  return null;
}

/** The reply without its final ReadyForQuery. */
export function withoutReady(reply: Buffer): Buffer {
  return reply.length >= 6 && reply[reply.length - 6] === Backend.ReadyForQuery ? reply.subarray(0, reply.length - 6) : reply;
}

/** An autocommit unit a link may send behind other clients' on a busy connection (pipelining). */
export interface ShareableUnit {
  readonly bytes: Buffer;
  readonly statements: ClientStatements | null;
}

export class ShardLink implements ServerOwner {
  private chunks: Buffer[] = [];
  private waiting: { resolve(reply: Buffer): void; reject(err: Error): void } | null = null;
  /** Owns the server's owner pointer and its release or discard. */
  private readonly checkout = new Checkout(this);
  /** The reply of the unit sent when the link was queued behind others' units (run() returns it). */
  private sentAhead: { bytes: Buffer; reply: Promise<Buffer> } | null = null;
  private constructor(
    readonly shard: number,
    readonly member: ClusterMember,
    readonly server: ServerConnection,
    private readonly params: Map<string, string>,
    behind: ShareableUnit | null = null,
  ) {
    if (!behind) {
      this.checkout.hold(member.pool, server);
      return;
    }
    // Queued behind the units the connection runs and sent at once, in the same turn: the queue's order is the socket's.
    const bytes = behind.bytes;
    const unit = this.prepare(bytes, behind.statements);
    this.checkout.follow(member.pool, server, unit.syncs, unitKey(bytes, behind.statements));
    const reply = this.write(unit);
    reply.catch(() => undefined); // the executor may give up on the link before asking (another shard failed)
    this.sentAhead = { bytes, reply };
  }

  /**
   * Borrow a connection on `member` (its shard) with the client's session
   * parameters; `onWait` is called when none is free at once (the client
   * waits). `unit`, when the pool pipelines and it may be: with no
   * connection free it may instead be sent behind other clients' units on
   * a busy one (run() then returns its reply).
   */
  static async open(member: ClusterMember, params: Map<string, string>, onWait?: () => void, unit?: ShareableUnit): Promise<ShardLink> {
    let server: ServerConnection | null = null;
    try {
      server = member.pool.tryAcquire();
      if (!server) {
        onWait?.();
        const got = await ShardLink.acquireOrShare(member, params, unit);
        if (got instanceof ShardLink) return got;
        server = got;
      }
      const sync = parameterSyncQuery(params, server.params);
      if (sync) await server.query(sync);
    } catch (err) {
      if (server) member.pool.discard(server, 'parameter sync failed');
      // The pool's own code (53300 when none was free in time), as the direct path answers.
      const code = err instanceof PoolError ? err.code : SqlState.ConnectionFailure;
      throw new ShardError(member.shard, code, `${member.address}: ${(err as Error).message}`, true);
    }
    return new ShardLink(member.shard, member, server, params);
  }

  /**
   * Wait for a connection of `member`'s pool; with a shareable `unit` the
   * pool may instead give a place behind a busy connection's units
   * (pool/share.ts), and the link is made and its unit sent there and then.
   */
  private static acquireOrShare(member: ClusterMember, params: Map<string, string>, unit: ShareableUnit | undefined): Promise<ServerConnection | ShardLink> {
    const pool = member.pool;
    return new Promise((resolve, reject) => {
      const sharer: Sharer | null =
        unit && pool.settings.pipeline.depth > 1 && mayPipeline(unit.bytes, unit.statements, pool.settings.pipeline.writes, pool.slowStatements)
          ? {
              // Behind others only where no parameter must change (SET is never pipelined).
              accepts: (conn) => parameterSyncQuery(params, conn.params) === null,
              onBehind: (conn) => resolve(new ShardLink(member.shard, member, conn, params, unit)),
            }
          : null;
      pool.wait(resolve, reject, sharer);
    });
  }

  get txStatus(): number {
    return this.server.txStatus;
  }

  /** Send a unit (counting its Query/Sync messages) and collect the reply. */
  run(bytes: Buffer, statements: ClientStatements | null): Promise<Buffer> {
    const ahead = this.sentAhead;
    this.sentAhead = null;
    if (ahead && ahead.bytes === bytes) return ahead.reply;
    if (this.server.closed) return Promise.reject(new ShardError(this.shard, '08006', `${this.member.address}: server connection lost`));
    const pipeline = this.member.pool.settings.pipeline;
    if (pipeline.depth > 1 && this.checkout.direct) {
      // A unit of its own: may others' units queue behind it?
      this.server.ownUnit(mayPipeline(bytes, statements, pipeline.writes, this.member.pool.slowStatements), unitKey(bytes, statements));
    }
    return this.write(this.prepare(bytes, statements));
  }

  /** The unit as this server takes it (prepared statement names rewritten), its Query/Sync count, and the session state it leaves marked. */
  private prepare(bytes: Buffer, statements: ClientStatements | null): { bytes: Buffer; syncs: number } {
    if (this.server.prepared && statements) bytes = rewriteForServer(bytes, statements, this.server.prepared, false, this.server);
    let syncs = 0;
    for (const m = new MessageCursor().over(bytes); m.next(); ) {
      const type = m.type;
      if (type === Frontend.Query || type === Frontend.Sync) syncs += 1;
      // Session state the unit leaves is undone before the server's next client (client/session-state.ts).
      if (type === Frontend.Query || type === Frontend.Parse) this.server.dirty |= changesSessionState(bytes, m.sqlStart(), m.end);
      else if (type === Frontend.FunctionCall) this.server.dirty |= Dirty.Other;
    }
    return { bytes, syncs };
  }

  /** Send a prepared unit and collect its reply. */
  private write(unit: { bytes: Buffer; syncs: number }): Promise<Buffer> {
    this.member.pool.stats.totals.queryCount += unit.syncs;
    return new Promise((resolve, reject) => {
      this.chunks = [];
      this.waiting = { resolve, reject };
      this.server.send(unit.bytes, unit.syncs, false);
    });
  }

  /** Run a statement of the pooler's (BEGIN, COMMIT...) and fail on an error. */
  async runSql(sql: string): Promise<Buffer> {
    const reply = await this.run(query(sql), null);
    const error = replyError(reply);
    if (error) throw new ShardError(this.shard, error[0], error[1]);
    return reply;
  }

  /** Give the connection back (clean) or close it (anything in flight: whoever waits for its reply gets an error). */
  release(): void {
    const w = this.waiting;
    this.waiting = null;
    this.checkout.release('sharded client left with a query in flight');
    w?.reject(new ShardError(this.shard, '08006', `${this.member.address}: statement abandoned`));
  }

  onServerData(chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  onServerIdle(): void {
    const w = this.waiting;
    this.waiting = null;
    w?.resolve(Buffer.concat(this.chunks));
    this.chunks = [];
  }

  onServerClosed(server: ServerConnection, reason: Error): void {
    const w = this.waiting;
    this.waiting = null;
    // The server may have said why before closing (FATAL: a malformed message, a shutdown), held back by the connection.
    const held = server.heldFatal;
    const said = held ? [held.code, held.message] : replyError(Buffer.concat(this.chunks));
    this.chunks = [];
    w?.reject(new ShardError(this.shard, said?.[0] ?? '08006', `${this.member.address}: ${said?.[1] ?? `server connection lost: ${reason.message}`}`));
  }

  onServerParameter(name: string, value: string): void {
    const tracked = trackedName(name);
    if (tracked) this.params.set(tracked, value);
  }
}

