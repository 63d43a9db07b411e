// A client's shard choice: what PgCat's SET SHARD TO and SET SHARDING KEY TO
// left on its session, read by shard routing (route-unit.ts, executor.ts).

export interface ShardState {
  /** SET SHARD TO: a shard number, 'any', or null (not set). */
  shard: number | 'any' | null;
  /** SET SHARDING KEY TO: the key whose shard later statements run on (null: not set). */
  shardingKey: string | null;
}
