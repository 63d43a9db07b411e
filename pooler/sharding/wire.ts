// The result messages of one statement (RowDescription, DataRow) as the
// cross-shard merger reads them. Cells stay raw bytes: text-format values are
// only decoded where the merger must compare or combine them. The readers and
// writers are protocol/messages' (data-row.ts, row-description.ts); a
// malformed shard reply becomes a MergeError here.

import { MessageCursor } from '../protocol/cursor.js';
import { MalformedRow, parseDataRow as parseRow, type Cell } from '../protocol/messages/data-row.js';
import { parseRowDescription as parseFields, type FieldDesc } from '../protocol/messages/row-description.js';

export { buildDataRow, parseDataRow, type Cell } from '../protocol/messages/data-row.js';
export { buildRowDescription, parseRowDescription, type FieldDesc } from '../protocol/messages/row-description.js';

/** One backend message: its type byte, its body, and the whole message (header included). */
export interface BackendMessage {
  type: number;
  body: Buffer;
  raw: Buffer;
}

/** A merge that cannot produce a result (SQLSTATE and message for the client). */
export class MergeError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

const malformed = (what: string): MergeError => new MergeError('08P01', `shard sent a malformed ${what}`);

/** Splits a buffer of whole backend messages (views, no copies). */
export function readMessages(buf: Buffer): BackendMessage[] {
  const out: BackendMessage[] = [];
  const c = new MessageCursor().over(buf);
  for (;;) {
    try {
      if (!c.next()) return out;
    } catch (err) {
      throw malformed((err as Error).message.replace(/^malformed |^truncated /, ''));
    }
    out.push({ type: c.type, body: c.body(), raw: c.bytes() });
  }
}

/** The columns of a shard's DataRow body (views); MergeError if malformed. */
export function shardRow(body: Buffer): Cell[] {
  try {
    return parseRow(body);
  } catch (err) {
    if (err instanceof MalformedRow) throw malformed('DataRow');
    throw err;
  }
}

/** The fields of a shard's RowDescription body; MergeError if malformed. */
export function shardFields(body: Buffer): FieldDesc[] {
  try {
    return parseFields(body);
  } catch (err) {
    if (err instanceof MalformedRow) throw malformed('RowDescription');
    throw err;
  }
}

