// Which shards a statement runs on, from its sharding keys (keys.ts) and the
// pool's sharding settings; also PgCat's `default_shard` for statements that
// name no usable key. Pure: randomness and shard health come from callers.

import type { PoolConfig, ShardingFunction } from '../../config/types.js';
import { shardForKey } from './hash.js';
import { parseArrayLiteral } from './array-literal.js';
import type { KeyValue } from './key-conditions.js';

export { parseArrayLiteral } from './array-literal.js';

export interface ShardingSettings {
  readonly fn: ShardingFunction;
  /** Number of shards (0..shards-1). */
  readonly shards: number;
  /** The pool's default_shard: `shard_<n>`, `random`, `random_healthy` or `fail`. */
  readonly defaultShard: string;
}

export interface PickOptions {
  /** For random_healthy: whether a shard is healthy (e.g. not banned). */
  healthy?: (shard: number) => boolean;
  /** [0, 1), like Math.random (the default); injectable for tests. */
  random?: () => number;
}

/** The sharding settings of a pool. */
export function shardingSettings(pool: PoolConfig): ShardingSettings {
  return { fn: pool.sharding_function, shards: Object.keys(pool.shards).length, defaultShard: pool.default_shard };
}

/**
 * The shard for statements with no usable key: `shard_<n>` → n, `random` →
 * any, `random_healthy` → a random healthy one (any when none is healthy),
 * `fail` → null (answer the client with an error).
 */
export function defaultShard(s: ShardingSettings, opts: PickOptions = {}): number | null {
  const random = opts.random ?? Math.random;
  const m = /^shard_([0-9]+)$/.exec(s.defaultShard);
  if (m) return Number(m[1]);
  if (s.defaultShard === 'random') return Math.floor(random() * s.shards);
  if (s.defaultShard === 'random_healthy') {
    const healthy: number[] = [];
    for (let i = 0; i < s.shards; i++) if (opts.healthy?.(i) ?? true) healthy.push(i);
    if (healthy.length === 0) return Math.floor(random() * s.shards);
    return healthy[Math.floor(random() * healthy.length)];
  }
  return null; // 'fail'
}

/**
 * Key texts of a statement's keys, with $n taken from the Bind parameters
 * (text format; null for SQL NULL). NULLs are dropped: `col = NULL` matches
 * no row. Null when a key cannot be resolved (missing parameter, an array
 * parameter that is not a one-dimensional array literal): run everywhere.
 */
export function resolveKeys(keys: readonly KeyValue[], params: readonly (string | null)[]): string[] | null {
  const out: string[] = [];
  for (const k of keys) {
    if ('text' in k) {
      out.push(k.text);
      continue;
    }
    const index = 'param' in k ? k.param : k.paramArray;
    const value = params[index - 1];
    if (value === undefined) return null;
    if (value === null) continue;
    if ('param' in k) {
      out.push(value);
      continue;
    }
    const items = parseArrayLiteral(value);
    if (items === null) return null;
    out.push(...items);
  }
  return out;
}

/** One INSERT row's key text (null when unknown, NULL, or a missing parameter). */
export function resolveKey(key: KeyValue | null, params: readonly (string | null)[]): string | null {
  if (key === null) return null;
  if ('text' in key) return key.text;
  if ('param' in key) return params[key.param - 1] ?? null;
  return null; // an array cannot be a row's key
}

/**
 * Shards a statement must run on, ascending, given its resolved key texts:
 * - `keys` null (the statement names no key, or it could not be resolved) → 'all';
 * - a key that cannot be hashed (not an int64 for pg_bigint_hash; `id = 1.0`
 *   still matches id 1 in Postgres) → 'all';
 * - no keys at all (`id = NULL` matches nothing, `INSERT ... SELECT`) → the
 *   default shard; an EMPTY array means default_shard = fail: answer with an error.
 */
export function selectShards(s: ShardingSettings, keys: readonly string[] | null, opts: PickOptions = {}): number[] | 'all' {
  if (keys === null) return 'all';
  const shards = new Set<number>();
  for (const k of keys) {
    const shard = shardForKey(s.fn, k, s.shards);
    if (shard === null) return 'all';
    shards.add(shard);
  }
  if (shards.size === 0) {
    const d = defaultShard(s, opts);
    return d === null ? [] : [d];
  }
  return [...shards].sort((a, b) => a - b);
}

/**
 * INSERT rows grouped by shard (row indexes ascending within each shard),
 * given each row's resolved key text. A row whose key is unknown or cannot
 * be hashed goes to the default shard (a row lives on exactly one shard).
 * Null when such a row exists and default_shard = fail.
 */
export function shardRows(s: ShardingSettings, keys: readonly (string | null)[], opts: PickOptions = {}): Map<number, number[]> | null {
  const byShard = new Map<number, number[]>();
  let fallback: number | null | undefined; // picked once per statement
  for (let row = 0; row < keys.length; row++) {
    const k = keys[row];
    let shard = k === null ? null : shardForKey(s.fn, k, s.shards);
    if (shard === null) {
      if (fallback === undefined) fallback = defaultShard(s, opts);
      if (fallback === null) return null;
      shard = fallback;
    }
    const rows = byShard.get(shard);
    if (rows) rows.push(row);
    else byShard.set(shard, [row]);
  }
  return byShard;
}
