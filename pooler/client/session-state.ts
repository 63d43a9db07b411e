// Spots statements that leave state on a server connection beyond the
// transaction (SET, set_config, PREPARE, LISTEN, temp tables, WITH HOLD
// cursors, advisory locks, sequences, DO blocks...), so the pooler resets
// that connection before another client gets it (PgCat's
// cleanup_server_connections). Every statement of a text counts, so it is
// read with the real parser (the one cached parse in router/classify.ts);
// this runs on every Query and Parse, so a byte-level pre-check first lets
// texts that hold none of the words such statements need (ordinary SELECT,
// INSERT, UPDATE...) through without being decoded or parsed.
// What was changed is kept apart (Dirty bits) so the reset undoes only that.

import { Dirty } from '../server/reset.js';
import { sessionState } from '../router/classify.js';

/**
 * Every statement that can leave session state has one of these words
 * (SET / RESET / set_config / setval / SESSION AUTHORIZATION; TEMP /
 * TEMPORARY / pg_temp; pg_advisory_*; DO; PREPARE; LISTEN; DECLARE; nextval;
 * LOAD). A false match (OFFSET, "dataset") only costs a cached parse.
 */
const MAYBE_STATEFUL = /set|temp|advisory|\bdo\b|prepare|listen|declare|nextval|load/i;

/** Longer texts are not parsed for this (a bulk INSERT); one that matches gets the full reset. */
const MAX_PARSED_TEXT = 64 * 1024;
/**
 * Nor scanned past this: a scan costs ~1 ms per MB, a full reset one round
 * trip; texts this long are rare and slow anyway.
 */
const MAX_SCANNED_TEXT = 1024 * 1024;

/**
 * What session state the SQL text in buf[start, end) changes (Dirty bits;
 * 0: none). The text ends at the first NUL in that range (a Query's
 * terminator, or a Parse's before its parameter types).
 */
export function changesSessionState(buf: Buffer, start: number, end: number): number {
  let stop = buf.indexOf(0, start);
  if (stop < 0 || stop > end) stop = end;
  if (stop <= start) return 0;
  if (stop - start > MAX_SCANNED_TEXT) return Dirty.Other;
  // latin1 keeps every ASCII byte as it is: the words are ASCII.
  if (!MAYBE_STATEFUL.test(buf.toString('latin1', start, stop))) return 0;
  if (stop - start > MAX_PARSED_TEXT) return Dirty.Other;
  return sessionState(buf.toString('utf8', start, stop));
}
