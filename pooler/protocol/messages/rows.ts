// Result messages for replies the pooler produces itself (admin console,
// intercepted queries): every column is sent as text.

import { MessageWriter } from './writer.js';

const TEXT_OID = 25;
const INT8_OID = 20;
const NUMERIC_OID = 1700;

export interface ColumnSpec {
  name: string;
  /**
   * 'int' columns are typed int8 so drivers parse numbers; 'numeric' where
   * PgCat types a column so (SHOW CLIENTS); the rest are text.
   */
  type?: 'int' | 'numeric' | 'text';
}

export function rowDescription(columns: ColumnSpec[]): Buffer {
  const w = new MessageWriter().int16(columns.length);
  for (const c of columns) {
    const [oid, size] = c.type === 'int' ? [INT8_OID, 8] : c.type === 'numeric' ? [NUMERIC_OID, -1] : [TEXT_OID, -1];
    w.cstring(c.name).int32(0).int16(0).int32(oid).int16(size).int32(-1).int16(0);
  }
  return w.finish(0x54);
}

export function dataRow(values: (string | number | bigint | null)[]): Buffer {
  const w = new MessageWriter().int16(values.length);
  for (const v of values) {
    if (v === null) {
      w.int32(-1);
    } else {
      const b = Buffer.from(String(v), 'utf8');
      w.int32(b.length).raw(b);
    }
  }
  return w.finish(0x44);
}

export function commandComplete(tag: string): Buffer {
  return new MessageWriter().cstring(tag).finish(0x43);
}

export function emptyQueryResponse(): Buffer {
  return new MessageWriter().finish(0x49);
}
