// Bind parameter values as the text pgml arguments are read from. Text
// format values are their bytes; binary ones (asyncpg, pgx and JDBC send
// parameters of known types in binary) are decoded for the types pgml
// arguments take: text-like types send the same bytes in both formats,
// jsonb a version byte first, integers big-endian, text[] the array format.

import { Oid } from '../protocol/codes.js';
import type { BindParts } from '../protocol/messages/bind.js';
import { PgmlError } from './pgml-error.js';

export type ParamValues = (string | null)[];

/** The format code of parameter `i` (none: all text; one: all the same; else each its own). */
function formatOf(bind: BindParts, i: number): number {
  const f = bind.formats;
  return f.length === 0 ? 0 : f.length === 1 ? f[0]! : (f[i] ?? 0);
}

/** `types`: the statement's parameter type OIDs (0 or missing: read as text). */
export function paramTexts(bind: BindParts, types: readonly number[] = []): ParamValues {
  return bind.values.map((v, i) => (v === null ? null : formatOf(bind, i) === 1 ? binaryText(v, types[i] ?? 0, i + 1) : v.toString('utf8')));
}

function badBinary(n: number): PgmlError {
  return new PgmlError('22P03', `incorrect binary data format in bind parameter ${n}`);
}

function binaryText(v: Buffer, type: number, n: number): string {
  switch (type) {
    case Oid.int2:
      if (v.length !== 2) throw badBinary(n);
      return String(v.readInt16BE(0));
    case Oid.int4:
      if (v.length !== 4) throw badBinary(n);
      return String(v.readInt32BE(0));
    case Oid.int8:
      if (v.length !== 8) throw badBinary(n);
      return String(v.readBigInt64BE(0));
    case Oid.jsonb:
      if (v[0] !== 1) throw badBinary(n);
      return v.toString('utf8', 1);
    case Oid.textArray:
      return textArrayLiteral(v, n);
    default:
      return v.toString('utf8');
  }
}

/** A one-dimensional text[] in binary (ndim, flags, element type, size and lower bound, then length-prefixed elements) as an array literal. */
function textArrayLiteral(v: Buffer, n: number): string {
  if (v.length < 12) throw badBinary(n);
  const ndim = v.readInt32BE(0);
  if (ndim === 0) return '{}';
  if (ndim !== 1 || v.length < 20) throw badBinary(n);
  const count = v.readInt32BE(12);
  let at = 20;
  const items: string[] = [];
  for (let k = 0; k < count; k++) {
    if (at + 4 > v.length) throw badBinary(n);
    const len = v.readInt32BE(at);
    at += 4;
    if (len < 0) {
      items.push('NULL');
      continue;
    }
    if (at + len > v.length) throw badBinary(n);
    items.push(`"${v.toString('utf8', at, at + len).replace(/[\\"]/g, (c) => `\\${c}`)}"`);
    at += len;
  }
  return `{${items.join(',')}}`;
}
