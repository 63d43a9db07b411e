// Finding a server for the direct binding: the cluster member for the
// queued batch (shard, role, load balancing; waiting for the role probe
// while roles may still change), a connection from its pool, PgCat's
// health check, the client's session parameters, and on failure another
// server (once) or an error for each statement waiting (checkout_failure_limit).
//
// The common case, an idle server whose parameters already match, is
// synchronous: no promise, no pause of the client socket.

import { SqlState, TxStatus } from '../protocol/codes.js';
import { errorResponse } from '../protocol/messages/error.js';
import { readyForQuery } from '../protocol/messages/status.js';
import type { ServerConnection } from '../server/connection.js';
import { PoolError } from '../pool/pool.js';
import type { ClusterMember, RoleTarget } from '../pool/cluster.js';
import { parameterSyncQuery } from '../server/params.js';
import { ClientState } from './client-state.js';
import type { SessionCore } from './session-core.js';
import { bind, bindBehind } from './direct.js';
import { ParamMatch } from './param-match.js';
import { mayPipeline } from './pipeline-unit.js';
import { setsMatch, setsSyncQuery } from './session-sets.js';
import type { Sharer } from '../pool/share.js';

const EMPTY = Buffer.alloc(0);

/**
 * Attaches servers for one session. Allocated once per session: the
 * callbacks it gives the pool's wait queue are its own fields, so waiting
 * for a connection allocates no promise and no closure.
 */
export class ServerAttach implements Sharer {
  private readonly params = new ParamMatch();

  constructor(private readonly s: SessionCore) {}

  /** Borrow a server for the queued batch and send it; answers the batch with an error when there is none. */
  attach(): void {
    const s = this.s;
    const member = chooseMember(s);
    if (!member) {
      void waitForMember(s).then((found) => found && this.checkOut(found));
      return;
    }
    this.checkOut(member);
  }

  /** Ban `member` and place the queued batch on another server; false when there is none. */
  tryElsewhere(member: ClusterMember, reason: string): boolean {
    const s = this.s;
    if (s.closed || s.cluster.members.length === 1) return false;
    s.cluster.ban(member, reason);
    s.excluded ??= new Set();
    if (s.excluded.has(member)) return false;
    s.excluded.add(member);
    this.attach();
    return true;
  }

  private checkOut(member: ClusterMember): void {
    const s = this.s;
    s.member = member;
    s.pool = member.pool;
    const ready = s.pool.tryAcquire();
    if (ready && this.fits(ready) && !needsHealthcheck(s, ready)) {
      bind(s, ready);
      return;
    }
    s.transition(ClientState.Waiting);
    if (ready) void this.prepare(ready);
    else s.pool.wait(this.poolReady, this.poolFailed, this.mayShare() ? this : null);
  }

  /** The queued batch may be queued behind other clients' units on a busy server (pipelining: client/pipeline-unit.ts). */
  private mayShare(): boolean {
    const s = this.s;
    const pipeline = s.pool.settings.pipeline;
    if (pipeline.depth <= 1 || s.pendingDirty !== 0 || s.unsynced || s.queuedSyncs === 0) return false;
    const statements = s.pool.sharesPreparedStatements ? s.clientStatements() : null;
    for (const bytes of s.queued) if (!mayPipeline(bytes, statements, pipeline.writes, s.pool.slowStatements)) return false;
    return true;
  }

  // Sharer (pool/share.ts): the pool offers a place behind a busy server's units.

  accepts(server: ServerConnection): boolean {
    return !this.s.closed && this.fits(server);
  }

  /** `server` has the client's session parameters and kept SETs: no statement needed before its batch. */
  private fits(server: ServerConnection): boolean {
    const s = this.s;
    return this.params.matches(s.params, s.paramsVersion, server) && setsMatch(s.sets.values, server.sessionSets);
  }

  onBehind(server: ServerConnection): void {
    bindBehind(this.s, server);
  }

  /** The pool's wait queue handed over a connection. */
  private readonly poolReady = (server: ServerConnection): void => {
    const s = this.s;
    if (s.closed) {
      void s.pool.release(server);
      return;
    }
    if (this.fits(server) && !needsHealthcheck(s, server)) bind(s, server);
    else void this.prepare(server);
  };

  private readonly poolFailed = (err: Error): void => this.failed(err);

  /** The slow path: PgCat's health check, then the client's session parameters. */
  private async prepare(server: ServerConnection): Promise<void> {
    const s = this.s;
    try {
      if (needsHealthcheck(s, server)) await healthcheck(s, server);
      const sync = (parameterSyncQuery(s.params, server.params) ?? '') + setsSyncQuery(s.sets.values, server.sessionSets);
      if (sync) {
        try {
          await server.query(sync);
        } catch (err) {
          s.pool.discard(server, 'parameter sync failed');
          throw err;
        }
        // The server now has exactly the client's kept SETs.
        server.sessionSets.clear();
        for (const [name, value] of s.sets.values) server.sessionSets.set(name, value);
      }
    } catch (err) {
      this.failed(err as Error);
      return;
    }
    if (s.closed) {
      void s.pool.release(server);
      return;
    }
    bind(s, server);
  }

