// PgCat's automatic sharding (`automatic_sharding_key = "table.column"`):
// the sharding key values a statement is restricted to (see
// key-conditions.ts), read from the statement's one parse (router/parse.ts:
// memoised on the statement per key spec), and the split of a multi-row
// INSERT into one statement per shard.

import { statementOf } from '../router/parse.js';
import { keySpec, type InsertKeys, type KeySpec, type ShardingKeys } from './key-conditions.js';

export type { InsertKeys, InsertRow, KeySpec, KeyValue, ShardingKeys } from './key-conditions.js';

/** Finds sharding keys for one `automatic_sharding_key`; build once per pool config. */
export class ShardingKeyFinder {
  readonly spec: KeySpec;

  constructor(automaticShardingKey: string) {
    this.spec = keySpec(automaticShardingKey);
  }

  /** The statement's sharding keys (a shared cached object: do not mutate). */
  find(sql: string): ShardingKeys {
    return statementOf(sql).shardingKeys(this.spec);
  }
}

/**
 * The INSERT restricted to some of its rows (indexes into `insert.rows`):
 * the text before and after the VALUES rows is kept (RETURNING, ON CONFLICT).
 * $n numbering is kept too, so some parameters may go unreferenced.
 */
export function insertForRows(sql: string, insert: InsertKeys, rows: readonly number[]): string {
  const values = rows.map((i) => sql.slice(insert.rows[i].start, insert.rows[i].end)).join(', ');
  return sql.slice(0, insert.valuesStart) + values + sql.slice(insert.valuesEnd);
}
