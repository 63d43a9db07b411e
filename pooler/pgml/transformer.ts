// Per-client rewriting of pgml.embed calls, message by message, in order.
// Runs only for batches that mention pgml (or bind a statement that did);
// everything else stays on the synchronous hot path.
//
// A failure (bad arguments, unknown model, engine busy or timed out) is
// turned into a server-raised error at the same point of the stream: the
// failing message and the rest of its extended-protocol batch, up to and
// including Sync, are replaced by one Query that raises it.

import { Frontend } from '../protocol/codes.js';
import { raiseQuery } from '../protocol/messages/raise.js';
import { MessageWriter } from '../protocol/messages/writer.js';
import { analyzePgml, mentionsPgml, PgmlError } from './analyze.js';
import {
  appendParams,
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

export class PgmlTransformer {
  /** Statements (by client name, '' = unnamed) whose Parse carried pgml calls. */
  private readonly plans = new Map<string, PgmlPlan>();
  /** A failed extended batch: drop client messages through the next Sync. */
  private skipping = false;

  constructor(private readonly engine: EmbeddingProvider) {}

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

  /** The batch's messages, rewritten. */
  async transform(buffer: Buffer, messages: number[]): Promise<Buffer> {
    const out: Buffer[] = [];
    for (let i = 0; i < messages.length; i += 3) {
      const type = messages[i];
      const msg = buffer.subarray(messages[i + 1], messages[i + 2]);
      if (this.skipping) {
        if (type === Frontend.Sync) this.skipping = false;
        continue;
      }
      try {
        out.push(await this.rewrite(type, msg));
      } catch (err) {
        const { code, message } = errorOf(err);
        out.push(raiseQuery(code, message));
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

  private async rewrite(type: number, msg: Buffer): Promise<Buffer> {
    switch (type) {
      case Frontend.Query: {
        const sql = msg.toString('utf8', 5, msg.length - 1);
        const analysis = analyzePgml(sql);
        if (!analysis) return msg;
        return new MessageWriter().cstring(await rewriteSimple(sql, analysis, this.engine)).finish(Frontend.Query);
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
          if (call.model.kind === 'const' && !this.engine.has(call.model.value)) {
            throw new PgmlError('42704', `pgml.embed: model "${call.model.value}" does not exist (declare it as [models.${call.model.value}] in pgcat.toml)`);
          }
        }
        const { sql: rewritten, plan } = rewriteParseSql(sql, analysis);
        this.plans.set(name, plan);
        const declared: number[] = [];
        const count = msg.readInt16BE(sqlEnd + 1);
        for (let k = 0; k < count; k++) declared.push(msg.readInt32BE(sqlEnd + 3 + 4 * k));
        const types = parseParamTypes(declared, analysis);
        const w = new MessageWriter().cstring(name).cstring(rewritten).int16(types.length);
        for (const oid of types) w.int32(oid);
        return w.finish(Frontend.Parse);
      }
      case Frontend.Bind: {
        const bind = parseBind(msg);
        const plan = this.plans.get(bind.statement);
        if (!plan) return msg;
        return appendParams(bind, await computeBindValues(plan, paramTexts(bind), this.engine));
      }
      case Frontend.Close:
        if (msg[5] === STATEMENT) this.plans.delete(msg.toString('utf8', 6, msg.indexOf(0, 6)));
        return msg;
      default:
        return msg;
    }
  }
}
