// Bind, read into its parts: portal, statement, parameter formats and
// values (views into the message, not copies), result formats.

export interface BindParts {
  portal: Buffer;
  statement: string;
  formats: number[];
  values: (Buffer | null)[];
  resultFormats: Buffer;
}

export function parseBind(msg: Buffer): BindParts {
  let i = 5;
  const portalEnd = msg.indexOf(0, i);
  const portal = msg.subarray(i, portalEnd);
  i = portalEnd + 1;
  const stmtEnd = msg.indexOf(0, i);
  const statement = msg.toString('utf8', i, stmtEnd);
  i = stmtEnd + 1;
  const nf = msg.readInt16BE(i);
  i += 2;
  const formats: number[] = [];
  for (let k = 0; k < nf; k++, i += 2) formats.push(msg.readInt16BE(i));
  const np = msg.readInt16BE(i);
  i += 2;
  const values: (Buffer | null)[] = [];
  for (let k = 0; k < np; k++) {
    const len = msg.readInt32BE(i);
    i += 4;
    if (len < 0) values.push(null);
    else {
      values.push(msg.subarray(i, i + len));
      i += len;
    }
  }
  return { portal, statement, formats, values, resultFormats: msg.subarray(i) };
}
