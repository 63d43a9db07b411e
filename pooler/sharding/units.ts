// The client's messages cut into units for a sharded pool: one simple Query,
// or an extended-protocol batch up to its Sync. A unit is routed and run as
// a whole; what routing needs is read from it here (statement text, Bind
// parameters in text form), nothing else is decoded.

import { Frontend } from '../protocol/codes.js';
import { MessageCursor, type MessageView } from '../protocol/cursor.js';
import { paramFormat } from '../protocol/messages/bind.js';
import { parseWithSql } from '../protocol/messages/parse.js';
import { Target } from '../protocol/messages/target.js';
import { isRaiseSql } from '../pgml/raise-batch.js';

export interface Unit {
  /** The unit's messages, as the client sent them. */
  readonly bytes: Buffer;
  readonly kind: 'query' | 'extended';
  /** The statement text: the Query's, or the Parse's (or the named statement's the Bind uses); null if none. */
  sql: string | null;
  /** Bind parameters as text (null: SQL NULL, or a binary value routing cannot read). */
  params: (string | null)[];
  /** The unit parses or binds a named statement (prepared earlier or here). */
  named: boolean;
}

/** Bind's statement, and its parameter values as text where the client sent text. */
function bindParams(m: MessageView): { statement: string; params: (string | null)[] } {
  const bind = m.bind();
  return { statement: bind.statement, params: bind.values.map((v, i) => (v === null || paramFormat(bind, i) !== 0 ? null : v.toString('utf8'))) };
}

/**
 * Cuts complete units off the front of `pending`; returns them and what is
 * left (an extended batch still waiting for its Sync). `statements` maps the
 * client's named statements to their text (Parse adds, Close removes).
 */
export function takeUnits(
  pending: Buffer,
  statements: Map<string, string>,
  /** Statements defined elsewhere (prepared by the pooler's shared statements). */
  lookup: (name: string) => string | undefined = () => undefined,
): { units: Unit[]; rest: Buffer } {
  const units: Unit[] = [];
  let unitStart = 0;
  let sql: string | null = null;
  let params: (string | null)[] = [];
  let named = false;
  /** The pooler's raise (pgml/raise-batch.ts) ends the unit: its Parse and Bind say nothing of where the unit runs. */
  let raising = false;
  const m = new MessageCursor().over(pending);
  while (m.next()) {
    switch (m.type) {
      case Frontend.Query:
        units.push({ bytes: m.bytes(), kind: 'query', sql: m.sql(), params: [], named: false });
        unitStart = m.end;
        continue;
      case Frontend.Parse: {
        const name = m.statementName()!;
        const text = m.sql();
        if (name === '' && isRaiseSql(text)) {
          raising = true;
          break;
        }
        sql = text;
        if (name !== '') {
          named = true;
          statements.set(name, text);
        }
        break;
      }
      case Frontend.Bind: {
        if (raising) break;
        const bind = bindParams(m);
        params = bind.params;
        if (bind.statement !== '') {
          named = true;
          sql = statements.get(bind.statement) ?? lookup(bind.statement) ?? sql;
        }
        break;
      }
      case Frontend.Close: {
        if (m.target() === Target.Statement) statements.delete(m.targetName());
        break;
      }
      case Frontend.Sync:
        units.push({ bytes: pending.subarray(unitStart, m.end), kind: 'extended', sql, params, named });
        unitStart = m.end;
        sql = null;
        params = [];
        named = false;
        raising = false;
        continue;
    }
  }
  return { units, rest: pending.subarray(unitStart) };
}

/** The unit with its (one) Parse's statement text replaced (not a raise's); other messages as they were. */
export function withStatementText(unit: Unit, text: string): Buffer {
  const parts: Buffer[] = [];
  const m = new MessageCursor().over(unit.bytes);
  while (m.next()) parts.push(m.type === Frontend.Parse && !isRaiseSql(m.sql()) ? parseWithSql(m.buffer, m.start, m.end, text) : m.bytes());
  return Buffer.concat(parts);
}
