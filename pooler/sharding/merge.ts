// Merges the replies of several shards to one planned SELECT (plan.ts) into
// the reply a single node holding all rows would have sent.
//
// Input, per shard: the backend messages of ONE statement, RowDescription
// ('T', absent in the extended protocol, where it came with Describe: pass
// it as options.rowDescription), DataRows ('D'), CommandComplete ('C');
// NoticeResponses ('N') are passed on once each; ParseComplete/BindComplete
// are ignored. If a shard's reply holds an ErrorResponse, the result is that
// message alone (the first shard's). Output: [notices] [RowDescription
// without hidden columns] DataRows CommandComplete `SELECT n`.
// Text result format only. Other failures throw MergeError.

import { Backend } from '../protocol/codes.js';
import { commandComplete } from '../protocol/messages/rows.js';
import { combineGroups } from './aggregate.js';
import { clientField, combinedTypes, resolveLayout, type Layout } from './layout.js';
import type { CrossShardPlan, LimitValue, SortKey } from './plan.js';
import { groupKeyFor, orderingFor, ValueError, type Ordering } from './values.js';
import { buildDataRow, buildRowDescription, MergeError, readMessages, shardFields, shardRow, type Cell, type FieldDesc } from './wire.js';

export { MergeError } from './wire.js';

export interface MergeOptions {
  /** False for Execute replies (extended protocol): the client got the RowDescription from Describe. */
  includeRowDescription: boolean;
  /** Values of $1, $2... (text or decoded), needed when LIMIT/OFFSET are parameters. */
  params?: readonly (string | bigint | null)[];
  /** A shard's RowDescription message, when the replies carry none. */
  rowDescription?: Buffer;
}

interface Row {
  cells: Cell[];
  /** The shard's DataRow message, reusable when nothing in the row changes. */
  raw: Buffer | null;
  /** Decoded ORDER BY values (filled on first comparison). */
  keys?: unknown[];
}

interface ShardReply {
  fields: FieldDesc[] | null;
  rows: Row[];
  notices: Buffer[];
  error: Buffer | null;
}

// ParseComplete, BindComplete, CloseComplete, ParameterDescription, NoData, and our own tag.
const IGNORED = new Set<number>([Backend.ParseComplete, Backend.BindComplete, Backend.CloseComplete, Backend.ParameterDescription, Backend.NoData, Backend.CommandComplete, Backend.EmptyQueryResponse, Backend.ParameterStatus]);

function readReply(buf: Buffer): ShardReply {
  const reply: ShardReply = { fields: null, rows: [], notices: [], error: null };
  for (const m of readMessages(buf)) {
    if (m.type === Backend.DataRow) reply.rows.push({ cells: shardRow(m.body), raw: m.raw });
    else if (m.type === Backend.RowDescription) reply.fields = shardFields(m.body);
    else if (m.type === Backend.NoticeResponse) reply.notices.push(m.raw);
    else if (m.type === Backend.ErrorResponse) reply.error ??= m.raw;
    else if (m.type === Backend.PortalSuspended) throw new MergeError('0A000', 'cross-shard queries cannot fetch a portal in parts (Execute with a row limit)');
    else if (!IGNORED.has(m.type)) throw new MergeError('08P01', `unexpected message type '${String.fromCharCode(m.type)}' in a shard's reply`);
  }
  return reply;
}

/** The RowDescription every shard agrees on. */
function agreedFields(replies: readonly ShardReply[], fallback: Buffer | undefined): FieldDesc[] {
  let fields: FieldDesc[] | null = null;
  for (const r of replies) {
    if (!r.fields) continue;
    if (fields === null) fields = r.fields;
    else if (r.fields.length !== fields.length || r.fields.some((f, i) => f.name !== fields![i].name || f.typeOid !== fields![i].typeOid)) {
      throw new MergeError('42804', 'shards returned different row descriptions');
    }
  }
  if (fields === null && fallback) fields = parseRowDescriptionMessage(fallback);
  if (fields === null) throw new MergeError('XX000', 'no RowDescription for the cross-shard result');
  if (fields.some((f) => f.format !== 0)) throw new MergeError('0A000', 'cross-shard queries need text-format results');
  return fields;
}

function parseRowDescriptionMessage(msg: Buffer): FieldDesc[] {
  const [m] = readMessages(msg);
  if (m?.type !== Backend.RowDescription) throw new MergeError('XX000', 'expected a RowDescription message');
  return shardFields(m.body);
}

/** The client's RowDescription for a shard's one (Describe replies in the extended protocol). */
export function clientRowDescription(plan: CrossShardPlan, shardRowDescription: Buffer): Buffer {
  const fields = parseRowDescriptionMessage(shardRowDescription);
  const layout = resolveLayout(plan, fields.length);
  return buildRowDescription(fields.slice(0, layout.visible).map((f, i) => clientField(layout.columns[i], f)));
}

