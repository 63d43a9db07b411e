// Result messages for replies the pooler produces itself (admin console,
// intercepted queries): every column is sent as text.

import { MessageWriter } from './writer.js';

const TEXT_OID = 25;
const INT8_OID = 20;

export interface ColumnSpec {
  name: string;
  /** 'int' columns are typed int8 so drivers parse numbers; the rest are text. */
  type?: 'int' | 'text';
}

export function rowDescription(columns: ColumnSpec[]): Buffer {
  const w = new MessageWriter().int16(columns.length);
  for (const c of columns) {
    const isInt = c.type === 'int';
    w.cstring(c.name).int32(0).int16(0).int32(isInt ? INT8_OID : TEXT_OID).int16(isInt ? 8 : -1).int32(-1).int16(0);
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
