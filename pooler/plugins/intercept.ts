// PgCat's intercept plugin: configured queries are answered by the pooler
// with configured rows, without a server. Used to satisfy tools that probe
// the database with catalog queries a pooler cannot or should not forward.
//
//   [pools.<name>.plugins.intercept]            (or [plugins.intercept])
//   enabled = true
//   [pools.<name>.plugins.intercept.queries.0]
//   query = "select current_database() as a, current_schemas(false) as b"
//   schema = [["a", "text"], ["b", "text"]]
//   result = [["${DATABASE}", "{public}"]]
//
// As in PgCat: the configured query is compared with each statement of the
// client's Query case-insensitively (see canonicalStatements), `${USER}` and
// `${DATABASE}` (the pool name) are replaced in result values, and an empty
// string is sent as NULL.
//
// Unlike PgCat, a Query of several statements is answered only when every
// statement is intercepted: PgCat answers with the intercepted ones and
// silently drops the others, which would lose writes.
//
// Also unlike PgCat, an extended-protocol Parse is not intercepted: PgCat
// answers its Sync with the canned rows alone, without the ParseComplete,
// BindComplete and ParameterDescription the driver waits for, which no driver
// can read; the statement goes to the server instead.

import type { Logger } from '../logger.js';
import type { InterceptQuery } from '../../config/types.js';
import { commandComplete, dataRow } from '../protocol/messages/rows.js';
import { buildRowDescription, field } from '../protocol/messages/row-description.js';
import { canonicalStatements } from './sql.js';
import type { PluginVerdict, QueryContext, QueryPlugin } from './types.js';

/** Type OID and typlen of the schema type names PgCat knows (plus int8); other names are sent as `any`, as PgCat does. */
const TYPES: Readonly<Record<string, [number, number]>> = {
  text: [25, -1],
  int4: [23, 4],
  int8: [20, 8],
  numeric: [1700, -1],
  bool: [16, 1],
  oid: [26, 4],
  anyarray: [2277, -1],
  any: [2276, 4],
};

/**
 * RowDescription with the configured column types. rows.ts only describes
 * text and int8 columns; drivers parse intercepted bool/oid/int4 values by
 * their declared type, so the type PgCat would announce is kept.
 */
function typedRowDescription(schema: readonly [string, string][]): Buffer {
  return buildRowDescription(
    schema.map(([name, type]) => {
      const [oid, len] = TYPES[type.toLowerCase()] ?? TYPES['any']!;
      return field(name, oid, len); // no source table/column; text format
    }),
  );
}

function substitute(value: string, ctx: QueryContext): string {
  return value.replaceAll('${USER}', ctx.user).replaceAll('${DATABASE}', ctx.database);
}

/** The whole reply to one intercepted statement (the session adds ReadyForQuery). */
function replyFor(q: InterceptQuery, ctx: QueryContext): Buffer {
  const parts = [typedRowDescription(q.schema)];
  for (const row of q.result) parts.push(dataRow(row.map((v) => (v === '' ? null : substitute(v, ctx)))));
  parts.push(commandComplete(`SELECT ${q.result.length}`));
  return Buffer.concat(parts);
}

// Config problems already reported (once per pool, not per user or reload).
const warned = new Set<string>();

export class InterceptPlugin implements QueryPlugin {
  readonly name = 'intercept';
  readonly checksParse = false;

  /**
   * `replies` maps a canonical statement to its reply; one plugin per
   * (pool, user), so the substitutions are done once, here.
   */
  private constructor(private readonly replies: ReadonlyMap<string, Buffer>) {}

  /** Null when no configured query is usable (nothing to intercept). */
  static build(queries: Record<string, InterceptQuery>, ctx: QueryContext, log: Logger): InterceptPlugin | null {
    const replies = new Map<string, Buffer>();
    for (const [key, q] of Object.entries(queries)) {
      const statements = canonicalStatements(q.query);
      const bad = (reason: string): void => {
        const id = `${ctx.database}\u0000${key}\u0000${reason}`;
        if (warned.has(id)) return;
        warned.add(id);
        log.warn({ pool: ctx.database, query: key }, `intercept query ${key}: ${reason}; ignored`);
      };
      if (statements === null || statements.length !== 1) {
        bad('`query` must be exactly one SQL statement');
        continue;
      }
      const width = q.schema.length;
      if (q.result.some((row) => row.length !== width)) {
        bad(`every \`result\` row must have ${width} value(s), one per \`schema\` column`);
        continue;
      }
      // Several entries with the same query: the first one wins, as PgCat's
      // reply would start with it.
      if (!replies.has(statements[0]!)) replies.set(statements[0]!, replyFor(q, ctx));
    }
    return replies.size > 0 ? new InterceptPlugin(replies) : null;
  }

  onQuery(sql: string): PluginVerdict {
    const statements = canonicalStatements(sql);
    if (statements === null || statements.length === 0) return null;
    if (statements.length === 1) {
      const reply = this.replies.get(statements[0]!);
      return reply ? { kind: 'reply', messages: reply } : null;
    }
    const parts: Buffer[] = [];
    for (const s of statements) {
      const reply = this.replies.get(s);
      if (!reply) return null;
      parts.push(reply);
    }
    return { kind: 'reply', messages: Buffer.concat(parts) };
  }
}
