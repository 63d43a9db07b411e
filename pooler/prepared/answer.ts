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
import { parseBind } from '../protocol/messages/bind.js';
import { deallocation, type Deallocation } from '../router/classify.js';
import { defineDeferred, deferrableParses } from './rewrite.js';
import type { ClientStatements } from './statements.js';

const PARSE_COMPLETE = Buffer.from([0x31, 0, 0, 0, 4]);
const BIND_COMPLETE = Buffer.from([0x32, 0, 0, 0, 4]);
const NO_DATA = Buffer.from([0x6e, 0, 0, 0, 4]);
/** ParameterDescription with no parameters. */
const NO_PARAMETERS = Buffer.from([0x74, 0, 0, 0, 6, 0, 0]);
const DEALLOCATE = Buffer.from('deallocate');
const DESCRIBE_PORTAL = 0x50; // 'P'
const DESCRIBE_STATEMENT = 0x53; // 'S'
const UNDEFINED_PREPARED_STATEMENT = '26000';

/** The pooler's reply to a batch sent between transactions, or null to send it to a server. */
export function answerBetweenTransactions(buffer: Buffer, messages: number[], client: ClientStatements): Buffer | null {
  if (deferrableParses(messages, buffer)) {
    const parses = defineDeferred(messages, buffer, client);
    const replies: Buffer[] = [];
    for (let i = 0; i < parses; i++) replies.push(PARSE_COMPLETE);
    replies.push(readyForQuery(TxStatus.Idle));
    return Buffer.concat(replies);
  }
  const first = messages[0];
  if (first === Frontend.Query) return messages.length === 3 ? deallocateQuery(buffer, messages[1] + 5, messages[2] - 1, client) : null;
  if (first === Frontend.Parse) return deallocateUnit(buffer, messages, client);
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

/** Parse(S, DEALLOCATE ...) Bind('', S, no values) [Describe P '' | S S] Execute('') Sync. */
function deallocateUnit(buf: Buffer, messages: number[], client: ClientStatements): Buffer | null {
  const n = messages.length / 3;
  if ((n !== 4 && n !== 5) || messages[(n - 1) * 3] !== Frontend.Sync || messages[3] !== Frontend.Bind) return null;
  const parseStart = messages[1];
  const nameEnd = buf.indexOf(0, parseStart + 5);
  const textEnd = buf.indexOf(0, nameEnd + 1);
  // Malformed (no terminators or no type count): the server will say so.
  if (nameEnd < 0 || textEnd < 0 || textEnd + 3 > messages[2] || !startsWithDeallocate(buf, nameEnd + 1, textEnd)) return null;
  if (buf.readInt16BE(textEnd + 1) !== 0) return null; // declared parameter types: let the server judge
  const d = deallocation(buf.toString('utf8', nameEnd + 1, textEnd));
  if (!d) return null;
  const name = buf.toString('utf8', parseStart + 5, nameEnd);
  let bind;
  try {
    bind = parseBind(buf.subarray(messages[4], messages[5]));
  } catch {
    return null; // malformed: the server will say so
  }
  if (bind.portal.length !== 0 || bind.statement !== name || bind.values.length !== 0) return null;
  const replies: Buffer[] = [PARSE_COMPLETE, BIND_COMPLETE];
  let next = 2;
  if (n === 5) {
    if (messages[6] !== Frontend.Describe) return null;
    const at = messages[7] + 5;
    const target = buf.toString('utf8', at + 1, buf.indexOf(0, at + 1));
    if (buf[at] === DESCRIBE_PORTAL && target === '') replies.push(NO_DATA);
    else if (buf[at] === DESCRIBE_STATEMENT && target === name) replies.push(NO_PARAMETERS, NO_DATA);
    else return null;
    next = 3;
  }
  if (messages[next * 3] !== Frontend.Execute || buf[messages[next * 3 + 1] + 5] !== 0) return null;
  const result = outcome(d, client);
  if (!result) return null;
  // The client's own statement S is prepared, then DEALLOCATE runs (ALL forgets S too, as on a server).
  if (name !== '') client.define(name, buf.subarray(nameEnd + 1, messages[2]));
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
