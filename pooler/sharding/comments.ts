// PgCat's comment routing: `shard_id_regex` and `sharding_key_regex` pick a
// shard from text early in the statement, typically a comment such as
// `/* shard_id: 2 */ SELECT ...` or `/* sharding_key: 1234 */ SELECT ...`.
//
// As in PgCat: only the first `regex_search_limit` characters are searched;
// the first capture group is the value; shard_id_regex is tried first and
// wins when it yields a number; a sharding key must be a decimal int64,
// otherwise it is ignored. A shard id is reported as given, even beyond the
// pool's shards (the router answers that with an error).

import type { PoolConfig } from '../../config/types.js';
import { parseInt64 } from './hash.js';

export type CommentRoute = { shard: number } | { key: string } | null;

export type CommentRoutingConfig = Pick<PoolConfig, 'sharding_key_regex' | 'shard_id_regex' | 'regex_search_limit'>;

/** Rust's `str::parse::<usize>()`: ASCII digits with an optional '+'. */
const USIZE = /^\+?[0-9]+$/;
/** Rust's `str::parse::<i64>()` syntax (the range is checked separately). */
const I64 = /^[+-]?[0-9]+$/;

/** The pool's comment regexes, compiled once per configuration. */
export class CommentRouter {
  private readonly shardId: RegExp | null;
  private readonly shardingKey: RegExp | null;
  private readonly limit: number;

  constructor(config: CommentRoutingConfig) {
    this.shardId = config.shard_id_regex === null ? null : new RegExp(config.shard_id_regex);
    this.shardingKey = config.sharding_key_regex === null ? null : new RegExp(config.sharding_key_regex);
    this.limit = Math.max(0, config.regex_search_limit);
  }

  /** Whether either regex is configured (otherwise route() is always null). */
  get enabled(): boolean {
    return this.shardId !== null || this.shardingKey !== null;
  }

  /** The shard or sharding key named near the start of `sql`, if any. */
  route(sql: string): CommentRoute {
    if (!this.enabled) return null;
    const head = sql.length > this.limit ? sql.slice(0, this.limit) : sql;
    const id = this.shardId?.exec(head)?.[1];
    if (id !== undefined && USIZE.test(id)) return { shard: Number(id) };
    const key = this.shardingKey?.exec(head)?.[1];
    if (key !== undefined && I64.test(key) && parseInt64(key) !== null) return { key };
    return null;
  }
}

/** A CommentRouter for the pool, or null when it configures neither regex. */
export function commentRouter(config: CommentRoutingConfig): CommentRouter | null {
  const router = new CommentRouter(config);
  return router.enabled ? router : null;
}
