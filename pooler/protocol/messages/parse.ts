// Parse ('P'): name\0 sql\0 int16 n, n × int32 parameter type OIDs.
// Readers take the message's bounds in a larger buffer: [at, end).

import { Frontend } from '../codes.js';
import { builder } from '../serializer.js';
import { cstringEnd } from './strings.js';

/** Index of the NUL ending the statement name. */
export function parseNameEnd(buf: Buffer, at: number, end: number): number {
  return cstringEnd(buf, at + 5, end);
}

export function parseName(buf: Buffer, at: number, end: number): string {
  return buf.toString('utf8', at + 5, parseNameEnd(buf, at, end));
}

/** Where the statement text starts. */
export function parseSqlStart(buf: Buffer, at: number, end: number): number {
  return parseNameEnd(buf, at, end) + 1;
}

export function parseSql(buf: Buffer, at: number, end: number): string {
  const start = parseSqlStart(buf, at, end);
  return buf.toString('utf8', start, cstringEnd(buf, start, end));
}

/** Everything after the name (text, parameter types): what a statement is, whatever it is called. */
export function parseTail(buf: Buffer, at: number, end: number): Buffer {
  return buf.subarray(parseNameEnd(buf, at, end) + 1, end);
}

/** The statement text of a Parse tail (what parseTail returns, or a stored statement's tail). */
export function tailSql(tail: Buffer): string {
  const nul = tail.indexOf(0);
  return tail.toString('utf8', 0, nul < 0 ? tail.length : nul);
}

/** The declared parameter type OIDs (0: unspecified). */
export function parseDeclaredTypes(buf: Buffer, at: number, end: number): number[] {
  const start = parseSqlStart(buf, at, end);
  let i = cstringEnd(buf, start, end) + 1;
  if (i + 2 > end) throw new RangeError('malformed Parse: no parameter type count');
  const count = buf.readInt16BE(i);
  i += 2;
  const types: number[] = [];
  for (let k = 0; k < count; k++, i += 4) types.push(buf.readUInt32BE(i));
  return types;
}

export function parse(name: string, sql: string, types: readonly number[] = []): Buffer {
  const b = builder.begin(Frontend.Parse).cstring(name).cstring(sql).int16(types.length);
  for (const t of types) b.uint32(t);
  return b.finish();
}

/** A Parse of `tail` (text and types as another Parse had them) under `name`. */
export function parseNamed(name: string, tail: Buffer): Buffer {
  return builder.begin(Frontend.Parse).cstring(name).bytes(tail).finish();
}

/** The Parse at [at, end) with its text replaced (name and types kept). */
export function parseWithSql(buf: Buffer, at: number, end: number, sql: string): Buffer {
  const nameEnd = parseNameEnd(buf, at, end);
  const textEnd = cstringEnd(buf, nameEnd + 1, end);
  return builder
    .begin(Frontend.Parse)
    .bytes(buf.subarray(at + 5, nameEnd + 1))
    .cstring(sql)
    .bytes(buf.subarray(textEnd + 1, end))
    .finish();
}
