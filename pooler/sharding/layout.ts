// The plan's column roles applied to the shards' actual row shape: indices
// made absolute (a `*` in the select list leaves the width unknown until the
// RowDescription arrives), and the fields the client sees (hidden columns
// dropped, avg columns retyped from the shards' sum to avg's result type).

import type { ColumnPlan, CrossShardPlan, SortKey } from './plan.js';
import { distinctResultOid } from './agg-distinct.js';
import { Oid } from './values.js';
import { MergeError, type FieldDesc } from './wire.js';

export interface Layout {
  /** Columns in a shard row. */
  width: number;
  /** Leading columns the client sees. */
  visible: number;
  columns: ColumnPlan[];
  groupBy: number[];
  orderBy: SortKey[];
}

export function resolveLayout(plan: CrossShardPlan, width: number): Layout {
  const mismatch = (): MergeError => new MergeError('XX000', `shards returned ${width} columns where the cross-shard plan expects ${plan.columns.length}`);
  if (plan.visibleCount !== null) {
    if (width !== plan.columns.length) throw mismatch();
    return { width, visible: plan.visibleCount, columns: plan.columns, groupBy: plan.groupBy, orderBy: plan.orderBy };
  }
  const visible = width - plan.columns.length;
  if (visible < 0) throw mismatch();
  const abs = (i: number): number => (i < 0 ? width + i : i);
  const plain: ColumnPlan = { hidden: false, agg: null };
  const columns = [
    ...Array.from({ length: visible }, () => plain),
    ...plan.columns.map((c) => (c.avgCountColumn === undefined ? c : { ...c, avgCountColumn: abs(c.avgCountColumn) })),
  ];
  return {
    width,
    visible,
    columns,
    groupBy: plan.groupBy.map(abs),
    orderBy: plan.orderBy.map((k) => ({ ...k, column: abs(k.column) })),
  };
}

/** The type of avg() over values whose shard-side sum has type `sumOid`. */
export function avgResultOid(sumOid: number): number {
  return sumOid === Oid.float4 || sumOid === Oid.float8 ? Oid.float8 : Oid.numeric;
}

/** A shard field as the client sees it (avg columns carry the shards' sum). */
export function clientField(col: ColumnPlan, f: FieldDesc): FieldDesc {
  if (col.agg !== 'avg') return f;
  const typeOid = avgResultOid(f.typeOid);
  return { ...f, tableOid: 0, attnum: 0, typeOid, typlen: typeOid === Oid.float8 ? 8 : -1, typmod: -1 };
}

/** Type oid of each column after combining (what merged values are compared as). */
export function combinedTypes(layout: Layout, fields: readonly FieldDesc[]): number[] {
  return fields.map((f, i) => {
    const agg = layout.columns[i].agg;
    if (agg === 'count_distinct' || agg === 'sum_distinct') return distinctResultOid(agg, f.typeOid);
    return clientField(layout.columns[i], f).typeOid;
  });
}
