// Cross-shard SELECT planning (plan-select.ts), read from the statement's
// one parse (router/parse.ts keeps the plan with the statement).

import { statementOf } from '../router/parse.js';
import type { CrossShardPlan } from './plan-types.js';
import type { PlanError } from './plan-tree.js';

export { PlanError } from './plan-tree.js';
export type { LimitValue } from './plan-limit.js';
export type { AggKind, ColumnPlan, CrossShardPlan, SortKey } from './plan-types.js';

/** How to run `sql` across shards, or why it cannot be (PlanError: SQLSTATE and message). */
export function planCrossShard(sql: string): CrossShardPlan | PlanError {
  return statementOf(sql).crossShardPlan;
}
