// pgml.transform_stream(task, args, input): PostgresML's SETOF jsonb, one
// row (`["<text>"]`) per piece of generated text, answered by the pooler
// itself so each row reaches the client as its token is decoded. Postgres
// cannot send rows it does not have yet, so the statement never reaches it.
//
// Ordering: before the pooler writes anything, every reply owed for what
// the client sent earlier has been written (StreamHost.settled). The
// statement must be the call alone (call-context.ts), and in the extended
// protocol it must have its messages to itself between two Syncs (a
// "group": Parse, Bind, Describe, Execute, Close, Flush of stream
// statements and portals); each is answered as Postgres would.
//
// Transaction status: the ReadyForQuery carries the client's status on its
// server ('T' inside a transaction, 'I' outside). An error (bad arguments
// found late, 57014 on cancel, a worker crash) is raised through the server
// (raise.ts) after the rows already sent, so a transaction block goes to
// 'E' exactly as if Postgres had failed the statement; a statement in an
// aborted transaction gets the server's own 25P02 the same way.

import { Backend, Frontend, Oid, TxStatus } from '../protocol/codes.js';
import type { MessageView } from '../protocol/cursor.js';
import { BIND_COMPLETE, CLOSE_COMPLETE, PARSE_COMPLETE } from '../protocol/messages/completion.js';
import { executeMaxRows } from '../protocol/messages/execute.js';
import { parameterDescription } from '../protocol/messages/parameter-description.js';
import { raiseQuery } from '../protocol/messages/raise.js';
import { buildRowDescription } from '../protocol/messages/row-description.js';
import { commandComplete } from '../protocol/messages/rows.js';
import { readyForQuery } from '../protocol/messages/status.js';
import { builder } from '../protocol/serializer.js';
import { Target } from '../protocol/messages/target.js';
import { analyzePgml, PgmlError, type PgmlCall } from './analyze.js';
import { parseArgs, parseTask, resolveModel, type GenerationProvider } from './transform.js';
import { paramTexts, resolve, type ParamValues } from './rewrite.js';

/** What answering a stream needs from the client session (pooler/client/stream-host.ts). */
export interface StreamHost {
  /** Sends rewritten client messages on to the server binding, in order. */
  forward(bytes: Buffer): void;
  /** Why the pooler cannot answer the client now (a sharded pool, an open extended batch on the server); null when it can. */
  refusal(): string | null;
  /** Resolves once every reply owed for what was forwarded is written; false when the client is gone. */
  settled(): Promise<boolean>;
  /** The status byte of the client's next ReadyForQuery ('I', 'T', 'E'). */
  txStatus(): number;
  /** A stream runs (true) or ended: a client streaming inside a transaction is not idle in it. */
  busy(active: boolean): void;
  write(bytes: Buffer): void;
}

interface StreamStatement {
  call: PgmlCall;
  column: string;
  /** Parameter types, as Describe (statement) reports them. */
  types: number[];
}

interface StreamPortal {
  statement: StreamStatement;
  params: ParamValues;
  /** The jsonb column in binary format. */
  binary: boolean;
}

type Failure = { code: string; message: string };

function failureOf(err: unknown): Failure {
  const code = (err as { code?: unknown }).code;
  return { code: typeof code === 'string' ? code : 'XX000', message: (err as Error).message };
}

const ALONE = 'pgml.transform_stream needs its extended-protocol messages to itself between two Syncs (the pooler answers them, not the server)';

export class StreamAnswers {
  private readonly statements = new Map<string, StreamStatement>();
  private readonly portals = new Map<string, StreamPortal>();
  /** Open between the first stream message after a Sync and the next Sync: the first error it met. */
  private group: { error: Failure | null } | null = null;

  constructor(
    private readonly engine: GenerationProvider,
    private readonly host: StreamHost,
  ) {}

