// Result messages for replies the pooler produces itself (admin console,
// intercepted queries): every column is sent as text. RowDescription and
// DataRow live in their own files; they are re-exported here for callers.

import { Backend } from '../codes.js';
import { bodiless, builder } from '../serializer.js';

export { rowDescription, type ColumnSpec } from './row-description.js';
export { dataRow } from './data-row.js';

export function commandComplete(tag: string): Buffer {
  return builder.begin(Backend.CommandComplete).cstring(tag).finish();
}

/** The tag of the CommandComplete at [at, end) ('SELECT 3', 'DEALLOCATE ALL'...). */
export function commandTag(buf: Buffer, at: number, end: number): string {
  return buf.toString('utf8', at + 5, buf[end - 1] === 0 ? end - 1 : end);
}

/** The CommandComplete at [at, end) has exactly this tag (given with its NUL); compared in place. */
export function commandTagIs(buf: Buffer, at: number, end: number, tag: Buffer): boolean {
  return end - at - 5 === tag.length && buf.compare(tag, 0, tag.length, at + 5, end) === 0;
}

const EMPTY_QUERY_RESPONSE = bodiless(Backend.EmptyQueryResponse);

export function emptyQueryResponse(): Buffer {
  return EMPTY_QUERY_RESPONSE;
}
