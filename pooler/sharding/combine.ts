// One client reply from the replies of several shards to the same unit
// (ReadyForQuery already removed, every reply checked for errors).

import { Backend } from '../protocol/codes.js';
import { commandComplete } from '../protocol/messages/rows.js';
import { mergeShardReplies } from './merge.js';
import type { CrossShardPlan } from './plan.js';
import { readMessages, type BackendMessage } from './wire.js';

/** Messages that belong to the statement's result, not to Parse/Bind/Describe. */
const RESULT = new Set<number>([Backend.RowDescription, Backend.DataRow, Backend.CommandComplete, Backend.EmptyQueryResponse, Backend.PortalSuspended]);

/** The messages before the result (ParseComplete, BindComplete, ParameterDescription, NoData), and the result. */
function split(reply: Buffer): { prefix: BackendMessage[]; result: BackendMessage[] } {
  const messages = readMessages(reply);
  const i = messages.findIndex((m) => RESULT.has(m.type));
  return i < 0 ? { prefix: messages, result: [] } : { prefix: messages.slice(0, i), result: messages.slice(i) };
}

const raw = (ms: readonly BackendMessage[]): Buffer[] => ms.map((m) => m.raw);

/** "UPDATE 3" + "UPDATE 4" = "UPDATE 7"; tags without a count (CREATE TABLE) are the first shard's. */
function addTags(tags: string[]): string {
  const first = tags[0] ?? '';
  const m = /^(INSERT 0|UPDATE|DELETE|MERGE|SELECT|COPY) (\d+)$/.exec(first);
  if (!m) return first;
  let total = 0n;
  for (const t of tags) total += BigInt(/ (\d+)$/.exec(t)?.[1] ?? '0');
  return `${m[1]} ${total}`;
}

const tagOf = (m: BackendMessage): string => m.body.toString('utf8', 0, m.body.length - 1);

/** DDL and writes on several shards: rows (RETURNING) concatenated, counts added. */
export function combineWrites(replies: readonly Buffer[]): Buffer {
  const parts = replies.map(split);
  const out: Buffer[] = raw(parts[0]?.prefix ?? []);
  const description = parts.flatMap((p) => p.result).find((m) => m.type === Backend.RowDescription);
  if (description) out.push(description.raw);
  for (const p of parts) out.push(...raw(p.result.filter((m) => m.type === Backend.DataRow)));
  const tags = parts.flatMap((p) => p.result.filter((m) => m.type === Backend.CommandComplete).map(tagOf));
  if (tags.length > 0) out.push(commandComplete(addTags(tags)));
  return Buffer.concat(out);
}

/**
 * A cross-shard SELECT: the first shard's Parse/Bind replies, then the
 * merged result (a RowDescription, if the shards sent one, starts the result).
 */
export function mergeSelect(plan: CrossShardPlan, replies: readonly Buffer[], params: readonly (string | null)[]): Buffer {
  const parts = replies.map(split);
  const results = parts.map((p) => Buffer.concat(raw(p.result)));
  return Buffer.concat([...raw(parts[0]?.prefix ?? []), mergeShardReplies(plan, results, { includeRowDescription: true, params })]);
}
