// Per-client rewriting of pgml.embed, pgml.transform, pgml.infer and
// pgml.similar_to calls, message by message, in order; pgml.transform_stream
// statements are answered by the pooler instead (stream.ts).
// Runs only for batches that mention pgml (or bind a statement that did);
// everything else stays on the synchronous hot path.
//
// A failure (bad arguments, unknown model, engine busy or timed out) is
// turned into a server-raised error at the same point of the stream: a
// failing Query is replaced by one Query that raises it; a failing
// extended-protocol message and the rest of its batch up to (not
// including) the client's Sync by Parse/Bind/Execute that raise it
// (raise-batch.ts), so the server's skip-to-Sync rule decides which error
// the client sees, as it would for the client's own messages.
//
// What the client sees back is its own statement's: the transformer records
// the messages whose replies must be edited (describe-replies.ts).

import { Frontend } from '../protocol/codes.js';
import { MessageCursor, MessageView } from '../protocol/cursor.js';
import { parse } from '../protocol/messages/parse.js';
import { query } from '../protocol/messages/query.js';
import { raiseQuery } from '../protocol/messages/raise.js';
import { raiseMessages } from './raise-batch.js';
import { Target } from '../protocol/messages/target.js';
import { analyzePgml, mentionsPgml, PgmlError } from './analyze.js';
import { DescribeReplies, type DescribeEdit, type ReplyContext } from './describe-replies.js';
import { constantTransformModel, type GenerationProvider } from './transform.js';
import { StreamAnswers, type StreamHost } from './stream.js';
import {
  addedParamTypes,
  appendParams,
  clientParamCount,
  computeBindValues,
  paramTexts,
  parseParamTypes,
  rewriteParseSql,
  rewriteSimple,
  type EmbeddingProvider,
  type PgmlPlan,
} from './rewrite.js';

function errorOf(err: unknown): { code: string; message: string } {
  const code = (err as { code?: unknown }).code;
  return { code: typeof code === 'string' ? code : 'XX000', message: (err as Error).message };
}

interface Planned {
  plan: PgmlPlan;
  /** Its Describe (statement) replies, cut back to the client's parameters. */
  describe: DescribeEdit;
  /** The rewritten Parse's parameter types (binary Bind values are read by them). */
  types: number[];
}

export class PgmlTransformer {
  /** Statements (by client name, '' = unnamed) whose Parse carried pgml calls. */
  private readonly plans = new Map<string, Planned>();
  /** Walks observe()'s and involved()'s batches (synchronous, so one serves both). */
  private readonly cursor = new MessageCursor();
  /** A failed extended batch: drop client messages up to its Sync (which goes on). */
  private skipping = false;
  /** Aborted by cancel(): the engine calls of the batch being rewritten. */
  private inflight: AbortController | null = null;
  /** pgml.transform_stream statements and portals (null without a host to answer through, or without generation). */
  private readonly streams: StreamAnswers | null;
  /**
   * @param replies the client's reply edits (the session applies edit() to server replies)
   * @param context what the session knows about the reply stream when an
   * edit is first recorded; null (sharded pools, unit tests) records none.
   */
  constructor(
    private readonly engine: EmbeddingProvider,
    readonly replies: DescribeReplies = new DescribeReplies(),
    private readonly context: () => ReplyContext | null = () => null,
    private readonly streamHost: StreamHost | null = null,
  ) {
    const generation = engine.names && engine.task && engine.generate ? (engine as GenerationProvider) : null;
    this.streams = streamHost && generation ? new StreamAnswers(generation, streamHost) : null;
  }

  /**
   * Record a batch about to be forwarded as it is (one that needed no
   * rewriting): Describes of rewritten statements, and what their replies
   * are ordered against. Integer compares only, unless a Describe names a
   * statement.
   */
  observe(buffer: Buffer, messages: readonly number[]): void {
    let syncs = 0;
    for (const m = this.cursor.frames(buffer, messages); m.next(); ) syncs = this.note(m, false, syncs);
  }

