// RowDescription ('T'): int16 n fields, each name\0, table OID, column
// number, type OID, type size, type modifier, format code.

import { Backend, Oid } from '../codes.js';
import { builder } from '../serializer.js';
import { MalformedRow } from './data-row.js';

/** One RowDescription field. */
export interface FieldDesc {
  name: string;
  tableOid: number;
  attnum: number;
  typeOid: number;
  typlen: number;
  typmod: number;
  /** 0 text, 1 binary. */
  format: number;
}

export function parseRowDescription(body: Buffer): FieldDesc[] {
  const count = body.readInt16BE(0);
  const fields: FieldDesc[] = [];
  let at = 2;
  for (let i = 0; i < count; i++) {
    const nul = body.indexOf(0, at);
    if (nul < 0 || nul + 19 > body.length) throw new MalformedRow('RowDescription');
    const name = body.toString('utf8', at, nul);
    at = nul + 1;
    fields.push({
      name,
      tableOid: body.readUInt32BE(at),
      attnum: body.readInt16BE(at + 4),
      typeOid: body.readUInt32BE(at + 6),
      typlen: body.readInt16BE(at + 10),
      typmod: body.readInt32BE(at + 12),
      format: body.readInt16BE(at + 16),
    });
    at += 18;
  }
  return fields;
}

export function buildRowDescription(fields: readonly FieldDesc[]): Buffer {
  const b = builder.begin(Backend.RowDescription).int16(fields.length);
  for (const f of fields) b.cstring(f.name).uint32(f.tableOid).int16(f.attnum).uint32(f.typeOid).int16(f.typlen).int32(f.typmod).int16(f.format);
  return b.finish();
}

export interface ColumnSpec {
  name: string;
  /**
   * 'int' columns are typed int8 so drivers parse numbers; 'numeric' where
   * PgCat types a column so (SHOW CLIENTS); the rest are text.
   */
  type?: 'int' | 'numeric' | 'text';
}

/** A column the pooler describes itself: no source table, text format. */
export function field(name: string, typeOid: number, typlen: number): FieldDesc {
  return { name, tableOid: 0, attnum: 0, typeOid, typlen, typmod: -1, format: 0 };
}

/** RowDescription of the pooler's own replies (admin console, intercepted queries). */
export function rowDescription(columns: readonly ColumnSpec[]): Buffer {
  return buildRowDescription(
    columns.map((c) => (c.type === 'int' ? field(c.name, Oid.int8, 8) : c.type === 'numeric' ? field(c.name, Oid.numeric, -1) : field(c.name, Oid.text, -1))),
  );
}
