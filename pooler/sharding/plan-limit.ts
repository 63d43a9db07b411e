// LIMIT/OFFSET across shards: each shard must return enough rows for the
// client's OFFSET + LIMIT (the merger applies the real ones), so the shard
// text gets `LIMIT n+m`, or with parameters `LIMIT ($a::int8 + $b::int8)`
// (NULL is no limit, as in Postgres). Parameters the new clause no longer
// needs stay referenced, as `OFFSET (0 * $n::int8)`, because the client
// binds every parameter of its statement and Postgres rejects a Bind with
// more values than the statement uses.

import { PlanError, type Node } from './plan-tree.js';

export type LimitValue = { const: bigint } | { param: number } | null;

/** A LIMIT or OFFSET value: a constant, a parameter, or none (absent, ALL, NULL). */
export function limitValue(node: Node | undefined, what: 'LIMIT' | 'OFFSET'): LimitValue {
  if (!node) return null;
  if ('A_Const' in node) {
    const c = node.A_Const;
    if (c.isnull) return null;
    if (c.ival) return { const: BigInt(c.ival.ival ?? 0) };
    if (c.fval?.fval && /^-?\d+$/.test(c.fval.fval)) return { const: BigInt(c.fval.fval) };
  }
  if ('ParamRef' in node && node.ParamRef.number) return { param: node.ParamRef.number };
  if ('TypeCast' in node && node.TypeCast.arg) return limitValue(node.TypeCast.arg, what);
  throw new PlanError('0A000', `cross-shard queries do not support ${what} values other than integer constants and parameters`);
}

/**
 * The shard's replacement for the statement's LIMIT/OFFSET clauses ('' to
 * drop them), or null to keep them as written (a negative constant: the
 * shards then raise Postgres's own error). `pushable` false: the shards
 * must return every row (their rows are partial groups).
 */
export function shardLimitClause(limit: LimitValue, offset: LimitValue, pushable: boolean): string | null {
  const negative = (v: LimitValue): boolean => v !== null && 'const' in v && v.const < 0n;
  if (negative(limit) || negative(offset)) return null;
  const sum = pushable ? limitSum(limit, offset) : null;
  const clause = sum === null ? '' : `LIMIT ${sum}`;
  const unused = [limit, offset].flatMap((v) => (v !== null && 'param' in v && !clause.includes(`$${v.param}`) ? [v.param] : []));
  if (unused.length === 0) return clause;
  const keep = `OFFSET (${unused.map((n) => `0 * $${n}::int8`).join(' + ')})`;
  return clause ? `${clause} ${keep}` : keep;
}

function limitSum(limit: LimitValue, offset: LimitValue): string | null {
  if (limit === null) return null;
  const term = (v: NonNullable<LimitValue>, cast: boolean): string => ('param' in v ? `$${v.param}${cast ? '::int8' : ''}` : String(v.const));
  if (offset === null || ('const' in offset && offset.const === 0n)) return term(limit, false);
  if ('const' in limit && 'const' in offset) return String(limit.const + offset.const);
  return `(${term(limit, true)} + ${term(offset, true)})`;
}
