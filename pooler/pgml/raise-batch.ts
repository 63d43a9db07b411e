// The pooler's error for a message of an extended-protocol batch (a pgml
// call refused at Parse or Bind), raised through the server as
// Parse/Bind/Execute of a DO block placed before the client's own Sync.
//
// Why not a simple Query (protocol/messages/raise.ts): after an error in an
// extended batch, Postgres skips every message up to the next Sync, a Query
// included, and answers only the Sync. A Query standing for "the rest of the
// batch and its Sync" was skipped when the server had already failed an
// earlier message of the batch, and with the client's Sync dropped no
// ReadyForQuery ever came: the client hung. Extended messages before the
// client's Sync follow the server's own rule instead: skipped after an
// earlier error (the client gets that first error, then one ReadyForQuery),
// run otherwise (the raise is the batch's one error).
//
// When it runs, the server answers ParseComplete, BindComplete, then the
// error; the client asked for none of these, so the reply editor
// (describe-replies.ts) drops the first two and hands on the error as the
// pooler's. It tells the raise's error from one of the client's by its
// DETAIL: a token drawn per process, which no client statement carries.

import { randomBytes } from 'node:crypto';
import { bind } from '../protocol/messages/bind.js';
import { execute } from '../protocol/messages/execute.js';
import { parse } from '../protocol/messages/parse.js';

const MARK = `pglynx raise ${randomBytes(12).toString('hex')}`;
const NO_RESULT_FORMATS = Buffer.from([0, 0]);
const PREFIX = 'DO $pglynx$ ';

/** The DO block raising `code` / `message` (dollar signs dropped: they would end its quoting; quotes doubled). */
function raiseSql(code: string, message: string): string {
  const text = message.replace(/\$/g, '').replace(/'/g, "''");
  const sqlstate = /^[0-9A-Z]{5}$/.test(code) ? code : 'XX000';
  return `${PREFIX}BEGIN RAISE EXCEPTION '%', '${text}' USING ERRCODE = '${sqlstate}', DETAIL = '${MARK}'; END $pglynx$`;
}

/**
 * Parse/Bind/Execute (unnamed statement and portal) that make the server
 * raise the error. The unnamed statement is replaced, as the simple Query
 * the raise used to be would have dropped it.
 */
export function raiseMessages(code: string, message: string): Buffer {
  return Buffer.concat([
    parse('', raiseSql(code, message)),
    bind({ portal: '', statement: '', formats: [], values: [], resultFormats: NO_RESULT_FORMATS }),
    execute(),
  ]);
}

/**
 * The statement text is a raise's (a sharded pool routes a unit by its
 * client's statements, and a cross-shard plan rewrites only theirs).
 */
export function isRaiseSql(sql: string): boolean {
  return sql.startsWith(PREFIX) && sql.includes(MARK);
}

/** The ErrorResponse (its fields) is the one raiseMessages asked for. */
export function isRaised(fields: Map<string, string>): boolean {
  return fields.get('D') === MARK;
}
