// The walk over one batch of client messages: what the pooler answers
// itself (PgCat's custom SQL, plugin verdicts, refused Parses, deferred
// Parses of shared prepared statements), what it marks (session state a
// statement leaves on its server, Syncs owed a ReadyForQuery, an open
// extended batch), and the runs of messages it forwards to the binding.

import { Frontend, SqlState, TxStatus } from '../protocol/codes.js';
import { errorResponse } from '../protocol/messages/error.js';
import { readyForQuery } from '../protocol/messages/status.js';
import { Dirty } from '../server/reset.js';
import type { ErrorVerdict, PluginVerdict } from '../plugins/types.js';
import { judgeParses, judgeQuery } from '../plugins/gate.js';
import { CustomSqlError, mayBeCustom, parseCustomCommand } from '../router/custom-sql.js';
import { answerCustom } from '../router/custom-reply.js';
import { answerBetweenTransactions } from '../prepared/answer.js';
import { MessageCursor } from '../protocol/cursor.js';
import { changesSessionState } from './session-state.js';
import { statementOf } from '../router/parse.js';
import { ClientState } from './client-state.js';
import type { SessionCore } from './session-core.js';

/** Where the walk sends what it does not answer itself. */
export interface BatchOutlet {
  forward(bytes: Buffer, syncs: number): void;
  /** An error raised by the server for the pooler, in stream order (replies.ts). */
  forwardRaise(code: string, message: string): void;
}

/** A text that may start with LISTEN or UNLISTEN (a byte test before any parse). */
function mayListen(buf: Buffer, start: number, end: number): boolean {
  let i = start;
  while (i < end && (buf[i] === 0x20 || buf[i] === 0x0a || buf[i] === 0x09 || buf[i] === 0x0d)) i++;
  const c = buf[i] | 0x20;
  if (c !== 0x6c && c !== 0x75) return false; // l, u
  return /^(?:un)?listen\b/i.test(buf.toString('latin1', i, Math.min(end, i + 9)));
}

/** Bytes [start, end) of `buffer`: the buffer itself when that is all of it (the common one-Query read), no view made. */
function runOf(buffer: Buffer, start: number, end: number): Buffer {
  return start === 0 && end === buffer.length ? buffer : buffer.subarray(start, end);
}

export class BatchWalker {
  /** Reused for every batch: no allocation per message. */
  private readonly cursor = new MessageCursor();
  /** A plugin refused a Parse of the open extended batch: its error is the answer at Sync. */
  private refusedParse: ErrorVerdict | null = null;

  constructor(
    private readonly s: SessionCore,
    private readonly out: BatchOutlet,
  ) {}

