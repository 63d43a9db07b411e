// The untyped first packet a client sends: StartupMessage, SSLRequest,
// GSSENCRequest or CancelRequest. Read whole (it is small and bounded).

import { MAX_STARTUP_PACKET, StartupCode } from './codes.js';
import { ProtocolError } from './framer.js';

export type StartupPacket =
  | { kind: 'startup'; params: Map<string, string> }
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; processId: number; secretKey: number };

/** Length of the packet at the head of `buf`, or null if not all of it has arrived. */
export function startupPacketLength(buf: Buffer): number | null {
  if (buf.length < 4) return null;
  const length = buf.readInt32BE(0);
  if (length < 8 || length > MAX_STARTUP_PACKET) throw new ProtocolError(`invalid startup packet length ${length}`);
  return buf.length >= length ? length : null;
}

export function parseStartupPacket(packet: Buffer): StartupPacket {
  const code = packet.readInt32BE(4);
  switch (code) {
    case StartupCode.SSLRequest:
      return { kind: 'ssl' };
    case StartupCode.GSSENCRequest:
      return { kind: 'gssenc' };
    case StartupCode.CancelRequest:
      if (packet.length !== 16) throw new ProtocolError('invalid cancel request length');
      return { kind: 'cancel', processId: packet.readInt32BE(8), secretKey: packet.readInt32BE(12) };
    case StartupCode.ProtocolV3:
      return { kind: 'startup', params: parseParams(packet) };
    default:
      throw new ProtocolError(`unsupported frontend protocol ${code >> 16}.${code & 0xffff}: server supports 3.0`);
  }
}

function parseParams(packet: Buffer): Map<string, string> {
  const params = new Map<string, string>();
  let i = 8;
  while (i < packet.length && packet[i] !== 0) {
    const keyEnd = packet.indexOf(0, i);
    const valueEnd = keyEnd < 0 ? -1 : packet.indexOf(0, keyEnd + 1);
    if (keyEnd < 0 || valueEnd < 0) throw new ProtocolError('invalid startup packet layout: expected terminator as last byte');
    params.set(packet.toString('utf8', i, keyEnd), packet.toString('utf8', keyEnd + 1, valueEnd));
    i = valueEnd + 1;
  }
  if (!params.has('user')) throw new ProtocolError('no PostgreSQL user name specified in startup packet');
  return params;
}