  /** No connection: a server that cannot be reached is banned and the batch placed elsewhere (once); otherwise the batch fails. */
  private failed(err: Error): void {
    const s = this.s;
    if (s.closed) return;
    const unreachable = !(err instanceof PoolError) || err.code === SqlState.ConnectionFailure;
    if (unreachable && s.member && this.tryElsewhere(s.member, err.message)) return;
    checkoutFailed(s, err instanceof PoolError ? err.code : SqlState.ConnectionFailure, err.message);
  }
}

/** The cluster member for the queued batch: its shard and role, load-balanced. */
function chooseMember(s: SessionCore): ClusterMember | null {
  const members = s.cluster.members;
  if (members.length === 1 && !s.excluded) return members[0];
  const { shard, role, primaryReads } = target(s);
  return s.cluster.choose(shard, role, primaryReads, s.excluded ?? undefined);
}

function target(s: SessionCore): { shard: number; role: RoleTarget; primaryReads: boolean } {
  const shard = typeof s.shardState.shard === 'number' ? s.shardState.shard : 0;
  return { shard, ...s.routing.route(s.queued[0] ?? EMPTY, s.settings.routing) };
}

/**
 * No server fits the batch. While roles may still change (start-up before
 * the first probe, a promotion), wait for the role probe within the
 * checkout timeout; otherwise fail at once. Null once the batch is answered.
 */
async function waitForMember(s: SessionCore): Promise<ClusterMember | null> {
  const { shard, role, primaryReads } = target(s);
  const noServer = 'no server available for this query (all candidates are down or banned)';
  if (!s.cluster.mayFindLater(shard, role)) {
    checkoutFailed(s, SqlState.ConnectionFailure, noServer);
    return null;
  }
  const timeoutMs = s.pool.settings.checkoutTimeout;
  s.transition(ClientState.Waiting); // later messages queue behind this batch
  const found = await s.cluster.chooseWhenKnown(shard, role, primaryReads, performance.now() + timeoutMs, s.excluded ?? undefined);
  if (s.closed) return null;
  if (found === 'timeout') {
    checkoutFailed(s, SqlState.ConnectionFailure, `no ${role} server available: none found by the role probe within ${timeoutMs} ms`);
    return null;
  }
  if (!found) checkoutFailed(s, SqlState.ConnectionFailure, noServer);
  return found;
}

function needsHealthcheck(s: SessionCore, server: ServerConnection): boolean {
  const { delayMs } = s.settings.healthcheck;
  return delayMs > 0 && Date.now() - server.idleSince > delayMs;
}

/** PgCat's health check: an empty query within healthcheck_timeout, or the server is dropped. */
async function healthcheck(s: SessionCore, server: ServerConnection): Promise<void> {
  const { timeoutMs } = s.settings.healthcheck;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      server.query(';'),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`health check timed out after ${timeoutMs} ms`)), timeoutMs))),
    ]);
  } catch (err) {
    s.pool.discard(server, 'health check failed');
    throw new PoolError(SqlState.ConnectionFailure, `health check of ${server.address} failed: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

/** No server for the queued requests: answer them with the error, then count the failure. */
function checkoutFailed(s: SessionCore, code: string, message: string): void {
  failQueued(s, code, message);
  countCheckoutFailure(s);
}

/**
 * A checkout failed and its error was answered (here, or by the sharded
 * executor for a shard with no server): PgCat's checkout_failure_limit,
 * failures over the client's life (PgCat never resets its count), so a
 * client stuck on an overloaded pooler reconnects, maybe to another one
 * behind the load balancer.
 */
export function countCheckoutFailure(s: SessionCore): void {
  s.counters.errors += 1;
  s.checkoutFailures += 1;
  const limit = s.settings.checkoutFailureLimit;
  if (limit > 0 && s.checkoutFailures >= limit) {
    s.terminate(SqlState.TooManyConnections, `checkout failure limit reached (${s.checkoutFailures} / ${limit})`);
  }
}

/** Answer queued requests with an error, as the server would have. */
function failQueued(s: SessionCore, code: string, message: string): void {
  const syncs = s.queuedSyncs;
  s.queued = [];
  s.queuedSyncs = 0;
  s.unsynced = false;
  s.excluded = null;
  s.replyEdits.reset();
  if (s.closed) return;
  const replies = [errorResponse(code, message)];
  // One ReadyForQuery per Sync/Query the client is waiting on; an open
  // extended batch gets its ReadyForQuery when its Sync arrives.
  for (let i = 0; i < syncs; i++) replies.push(readyForQuery(TxStatus.Idle));
  s.write(Buffer.concat(replies));
  s.transition(ClientState.Idle);
}
