// Execute ('E'), and the bodiless frontend messages that end or push a batch.

import { Frontend } from '../codes.js';
import { bodiless, builder } from '../serializer.js';
import { cstringAt, cstringEnd } from './strings.js';

export function executePortal(buf: Buffer, at: number, end: number): string {
  return cstringAt(buf, at + 5, end);
}

/** Row limit (0: all rows). */
export function executeMaxRows(buf: Buffer, at: number, end: number): number {
  return buf.readInt32BE(cstringEnd(buf, at + 5, end) + 1);
}

export function execute(portal = '', maxRows = 0): Buffer {
  return builder.begin(Frontend.Execute).cstring(portal).int32(maxRows).finish();
}

export const SYNC = bodiless(Frontend.Sync);
export const FLUSH = bodiless(Frontend.Flush);
export const TERMINATE = bodiless(Frontend.Terminate);
