// Session status messages: ParameterStatus, BackendKeyData, ReadyForQuery.

import { Backend } from '../codes.js';
import { builder } from '../serializer.js';

export function parameterStatus(name: string, value: string): Buffer {
  return builder.begin(Backend.ParameterStatus).cstring(name).cstring(value).finish();
}

export function backendKeyData(processId: number, secretKey: number): Buffer {
  return builder.begin(Backend.BackendKeyData).int32(processId).int32(secretKey).finish();
}

/** Reads a BackendKeyData body: [processId, secretKey]. */
export function parseBackendKeyData(body: Buffer): [number, number] {
  return [body.readInt32BE(0), body.readInt32BE(4)];
}

/** The three ReadyForQuery messages, built once (callers only send them). */
const READY = new Map<number, Buffer>();

/** @param status a TxStatus char code ('I', 'T' or 'E'). */
export function readyForQuery(status: number): Buffer {
  let m = READY.get(status);
  if (!m) READY.set(status, (m = builder.begin(Backend.ReadyForQuery).byte(status).finish()));
  return m;
}

/** Reads a ParameterStatus body: name\0value\0. */
export function parseParameterStatus(body: Buffer): [string, string] {
  const nameEnd = body.indexOf(0);
  const valueEnd = body.indexOf(0, nameEnd + 1);
  return [body.toString('utf8', 0, nameEnd), body.toString('utf8', nameEnd + 1, valueEnd < 0 ? body.length : valueEnd)];
}
