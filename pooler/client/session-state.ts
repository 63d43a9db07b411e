// Spots statements that leave state on a server connection beyond the
// transaction (SET, PREPARE, LISTEN, temp tables, WITH HOLD cursors...), so
// the pooler resets that connection before another client gets it
// (PgCat's cleanup_server_connections). Only the first keyword is read:
// this runs on every Query and Parse, so it must not decode the statement.

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

const STATEFUL = new Set(['set', 'reset', 'prepare', 'listen', 'declare', 'load', 'discard']);
const TRANSACTION_SCOPED_SET = new Set(['local', 'transaction', 'constraints', 'session']);

/** Does the SQL text in buf[start, end) change session state? */
export function changesSessionState(buf: Buffer, start: number, end: number): boolean {
  const i = skipBlanks(buf, start, end);
  const [first, next] = word(buf, i, end);
  if (first === 'create') {
    const [second, after] = word(buf, skipBlanks(buf, next, end), end);
    if (second === 'temp' || second === 'temporary') return true;
    if (second === 'local' || second === 'global') {
      const [third] = word(buf, skipBlanks(buf, after, end), end);
      return third === 'temp' || third === 'temporary';
    }
    return false;
  }
  if (!STATEFUL.has(first)) return false;
  if (first === 'set') {
    const [second, after] = word(buf, skipBlanks(buf, next, end), end);
    if (second === 'session') {
      // SET SESSION CHARACTERISTICS / SET SESSION AUTHORIZATION / SET SESSION x = y all persist.
      return true;
    }
    return !TRANSACTION_SCOPED_SET.has(second) || after === next;
  }
  return true;
}
