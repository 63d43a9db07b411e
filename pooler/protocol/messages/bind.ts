// Bind ('B'): portal\0 statement\0 int16 n formats, int16 n values (int32
// length, -1 for NULL, then bytes), int16 n result formats.

import { Frontend } from '../codes.js';
import { builder } from '../serializer.js';
import { cstringEnd } from './strings.js';

/** A Bind read into its parts: portal, statement, parameter formats and values (views into the message, not copies), result formats. */
export interface BindParts {
  portal: Buffer;
  statement: string;
  formats: number[];
  values: (Buffer | null)[];
  /** The result-format section as it was (count included). */
  resultFormats: Buffer;
}

/** Index of the NUL ending the portal name. */
export function bindPortalEnd(buf: Buffer, at: number, end: number): number {
  return cstringEnd(buf, at + 5, end);
}

export function bindPortal(buf: Buffer, at: number, end: number): string {
  return buf.toString('utf8', at + 5, bindPortalEnd(buf, at, end));
}

/** The statement the Bind names ('' for the unnamed one). */
export function bindStatement(buf: Buffer, at: number, end: number): string {
  const start = bindPortalEnd(buf, at, end) + 1;
  return buf.toString('utf8', start, cstringEnd(buf, start, end));
}

/** The Bind at [at, end) in parts. */
export function bindParts(buf: Buffer, at: number, end: number): BindParts {
  let i = at + 5;
  const portalEnd = cstringEnd(buf, i, end);
  const portal = buf.subarray(i, portalEnd);
  i = portalEnd + 1;
  const stmtEnd = cstringEnd(buf, i, end);
  const statement = buf.toString('utf8', i, stmtEnd);
  i = stmtEnd + 1;
  const nf = buf.readInt16BE(i);
  i += 2;
  const formats: number[] = [];
  for (let k = 0; k < nf; k++, i += 2) formats.push(buf.readInt16BE(i));
  const np = buf.readInt16BE(i);
  i += 2;
  const values: (Buffer | null)[] = [];
  for (let k = 0; k < np; k++) {
    const len = buf.readInt32BE(i);
    i += 4;
    if (len < 0) values.push(null);
    else {
      values.push(buf.subarray(i, i + len));
      i += len;
    }
  }
  return { portal, statement, formats, values, resultFormats: buf.subarray(i, end) };
}

/** A whole Bind message in parts. */
export function parseBind(msg: Buffer): BindParts {
  return bindParts(msg, 0, msg.length);
}

/** The format code of parameter `i` (Bind's 0, 1 or n formats rule). */
export function paramFormat(bind: BindParts, i: number): number {
  const f = bind.formats;
  return f.length === 0 ? 0 : f.length === 1 ? f[0]! : f[i]!;
}

/** Writes a Bind from parts (values may be strings, sent as text). */
export function bind(parts: { portal: Buffer | string; statement: string; formats: readonly number[]; values: readonly (Buffer | string | null)[]; resultFormats: Buffer }): Buffer {
  const b = builder.begin(Frontend.Bind);
  if (typeof parts.portal === 'string') b.cstring(parts.portal);
  else b.bytes(parts.portal).byte(0);
  b.cstring(parts.statement).int16(parts.formats.length);
  for (const f of parts.formats) b.int16(f);
  b.int16(parts.values.length);
  for (const v of parts.values) {
    if (typeof v === 'string') b.lengthPrefixedString(v);
    else b.lengthPrefixed(v);
  }
  return b.bytes(parts.resultFormats).finish();
}

/** The Bind at [at, end) naming `statement` instead (everything else as it was). */
export function bindWithStatement(buf: Buffer, at: number, end: number, statement: string): Buffer {
  const portalEnd = bindPortalEnd(buf, at, end);
  const stmtEnd = cstringEnd(buf, portalEnd + 1, end);
  return builder
    .begin(Frontend.Bind)
    .bytes(buf.subarray(at + 5, portalEnd + 1))
    .cstring(statement)
    .bytes(buf.subarray(stmtEnd + 1, end))
    .finish();
}