/** Merges one statement's replies from every shard. Throws MergeError. */
export function mergeShardReplies(plan: CrossShardPlan, replies: readonly Buffer[], options: MergeOptions): Buffer {
  const shards = replies.map(readReply);
  const failed = shards.find((s) => s.error);
  if (failed?.error) return failed.error;
  const fields = agreedFields(shards, options.rowDescription);
  const layout = resolveLayout(plan, fields.length);
  for (const s of shards) {
    if (s.rows.some((r) => r.cells.length !== fields.length)) throw new MergeError('08P01', 'a shard sent a DataRow that does not match its RowDescription');
  }
  const limit = resolveLimit(plan.limit, options.params, 'LIMIT');
  const offset = resolveLimit(plan.offset, options.params, 'OFFSET') ?? 0n;

  let rows: Row[];
  try {
    if (plan.aggregate) {
      rows = combineGroups(shardCells(shards), layout, fields, plan.having, options.params).map((cells) => ({ cells, raw: null }));
      if (plan.distinct) rows = distinct(rows, layout, combinedTypes(layout, fields));
      // Stable, like a sort of the combined groups on one node.
      if (layout.orderBy.length > 0) rows.sort(rowComparator(layout.orderBy, combinedTypes(layout, fields)));
    } else {
      const types = fields.map((f) => f.typeOid);
      rows = layout.orderBy.length > 0 ? mergeSorted(shards.map((s) => s.rows), rowComparator(layout.orderBy, types)) : shards.flatMap((s) => s.rows);
      if (plan.distinct) rows = distinct(rows, layout, types);
    }
  } catch (err) {
    if (err instanceof ValueError || err instanceof RangeError || err instanceof SyntaxError) throw new MergeError('22P02', `cross-shard merge: ${err.message}`);
    throw err;
  }
  const start = Number(offset < BigInt(rows.length) ? offset : BigInt(rows.length));
  const end = limit === null ? rows.length : Number(BigInt(start) + limit < BigInt(rows.length) ? BigInt(start) + limit : BigInt(rows.length));
  rows = rows.slice(start, end);

  const out: Buffer[] = uniqueNotices(shards);
  if (options.includeRowDescription) {
    out.push(buildRowDescription(fields.slice(0, layout.visible).map((f, i) => clientField(layout.columns[i], f))));
  }
  const asIs = layout.visible === layout.width;
  for (const r of rows) out.push(asIs && r.raw ? r.raw : buildDataRow(r.cells, layout.visible));
  out.push(commandComplete(`SELECT ${rows.length}`));
  return Buffer.concat(out);
}

function* shardCells(shards: readonly ShardReply[]): Iterable<Cell[]> {
  for (const s of shards) for (const r of s.rows) yield r.cells;
}

function uniqueNotices(shards: readonly ShardReply[]): Buffer[] {
  const seen = new Set<string>();
  const out: Buffer[] = [];
  for (const s of shards) {
    for (const n of s.notices) {
      const k = n.toString('latin1');
      if (!seen.has(k)) {
        seen.add(k);
        out.push(n);
      }
    }
  }
  return out;
}

function resolveLimit(v: LimitValue, params: MergeOptions['params'], what: 'LIMIT' | 'OFFSET'): bigint | null {
  if (v === null) return null;
  let n: bigint | null;
  if ('const' in v) {
    n = v.const;
  } else {
    const p = params?.[v.param - 1];
    if (p === undefined) throw new MergeError('08P01', `no value for parameter $${v.param} of ${what}`);
    try {
      n = p === null ? null : typeof p === 'bigint' ? p : BigInt(p.trim());
    } catch {
      throw new MergeError('22P02', `invalid input syntax for type bigint: "${String(p)}"`);
    }
  }
  if (n !== null && n < 0n) throw new MergeError(what === 'LIMIT' ? '2201W' : '2201X', `${what} must not be negative`);
  return n;
}

/** Orders rows by the sort keys, decoding each row's key values once. */
function rowComparator(keys: readonly SortKey[], types: readonly number[]): (a: Row, b: Row) => number {
  const ords: Ordering<unknown>[] = keys.map((k) => orderingFor(types[k.column]));
  const decoded = (r: Row): unknown[] =>
    (r.keys ??= keys.map((k, i) => {
      const c = r.cells[k.column];
      return c === null ? null : ords[i].decode(c);
    }));
  return (a, b) => {
    const ka = decoded(a);
    const kb = decoded(b);
    for (let i = 0; i < keys.length; i++) {
      const x = ka[i];
      const y = kb[i];
      if (x === null || y === null) {
        if (x === y) continue;
        // NULLS FIRST/LAST places NULLs whatever the direction.
        return (x === null) === keys[i].nullsFirst ? -1 : 1;
      }
      const c = ords[i].compare(x, y);
      if (c !== 0) return keys[i].desc ? -c : c;
    }
    return 0;
  };
}

/**
 * K-way merge of shard streams each already sorted by the same keys; ties
 * go to the lower shard. Picking the head by a linear scan: shard counts
 * are small, so this beats a heap's bookkeeping.
 */
function mergeSorted(streams: readonly Row[][], cmp: (a: Row, b: Row) => number): Row[] {
  const out: Row[] = [];
  const at = streams.map(() => 0);
  for (;;) {
    let best = -1;
    for (let s = 0; s < streams.length; s++) {
      if (at[s] >= streams[s].length) continue;
      if (best < 0 || cmp(streams[s][at[s]], streams[best][at[best]]) < 0) best = s;
    }
    if (best < 0) return out;
    out.push(streams[best][at[best]++]);
  }
}

/** SELECT DISTINCT: the first row of each set of equal visible values. */
function distinct(rows: Row[], layout: Layout, types: readonly number[]): Row[] {
  const keyFns = types.slice(0, layout.visible).map((t) => groupKeyFor(t));
  const seen = new Set<string>();
  return rows.filter((r) => {
    const k = JSON.stringify(keyFns.map((f, i) => (r.cells[i] === null ? null : f(r.cells[i] as Buffer))));
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
