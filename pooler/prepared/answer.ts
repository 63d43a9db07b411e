// Batches the pooler answers itself between transactions when prepared
// statements are shared (transaction mode with the cache on), without
// borrowing a server:
//
// - named Parses ending in Sync (deferred: prepared at first use, see
//   deferrableParses in rewrite.ts);
// - a client's DEALLOCATE. Its statements live on servers under shared
//   names other clients also use, so running it there would drop theirs
//   (DEALLOCATE ALL) or miss (DEALLOCATE name: the server never saw that
//   name). Between transactions the client has nothing else on any server
//   (the check-in reset removed its SQL-level statements), so forgetting
//   its names here is the whole effect. As a simple Query, or as the
//   unit libpq's PQsendQueryParams (psycopg 3) or a named node-postgres
//   query sends: Parse, Bind, [Describe], Execute, Sync. PgBouncer runs it
//   on the server and clears its caches from the reply; that path remains
//   for any other form (ReplyFilter.onCommandComplete).

import { Frontend, TxStatus } from '../protocol/codes.js';
import { errorResponse } from '../protocol/messages/error.js';
import { commandComplete } from '../protocol/messages/rows.js';
import { readyForQuery } from '../protocol/messages/status.js';
import { MessageCursor, messageCount, messageType } from '../protocol/cursor.js';
import { Target } from '../protocol/messages/target.js';
import { BIND_COMPLETE, NO_DATA, NO_PARAMETERS, PARSE_COMPLETE } from '../protocol/messages/completion.js';
import { deallocation, type Deallocation } from '../router/classify.js';
import { defineDeferred, deferrableParses } from './rewrite.js';
import type { ClientStatements } from './statements.js';

const DEALLOCATE = Buffer.from('deallocate');
const UNDEFINED_PREPARED_STATEMENT = '26000';

/** The pooler's reply to a batch sent between transactions, or null to send it to a server. */
export function answerBetweenTransactions(buffer: Buffer, messages: readonly number[], client: ClientStatements): Buffer | null {
  if (deferrableParses(messages, buffer)) {
    const parses = defineDeferred(messages, buffer, client);
    const replies: Buffer[] = [];
    for (let i = 0; i < parses; i++) replies.push(PARSE_COMPLETE);
    replies.push(readyForQuery(TxStatus.Idle));
    return Buffer.concat(replies);
  }
  const first = messageType(messages, 0);
  if (first === Frontend.Query) {
    if (messageCount(messages) !== 1) return null;
    const m = new MessageCursor().frames(buffer, messages);
    m.next();
    return deallocateQuery(buffer, m.sqlStart(), m.sqlEnd(), client);
  }
  if (first === Frontend.Parse) {
    try {
      return deallocateUnit(messages, new MessageCursor().frames(buffer, messages), client);
    } catch {
      return null; // malformed: the server will say so
    }
  }
  return null;
}

/** Cheap gate before the parser: the text starts with DEALLOCATE (after blanks; anything else goes to the server). */
function startsWithDeallocate(buf: Buffer, from: number, end: number): boolean {
  let i = from;
  while (i < end && (buf[i] === 0x20 || buf[i] === 0x09 || buf[i] === 0x0a || buf[i] === 0x0d)) i++;
  if (end - i < DEALLOCATE.length) return false;
  for (let k = 0; k < DEALLOCATE.length; k++) if ((buf[i + k] | 0x20) !== DEALLOCATE[k]) return false;
  return true;
}

function deallocateQuery(buf: Buffer, start: number, end: number, client: ClientStatements): Buffer | null {
  if (!startsWithDeallocate(buf, start, end)) return null;
  const d = deallocation(buf.toString('utf8', start, end));
  const result = d && outcome(d, client);
  if (!result) return null;
  result.apply();
  return Buffer.concat([result.reply, readyForQuery(TxStatus.Idle)]);
}

/** Parse(S, DEALLOCATE ...) Bind('', S, no values) [Describe P '' | S S] Execute('') Sync. Throws on a malformed message. */
function deallocateUnit(messages: readonly number[], m: MessageCursor, client: ClientStatements): Buffer | null {
  const n = m.remaining;
  if ((n !== 4 && n !== 5) || messageType(messages, -1) !== Frontend.Sync || messageType(messages, 1) !== Frontend.Bind) return null;
  m.next(); // Parse
  const buf = m.buffer;
  if (!startsWithDeallocate(buf, m.sqlStart(), m.sqlEnd())) return null;
  if (m.paramTypes().length !== 0) return null; // declared parameter types: let the server judge
  const d = deallocation(m.sql());
  if (!d) return null;
  const name = m.statementName()!;
  const tail = m.parseTail();
  m.next(); // Bind
  const bind = m.bind();
  if (bind.portal.length !== 0 || bind.statement !== name || bind.values.length !== 0) return null;
  const replies: Buffer[] = [PARSE_COMPLETE, BIND_COMPLETE];
  m.next();
  if (n === 5) {
    if (m.type !== Frontend.Describe) return null;
    const target = m.targetName();
    if (m.target() === Target.Portal && target === '') replies.push(NO_DATA);
    else if (m.target() === Target.Statement && target === name) replies.push(NO_PARAMETERS, NO_DATA);
    else return null;
    m.next();
  }
  if (m.type !== Frontend.Execute || m.portal() !== '') return null;
  const result = outcome(d, client);
  if (!result) return null;
  // The client's own statement S is prepared, then DEALLOCATE runs (ALL forgets S too, as on a server).
  if (name !== '') client.define(name, tail);
  result.apply();
  replies.push(result.reply, readyForQuery(TxStatus.Idle));
  return Buffer.concat(replies);
}

/** What the client's DEALLOCATE does to its names, and its reply; null when a server must answer. */
function outcome(d: Deallocation, client: ClientStatements): { reply: Buffer; apply(): void } | null {
  if (d.all) return { reply: commandComplete('DEALLOCATE ALL'), apply: () => client.clear() };
  if (client.get(d.name)) return { reply: commandComplete('DEALLOCATE'), apply: () => client.delete(d.name) };
  // Never let a client drop a statement other clients rely on.
  if (d.name.startsWith('pglynx_')) {
    return { reply: errorResponse(UNDEFINED_PREPARED_STATEMENT, `prepared statement "${d.name}" does not exist`), apply: () => {} };
  }
  return null;
}
