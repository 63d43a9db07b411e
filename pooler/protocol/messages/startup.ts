// The untyped packets a pooler sends when it connects to a server as a
// client: StartupMessage, SSLRequest, CancelRequest. (Reading the ones
// clients send is protocol/startup.ts.)

import { StartupCode } from '../codes.js';
import { builder } from '../serializer.js';

/**
 * StartupMessage for protocol 3.0 with `params` (user, database, options...),
 * then client_encoding UTF8 last: the pooler reads and writes UTF-8 whatever
 * the params say, as node-postgres's serializer did for it.
 */
export function startupMessage(params: Readonly<Record<string, string>>): Buffer {
  const b = builder.beginUntyped().int32(StartupCode.ProtocolV3);
  for (const key of Object.keys(params)) b.cstring(key).cstring(params[key]!);
  return b.cstring('client_encoding').cstring('UTF8').byte(0).finish();
}

export function sslRequest(): Buffer {
  return builder.beginUntyped().int32(StartupCode.SSLRequest).finish();
}

export function cancelRequest(processId: number, secretKey: number): Buffer {
  return builder.beginUntyped().int32(StartupCode.CancelRequest).int32(processId).int32(secretKey).finish();
}
