// Rewrites a client's extended-protocol messages for the server it borrowed:
// statement names become global names, statements the server lacks are
// prepared on the spot, and every Parse/Close is recorded so the replies the
// client did not ask for can be removed (see replies.ts).

import { Frontend } from '../protocol/codes.js';
import { MessageCursor, messageCount, messageType } from '../protocol/cursor.js';
import { bindWithStatement } from '../protocol/messages/bind.js';
import { parseNamed } from '../protocol/messages/parse.js';
import { close, describe, Target } from '../protocol/messages/target.js';
import type { ClientStatements, StatementDef } from './statements.js';
import { CLOSE_COMPLETE, PARSE_COMPLETE, type ReplyFilter } from './replies.js';

/** Reused for a re-Parse of a statement the server already holds (its reply is what the client awaits). */
const SCRATCH = 'pglynx_scratch';
/** Closing a statement the client named must not close the shared one: a no-op Close still answers CloseComplete. */
const VOID = 'pglynx_void';

/**
 * A batch of named Parse messages ending in one Sync, sent between
 * transactions, can be answered by the pooler (ParseComplete each, then
 * ReadyForQuery) without borrowing a server: the statements are prepared on
 * the server at first use. Waiting for a server just to prepare would block
 * clients that prepare synchronously (libpq's PQprepare, pgbench -M prepared)
 * while their other connections hold servers. Errors in the statement
 * surface at its first Bind instead, as in PgCat.
 */
export function deferrableParses(messages: readonly number[], buffer: Buffer): boolean {
  if (messageCount(messages) < 2 || messageType(messages, 0) !== Frontend.Parse || messageType(messages, -1) !== Frontend.Sync) return false;
  const m = new MessageCursor().frames(buffer, messages);
  while (m.next() && m.remaining > 0) {
    if (m.type !== Frontend.Parse) return false;
    if (!m.isNamedParse()) return false; // unnamed: lives on one server only
  }
  return true;
}

/** Record the deferred Parses; returns how many there were. */
export function defineDeferred(messages: readonly number[], buffer: Buffer, client: ClientStatements): number {
  let count = 0;
  for (const m = new MessageCursor().frames(buffer, messages); m.next(); ) {
    if (m.type !== Frontend.Parse) continue;
    client.define(m.statementName()!, m.parseTail());
    count++;
  }
  return count;
}

const parseMessage = parseNamed;

function closeMessage(name: string): Buffer {
  return close(Target.Statement, name);
}

/**
 * The bytes to send for `messages` on a server whose replies `filter` tracks.
 * Must run at send time: what the server holds decides what is added.
 * `atIdleBoundary`: the messages are one whole unit (ending in its only
 * Sync) sent to an idle server, so if a statement the pooler believes
 * prepared turns out missing, the unit can be healed and run again.
 */
export function rewriteForServer(
  /** Whole client messages, end to end. */
  messages: Buffer,
  client: ClientStatements,
  filter: ReplyFilter,
  atIdleBoundary = false,
  /** The server the messages go to: a Bound statement's session state marks it (Dirty bits). */
  server: { dirty: number } | null = null,
): Buffer {
  const out: Buffer[] = [];
  // Messages passed on as they are go out as runs of the client's bytes, one view per run.
  let runStart = -1;
  let runEnd = -1;
  const emit = (...built: Buffer[]): void => {
    if (runStart >= 0) out.push(messages.subarray(runStart, runEnd));
    runStart = -1;
    out.push(...built);
  };
  const statements = filter.statements;
  /** A statement believed prepared is used: the server may have lost it. */
  let relies = false;

  const ensurePrepared = (def: StatementDef): void => {
    if (statements.has(def.globalName)) {
      relies = true;
      return;
    }
    emit(parseMessage(def.globalName, def.parseTail));
    filter.expect(PARSE_COMPLETE, true, def.globalName);
    for (const name of statements.evictions()) {
      emit(closeMessage(name));
      filter.expect(CLOSE_COMPLETE, true);
    }
  };

  const m = new MessageCursor().over(messages);
  const keep = (): void => {
    if (runStart < 0) runStart = m.start;
    runEnd = m.end;
  };
  let lastType = 0;
  while (m.next()) {
    lastType = m.type;
    switch (m.type) {
      case Frontend.Parse: {
        const name = m.statementName()!;
        if (name === '') {
          keep();
          filter.expect(PARSE_COMPLETE, false);
          break;
        }
        const def = client.define(name, m.parseTail());
        if (statements.has(def.globalName)) {
          // The server has it already: parse under a scratch name so the
          // client still gets its ParseComplete (and errors, if any).
          emit(closeMessage(SCRATCH), parseMessage(SCRATCH, def.parseTail));
          filter.expect(CLOSE_COMPLETE, true);
          filter.expect(PARSE_COMPLETE, false);
        } else {
          emit(parseMessage(def.globalName, def.parseTail));
          filter.expect(PARSE_COMPLETE, false, def.globalName);
          for (const name of statements.evictions()) {
            emit(closeMessage(name));
            filter.expect(CLOSE_COMPLETE, true);
          }
        }
        break;
      }
      case Frontend.Bind: {
        const statement = m.statementName()!;
        const def = statement !== '' ? client.get(statement) : undefined;
        if (!def) {
          keep();
          break;
        }
        ensurePrepared(def);
        if (server) server.dirty |= def.dirt;
        emit(bindWithStatement(m.buffer, m.start, m.end, def.globalName));
        break;
      }
      case Frontend.Describe: {
        const name = m.targetName();
        const def = m.target() === Target.Statement && name !== '' ? client.get(name) : undefined;
        if (!def) {
          keep();
          break;
        }
        ensurePrepared(def);
        emit(describe(Target.Statement, def.globalName));
        break;
      }
      case Frontend.Close: {
        const name = m.targetName();
        if (m.target() === Target.Statement && name !== '') {
          client.delete(name);
          emit(closeMessage(VOID));
        } else {
          keep();
        }
        filter.expect(CLOSE_COMPLETE, false);
        break;
      }
      case Frontend.Query:
      case Frontend.FunctionCall:
        // Statements dropped by SQL (DEALLOCATE, DISCARD) are seen in the
        // server's reply (ReplyFilter.onCommandComplete).
        atIdleBoundary = false;
        keep();
        filter.synced(1);
        break;
      case Frontend.Sync:
        // Only a unit that ends with its one Sync can run again.
        if (m.end !== messages.length) atIdleBoundary = false;
        keep();
        filter.synced(1);
        break;
      default:
        keep();
    }
  }
  const unit = atIdleBoundary && relies && lastType === Frontend.Sync;
  filter.sending(client, unit ? { messages, client } : null);
  if (out.length === 0) return messages; // nothing rewritten: the client's bytes as they came
  emit();
  return out.length === 1 ? out[0] : Buffer.concat(out);
}
