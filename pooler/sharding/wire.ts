// Reading and writing the result messages of one statement (RowDescription,
// DataRow) for the cross-shard merger. Cells stay raw bytes: text-format
// values are only decoded where the merger must compare or combine them.

import { Backend } from '../protocol/codes.js';
import { MessageWriter } from '../protocol/messages/writer.js';

/** One backend message: its type byte, its body, and the whole message (header included). */
export interface BackendMessage {
  type: number;
  body: Buffer;
  raw: Buffer;
}

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

/** A DataRow column: its bytes, or null for SQL NULL. */
export type Cell = Buffer | null;

/** A merge that cannot produce a result (SQLSTATE and message for the client). */
export class MergeError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

const malformed = (what: string): MergeError => new MergeError('08P01', `shard sent a malformed ${what}`);

/** Splits a buffer of whole backend messages (views, no copies). */
export function readMessages(buf: Buffer): BackendMessage[] {
  const out: BackendMessage[] = [];
  let at = 0;
  while (at < buf.length) {
    if (buf.length - at < 5) throw malformed('message header');
    const length = buf.readInt32BE(at + 1);
    const end = at + 1 + length;
    if (length < 4 || end > buf.length) throw malformed(`message of type 0x${buf[at].toString(16)}`);
    out.push({ type: buf[at], body: buf.subarray(at + 5, end), raw: buf.subarray(at, end) });
    at = end;
  }
  return out;
}

export function parseRowDescription(body: Buffer): FieldDesc[] {
  const count = body.readInt16BE(0);
  const fields: FieldDesc[] = [];
  let at = 2;
  for (let i = 0; i < count; i++) {
    const nul = body.indexOf(0, at);
    if (nul < 0 || nul + 19 > body.length) throw malformed('RowDescription');
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
  const w = new MessageWriter().int16(fields.length);
  for (const f of fields) {
    // Oids are unsigned on the wire; MessageWriter writes signed int32s.
    w.cstring(f.name).int32(f.tableOid | 0).int16(f.attnum).int32(f.typeOid | 0).int16(f.typlen).int32(f.typmod).int16(f.format);
  }
  return w.finish(Backend.RowDescription);
}

export function parseDataRow(body: Buffer): Cell[] {
  const count = body.readInt16BE(0);
  const cells: Cell[] = new Array<Cell>(count);
  let at = 2;
  for (let i = 0; i < count; i++) {
    if (at + 4 > body.length) throw malformed('DataRow');
    const len = body.readInt32BE(at);
    at += 4;
    if (len < 0) {
      cells[i] = null;
    } else {
      if (at + len > body.length) throw malformed('DataRow');
      cells[i] = body.subarray(at, at + len);
      at += len;
    }
  }
  return cells;
}

/**
 * A DataRow of the first `width` cells. Written straight into one buffer:
 * this is the bulk path of a merge (MessageWriter allocates per field).
 */
export function buildDataRow(cells: readonly Cell[], width = cells.length): Buffer {
  let size = 4 + 2;
  for (let i = 0; i < width; i++) size += 4 + (cells[i]?.length ?? 0);
  const out = Buffer.allocUnsafe(size + 1);
  out[0] = Backend.DataRow;
  out.writeInt32BE(size, 1);
  out.writeInt16BE(width, 5);
  let at = 7;
  for (let i = 0; i < width; i++) {
    const c = cells[i];
    if (c === null || c === undefined) {
      out.writeInt32BE(-1, at);
      at += 4;
    } else {
      out.writeInt32BE(c.length, at);
      c.copy(out, at + 4);
      at += 4 + c.length;
    }
  }
  return out;
}
