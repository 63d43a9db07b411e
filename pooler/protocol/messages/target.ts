// Describe ('D') and Close ('C') from a client: a target kind byte ('S'
// statement or 'P' portal) then its name.

import { Frontend } from '../codes.js';
import { builder } from '../serializer.js';
import { cstringAt } from './strings.js';

export const Target = {
  Statement: 0x53, // 'S'
  Portal: 0x50, // 'P'
} as const;

/** Target.Statement or Target.Portal. */
export function targetKind(buf: Buffer, at: number): number {
  return buf[at + 5];
}

export function targetName(buf: Buffer, at: number, end: number): string {
  return cstringAt(buf, at + 6, end);
}

export function describe(kind: number, name: string): Buffer {
  return builder.begin(Frontend.Describe).byte(kind).cstring(name).finish();
}

export function close(kind: number, name: string): Buffer {
  return builder.begin(Frontend.Close).byte(kind).cstring(name).finish();
}
