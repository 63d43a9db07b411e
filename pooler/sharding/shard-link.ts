// One shard's server connection while a sharded client uses it: borrowed
// from the shard's pool, sent one unit at a time, its reply collected whole
// (up to the ReadyForQuery that ends it) so the executor can check and
// merge replies before the client sees any of them.

import { serialize } from 'pg-protocol';
import { Backend } from '../protocol/codes.js';
import { parseErrorFields } from '../protocol/messages/error.js';
import type { ServerConnection, ServerOwner } from '../server/connection.js';
import { parameterSyncQuery, trackedName } from '../server/params.js';
import { rewriteForServer, splitMessages } from '../prepared/rewrite.js';
import type { ClientStatements } from '../prepared/statements.js';
import type { ClusterMember } from '../pool/cluster.js';
import { changesSessionState } from '../client/session-state.js';
import { Dirty } from '../server/reset.js';

/** A shard that failed: the client's error names it. */
export class ShardError extends Error {
  constructor(
    readonly shard: number,
    readonly code: string,
    message: string,
  ) {
    super(`shard ${shard}: ${message}`);
  }
}

/** The first ErrorResponse in a reply, if any: [SQLSTATE, message]. */
export function replyError(reply: Buffer): [string, string] | null {
  let off = 0;
  while (off + 5 <= reply.length) {
    const end = off + 1 + reply.readInt32BE(off + 1);
    if (reply[off] === Backend.ErrorResponse) {
      const f = parseErrorFields(reply.subarray(off + 5, end));
      return [f.get('C') ?? 'XX000', f.get('M') ?? 'error'];
    }
    off = end;
  }
  return null;
}

/** The reply without its final ReadyForQuery. */
export function withoutReady(reply: Buffer): Buffer {
  return reply.length >= 6 && reply[reply.length - 6] === Backend.ReadyForQuery ? reply.subarray(0, reply.length - 6) : reply;
}

export class ShardLink implements ServerOwner {
  private chunks: Buffer[] = [];
  private waiting: { resolve(reply: Buffer): void; reject(err: Error): void } | null = null;
  private constructor(
    readonly shard: number,
    readonly member: ClusterMember,
    readonly server: ServerConnection,
    private readonly params: Map<string, string>,
  ) {
    server.owner = this;
  }

  /** Borrow a connection on `member` (its shard) with the client's session parameters. */
  static async open(member: ClusterMember, params: Map<string, string>): Promise<ShardLink> {
    let server: ServerConnection;
    try {
      server = await member.pool.acquire();
      const sync = parameterSyncQuery(params, server.params);
      if (sync) await server.query(sync);
    } catch (err) {
      throw new ShardError(member.shard, '08006', `${member.address}: ${(err as Error).message}`);
    }
    return new ShardLink(member.shard, member, server, params);
  }

  get txStatus(): number {
    return this.server.txStatus;
  }

  /** Send a unit (counting its Query/Sync messages) and collect the reply. */
  run(bytes: Buffer, statements: ClientStatements | null): Promise<Buffer> {
    if (this.server.closed) return Promise.reject(new ShardError(this.shard, '08006', `${this.member.address}: server connection lost`));
    if (this.server.replies && statements) bytes = rewriteForServer(splitMessages(bytes), statements, this.server.replies, false, this.server);
    let syncs = 0;
    for (let off = 0; off + 5 <= bytes.length; off += 1 + bytes.readInt32BE(off + 1)) {
      const type = bytes[off];
      if (type === 0x51 /* Q */ || type === 0x53 /* S */) syncs += 1;
      // Session state the unit leaves is undone before the server's next client (client/session-state.ts).
      const end = off + 1 + bytes.readInt32BE(off + 1);
      if (type === 0x51) this.server.dirty |= changesSessionState(bytes, off + 5, end);
      else if (type === 0x50 /* P */) this.server.dirty |= changesSessionState(bytes, bytes.indexOf(0, off + 5) + 1, end);
      else if (type === 0x46 /* F */) this.server.dirty |= Dirty.Other;
    }
    this.member.pool.stats.totals.queryCount += syncs;
    return new Promise((resolve, reject) => {
      this.chunks = [];
      this.waiting = { resolve, reject };
      this.server.send(bytes, syncs, false);
    });
  }

  /** Run a statement of the pooler's (BEGIN, COMMIT...) and fail on an error. */
  async runSql(sql: string): Promise<Buffer> {
    const reply = await this.run(serialize.query(sql), null);
    const error = replyError(reply);
    if (error) throw new ShardError(this.shard, error[0], error[1]);
    return reply;
  }

  /** Give the connection back (clean) or close it (anything in flight: whoever waits for its reply gets an error). */
  release(): void {
    this.server.owner = null;
    const w = this.waiting;
    this.waiting = null;
    if (!this.server.closed) {
      if (this.server.isQuiet) void this.member.pool.release(this.server);
      else this.member.pool.discard(this.server, 'sharded client left with a query in flight');
    }
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
