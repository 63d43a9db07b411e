// Query ('Q'): one statement text. Read in place; written by the builder.

import { Frontend } from '../codes.js';
import { builder } from '../serializer.js';

/** The Query at [at, end): its text (the terminator is the message's last byte). */
export function querySql(buf: Buffer, at: number, end: number): string {
  return buf.toString('utf8', at + 5, end - 1);
}

export function query(sql: string): Buffer {
  return builder.begin(Frontend.Query).cstring(sql).finish();
}
