// NUL-terminated strings inside one message: where they end, bounded by the
// message's end, so a malformed message cannot make a reader run into the
// next one.

import { ProtocolError } from '../framer.js';

/** Index of the NUL that ends the string starting at `from`; throws if the message [.., end) has none. */
export function cstringEnd(buf: Buffer, from: number, end: number): number {
  const nul = buf.indexOf(0, from);
  if (nul < 0 || nul >= end) throw new ProtocolError('malformed message: missing string terminator');
  return nul;
}

/** The string starting at `from`. */
export function cstringAt(buf: Buffer, from: number, end: number): string {
  return buf.toString('utf8', from, cstringEnd(buf, from, end));
}
