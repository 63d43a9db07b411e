// The client's messages cut into units for a sharded pool: one simple Query,
// or an extended-protocol batch up to its Sync. A unit is routed and run as
// a whole; what routing needs is read from it here (statement text, Bind
// parameters in text form), nothing else is decoded.

import { Frontend } from '../protocol/codes.js';
import { parseBind } from '../protocol/messages/bind.js';
import { MessageWriter } from '../protocol/messages/writer.js';

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

interface Message {
  type: number;
  start: number;
  end: number;
}

function messages(bytes: Buffer): Message[] {
  const out: Message[] = [];
  let off = 0;
  while (off + 5 <= bytes.length) {
    const end = off + 1 + bytes.readInt32BE(off + 1);
    out.push({ type: bytes[off], start: off, end });
    off = end;
  }
  return out;
}

const cstring = (buf: Buffer, at: number): [string, number] => {
  const zero = buf.indexOf(0, at);
  return [buf.toString('utf8', at, zero), zero + 1];
};

/** Bind's statement, and its parameter values as text where the client sent text. */
function bindParams(buf: Buffer, m: Message): { statement: string; params: (string | null)[] } {
  const bind = parseBind(buf.subarray(m.start, m.end));
  const format = (i: number): number => (bind.formats.length === 0 ? 0 : bind.formats.length === 1 ? bind.formats[0]! : bind.formats[i]!);
  return { statement: bind.statement, params: bind.values.map((v, i) => (v === null || format(i) !== 0 ? null : v.toString('utf8'))) };
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
  for (const m of messages(pending)) {
    switch (m.type) {
      case Frontend.Query:
        units.push({ bytes: pending.subarray(m.start, m.end), kind: 'query', sql: pending.toString('utf8', m.start + 5, m.end - 1), params: [], named: false });
        unitStart = m.end;
        continue;
      case Frontend.Parse: {
        const [name, at] = cstring(pending, m.start + 5);
        const [text] = cstring(pending, at);
        sql = text;
        if (name !== '') {
          named = true;
          statements.set(name, text);
        }
        break;
      }
      case Frontend.Bind: {
        const bind = bindParams(pending, m);
        params = bind.params;
        if (bind.statement !== '') {
          named = true;
          sql = statements.get(bind.statement) ?? lookup(bind.statement) ?? sql;
        }
        break;
      }
      case Frontend.Close: {
        if (pending[m.start + 5] === 0x53 /* S */) statements.delete(cstring(pending, m.start + 6)[0]);
        break;
      }
      case Frontend.Sync:
        units.push({ bytes: pending.subarray(unitStart, m.end), kind: 'extended', sql, params, named });
        unitStart = m.end;
        sql = null;
        params = [];
        named = false;
        continue;
    }
  }
  return { units, rest: pending.subarray(unitStart) };
}

/** The unit with its (one) Parse's statement text replaced; other messages as they were. */
export function withStatementText(unit: Unit, text: string): Buffer {
  const parts: Buffer[] = [];
  for (const m of messages(unit.bytes)) {
    if (unit.bytes[m.start] !== Frontend.Parse) {
      parts.push(unit.bytes.subarray(m.start, m.end));
      continue;
    }
    const nameEnd = unit.bytes.indexOf(0, m.start + 5) + 1;
    const textEnd = unit.bytes.indexOf(0, nameEnd);
    const name = unit.bytes.subarray(m.start + 5, nameEnd); // with its NUL
    const types = unit.bytes.subarray(textEnd + 1, m.end);
    parts.push(new MessageWriter().raw(name).cstring(text).raw(types).finish(Frontend.Parse));
  }
  return Buffer.concat(parts);
}