  /** One outgoing message; returns the ReadyForQuery-owing messages so far in its batch. */
  private note(m: MessageView, raise: boolean, syncs: number): number {
    switch (m.type) {
      case Frontend.Describe: {
        if (m.target() !== Target.Statement) return syncs;
        const planned = this.plans.size > 0 ? this.plans.get(m.targetName()) : undefined;
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
  involved(buffer: Buffer, messages: readonly number[]): boolean {
    if (this.skipping) return true;
    for (const m = this.cursor.frames(buffer, messages); m.next(); ) {
      const type = m.type;
      if ((type === Frontend.Query || type === Frontend.Parse) && mentionsPgml(buffer, m.start + 5, m.end)) return true;
      if (this.streams?.involved(m)) return true;
      if (this.plans.size === 0) continue;
      if (type === Frontend.Parse || type === Frontend.Close) return true;
      if (type === Frontend.Bind && this.plans.has(m.statementName()!)) return true;
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
  async transform(buffer: Buffer, messages: readonly number[]): Promise<Buffer> {
    const abort = new AbortController();
    this.inflight = abort;
    try {
      return await this.transformBatch(buffer, messages, abort.signal);
    } finally {
      if (this.inflight === abort) this.inflight = null;
    }
  }

  private async transformBatch(buffer: Buffer, messages: readonly number[], signal: AbortSignal): Promise<Buffer> {
    let out: Buffer[] = [];
    // Each message is recorded as it is produced (the plans it names are those of that point).
    let syncs = 0;
    // Its own cursor: the batch is walked across awaits.
    const c = new MessageCursor().frames(buffer, messages);
    const produced = new MessageView();
    while (c.next()) {
      const type = c.type;
      if (this.skipping) {
        if (type !== Frontend.Sync) continue;
        this.skipping = false;
      }
      try {
        if (this.streams?.claims(c)) {
          if (type === Frontend.Parse) this.plans.delete(c.statementName()!);
          // Whatever comes before it goes first: its replies are written before the stream's.
          if (out.length > 0) {
            this.streamHost!.forward(Buffer.concat(out));
            out = [];
            syncs = 0;
          }
          const raise = await this.streams.answer(c, signal);
          if (raise) {
            out.push(raise);
            syncs = this.note(produced.at(raise, 0, raise.length), true, syncs);
          }
          continue;
        }
        const m = await this.rewrite(c, signal);
        out.push(m);
        syncs = this.note(produced.at(m, 0, m.length), false, syncs);
      } catch (err) {
        const { code, message } = errorOf(err);
        if (type === Frontend.Query) {
          const raise = raiseQuery(code, message);
          out.push(raise);
          syncs = this.note(produced.at(raise, 0, raise.length), true, syncs);
          continue;
        }
        // The raise stands for the rest of this batch; the client's Sync
        // (here or in a later batch) goes on and gets the one ReadyForQuery.
        out.push(raiseMessages(code, message));
        this.replies.raised(syncs, this.context);
        this.skipping = true;
      }
    }
    return Buffer.concat(out);
  }

  /** The message under `m`, rewritten (or as it is). */
  private async rewrite(m: MessageView, signal: AbortSignal): Promise<Buffer> {
    const msg = m.bytes();
    switch (m.type) {
      case Frontend.Query: {
        const sql = m.sql();
        const analysis = analyzePgml(sql);
        if (!analysis) return msg;
        const rewritten = await rewriteSimple(sql, analysis, this.engine, signal);
        return query(rewritten);
      }
      case Frontend.Parse: {
        const name = m.statementName()!;
        const sql = m.sql();
        this.plans.delete(name);
        this.streams?.forget(name);
        const analysis = analyzePgml(sql);
        if (!analysis) return msg;
        for (const call of analysis.calls) {
          if (call.fn === 'transform') {
            if (this.engine.names && this.engine.task && this.engine.generate) constantTransformModel(call, this.engine as GenerationProvider);
            continue;
          }
          if (call.model.kind === 'const' && !this.engine.has(call.model.value)) {
            throw new PgmlError('42704', `pgml.${call.fn}: model "${call.model.value}" does not exist (declare it as [models.${call.model.value}] in pgcat.toml)`);
          }
        }
        const declared = m.paramTypes();
        const keep = clientParamCount(declared, analysis);
        const { sql: rewritten, plan } = rewriteParseSql(sql, analysis, keep);
        const types = parseParamTypes(declared, analysis);
        this.plans.set(name, { plan, describe: { keep, added: addedParamTypes(analysis.calls) }, types });
        return parse(name, rewritten, types);
      }
      case Frontend.Bind: {
        const bind = m.bind();
        const planned = this.plans.get(bind.statement);
        if (!planned) return msg;
        const values = await computeBindValues(planned.plan, paramTexts(bind, planned.types), this.engine, signal);
        return appendParams(bind, values);
      }
      case Frontend.Close:
        if (m.target() === Target.Statement) this.plans.delete(m.targetName());
        return msg;
      default:
        return msg;
    }
  }
}
