// A client of a sharded pool: its messages run unit by unit (a Query, or an
// extended batch up to Sync), each routed to the shards it concerns:
//
// - one shard (SET SHARD, SET SHARDING KEY, a comment, the key in the SQL,
//   or default_shard): the unit runs there and its reply goes back as is;
// - several shards: a SELECT is planned (plan.ts) and its replies merged
//   (merge.ts); a multi-row INSERT is split by shard; DDL, and writes whose
//   keys span shards, run on each and their row counts are added;
// - a write with no sharding key is refused rather than sent everywhere.
//
// Replies are collected whole before the client sees any, so a failure on
// one shard fails the statement (naming the shard), never a partial result.
//
// Transactions: BEGIN is answered here and replayed on each shard the
// transaction reaches; COMMIT and ROLLBACK go to every shard it reached.
// (Commits are not atomic across shards: there is no two-phase commit.)

import type { Logger } from 'pino';
import { SqlState, TxStatus } from '../protocol/codes.js';
import { errorResponse, noticeResponse } from '../protocol/messages/error.js';
import { commandComplete } from '../protocol/messages/rows.js';
import { readyForQuery } from '../protocol/messages/status.js';
import type { Cluster, RoleTarget } from '../pool/cluster.js';
import type { ShardState } from './shard-state.js';
import type { ClientStatements } from '../prepared/statements.js';
import type { ShardingContext } from './context.js';
import type { ServerConnection } from '../server/connection.js';
import { ShardError, ShardLink, replyError, withoutReady } from './shard-link.js';
import { classify } from '../router/classify.js';
import { takeUnits, type Unit } from './units.js';
import { tailSql } from '../protocol/messages/parse.js';
import { routeUnit, type ShardRoute } from './route-unit.js';
import { combineWrites, mergeSelect } from './combine.js';

/** What the executor needs from the client session. */
export interface ShardedClient {
  readonly cluster: Cluster;
  readonly sharding: ShardingContext;
  readonly shardState: ShardState;
  readonly params: Map<string, string>;
  readonly statements: ClientStatements | null;
  /** Role for a unit outside a transaction (read/write splitting). */
  role(bytes: Buffer): { role: RoleTarget; primaryReads: boolean };
  write(bytes: Buffer): void;
  /** Fatal error and disconnect (malformed messages). */
  terminate(code: string, message: string): void;
  /** A unit starts running (the client is active: the session's statement clock, its socket not read). */
  unitStarted(): void;
  /** The unit waits for a shard's pool to free a connection (true), or has them all (false). */
  waiting(waiting: boolean): void;
  /** Every unit received so far is answered; `txStatus` is the client's (I, T or E), as in a ReadyForQuery. */
  unitsDone(txStatus: number): void;
  /** A unit got no server on a shard; its error is answered (checkout_failure_limit may end the client). */
  checkoutFailed(): void;
}

interface Transaction {
  begin: string;
  links: Map<number, ShardLink>;
  failed: boolean;
}

const COMMIT = /^\s*(commit|end)\s*(transaction|work)?\s*;?\s*$/i;
const ROLLBACK = /^\s*(rollback|abort)\s*(transaction|work)?\s*;?\s*$/i;

export class ShardedExecutor {
  private pending: Buffer = Buffer.alloc(0);
  private readonly queue: Unit[] = [];
  private running = false;
  private closed = false;
  private tx: Transaction | null = null;
  private readonly named = new Map<string, string>();
  /** Links a unit is running on right now. */
  private readonly inUse = new Set<ShardLink>();

  constructor(
    private readonly client: ShardedClient,
    private readonly log: Logger,
  ) {}

  get busy(): boolean {
    return this.running || this.queue.length > 0;
  }

  /** Running something or inside a transaction: what an attached server means on the direct path. */
  get active(): boolean {
    return this.busy || this.tx !== null;
  }

  /** The shard connections its units or its transaction hold now (SHOW SERVERS names the client on them). */
  servers(): ServerConnection[] {
    const out: ServerConnection[] = [];
    for (const link of this.inUse) out.push(link.server);
    if (this.tx) for (const link of this.tx.links.values()) if (!this.inUse.has(link)) out.push(link.server);
    return out;
  }

