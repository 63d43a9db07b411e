// ParameterDescription ('t'): int16 n, n × int32 parameter type OIDs (the
// server's answer to Describe of a statement).

import { Backend } from '../codes.js';
import { builder } from '../serializer.js';

/** The type OIDs of the ParameterDescription at [at, end); null if its count and length disagree. */
export function parameterTypes(buf: Buffer, at: number, end: number): number[] | null {
  const count = buf.readInt16BE(at + 5);
  if (end - at !== 7 + 4 * count) return null;
  const types: number[] = new Array<number>(count);
  for (let i = 0; i < count; i++) types[i] = buf.readUInt32BE(at + 7 + 4 * i);
  return types;
}

export function parameterDescription(types: readonly number[]): Buffer {
  const b = builder.begin(Backend.ParameterDescription).int16(types.length);
  for (const t of types) b.uint32(t);
  return b.finish();
}
