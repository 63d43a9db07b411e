// Session status messages: ParameterStatus, BackendKeyData, ReadyForQuery.

import { MessageWriter } from './writer.js';

export function parameterStatus(name: string, value: string): Buffer {
  return new MessageWriter().cstring(name).cstring(value).finish(0x53);
}

export function backendKeyData(processId: number, secretKey: number): Buffer {
  return new MessageWriter().int32(processId).int32(secretKey).finish(0x4b);
}

/** @param status a TxStatus char code ('I', 'T' or 'E'). */
export function readyForQuery(status: number): Buffer {
  return new MessageWriter().byte(status).finish(0x5a);
}

/** Reads a ParameterStatus body: name\0value\0. */
export function parseParameterStatus(body: Buffer): [string, string] {
  const nameEnd = body.indexOf(0);
  const valueEnd = body.indexOf(0, nameEnd + 1);
  return [body.toString('utf8', 0, nameEnd), body.toString('utf8', nameEnd + 1, valueEnd < 0 ? body.length : valueEnd)];
}