  /** Does `m` belong to a stream (so the pooler answers it)? */
  claims(m: MessageView): boolean {
    if (this.group) return true;
    switch (m.type) {
      case Frontend.Query:
      case Frontend.Parse:
        try {
          return analyzePgml(m.sql())?.stream != null;
        } catch {
          return false; // the rewrite raises the same error
        }
      case Frontend.Bind:
        return this.statements.has(m.statementName()!);
      case Frontend.Describe:
      case Frontend.Close:
        return m.target() === Target.Statement ? this.statements.has(m.targetName()) : this.portals.has(m.targetName());
      case Frontend.Execute:
        return this.portals.has(m.portal()!);
      default:
        return false;
    }
  }

  /** A Parse of another statement under this name replaces a stream statement. */
  forget(statement: string): void {
    this.statements.delete(statement);
  }

  /** Cheap check for a batch: an open group, or a message naming a stream statement or portal. */
  involved(m: MessageView): boolean {
    if (this.group) return true;
    if (this.statements.size === 0 && this.portals.size === 0) return false;
    const t = m.type;
    return (t === Frontend.Bind || t === Frontend.Describe || t === Frontend.Close || t === Frontend.Execute) && this.claims(m);
  }

  /**
   * Answers a claimed message. Throws PgmlError for a refusal found before
   * anything is written (the caller raises it as for any pgml error);
   * returns a raise Query to forward in place of the client's Query or
   * Sync when the statement failed after that, else null.
   */
  async answer(m: MessageView, signal: AbortSignal): Promise<Buffer | null> {
    if (m.type === Frontend.Query) {
      if (!this.group) return this.query(m.sql(), signal);
      // A Query inside an open group: it gets the group's error (or ALONE) and its ReadyForQuery, and ends the group.
      const e = this.group.error ?? { code: '0A000', message: ALONE };
      this.group = null;
      return raiseQuery(e.code, e.message);
    }
    if (!this.group) {
      const refused = this.host.refusal();
      if (refused) throw new PgmlError('0A000', refused);
      if (!(await this.host.settled())) return null;
      this.group = { error: this.host.txStatus() === TxStatus.Failed ? aborted() : null };
    }
    const group = this.group;
    if (m.type === Frontend.Sync) {
      this.group = null;
      if (this.host.txStatus() === TxStatus.Idle) this.portals.clear();
      if (group.error) return raiseQuery(group.error.code, group.error.message);
      this.host.write(readyForQuery(this.host.txStatus()));
      return null;
    }
    if (group.error || m.type === Frontend.Flush) return null; // skipped to the Sync, as Postgres does after an error
    try {
      await this.extended(m, signal);
    } catch (err) {
      group.error = failureOf(err);
    }
    return null;
  }

  private async extended(m: MessageView, signal: AbortSignal): Promise<void> {
    switch (m.type) {
      case Frontend.Parse: {
        const analysis = analyzePgml(m.sql());
        if (!analysis?.stream) throw new PgmlError('0A000', ALONE);
        const call = analysis.calls[0]!;
        if (call.model.kind === 'const') resolveModel(parseTask(call.model.value), this.engine);
        const declared = m.paramTypes();
        const types: number[] = [];
        for (let n = 1; n <= Math.max(declared.length, analysis.maxParam); n++) {
          const arg = [call.model, call.args, call.input].find((a) => a?.kind === 'param' && a.index === n);
          const cast = arg?.kind === 'param' ? arg.cast : 0;
          types.push(declared[n - 1] || cast || (call.args?.kind === 'param' && call.args.index === n ? Oid.jsonb : Oid.text));
        }
        this.statements.set(m.statementName()!, { call, column: analysis.stream.column, types });
        this.host.write(PARSE_COMPLETE);
        return;
      }
      case Frontend.Bind: {
        const bind = m.bind();
        const statement = this.statements.get(bind.statement)!;
        if (bind.values.length !== statement.types.length) {
          throw new PgmlError('08P01', `bind message supplies ${bind.values.length} parameters, but prepared statement "${bind.statement}" requires ${statement.types.length}`);
        }
        // Result formats: int16 count, then the codes (one for all columns, or one per column: here one column).
        const rf = bind.resultFormats;
        const binary = rf.length >= 4 && rf.readInt16BE(0) >= 1 && rf.readInt16BE(2) === 1;
        this.portals.set(bind.portal.toString('utf8'), { statement, params: paramTexts(bind, statement.types), binary });
        this.host.write(BIND_COMPLETE);
        return;
      }
      case Frontend.Describe: {
        const name = m.targetName();
        if (m.target() === Target.Statement) {
          const s = this.statements.get(name)!;
          this.host.write(Buffer.concat([parameterDescription(s.types), rowDescription(s.column, false)]));
        } else {
          const p = this.portals.get(name)!;
          this.host.write(rowDescription(p.statement.column, p.binary));
        }
        return;
      }
      case Frontend.Execute: {
        const portal = this.portals.get(m.portal()!)!;
        if (executeMaxRows(m.buffer, m.start, m.end) > 0) throw new PgmlError('0A000', 'pgml.transform_stream cannot be fetched in parts (Execute with a row limit)');
        this.portals.delete(m.portal()!);
        await this.generate(portal.statement.call, portal.params, portal.binary, null, signal);
        return;
      }
      case Frontend.Close: {
        if (m.target() === Target.Statement) this.statements.delete(m.targetName());
        else this.portals.delete(m.targetName());
        this.host.write(CLOSE_COMPLETE);
        return;
      }
      default:
        throw new PgmlError('0A000', ALONE);
    }
  }

