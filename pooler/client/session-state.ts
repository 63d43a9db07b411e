// Spots statements that leave state on a server connection beyond the
// transaction (SET, set_config, PREPARE, LISTEN, temp tables, WITH HOLD
// cursors, advisory locks, sequences, DO blocks...), so the pooler resets
// that connection before another client gets it (PgCat's
// cleanup_server_connections). Every statement of a text counts, so such a
// text is read with the real parser (the one cached parse in
// router/parse.ts). This runs on every Query and Parse, so cheap byte
// checks come first: a text is parsed only if it starts with one of the
// keywords of such statements, or holds a word they need inside an
// expression (set_config, pg_advisory_lock, nextval, TEMP...), or holds
// several statements and one of the keywords. Ordinary SELECT, INSERT,
// UPDATE ... SET (one statement: an UPDATE is not a SET) are not decoded.
// What was changed is kept apart (Dirty bits) so the reset undoes only that.

import { Dirty } from '../server/reset.js';
import { statementOf } from '../router/parse.js';

const SPACE = 0x20;
const TAB = 0x09;
const NL = 0x0a;
const CR = 0x0d;
const FF = 0x0c;
const VT = 0x0b;
const DASH = 0x2d;
const SLASH = 0x2f;
const STAR = 0x2a;
const SEMICOLON = 0x3b;

/** Statements (first keyword) that may leave session state: SET, RESET, PREPARE, LISTEN, DECLARE, LOAD, DO. */
const FIRST_KEYWORDS = ['set', 'reset', 'prepare', 'listen', 'declare', 'load', 'do'].map((k) => Buffer.from(k));

/** Session state changed inside any statement: temp objects, session-level functions, pg_settings. */
const INSIDE = /\btemp(?:orary)?\b|pg_temp|advisory|nextval|setval|set_config|pg_settings/i;
/** In a text of several statements, any of them may be one of FIRST_KEYWORDS. */
const ANY_STATEMENT = /\b(?:re)?set\b|\bdo\b|prepare|listen|declare|\bload\b/i;

/** Longer texts are not parsed for this (a bulk INSERT); one that may change state gets the full reset. */
const MAX_PARSED_TEXT = 64 * 1024;
/**
 * Nor scanned past this: a scan costs ~1 ms per MB, a full reset one round
 * trip; texts this long are rare and slow anyway.
 */
const MAX_SCANNED_TEXT = 1024 * 1024;

/**
 * Index of the first character after whitespace and comments, from `i`, as
 * Postgres's lexer sees them (form feed is a space; block comments nest):
 * the keyword found there is the statement's, however it is dressed up.
 */
function skipBlanks(buf: Buffer, i: number, end: number): number {
  while (i < end) {
    const c = buf[i];
    if (c === SPACE || c === TAB || c === NL || c === CR || c === FF || c === VT) i++;
    else if (c === DASH && buf[i + 1] === DASH) {
      while (i < end && buf[i] !== NL && buf[i] !== CR) i++;
    } else if (c === SLASH && buf[i + 1] === STAR) {
      let depth = 1;
      i += 2;
      while (i < end && depth > 0) {
        if (buf[i] === SLASH && buf[i + 1] === STAR) {
          depth += 1;
          i += 2;
        } else if (buf[i] === STAR && buf[i + 1] === SLASH) {
          depth -= 1;
          i += 2;
        } else i++;
      }
    } else break;
  }
  return i;
}

function isLetter(c: number | undefined): boolean {
  if (c === undefined) return false;
  const l = c | 0x20;
  return (l >= 0x61 && l <= 0x7a) || c === 0x5f || c >= 0x80;
}

/** The text at `i` is keyword `kw` (ASCII, any case), not the start of a longer word. */
function keywordAt(buf: Buffer, i: number, end: number, kw: Buffer): boolean {
  if (end - i < kw.length) return false;
  for (let k = 0; k < kw.length; k++) if ((buf[i + k] | 0x20) !== kw[k]) return false;
  return i + kw.length === end || !isLetter(buf[i + kw.length]);
}

/** Something other than blanks follows a semicolon: several statements. */
function severalStatements(buf: Buffer, from: number, end: number): boolean {
  let semi = buf.indexOf(SEMICOLON, from);
  while (semi >= 0 && semi < end) {
    const next = skipBlanks(buf, semi + 1, end);
    if (next < end && buf[next] !== SEMICOLON) return true;
    semi = next < end ? next : -1;
  }
  return false;
}

/**
 * What session state the SQL text in buf[start, end) changes (Dirty bits;
 * 0: none). The text ends at the first NUL in that range (a Query's
 * terminator, or a Parse's before its parameter types).
 */
export function changesSessionState(buf: Buffer, start: number, end: number): number {
  let stop = buf.indexOf(0, start);
  if (stop < 0 || stop > end) stop = end;
  if (stop - start > MAX_SCANNED_TEXT) return Dirty.Other;
  const first = skipBlanks(buf, start, stop);
  if (first >= stop) return 0;
  if (!startsStateful(buf, first, stop)) {
    // latin1 keeps every ASCII byte as it is: the words are ASCII.
    const text = buf.toString('latin1', first, stop);
    if (!INSIDE.test(text) && !(severalStatements(buf, first, stop) && ANY_STATEMENT.test(text))) return 0;
  }
  if (stop - start > MAX_PARSED_TEXT) return Dirty.Other;
  return statementOf(buf.toString('utf8', start, stop)).sessionState;
}

function startsStateful(buf: Buffer, i: number, end: number): boolean {
  const c = buf[i] | 0x20;
  // Only these letters start a keyword of FIRST_KEYWORDS (most texts start with s, i, u, w, b...).
  if (c !== 0x73 && c !== 0x72 && c !== 0x70 && c !== 0x6c && c !== 0x64) return false;
  for (const kw of FIRST_KEYWORDS) if (kw[0] === c && keywordAt(buf, i, end, kw)) return true;
  return false;
}