  /** Client bytes (whole messages). */
  push(bytes: Buffer): void {
    this.pending = this.pending.length === 0 ? bytes : Buffer.concat([this.pending, bytes]);
    let cut: ReturnType<typeof takeUnits>;
    try {
      cut = takeUnits(this.pending, this.named, (name) => {
        // Parsed earlier and answered by the pooler (shared prepared statements).
        const tail = this.client.statements?.get(name)?.parseTail;
        return tail ? tailSql(tail) : undefined;
      });
    } catch {
      // A Bind or Parse whose insides do not add up: the client is broken, not the pooler.
      this.client.terminate(SqlState.ProtocolViolation, 'invalid message format');
      return;
    }
    const { units, rest } = cut;
    this.pending = rest;
    this.queue.push(...units);
    if (!this.running && this.queue.length > 0) void this.drain();
  }

  /** The client left: roll back and give back every server. */
  close(): void {
    this.closed = true;
    // A statement still running (statement timeout, client gone) is cut: its server is closed, not waited for.
    for (const link of this.inUse) if (!link.server.isQuiet) link.release();
    this.inUse.clear();
    const tx = this.tx;
    this.tx = null;
    if (tx) for (const link of tx.links.values()) if (!link.server.closed) void link.runSql('ROLLBACK').catch(() => undefined).finally(() => link.release());
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.queue.length > 0 && !this.closed) {
      const unit = this.queue.shift()!;
      this.client.unitStarted();
      try {
        await this.runUnit(unit);
      } catch (err) {
        this.fail(err);
        if (err instanceof ShardError && err.checkout && !this.closed) this.client.checkoutFailed();
      }
      if (!this.closed && this.queue.length === 0) this.client.unitsDone(this.status());
    }
    this.running = false;
  }

  private status(): number {
    if (!this.tx) return TxStatus.Idle;
    return this.tx.failed ? TxStatus.Failed : TxStatus.InTransaction;
  }

  private reply(body: Buffer): void {
    if (!this.closed) this.client.write(Buffer.concat([body, readyForQuery(this.status())]));
  }

  private fail(err: unknown): void {
    if (this.tx) this.tx.failed = true;
    const code = (err as { code?: unknown }).code;
    if (typeof code !== 'string') this.log.error({ err }, 'sharded query failed');
    this.reply(errorResponse(typeof code === 'string' ? code : SqlState.InternalError, (err as Error).message));
  }

  private async runUnit(unit: Unit): Promise<void> {
    const sql = unit.sql ?? '';
    const kind = unit.kind === 'query' ? classify(sql) : null;
    if (kind === 'begin' || kind === 'begin_read_only') return this.begin(sql);
    if (unit.kind === 'query' && COMMIT.test(sql)) return this.finish(this.tx?.failed ? 'ROLLBACK' : 'COMMIT');
    if (unit.kind === 'query' && ROLLBACK.test(sql)) return this.finish('ROLLBACK');
    if (this.tx?.failed) {
      this.reply(errorResponse(SqlState.InFailedTransaction, 'current transaction is aborted, commands ignored until end of transaction block'));
      return;
    }
    const route = routeUnit(unit, this.client.sharding, this.client.shardState, this.client.cluster);
    if (route.kind === 'error') throw Object.assign(new Error(route.message), { code: route.code });
    await this.execute(unit, route);
  }

  private begin(sql: string): void {
    if (this.tx) {
      this.reply(Buffer.concat([noticeResponse('there is already a transaction in progress', '25001', 'WARNING'), commandComplete('BEGIN')]));
      return;
    }
    this.tx = { begin: sql, links: new Map(), failed: false };
    this.reply(commandComplete('BEGIN'));
  }

  /** COMMIT or ROLLBACK on every shard the transaction reached. */
  private async finish(command: 'COMMIT' | 'ROLLBACK'): Promise<void> {
    const tx = this.tx;
    this.tx = null;
    if (!tx) {
      this.reply(Buffer.concat([noticeResponse('there is no transaction in progress', '25P01', 'WARNING'), commandComplete(command)]));
      return;
    }
    const links = [...tx.links.values()];
    const results = await Promise.allSettled(links.map((l) => l.runSql(command)));
    for (const l of links) l.release();
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      this.reply(errorResponse((failed.reason as ShardError).code ?? SqlState.InternalError, `${command} failed: ${(failed.reason as Error).message}`));
      return;
    }
    this.reply(commandComplete(command));
  }

  /**
   * Links to `shards`: the transaction's (BEGIN replayed on first use), or
   * fresh ones. `sent`: what each will run; outside a transaction a fresh
   * link may send it at once behind other clients' units (pipelining).
   */
  private async linksFor(shards: readonly number[], bytes: Buffer, sent: readonly Buffer[]): Promise<ShardLink[]> {
    const tx = this.tx;
    const { role, primaryReads } = tx ? { role: 'primary' as RoleTarget, primaryReads: true } : this.client.role(bytes);
    const open = async (shard: number, i: number): Promise<ShardLink> => {
      const existing = tx?.links.get(shard);
      if (existing) return existing;
      // At start-up or during a promotion, waits for the role probe within the checkout timeout.
      const cluster = this.client.cluster;
      const waitMs = cluster.members[0]?.pool.settings.checkoutTimeout ?? 0;
      const member = await cluster.chooseWhenKnown(shard, role, primaryReads, performance.now() + waitMs);
      if (member === 'timeout') throw new ShardError(shard, SqlState.ConnectionFailure, `no ${role} server available: none found by the role probe within ${waitMs} ms`, true);
      if (!member) throw new ShardError(shard, SqlState.ConnectionFailure, 'no server available (all candidates are down or banned)', true);
      const link = await ShardLink.open(member, this.client.params, onWait, tx ? undefined : { bytes: sent[i]!, statements: this.client.statements });
      if (tx) {
        tx.links.set(shard, link);
        await link.runSql(tx.begin);
      }
      return link;
    };
    let waited = false;
    const onWait = (): void => {
      if (waited) return;
      waited = true;
      this.client.waiting(true);
    };
    const settled = await Promise.allSettled(shards.map(open));
    if (waited && !this.closed) this.client.waiting(false);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      if (!tx) for (const r of settled) if (r.status === 'fulfilled') r.value.release();
      throw failed.reason;
    }
    return settled.map((r) => (r as PromiseFulfilledResult<ShardLink>).value);
  }

  private async execute(unit: Unit, route: ShardRoute): Promise<void> {
    const sent = route.kind === 'single' ? [unit.bytes] : route.kind === 'insert' ? route.perShard : route.shards.map(() => route.bytes ?? unit.bytes);
    const links = await this.linksFor(route.shards, unit.bytes, sent);
    for (const l of links) this.inUse.add(l);
    try {
      if (route.kind === 'single') {
        const reply = await links[0]!.run(unit.bytes, this.client.statements);
        this.afterSingle(links[0]!, reply);
        return;
      }
      const replies = await Promise.all(links.map((l, i) => l.run(sent[i]!, this.client.statements)));
      replies.forEach((r, i) => {
        const error = replyError(r);
        if (error) throw new ShardError(links[i]!.shard, error[0], error[1]);
      });
      const bodies = replies.map(withoutReady);
      this.reply(route.kind === 'select' ? mergeSelect(route.plan, bodies, unit.params) : combineWrites(bodies));
    } finally {
      // Links a transaction holds stay with it; the others go back now.
      for (const l of links) {
        this.inUse.delete(l);
        if (this.tx?.links.get(l.shard) !== l) l.release();
      }
    }
  }

  /** A single-shard reply goes back as it is; a transaction the unit opened stays on its shard. */
  private afterSingle(link: ShardLink, reply: Buffer): void {
    if (!this.tx && link.txStatus !== TxStatus.Idle) {
      // "BEGIN; INSERT ..." in one Query, or BEGIN sent in the extended protocol.
      this.tx = { begin: 'BEGIN', links: new Map([[link.shard, link]]), failed: link.txStatus === TxStatus.Failed };
      if (!this.closed) this.client.write(reply);
      return;
    }
    if (this.tx && link.txStatus === TxStatus.Failed) this.tx.failed = true;
    if (this.tx && link.txStatus === TxStatus.Idle) {
      // The unit ended the transaction on its shard (COMMIT in the extended protocol).
      this.tx.links.delete(link.shard);
      if (this.tx.links.size === 0) this.tx = null;
    }
    if (this.closed) return;
    // The shard's own ReadyForQuery says less than the transaction's status when other shards are in it.
    this.client.write(Buffer.concat([withoutReady(reply), readyForQuery(this.status())]));
  }
}
