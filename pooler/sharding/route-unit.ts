// Where one unit of a sharded pool's client runs, in PgCat's order of
// precedence: SET SHARD / SET SHARDING KEY, then the comment regexes, then
// (with the query parser and automatic_sharding_key) the keys in the SQL;
// without any of them, default_shard. With the parser, a statement that
// names no key runs on every shard: a SELECT as a cross-shard query, DDL as
// is; a data-changing statement with no key is refused.

import { query } from '../protocol/messages/query.js';
import { SqlState } from '../protocol/codes.js';
import type { Cluster } from '../pool/cluster.js';
import type { ShardState } from './shard-state.js';
import { statementOf, type Statement } from '../router/parse.js';
import type { ShardingContext } from './context.js';
import { insertForRows, type InsertKeys } from './keys.js';
import { PlanError, type CrossShardPlan } from './plan.js';
import { defaultShard, resolveKey, resolveKeys, selectShards, shardRows, type PickOptions } from './select-shards.js';
import { withStatementText, type Unit } from './units.js';

export type ShardRoute =
  | { kind: 'single'; shards: number[] }
  /** A cross-shard SELECT: `bytes` carry the planned shard query. */
  | { kind: 'select'; shards: number[]; plan: CrossShardPlan; bytes: Buffer }
  /** DDL, or a write whose keys span shards: the unit as is on each shard. */
  | { kind: 'broadcast'; shards: number[]; bytes?: undefined }
  /** A multi-row INSERT split by shard: perShard[i] runs on shards[i]. */
  | { kind: 'insert'; shards: number[]; perShard: Buffer[] };

export interface RouteError {
  kind: 'error';
  code: string;
  message: string;
}

const refuse = (code: string, message: string): RouteError => ({ kind: 'error', code, message });

/** Data-changing statements: never sent to every shard for want of a key. */
const DML = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt', 'CopyStmt']);

export function routeUnit(unit: Unit, ctx: ShardingContext, state: ShardState, cluster: Cluster): ShardRoute | RouteError {
  const count = ctx.settings.shards;
  const single = (shard: number): ShardRoute | RouteError =>
    shard >= 0 && shard < count ? { kind: 'single', shards: [shard] } : refuse('22023', `shard ${shard} does not exist: the pool has ${count} shards (0-${count - 1})`);
  const pick: PickOptions = { healthy: (s) => (cluster.shards[s] ?? []).some((m) => !m.banned) };
  const fallback = (): ShardRoute | RouteError => {
    const d = defaultShard(ctx.settings, pick);
    return d === null ? refuse(SqlState.FeatureNotSupported, 'no shard selected and default_shard = "fail": use SET SHARD TO or SET SHARDING KEY TO') : single(d);
  };

  if (typeof state.shard === 'number') return single(state.shard);
  if (state.shard === 'any') return single(Math.floor(Math.random() * count));
  const sql = unit.sql;
  if (sql === null) return fallback();
  if (ctx.comments) {
    const hint = ctx.comments.route(sql);
    if (hint && 'shard' in hint) return single(hint.shard);
    if (hint && 'key' in hint) {
      const shard = ctx.keyToShard(hint.key);
      if (shard !== null) return single(shard);
    }
  }
  if (!ctx.finder) return fallback();

  const statement = statementOf(sql);
  const keys = statement.shardingKeys(ctx.finder.spec);
  if (keys.kind === 'insert') return routeInsert(unit, sql, keys, ctx, pick, single);
  if (keys.kind === 'keys') {
    const shards = selectShards(ctx.settings, resolveKeys(keys.values, unit.params), pick);
    if (shards !== 'all') {
      if (shards.length === 0) return fallback();
      if (shards.length === 1) return single(shards[0]!);
      return spread(unit, statement, shards, ctx, () => defaultShard(ctx.settings, pick));
    }
  }
  return spread(unit, statement, Array.from({ length: count }, (_, i) => i), ctx, () => defaultShard(ctx.settings, pick));
}

/** A statement for several shards; `pickDefault` is the pool's default_shard choice. */
function spread(unit: Unit, statement: Statement, shards: number[], ctx: ShardingContext, pickDefault: () => number | null): ShardRoute | RouteError {
  const kind = statement.soleStatementType;
  if (kind === 'SelectStmt') {
    // No table at all (SELECT 1, SELECT inet_server_port()): one shard
    // answers it, the default_shard as in PgCat, where a statement with no
    // key goes there. With default_shard = "fail" (a PgLynx addition) such a
    // statement is still answered, by the first candidate: it reads no data.
    const relations = statement.relations;
    if (relations !== null && relations.length === 0) {
      const d = pickDefault();
      return { kind: 'single', shards: [d !== null && shards.includes(d) ? d : shards[0]!] };
    }
    const plan = statement.crossShardPlan;
    if (plan instanceof PlanError) return refuse(plan.code, plan.message);
    if (unit.named) return refuse(SqlState.FeatureNotSupported, 'cross-shard queries cannot use named prepared statements: use unnamed statements (or SET SHARD TO)');
    const bytes = unit.kind === 'query' ? query(plan.shardSql) : withStatementText(unit, plan.shardSql);
    return { kind: 'select', shards, plan, bytes };
  }
  if (kind !== null && DML.has(kind) && shards.length === ctx.settings.shards) {
    return refuse(
      SqlState.FeatureNotSupported,
      `a ${kind.replace(/Stmt$/, '').toUpperCase()} on a sharded pool needs its sharding key (${ctx.automaticKey}) in the statement, or SET SHARD TO / SET SHARDING KEY TO first`,
    );
  }
  if (kind === null) return refuse(SqlState.FeatureNotSupported, 'several statements in one query on a sharded pool need SET SHARD TO or SET SHARDING KEY TO first');
  return { kind: 'broadcast', shards };
}

function routeInsert(
  unit: Unit,
  sql: string,
  keys: InsertKeys,
  ctx: ShardingContext,
  pick: PickOptions,
  single: (shard: number) => ShardRoute | RouteError,
): ShardRoute | RouteError {
  const rowKeys = keys.rows.map((r) => resolveKey(r.key, unit.params));
  const missing = rowKeys.indexOf(null);
  if (missing >= 0) {
    // A row on a guessed shard would never be found by its key again.
    return refuse(
      SqlState.FeatureNotSupported,
      `INSERT row ${missing + 1} has no sharding key value: list the columns and give ${ctx.automaticKey} as a constant or a parameter`,
    );
  }
  const byShard = shardRows(ctx.settings, rowKeys, pick);
  if (byShard === null) return refuse(SqlState.FeatureNotSupported, `an INSERT row has no usable sharding key (${ctx.automaticKey}) and default_shard = "fail"`);
  if (byShard.size === 1) return single([...byShard.keys()][0]!);
  if (unit.kind !== 'query') {
    return refuse(SqlState.FeatureNotSupported, 'a multi-row INSERT across shards must use the simple query protocol (or one statement per shard)');
  }
  const shards = [...byShard.keys()].sort((a, b) => a - b);
  return { kind: 'insert', shards, perShard: shards.map((s) => query(insertForRows(sql, keys, byShard.get(s)!))) };
}
