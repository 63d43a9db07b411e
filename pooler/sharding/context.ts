// A sharded pool's routing settings, built once per config (reload builds
// new ones): the sharding function and shard count, PgCat's comment
// regexes, and the automatic sharding key finder (with the query parser).

import type { PoolConfig } from '../../config/types.js';
import { commentRouter, type CommentRouter } from './comments.js';
import { shardForKey } from './hash.js';
import { ShardingKeyFinder } from './keys.js';
import { shardingSettings, type ShardingSettings } from './select-shards.js';

export interface ShardingContext {
  readonly settings: ShardingSettings;
  readonly comments: CommentRouter | null;
  /** automatic_sharding_key with query_parser_enabled: keys from the SQL, cross-shard queries. */
  readonly finder: ShardingKeyFinder | null;
  /** The configured key, for error messages. */
  readonly automaticKey: string | null;
  /** SET SHARDING KEY TO: the key's shard, or null when the key does not hash. */
  keyToShard(key: string): number | null;
}

/** Null for a pool of one shard: nothing to route. */
export function shardingContext(pc: PoolConfig): ShardingContext | null {
  const settings = shardingSettings(pc);
  if (settings.shards < 2) return null;
  const automaticKey = pc.query_parser_enabled ? pc.automatic_sharding_key : null;
  return {
    settings,
    comments: commentRouter(pc),
    finder: automaticKey ? new ShardingKeyFinder(automaticKey) : null,
    automaticKey,
    keyToShard: (key) => shardForKey(settings.fn, key, settings.shards),
  };
}