  walk(buffer: Buffer, messages: number[]): void {
    if (messages.length === 0) return;
    const s = this.s;
    const refused = s.settings.plugins.length > 0 ? judgeParses(s.settings.plugins, buffer, messages, s.identity) : null;
    // A refused Parse is never answered for the server (nor is what follows it up to Sync).
    if (!refused && !this.refusedParse && s.pool.sharesPreparedStatements && this.betweenTransactions(-1)) {
      // Deferred Parses and the client's DEALLOCATE need no server (prepared/answer.ts).
      const reply = answerBetweenTransactions(buffer, messages, s.clientStatements());
      if (reply) {
        s.write(reply);
        return;
      }
    }
    let runStart = -1;
    let runEnd = -1;
    let syncs = 0;
    for (const m = this.cursor.frames(buffer, messages); m.next(); ) {
      const type = m.type;
      const start = m.start;
      const end = m.end;
      // After a refused Parse, Postgres ignores everything up to Sync; so does the pooler.
      if (this.refusedParse && type !== Frontend.Sync && type !== Frontend.Terminate) continue;
      switch (type) {
        case Frontend.Terminate:
          if (runStart >= 0) this.out.forward(runOf(buffer, runStart, runEnd), syncs);
          s.end();
          return;
        case Frontend.Query: {
          const custom = mayBeCustom(buffer, m.sqlStart(), m.sqlEnd()) ? this.customReply(m.sql()) : null;
          if (custom) {
            // What came before it in this batch goes first: replies stay in order.
            if (runStart >= 0) this.out.forward(runOf(buffer, runStart, runEnd), syncs);
            runStart = -1;
            syncs = 0;
            this.answerCustomSql(custom);
            continue;
          }
          if (s.settings.plugins.length > 0) {
            const verdict = judgeQuery(s.settings.plugins, m.sql(), s.identity);
            if (verdict && (verdict.kind === 'error' || this.betweenTransactions(runStart))) {
              if (runStart >= 0) this.out.forward(runOf(buffer, runStart, runEnd), syncs);
              runStart = -1;
              syncs = 0;
              this.answerFromPooler(verdict);
              continue;
            }
          }
          if (runStart < 0 && mayListen(buffer, m.sqlStart(), m.sqlEnd()) && this.answersListen(m.sql())) continue;
          syncs += 1;
          const dirt = changesSessionState(buffer, m.sqlStart(), end);
          // Plain SETs of a transaction-mode client are kept and replayed instead of reset (session-sets.ts).
          if (dirt !== Dirty.Params || !this.keepsSets(m.sql())) this.markDirty(dirt);
          break;
        }
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
            s.unsynced = false;
            this.answerFromPooler(verdict);
            continue;
          }
          syncs += 1;
          s.unsynced = false;
          break;
        case Frontend.Parse:
          if (refused?.has(start)) {
            // What came before it still runs; its error is given at Sync.
            if (runStart >= 0) this.out.forward(runOf(buffer, runStart, runEnd), syncs);
            runStart = -1;
            syncs = 0;
            this.refusedParse = refused.get(start)!;
            continue;
          }
          this.markDirty(changesSessionState(buffer, m.sqlStart(), end));
          // A named statement kept under the client's name outlives the transaction (PgCat marks it too).
          if (m.isNamedParse() && !s.pool.sharesPreparedStatements) this.markDirty(Dirty.Statements);
          s.unsynced = true;
          break;
        case Frontend.Bind:
        case Frontend.Describe:
        case Frontend.Execute:
        case Frontend.Close:
        case Frontend.Flush:
          s.unsynced = true;
          break;
        case Frontend.CopyData:
        case Frontend.CopyDone:
        case Frontend.CopyFail:
          break;
        default:
          s.terminate(SqlState.ProtocolViolation, `invalid frontend message type ${type}`);
          return;
      }
      if (runStart < 0) runStart = start;
      runEnd = end;
    }
    if (runStart >= 0) this.out.forward(runOf(buffer, runStart, runEnd), syncs);
  }

  /** Nothing on its way to a server before this batch's run, no transaction: the pooler may answer itself. */
  private betweenTransactions(runStart: number): boolean {
    const s = this.s;
    return runStart < 0 && s.clientState === ClientState.Idle && s.queued.length === 0 && (s.checkout.server?.isIdle ?? true);
  }

  /** The pooler's answer to PgCat's SQL (SET SHARD, SET SERVER ROLE...), or null when `sql` is not one of its commands. */
  private customReply(sql: string): Buffer | null {
    try {
      const cmd = parseCustomCommand(sql);
      return cmd ? answerCustom(cmd, this.s.routing, this.s.shardState, this.s.settings.sharding) : null;
    } catch (err) {
      if (!(err instanceof CustomSqlError)) throw err;
      return errorResponse(err.code, err.message);
    }
  }

  /** PgCat's SET SHARD / SERVER ROLE / PRIMARY READS and SHOW: answered by the pooler when nothing is in flight (replies stay in order). */
  private answerCustomSql(reply: Buffer): void {
    const s = this.s;
    const server = s.checkout.server;
    const quiet =
      s.clientState !== ClientState.Waiting && s.queued.length === 0 && (server ? server.isQuiet : s.clientState !== ClientState.Active);
    if (!quiet) {
      this.out.forwardRaise(SqlState.FeatureNotSupported, 'PgCat commands cannot be pipelined behind other queries');
      return;
    }
    s.write(Buffer.concat([reply, readyForQuery(server ? server.txStatus : TxStatus.Idle)]));
  }

  /**
   * A plugin answered the Query. Between transactions the pooler replies
   * itself; with a server attached, replies must stay in order, so an error
   * is raised by the server (aborting the transaction, as a real error does).
   * A canned reply is only given between transactions (the caller checks).
   */
  private answerFromPooler(verdict: NonNullable<PluginVerdict>): void {
    if (this.betweenTransactions(-1)) {
      const body = verdict.kind === 'reply' ? verdict.messages : errorResponse(verdict.code, verdict.message);
      this.s.write(Buffer.concat([body, readyForQuery(TxStatus.Idle)]));
      return;
    }
    if (verdict.kind === 'error') this.out.forwardRaise(verdict.code, verdict.message);
  }

  /**
   * LISTEN / UNLISTEN of a transaction-mode client between transactions:
   * answered through the pool's LISTEN connection (pool/notify-hub.ts), not
   * on a server it only borrows. Inside a transaction they go to its server
   * (and are reset at check-in) as before.
   */
  private answersListen(sql: string): boolean {
    const s = this.s;
    if (s.isSessionMode || s.settings.sharding || !this.betweenTransactions(-1)) return false;
    const ops = statementOf(sql).listenOps;
    const primary = ops ? s.cluster.primary(0) : null;
    if (!ops || !primary) return false;
    s.listens.answer(primary.pool.notifyHub, ops);
    return true;
  }

  /** The text is only SET / RESET the client may keep across transactions: expected, not marked dirty. */
  private keepsSets(sql: string): boolean {
    const s = this.s;
    if (s.isSessionMode || s.settings.sharding) return false;
    const ops = statementOf(sql).sessionSets;
    if (!ops) return false;
    s.sets.expect(ops);
    return true;
  }

  private markDirty(dirt: number): void {
    if (dirt === 0) return;
    // Only a server the client sends to directly: behind others' units (pipelining) its statement waits, and may run elsewhere.
    const server = this.s.checkout.direct;
    if (server) server.markDirty(dirt);
    else this.s.pendingDirty |= dirt;
  }
}
