// Rewrites a client's extended-protocol messages for the server it borrowed:
// statement names become global names, statements the server lacks are
// prepared on the spot, and every Parse/Close is recorded so the replies the
// client did not ask for can be removed (see replies.ts).

import { Frontend } from '../protocol/codes.js';
import { MessageWriter } from '../protocol/messages/writer.js';
import type { ClientStatements, StatementDef } from './statements.js';
import { CLOSE_COMPLETE, PARSE_COMPLETE, type ReplyFilter } from './replies.js';

/** One client message, whole (type byte, length, body). */
export interface ClientMessage {
  type: number;
  bytes: Buffer;
}

/** Reused for a re-Parse of a statement the server already holds (its reply is what the client awaits). */
const SCRATCH = 'pglynx_scratch';
/** Closing a statement the client named must not close the shared one: a no-op Close still answers CloseComplete. */
const VOID = 'pglynx_void';
const DESCRIBE_STATEMENT = 0x53; // 'S'

/** Split bytes already framed (whole messages only) back into messages. */
export function splitMessages(buf: Buffer): ClientMessage[] {
  const out: ClientMessage[] = [];
  let offset = 0;
  while (offset + 5 <= buf.length) {
    const end = offset + 1 + buf.readInt32BE(offset + 1);
    out.push({ type: buf[offset], bytes: buf.subarray(offset, end) });
    offset = end;
  }
  return out;
}

/**
 * A batch of named Parse messages ending in one Sync, sent between
 * transactions, can be answered by the pooler (ParseComplete each, then
 * ReadyForQuery) without borrowing a server: the statements are prepared on
 * the server at first use. Waiting for a server just to prepare would block
 * clients that prepare synchronously (libpq's PQprepare, pgbench -M prepared)
 * while their other connections hold servers. Errors in the statement
 * surface at its first Bind instead, as in PgCat.
 */
export function deferrableParses(messages: number[], buffer: Buffer): boolean {
  const n = messages.length / 3;
  if (n < 2 || messages[(n - 1) * 3] !== Frontend.Sync) return false;
  for (let i = 0; i < n - 1; i++) {
    if (messages[i * 3] !== Frontend.Parse) return false;
    if (buffer[messages[i * 3 + 1] + 5] === 0) return false; // unnamed: lives on one server only
  }
  return true;
}

/** Record the deferred Parses; returns how many there were. */
export function defineDeferred(messages: number[], buffer: Buffer, client: ClientStatements): number {
  let count = 0;
  for (let i = 0; i < messages.length; i += 3) {
    if (messages[i] !== Frontend.Parse) continue;
    const start = messages[i + 1];
    const nameEnd = cstringEnd(buffer, start + 5);
    client.define(buffer.toString('utf8', start + 5, nameEnd), buffer.subarray(nameEnd + 1, messages[i + 2]));
    count++;
  }
  return count;
}

function cstringEnd(buf: Buffer, from: number): number {
  const end = buf.indexOf(0, from);
  if (end < 0) throw new Error('malformed message: missing string terminator');
  return end;
}

function parseMessage(name: string, tail: Buffer): Buffer {
  return new MessageWriter().cstring(name).raw(tail).finish(Frontend.Parse);
}

function closeMessage(name: string): Buffer {
  return new MessageWriter().byte(DESCRIBE_STATEMENT).cstring(name).finish(Frontend.Close);
}

/**
 * The bytes to send for `messages` on a server whose replies `filter` tracks.
 * Must run at send time: what the server holds decides what is added.
 * `atIdleBoundary`: the messages are one whole unit (ending in its only
 * Sync) sent to an idle server, so if a statement the pooler believes
 * prepared turns out missing, the unit can be healed and run again.
 */
