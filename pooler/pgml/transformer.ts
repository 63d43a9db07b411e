// Per-client rewriting of pgml.embed and pgml.transform calls, message by message, in order.
// Runs only for batches that mention pgml (or bind a statement that did);
// everything else stays on the synchronous hot path.
//
// A failure (bad arguments, unknown model, engine busy or timed out) is
// turned into a server-raised error at the same point of the stream: the
// failing message and the rest of its extended-protocol batch, up to and
// including Sync, are replaced by one Query that raises it.
//
// What the client sees back is its own statement's: the transformer records
// the messages whose replies must be edited (describe-replies.ts).

import { Frontend } from '../protocol/codes.js';
import { raiseQuery } from '../protocol/messages/raise.js';
import { MessageWriter } from '../protocol/messages/writer.js';
import { analyzePgml, mentionsPgml, PgmlError } from './analyze.js';
import { DescribeReplies, type DescribeEdit, type ReplyContext } from './describe-replies.js';
import { constantTransformModel, type GenerationProvider } from './transform.js';
import {
  addedParamTypes,
  appendParams,
  clientParamCount,
  computeBindValues,
  paramTexts,
  parseBind,
  parseParamTypes,
  rewriteParseSql,
  rewriteSimple,
  type EmbeddingProvider,
  type PgmlPlan,
} from './rewrite.js';

const STATEMENT = 0x53; // 'S' in Close/Describe

function errorOf(err: unknown): { code: string; message: string } {
  const code = (err as { code?: unknown }).code;
  return { code: typeof code === 'string' ? code : 'XX000', message: (err as Error).message };
}

interface Planned {
  plan: PgmlPlan;
  /** Its Describe (statement) replies, cut back to the client's parameters. */
  describe: DescribeEdit;
}

export class PgmlTransformer {
  /** Statements (by client name, '' = unnamed) whose Parse carried pgml calls. */
  private readonly plans = new Map<string, Planned>();
  /** A failed extended batch: drop client messages through the next Sync. */
  private skipping = false;
  /** Aborted by cancel(): the engine calls of the batch being rewritten. */
  private inflight: AbortController | null = null;
  /**
   * @param replies the client's reply edits (the session applies edit() to server replies)
   * @param context what the session knows about the reply stream when an
   * edit is first recorded; null (sharded pools, unit tests) records none.
   */
  constructor(
    private readonly engine: EmbeddingProvider,
    readonly replies: DescribeReplies = new DescribeReplies(),
    private readonly context: () => ReplyContext | null = () => null,
  ) {}

  /**
   * Record a batch about to be forwarded as it is (one that needed no
   * rewriting): Describes of rewritten statements, and what their replies
   * are ordered against. Integer compares only, unless a Describe names a
   * statement.
   */
  observe(buffer: Buffer, messages: number[]): void {
    let syncs = 0;
    for (let i = 0; i < messages.length; i += 3) syncs = this.note(messages[i], buffer, messages[i + 1], false, syncs);
  }

  /** One outgoing message (at `start` in `buf`); returns the ReadyForQuery-owing messages so far in its batch. */
  private note(type: number, buf: Buffer, start: number, raise: boolean, syncs: number): number {
    switch (type) {
      case Frontend.Describe: {
        if (buf[start + 5] !== STATEMENT) return syncs;
        const planned = this.plans.size > 0 ? this.plans.get(buf.toString('utf8', start + 6, buf.indexOf(0, start + 6))) : undefined;
        this.replies.describe(planned?.describe ?? null, syncs, this.context);
        return syncs;
      }
      case Frontend.Query:
      case Frontend.Sync:
      case Frontend.FunctionCall:
        this.replies.sync(raise, syncs, this.context);
        return syncs + 1;
      default:
        return syncs;
    }
  }

  /** Cheap check: does this batch need rewriting? */
  involved(buffer: Buffer, messages: number[]): boolean {
    if (this.skipping) return true;
    for (let i = 0; i < messages.length; i += 3) {
      const type = messages[i];
      const start = messages[i + 1] + 5;
      const end = messages[i + 2];
      if ((type === Frontend.Query || type === Frontend.Parse) && mentionsPgml(buffer, start, end)) return true;
      if (this.plans.size === 0) continue;
      if (type === Frontend.Parse || type === Frontend.Close) return true;
      if (type === Frontend.Bind) {
        const stmtStart = buffer.indexOf(0, start) + 1;
        if (this.plans.has(buffer.toString('utf8', stmtStart, buffer.indexOf(0, stmtStart)))) return true;
      }
    }
    return false;
  }

