// A client of the admin database: simple-protocol queries only (psql and
// monitoring scripts use nothing else), each answered by runAdminCommand.

import type net from 'node:net';
import { Frontend, SqlState, TxStatus } from '../protocol/codes.js';
import { MessageFramer, ProtocolError } from '../protocol/framer.js';
import { MessageCursor } from '../protocol/cursor.js';
import { errorResponse, noticeResponse } from '../protocol/messages/error.js';
import { commandComplete, dataRow, rowDescription } from '../protocol/messages/rows.js';
import { readyForQuery } from '../protocol/messages/status.js';
import { ADMIN_REFUSED, AdminError, UNSUPPORTED, type AdminClient, type AdminContext, type AdminReply } from './context.js';
import { runAdminCommand } from './commands.js';

export class AdminSession {
  private readonly framer = new MessageFramer(1 << 20);
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly ctx: AdminContext,
    private readonly client: AdminClient,
  ) {}

  start(leftover: Buffer | null): void {
    this.ctx.adminClients.add(this.client);
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', () => this.close());
    this.socket.on('close', () => this.close());
    if (leftover) this.onData(leftover);
  }

  private close(): void {
    this.closed = true;
    this.ctx.adminClients.delete(this.client);
    if (!this.socket.destroyed) this.socket.end();
  }

  private onData(chunk: Buffer): void {
    let batch;
    try {
      batch = this.framer.push(chunk);
    } catch (err) {
      this.fatal(err instanceof ProtocolError ? err.message : 'invalid message');
      return;
    }
    const { buffer, messages } = batch;
    for (const m = new MessageCursor().frames(buffer, messages); m.next(); ) {
      const type = m.type;
      if (type === Frontend.Terminate) {
        this.close();
        return;
      }
      if (type !== Frontend.Query) {
        this.fatal('the admin console accepts only simple queries');
        return;
      }
      const sql = m.sql();
      // Commands run one at a time, in order (RELOAD and PAUSE are async).
      this.chain = this.chain.then(() => this.answer(sql));
    }
  }

  private async answer(sql: string): Promise<void> {
    if (this.closed) return;
    const out: Buffer[] = [];
    const statements = splitStatements(sql);
    // As PgCat: a query with no command in it (`;;;;;`, blanks) is refused, not answered as empty.
    if (statements.length === 0) out.push(errorResponse(ADMIN_REFUSED, UNSUPPORTED, 'ERROR', 'the query holds no command; SHOW HELP lists them'));
    for (const statement of statements) {
      try {
        out.push(...encode(await runAdminCommand(statement, this.ctx)));
      } catch (err) {
        const code = err instanceof AdminError ? err.code : SqlState.InternalError;
        out.push(errorResponse(code, (err as Error).message, 'ERROR', err instanceof AdminError ? err.detail : undefined));
        break;
      }
    }
    out.push(readyForQuery(TxStatus.Idle));
    if (!this.closed) this.socket.write(Buffer.concat(out));
  }

  private fatal(message: string): void {
    this.socket.end(errorResponse(SqlState.ProtocolViolation, message, 'FATAL'));
    this.closed = true;
  }
}

function encode(reply: AdminReply): Buffer[] {
  const out: Buffer[] = [];
  if (reply.notice) out.push(noticeResponse(reply.notice, undefined, undefined, reply.noticeDetail));
  if (reply.columns) {
    out.push(rowDescription(reply.columns));
    for (const row of reply.rows ?? []) out.push(dataRow(row));
  }
  out.push(commandComplete(reply.tag));
  return out;
}

/** Split on semicolons outside single or double quotes (SET x = 'a;b' is one statement). */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let quote = '';
  let start = 0;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i];
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === "'" || c === '"') {
      quote = c;
    } else if (c === ';') {
      out.push(sql.slice(start, i));
      start = i + 1;
    }
  }
  out.push(sql.slice(start));
  return out.map((s) => s.trim()).filter((s) => s.length > 0);
}
