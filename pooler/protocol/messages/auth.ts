// Authentication request messages ('R') the pooler sends to its clients.

import { Backend } from '../codes.js';
import { builder } from '../serializer.js';

const R = Backend.Authentication;

export function authenticationOk(): Buffer {
  return builder.begin(R).int32(0).finish();
}

export function authenticationMd5(salt: Buffer): Buffer {
  return builder.begin(R).int32(5).bytes(salt).finish();
}

export function authenticationSasl(mechanisms: string[]): Buffer {
  const b = builder.begin(R).int32(10);
  for (const m of mechanisms) b.cstring(m);
  return b.byte(0).finish();
}

export function authenticationSaslContinue(data: string): Buffer {
  return builder.begin(R).int32(11).string(data).finish();
}

export function authenticationSaslFinal(data: string): Buffer {
  return builder.begin(R).int32(12).string(data).finish();
}
