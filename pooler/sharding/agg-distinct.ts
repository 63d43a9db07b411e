// count(DISTINCT x) and sum(DISTINCT x) across shards: each shard sends
// array_agg(DISTINCT x) per group (a value on two shards counts once, so
// per-shard counts cannot simply be added); the merger unions the arrays,
// with values Postgres deems equal (1.0 and 1.00) as one, then counts or
// sums the union.

import { parseArrayLiteral } from './array-literal.js';
import { addNumeric, formatNumeric, parseNumeric, type Decimal } from './numeric.js';
import { formatFloat4, formatFloat8 } from './floats.js';
import { groupKeyFor, Oid, parseFloatText } from './values.js';
import { MergeError, type Cell } from './wire.js';

/** Element type of the array types array_agg returns, for the types whose equality is not byte equality. */
const ELEMENT_OF: Record<number, number> = {
  1005: Oid.int2, 1007: Oid.int4, 1016: Oid.int8, 1231: Oid.numeric, 1021: Oid.float4, 1022: Oid.float8,
  1014: Oid.bpchar, 1185: Oid.timestamptz, 1009: Oid.text, 1015: Oid.varchar,
};

/** The type sum() returns for an argument type (null: not summable here). */
function sumResultOid(elementOid: number): number | null {
  switch (elementOid) {
    case Oid.int2:
    case Oid.int4:
      return Oid.int8;
    case Oid.int8:
    case Oid.numeric:
      return Oid.numeric;
    case Oid.float4:
    case Oid.float8:
      return elementOid;
    default:
      return null;
  }
}

/** The type of a combined distinct column (what the merged value is read as). */
export function distinctResultOid(kind: 'count_distinct' | 'sum_distinct', arrayOid: number): number {
  if (kind === 'count_distinct') return Oid.int8;
  const sum = sumResultOid(ELEMENT_OF[arrayOid] ?? 0);
  if (sum === null) throw new MergeError('0A000', `cross-shard queries cannot combine sum(DISTINCT ...) of array type oid ${arrayOid}`);
  return sum;
}

export interface DistinctAccumulator {
  add(cell: Cell): void;
  result(): Cell;
}

export function distinctAccumulator(kind: 'count_distinct' | 'sum_distinct', arrayOid: number): () => DistinctAccumulator {
  const elementOid = ELEMENT_OF[arrayOid] ?? 0;
  const key = groupKeyFor(elementOid);
  const resultOid = distinctResultOid(kind, arrayOid);
  return () => {
    const values = new Map<string, string>();
    return {
      add: (cell) => {
        if (cell === null) return; // a group with only NULLs on this shard
        const items = parseArrayLiteral(cell.toString('utf8'));
        if (items === null) throw new MergeError('0A000', 'cross-shard queries support count/sum(DISTINCT ...) of scalar values only');
        for (const v of items) {
          const k = key(Buffer.from(v, 'utf8'));
          if (!values.has(k)) values.set(k, v);
        }
      },
      result: () => {
        if (kind === 'count_distinct') return Buffer.from(String(values.size));
        if (values.size === 0) return null;
        return Buffer.from(sumText([...values.values()], resultOid, elementOid));
      },
    };
  };
}

function sumText(values: string[], resultOid: number, elementOid: number): string {
  if (resultOid === Oid.float4 || resultOid === Oid.float8) {
    const round = elementOid === Oid.float4 ? Math.fround : (x: number) => x;
    // Postgres feeds a DISTINCT aggregate its inputs sorted.
    let total = 0;
    for (const x of values.map(parseFloatText).sort((a, b) => a - b)) total = round(total + x);
    return resultOid === Oid.float4 ? formatFloat4(total) : formatFloat8(total);
  }
  if (resultOid === Oid.int8) return values.reduce((t, v) => t + BigInt(v), 0n).toString();
  let total: Decimal = { kind: 'finite', units: 0n, scale: 0 };
  for (const v of values) total = addNumeric(total, parseNumeric(v));
  return formatNumeric(total);
}