  /**
   * The client sent a CancelRequest, or left: generation in progress for it
   * stops at the next decode step (its sequences leave the batch) and the
   * statement fails with 57014, as a cancelled query does.
   */
  cancel(): void {
    this.inflight?.abort();
  }

  /** The batch's messages, rewritten. */
  async transform(buffer: Buffer, messages: number[]): Promise<Buffer> {
    const abort = new AbortController();
    this.inflight = abort;
    try {
      return await this.transformBatch(buffer, messages, abort.signal);
    } finally {
      if (this.inflight === abort) this.inflight = null;
    }
  }

  private async transformBatch(buffer: Buffer, messages: number[], signal: AbortSignal): Promise<Buffer> {
    const out: Buffer[] = [];
    // Each message is recorded as it is produced (the plans it names are those of that point).
    let syncs = 0;
    for (let i = 0; i < messages.length; i += 3) {
      const type = messages[i];
      const msg = buffer.subarray(messages[i + 1], messages[i + 2]);
      if (this.skipping) {
        if (type === Frontend.Sync) this.skipping = false;
        continue;
      }
      try {
        const m = await this.rewrite(type, msg, signal);
        out.push(m);
        syncs = this.note(type, m, 0, false, syncs);
      } catch (err) {
        const { code, message } = errorOf(err);
        const raise = raiseQuery(code, message);
        out.push(raise);
        syncs = this.note(Frontend.Query, raise, 0, true, syncs);
        if (type !== Frontend.Query) {
          // The raise stands for the rest of this batch and its Sync.
          const rest = messages.slice(i + 3);
          const syncAt = rest.findIndex((t, k) => k % 3 === 0 && t === Frontend.Sync);
          if (syncAt < 0) {
            this.skipping = true;
            break;
          }
          i += 3 + syncAt;
        }
      }
    }
    return Buffer.concat(out);
  }

  private async rewrite(type: number, msg: Buffer, signal: AbortSignal): Promise<Buffer> {
    switch (type) {
      case Frontend.Query: {
        const sql = msg.toString('utf8', 5, msg.length - 1);
        const analysis = analyzePgml(sql);
        if (!analysis) return msg;
        return new MessageWriter().cstring(await rewriteSimple(sql, analysis, this.engine, signal)).finish(Frontend.Query);
      }
      case Frontend.Parse: {
        const nameEnd = msg.indexOf(0, 5);
        const name = msg.toString('utf8', 5, nameEnd);
        const sqlEnd = msg.indexOf(0, nameEnd + 1);
        const sql = msg.toString('utf8', nameEnd + 1, sqlEnd);
        this.plans.delete(name);
        const analysis = analyzePgml(sql);
        if (!analysis) return msg;
        for (const call of analysis.calls) {
          if (call.fn === 'transform') {
            if (this.engine.names && this.engine.task && this.engine.generate) constantTransformModel(call, this.engine as GenerationProvider);
            continue;
          }
          if (call.model.kind === 'const' && !this.engine.has(call.model.value)) {
            throw new PgmlError('42704', `pgml.embed: model "${call.model.value}" does not exist (declare it as [models.${call.model.value}] in pgcat.toml)`);
          }
        }
        const declared: number[] = [];
        const count = msg.readInt16BE(sqlEnd + 1);
        for (let k = 0; k < count; k++) declared.push(msg.readInt32BE(sqlEnd + 3 + 4 * k));
        const keep = clientParamCount(declared, analysis);
        const { sql: rewritten, plan } = rewriteParseSql(sql, analysis, keep);
        this.plans.set(name, { plan, describe: { keep, added: addedParamTypes(analysis.calls) } });
        const types = parseParamTypes(declared, analysis);
        const w = new MessageWriter().cstring(name).cstring(rewritten).int16(types.length);
        for (const oid of types) w.int32(oid);
        return w.finish(Frontend.Parse);
      }
      case Frontend.Bind: {
        const bind = parseBind(msg);
        const planned = this.plans.get(bind.statement);
        if (!planned) return msg;
        return appendParams(bind, await computeBindValues(planned.plan, paramTexts(bind), this.engine, signal));
      }
      case Frontend.Close:
        if (msg[5] === STATEMENT) this.plans.delete(msg.toString('utf8', 6, msg.indexOf(0, 6)));
        return msg;
      default:
        return msg;
    }
  }
}
