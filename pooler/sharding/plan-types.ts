// The plan of a cross-shard SELECT: the text each shard runs and how the
// merger combines the shards' rows (see plan.ts and merge.ts).

import type { AggExpr } from './agg-expr.js';
import type { LimitValue } from './plan-limit.js';

/** count_distinct / sum_distinct: the shards send array_agg(DISTINCT x); the merger unions the arrays. */
export type AggKind = 'count' | 'sum' | 'min' | 'max' | 'avg' | 'count_distinct' | 'sum_distinct';

/** One output column of the shard query. */
export interface ColumnPlan {
  /** Added by the planner: the client never sees it. */
  hidden: boolean;
  /** How the shards' values combine (null: a group key or a plain value). */
  agg: AggKind | null;
  /** For avg (sent as sum): the column holding the matching count. */
  avgCountColumn?: number;
  /**
   * An expression over aggregates: the shards send a NULL of its type, and
   * the merger evaluates it over the combined columns it names.
   */
  computed?: AggExpr;
}

export interface SortKey {
  column: number;
  desc: boolean;
  nullsFirst: boolean;
}

export interface CrossShardPlan {
  shardSql: string;
  /**
   * Output columns the client sees; null when the select list has a `*`
   * (then: the shards' field count minus the hidden ones, and `columns`
   * describes only the hidden tail, whose indices below are negative,
   * counted from the end of the row: -1 is the last column).
   */
  visibleCount: number | null;
  columns: ColumnPlan[];
  /** Rows are combined per group (any aggregate or GROUP BY); empty groupBy: one row. */
  aggregate: boolean;
  groupBy: number[];
  /** Applied after combining groups when aggregate. */
  orderBy: SortKey[];
  limit: LimitValue;
  offset: LimitValue;
  distinct: boolean;
  /** HAVING, evaluated on each combined group (the shards' text has none). */
  having?: AggExpr;
}
