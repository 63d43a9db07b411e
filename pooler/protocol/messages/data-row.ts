// DataRow ('D'): int16 n columns, each int32 length (-1 for NULL) then bytes.

import { Backend } from '../codes.js';
import { builder } from '../serializer.js';

/** A DataRow column: its bytes (a view into the message), or null for SQL NULL. */
export type Cell = Buffer | null;

/** Thrown on a DataRow or RowDescription whose lengths do not add up. */
export class MalformedRow extends Error {}

/** The columns of a DataRow body (no copies). */
export function parseDataRow(body: Buffer): Cell[] {
  const count = body.readInt16BE(0);
  const cells: Cell[] = new Array<Cell>(count);
  let at = 2;
  for (let i = 0; i < count; i++) {
    if (at + 4 > body.length) throw new MalformedRow('DataRow');
    const len = body.readInt32BE(at);
    at += 4;
    if (len < 0) {
      cells[i] = null;
    } else {
      if (at + len > body.length) throw new MalformedRow('DataRow');
      cells[i] = body.subarray(at, at + len);
      at += len;
    }
  }
  return cells;
}

/** A DataRow of the first `width` cells (raw bytes). */
export function buildDataRow(cells: readonly Cell[], width = cells.length): Buffer {
  const b = builder.begin(Backend.DataRow).int16(width);
  for (let i = 0; i < width; i++) b.lengthPrefixed(cells[i] ?? null);
  return b.finish();
}

/** A DataRow of values sent as text (the pooler's own replies). */
export function dataRow(values: readonly (string | number | bigint | null)[]): Buffer {
  const b = builder.begin(Backend.DataRow).int16(values.length);
  for (const v of values) b.lengthPrefixedString(v === null ? null : String(v));
  return b.finish();
}
