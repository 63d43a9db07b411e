// Spots statements that leave state on a server connection beyond the
// transaction (SET, PREPARE, LISTEN, temp tables, WITH HOLD cursors...), so
// the pooler resets that connection before another client gets it
// (PgCat's cleanup_server_connections). Only the first keywords are read:
// this runs on every Query and Parse, so it must not decode the statement.
// What was changed is kept apart (Dirty bits) so the reset undoes only that.

import { Dirty } from '../server/reset.js';

const SPACE = 0x20;
const TAB = 0x09;
const NL = 0x0a;
const CR = 0x0d;
const DASH = 0x2d;
const SLASH = 0x2f;
const STAR = 0x2a;

/** Index of the first character after whitespace and comments, from `i`. */
function skipBlanks(buf: Buffer, i: number, end: number): number {
  while (i < end) {
    const c = buf[i];
    if (c === SPACE || c === TAB || c === NL || c === CR) i++;
    else if (c === DASH && buf[i + 1] === DASH) {
      while (i < end && buf[i] !== NL) i++;
    } else if (c === SLASH && buf[i + 1] === STAR) {
      const close = buf.indexOf('*/', i + 2);
      i = close < 0 || close >= end ? end : close + 2;
    } else break;
  }
  return i;
}

function word(buf: Buffer, i: number, end: number): [string, number] {
  const start = i;
  while (i < end && i - start < 16) {
    const c = buf[i] | 0x20; // ASCII lower-case
    if (c < 0x61 || c > 0x7a) break;
    i++;
  }
  return [buf.toString('latin1', start, i).toLowerCase(), i];
}

// DISCARD is not here: it only removes state.
const STATEFUL = new Map<string, number>([
  ['set', Dirty.Params],
  ['reset', Dirty.Params],
  ['prepare', Dirty.Statements],
  ['listen', Dirty.Listen],
  ['declare', Dirty.Cursors],
  ['load', Dirty.Other],
]);
const TRANSACTION_SCOPED_SET = new Set(['local', 'transaction', 'constraints', 'session']);

/** What session state the SQL text in buf[start, end) changes (Dirty bits; 0: none). */
export function changesSessionState(buf: Buffer, start: number, end: number): number {
  const i = skipBlanks(buf, start, end);
  const [first, next] = word(buf, i, end);
  if (first === 'create') {
    const [second, after] = word(buf, skipBlanks(buf, next, end), end);
    if (second === 'temp' || second === 'temporary') return Dirty.Temp;
    if (second === 'local' || second === 'global') {
      const [third] = word(buf, skipBlanks(buf, after, end), end);
      return third === 'temp' || third === 'temporary' ? Dirty.Temp : 0;
    }
    return 0;
  }
  const dirt = STATEFUL.get(first);
  if (dirt === undefined) return 0;
  if (first === 'set') {
    const [second, after] = word(buf, skipBlanks(buf, next, end), end);
    if (second === 'session') {
      // SET SESSION CHARACTERISTICS / SET SESSION x = y persist; RESET ALL
      // does not undo SET SESSION AUTHORIZATION.
      const [third] = word(buf, skipBlanks(buf, after, end), end);
      return third === 'authorization' ? Dirty.Other : Dirty.Params;
    }
    return !TRANSACTION_SCOPED_SET.has(second) || after === next ? Dirty.Params : 0;
  }
  return dirt;
}