export function rewriteForServer(
  messages: ClientMessage[],
  client: ClientStatements,
  filter: ReplyFilter,
  atIdleBoundary = false,
  /** The server the messages go to: a Bound statement's session state marks it (Dirty bits). */
  server: { dirty: number } | null = null,
): Buffer {
  const out: Buffer[] = [];
  const statements = filter.statements;
  /** A statement believed prepared is used: the server may have lost it. */
  let relies = false;
  const last = messages.at(-1);

  const ensurePrepared = (def: StatementDef): void => {
    if (statements.has(def.globalName)) {
      relies = true;
      return;
    }
    out.push(parseMessage(def.globalName, def.parseTail));
    filter.expect(PARSE_COMPLETE, true, def.globalName);
    for (const name of statements.evictions()) {
      out.push(closeMessage(name));
      filter.expect(CLOSE_COMPLETE, true);
    }
  };

  for (const { type, bytes } of messages) {
    switch (type) {
      case Frontend.Parse: {
        const nameEnd = cstringEnd(bytes, 5);
        if (nameEnd === 5) {
          out.push(bytes);
          filter.expect(PARSE_COMPLETE, false);
          break;
        }
        const def = client.define(bytes.toString('utf8', 5, nameEnd), bytes.subarray(nameEnd + 1));
        if (statements.has(def.globalName)) {
          // The server has it already: parse under a scratch name so the
          // client still gets its ParseComplete (and errors, if any).
          out.push(closeMessage(SCRATCH), parseMessage(SCRATCH, def.parseTail));
          filter.expect(CLOSE_COMPLETE, true);
          filter.expect(PARSE_COMPLETE, false);
        } else {
          out.push(parseMessage(def.globalName, def.parseTail));
          filter.expect(PARSE_COMPLETE, false, def.globalName);
          for (const name of statements.evictions()) {
            out.push(closeMessage(name));
            filter.expect(CLOSE_COMPLETE, true);
          }
        }
        break;
      }
      case Frontend.Bind: {
        const portalEnd = cstringEnd(bytes, 5);
        const stmtEnd = cstringEnd(bytes, portalEnd + 1);
        const def = stmtEnd > portalEnd + 1 ? client.get(bytes.toString('utf8', portalEnd + 1, stmtEnd)) : undefined;
        if (!def) {
          out.push(bytes);
          break;
        }
        ensurePrepared(def);
        if (server) server.dirty |= def.dirt;
        out.push(
          new MessageWriter()
            .raw(bytes.subarray(5, portalEnd + 1))
            .cstring(def.globalName)
            .raw(bytes.subarray(stmtEnd + 1))
            .finish(Frontend.Bind),
        );
        break;
      }
      case Frontend.Describe: {
        const nameEnd = cstringEnd(bytes, 6);
        const def = bytes[5] === DESCRIBE_STATEMENT && nameEnd > 6 ? client.get(bytes.toString('utf8', 6, nameEnd)) : undefined;
        if (!def) {
          out.push(bytes);
          break;
        }
        ensurePrepared(def);
        out.push(new MessageWriter().byte(DESCRIBE_STATEMENT).cstring(def.globalName).finish(Frontend.Describe));
        break;
      }
      case Frontend.Close: {
        const nameEnd = cstringEnd(bytes, 6);
        if (bytes[5] === DESCRIBE_STATEMENT && nameEnd > 6) {
          client.delete(bytes.toString('utf8', 6, nameEnd));
          out.push(closeMessage(VOID));
        } else {
          out.push(bytes);
        }
        filter.expect(CLOSE_COMPLETE, false);
        break;
      }
      case Frontend.Query:
      case Frontend.FunctionCall:
        // Statements dropped by SQL (DEALLOCATE, DISCARD) are seen in the
        // server's reply (ReplyFilter.onCommandComplete).
        atIdleBoundary = false;
        out.push(bytes);
        filter.synced(1);
        break;
      case Frontend.Sync:
        // Only a unit that ends with its one Sync can run again.
        if (bytes !== last?.bytes) atIdleBoundary = false;
        out.push(bytes);
        filter.synced(1);
        break;
      default:
        out.push(bytes);
    }
  }
  const unit = atIdleBoundary && relies && last?.type === Frontend.Sync;
  filter.sending(client, unit ? { messages, client } : null);
  return out.length === 1 ? out[0] : Buffer.concat(out);
}
