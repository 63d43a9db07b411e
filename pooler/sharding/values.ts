// Typed comparison of text-format values, by type oid, for merging sorted
// shard results and for min()/max(); and canonical keys for GROUP BY and
// DISTINCT (values Postgres deems equal get equal keys).
//
// Assumptions (documented in plan.ts): text types use C collation (byte-wise
// UTF-8, the clusters run --locale=C), date/time values are in DateStyle ISO,
// floats are printed with extra_float_digits >= 1. Types not listed compare
// byte-wise, which is right for uuid, bool, bytea (hex) and "char", and not
// for e.g. interval or case-insensitive text.

import { Oid } from '../protocol/codes.js';
import { compareNumeric, numericKey, parseNumeric, type Decimal } from './numeric.js';

/** Type OIDs (one table, protocol/codes.ts). */
export { Oid };

/** How one type's values are decoded once and then compared (both non-NULL). */
export interface Ordering<V> {
  decode(b: Buffer): V;
  compare(a: V, b: V): number;
}

export class ValueError extends Error {}

const INTEGER: Ordering<bigint> = {
  decode: (b) => BigInt(b.toString('latin1')),
  compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0),
};

// float8_cmp_internal: NaN is greater than everything and equal to itself; -0 = 0.
const FLOAT: Ordering<number> = {
  decode: (b) => parseFloatText(b.toString('latin1')),
  compare: (a, b) => {
    if (Number.isNaN(a)) return Number.isNaN(b) ? 0 : 1;
    if (Number.isNaN(b)) return -1;
    return a < b ? -1 : a > b ? 1 : 0;
  },
};

const NUMERIC: Ordering<Decimal> = {
  decode: (b) => parseNumeric(b.toString('latin1')),
  compare: compareNumeric,
};

const BYTES: Ordering<Buffer> = {
  decode: (b) => b,
  compare: (a, b) => Buffer.compare(a, b),
};

// bpchar ignores trailing blanks when comparing.
const BPCHAR: Ordering<Buffer> = {
  decode: trimBlanks,
  compare: (a, b) => Buffer.compare(a, b),
};

const DATETIME: Ordering<bigint> = {
  decode: (b) => {
    const v = isoTimestampMicros(b.toString('latin1'));
    if (v === null) throw new ValueError(`cannot order date/time value "${b.toString('latin1')}": cross-shard queries need DateStyle ISO`);
    return v;
  },
  compare: INTEGER.compare,
};

export function orderingFor(typeOid: number): Ordering<unknown> {
  switch (typeOid) {
    case Oid.int2:
    case Oid.int4:
    case Oid.int8:
    case Oid.oid:
      return INTEGER as Ordering<unknown>;
    case Oid.float4:
    case Oid.float8:
      return FLOAT as Ordering<unknown>;
    case Oid.numeric:
      return NUMERIC as Ordering<unknown>;
    case Oid.bpchar:
      return BPCHAR as Ordering<unknown>;
    case Oid.date:
    case Oid.timestamp:
    case Oid.timestamptz:
      return DATETIME as Ordering<unknown>;
    default:
      // text, varchar, name, bool ('f' < 't'), time (fixed width), uuid, ...
      return BYTES as Ordering<unknown>;
  }
}

/** Canonical text of a value for grouping (NULL is handled by the caller). */
export function groupKeyFor(typeOid: number): (b: Buffer) => string {
  switch (typeOid) {
    case Oid.int2:
    case Oid.int4:
    case Oid.int8:
    case Oid.oid:
      return (b) => BigInt(b.toString('latin1')).toString();
    case Oid.float4:
    case Oid.float8:
      return (b) => {
        const x = parseFloatText(b.toString('latin1'));
        return x === 0 ? '0' : String(x); // -0 groups with 0
      };
    case Oid.numeric:
      return (b) => numericKey(parseNumeric(b.toString('latin1')));
    case Oid.bpchar:
      return (b) => trimBlanks(b).toString('latin1');
    case Oid.timestamptz:
      // The same instant may print with different offsets.
      return (b) => isoTimestampMicros(b.toString('latin1'))?.toString() ?? b.toString('latin1');
    default:
      return (b) => b.toString('latin1');
  }
}

/** float4in/float8in spellings of the specials, then JavaScript's parser. */
export function parseFloatText(s: string): number {
  switch (s.toLowerCase()) {
    case 'nan':
      return NaN;
    case 'infinity':
    case 'inf':
    case '+infinity':
      return Infinity;
    case '-infinity':
    case '-inf':
      return -Infinity;
  }
  const x = Number(s);
  if (Number.isNaN(x)) throw new ValueError(`invalid floating-point value "${s}"`);
  return x;
}

function trimBlanks(b: Buffer): Buffer {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0x20) end--;
  return b.subarray(0, end);
}

const ISO = /^(\d{4,})-(\d\d)-(\d\d)(?: (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?)?(?:([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?)?( BC)?$/;
const INFINITE = 2n ** 80n; // beyond any finite timestamp in microseconds
const DAY_MICROS = 86_400_000_000n;

/**
 * Microseconds since 1970-01-01 (UTC when an offset is given) of an ISO
 * date, timestamp or timestamptz; null when not in that format.
 */
export function isoTimestampMicros(s: string): bigint | null {
  if (s === 'infinity') return INFINITE;
  if (s === '-infinity') return -INFINITE;
  const m = ISO.exec(s);
  if (!m) return null;
  let year = Number(m[1]);
  if (m[12]) year = 1 - year; // 1 BC is astronomical year 0
  let micros = BigInt(daysFromCivil(year, Number(m[2]), Number(m[3]))) * DAY_MICROS;
  if (m[4] !== undefined) {
    const secs = Number(m[4]) * 3600 + Number(m[5]) * 60 + Number(m[6]);
    micros += BigInt(secs) * 1_000_000n + BigInt((m[7] ?? '').padEnd(6, '0') || '0');
  }
  if (m[8] !== undefined) {
    const offset = Number(m[9]) * 3600 + Number(m[10] ?? 0) * 60 + Number(m[11] ?? 0);
    micros -= BigInt(m[8] === '-' ? -offset : offset) * 1_000_000n;
  }
  return micros;
}

/** Days from 1970-01-01 to a proleptic Gregorian date (any year, astronomical numbering). */
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}