  /** Simple protocol: the whole statement. */
  private async query(sql: string, signal: AbortSignal): Promise<Buffer | null> {
    const analysis = analyzePgml(sql)!;
    const call = analysis.calls[0]!;
    const refused = this.host.refusal();
    if (refused) throw new PgmlError('0A000', refused);
    if (!(await this.host.settled())) return null;
    if (this.host.txStatus() === TxStatus.Failed) {
      const e = aborted();
      return raiseQuery(e.code, e.message);
    }
    try {
      await this.generate(call, null, false, analysis.stream!.column, signal);
    } catch (err) {
      const e = failureOf(err);
      return raiseQuery(e.code, e.message);
    }
    this.host.write(readyForQuery(this.host.txStatus()));
    return null;
  }

  /**
   * Runs the generation, writing one DataRow per piece of text as it comes,
   * then CommandComplete. `column`: also the RowDescription, before the
   * first row (simple protocol; the extended one sent it at Describe).
   */
  private async generate(call: PgmlCall, params: ParamValues | null, binary: boolean, column: string | null, signal: AbortSignal): Promise<void> {
    const task = resolve(call.model, params, 'task');
    const argsText = call.args ? resolve(call.args, params, 'args') : null;
    const input = resolve(call.input, params, 'input');
    if (Array.isArray(task) || Array.isArray(argsText) || Array.isArray(input)) throw new PgmlError('42804', 'pgml.transform_stream takes (task text | jsonb, args jsonb, input text)');
    let described = column === null;
    const describe = (): void => {
      if (!described) this.host.write(rowDescription(column!, false));
      described = true;
    };
    let rows = 0;
    // A strict function: a NULL argument gives no rows.
    if (task !== null && input !== null) {
      const model = resolveModel(parseTask(task), this.engine);
      const args = parseArgs(argsText);
      this.host.busy(true);
      try {
        await this.engine.generate(model, [input], args, {
          signal,
          onText: (delta) => {
            describe();
            this.host.write(dataRow(JSON.stringify([delta]), binary));
            rows++;
          },
        });
      } finally {
        this.host.busy(false);
      }
    }
    describe();
    this.host.write(commandComplete(`SELECT ${rows}`));
  }
}

function aborted(): Failure {
  return { code: '25P02', message: 'current transaction is aborted, commands ignored until end of transaction block' };
}

const JSONB_BINARY_VERSION = 1;

function rowDescription(column: string, binary: boolean): Buffer {
  return buildRowDescription([{ name: column, tableOid: 0, attnum: 0, typeOid: Oid.jsonb, typlen: -1, typmod: -1, format: binary ? 1 : 0 }]);
}

/** One DataRow of one jsonb value (binary: jsonb's version byte, then the text). */
function dataRow(json: string, binary: boolean): Buffer {
  const text = Buffer.from(json, 'utf8');
  const cell = binary ? Buffer.concat([Buffer.from([JSONB_BINARY_VERSION]), text]) : text;
  return builder.begin(Backend.DataRow).int16(1).lengthPrefixed(cell).finish();
}
