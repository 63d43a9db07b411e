// Combines the shards' per-group partial aggregates into final rows: rows
// with equal GROUP BY values (NULLs together) become one, count/sum add up,
// min/max keep the extreme, avg divides the combined sum by the combined
// count exactly as Postgres's numeric_div or float8 division would.

import { distinctAccumulator } from './agg-distinct.js';
import { evaluate, formatAs, holds } from './agg-eval.js';
import type { AggExpr } from './agg-expr.js';
import { formatFloat4, formatFloat8 } from './floats.js';
import { avgResultOid, combinedTypes, type Layout } from './layout.js';
import { addNumeric, divNumeric, formatNumeric, parseNumeric, type Decimal } from './numeric.js';
import { groupKeyFor, Oid, orderingFor, parseFloatText } from './values.js';
import { MergeError, type Cell, type FieldDesc } from './wire.js';

/** A running sum of one type, as the shards' sum() returned it. */
interface Sum {
  add(text: string): void;
  /** Null when nothing was added (sum of no rows is NULL). */
  text(): string | null;
  decimal(): Decimal;
  float(): number;
}

function sumFor(typeOid: number, float4Exact: boolean): () => Sum {
  switch (typeOid) {
    case Oid.int2:
    case Oid.int4:
    case Oid.int8:
      return () => {
        let total: bigint | null = null;
        return {
          add: (t) => void (total = (total ?? 0n) + BigInt(t)),
          text: () => (total === null ? null : total.toString()),
          decimal: () => ({ kind: 'finite', units: total ?? 0n, scale: 0 }),
          float: () => Number(total ?? 0n),
        };
      };
    case Oid.numeric:
      return () => {
        let total: Decimal | null = null;
        return {
          add: (t) => void (total = total === null ? parseNumeric(t) : addNumeric(total, parseNumeric(t))),
          text: () => (total === null ? null : formatNumeric(total)),
          decimal: () => total ?? { kind: 'finite', units: 0n, scale: 0 },
          float: () => Number(total === null ? 0 : formatNumeric(total)),
        };
      };
    case Oid.float4:
    case Oid.float8:
      return () => {
        // sum(float4) adds in float4 (float4pl); avg accumulates in float8.
        const round = typeOid === Oid.float4 && float4Exact ? Math.fround : (x: number) => x;
        let total: number | null = null;
        return {
          add: (t) => void (total = round((total ?? 0) + parseFloatText(t))),
          text: () => (total === null ? null : typeOid === Oid.float4 && float4Exact ? formatFloat4(total) : formatFloat8(total)),
          decimal: () => parseNumeric(String(total ?? 0)),
          float: () => total ?? 0,
        };
      };
    default:
      throw new MergeError('0A000', `cross-shard queries cannot combine sum() or avg() of type oid ${typeOid}`);
  }
}

/** Folds one column's shard values into the group's value. */
interface Accumulator {
  add(row: readonly Cell[]): void;
  result(): Cell;
}

type AccumulatorFactory = () => Accumulator;

function accumulatorFor(layout: Layout, fields: readonly FieldDesc[], i: number): AccumulatorFactory {
  const col = layout.columns[i];
  const text = (row: readonly Cell[], j: number): string | null => row[j]?.toString('utf8') ?? null;
  switch (col.agg) {
    case 'count':
      return () => {
        let n = 0n;
        return { add: (row) => void (n += BigInt(text(row, i) ?? '0')), result: () => Buffer.from(n.toString()) };
      };
    case 'sum': {
      const make = sumFor(fields[i].typeOid, true);
      return () => {
        const s = make();
        return {
          add: (row) => {
            const t = text(row, i);
            if (t !== null) s.add(t);
          },
          result: () => bytes(s.text()),
        };
      };
    }
    case 'min':
    case 'max': {
      const ord = orderingFor(fields[i].typeOid);
      const sign = col.agg === 'min' ? -1 : 1;
      return () => {
        let best: Buffer | null = null;
        return {
          add: (row) => {
            const v = row[i];
            if (v !== null && (best === null || sign * ord.compare(ord.decode(v), ord.decode(best)) > 0)) best = v;
          },
          result: () => best,
        };
      };
    }
    case 'avg': {
      const countAt = col.avgCountColumn;
      if (countAt === undefined) throw new MergeError('XX000', 'cross-shard plan lacks the count of an avg() column');
      const sumOid = fields[i].typeOid;
      const make = sumFor(sumOid, false);
      const asFloat = avgResultOid(sumOid) === Oid.float8;
      return () => {
        const s = make();
        let n = 0n;
        return {
          add: (row) => {
            const t = text(row, i);
            if (t !== null) s.add(t);
            n += BigInt(text(row, countAt) ?? '0');
          },
          result: () => {
            if (n === 0n) return null;
            if (asFloat) return bytes(formatFloat8(s.float() / Number(n)));
            return bytes(formatNumeric(divNumeric(s.decimal(), { kind: 'finite', units: n, scale: 0 })));
          },
        };
      };
    }
    case 'count_distinct':
    case 'sum_distinct': {
      const make = distinctAccumulator(col.agg, fields[i].typeOid);
      return () => {
        const d = make();
        return { add: (row) => d.add(row[i]), result: () => d.result() };
      };
    }
    default:
      // A group key, or a value functionally dependent on one: any row's will do.
      return () => {
        let first: Cell | undefined;
        return {
          add: (row) => void (first === undefined && (first = row[i])),
          result: () => first ?? null,
        };
      };
  }
}

function bytes(s: string | null): Cell {
  return s === null ? null : Buffer.from(s, 'utf8');
}

/**
 * One row per group, in order of first appearance (a global aggregate:
 * exactly one row, even when no shard returned any).
 */
export function combineGroups(
  rows: Iterable<readonly Cell[]>,
  layout: Layout,
  fields: readonly FieldDesc[],
  having?: AggExpr,
  params?: readonly (string | bigint | null)[],
): Cell[][] {
  const factories = fields.map((_, i) => accumulatorFor(layout, fields, i));
  const keyFns = layout.groupBy.map((i) => ({ i, key: groupKeyFor(fields[i].typeOid) }));
  const groups = new Map<string, Accumulator[]>();
  for (const row of rows) {
    const key = JSON.stringify(keyFns.map(({ i, key: k }) => (row[i] === null ? null : k(row[i] as Buffer))));
    let accs = groups.get(key);
    if (!accs) {
      accs = factories.map((f) => f());
      groups.set(key, accs);
    }
    for (const a of accs) a.add(row);
  }
  if (groups.size === 0 && layout.groupBy.length === 0) {
    groups.set('', factories.map((f) => f()));
  }
  const combined = [...groups.values()].map((accs) => accs.map((a) => a.result()));
  return finishGroups(combined, layout, fields, having, params);
}

/** Expressions over aggregates evaluated, then HAVING applied, on the combined groups. */
function finishGroups(rows: Cell[][], layout: Layout, fields: readonly FieldDesc[], having: AggExpr | undefined, params: readonly (string | bigint | null)[] | undefined): Cell[][] {
  const computed = layout.columns.flatMap((c, i) => (c.computed ? [{ i, expr: c.computed }] : []));
  if (computed.length === 0 && !having) return rows;
  const types = combinedTypes(layout, fields);
  const out: Cell[][] = [];
  for (const cells of rows) {
    const ctx = { cells, types, params };
    if (having && !holds(having, ctx)) continue;
    for (const { i, expr } of computed) cells[i] = formatAs(evaluate(expr, ctx), types[i]);
    out.push(cells);
  }
  return out;
}
