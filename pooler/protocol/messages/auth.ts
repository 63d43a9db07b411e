// Authentication request messages ('R') the pooler sends to its clients.

import { MessageWriter } from './writer.js';

const R = 0x52;

export function authenticationOk(): Buffer {
  return new MessageWriter().int32(0).finish(R);
}

export function authenticationMd5(salt: Buffer): Buffer {
  return new MessageWriter().int32(5).raw(salt).finish(R);
}

export function authenticationSasl(mechanisms: string[]): Buffer {
  const w = new MessageWriter().int32(10);
  for (const m of mechanisms) w.cstring(m);
  return w.byte(0).finish(R);
}

export function authenticationSaslContinue(data: string): Buffer {
  return new MessageWriter().int32(11).raw(Buffer.from(data, 'utf8')).finish(R);
}

export function authenticationSaslFinal(data: string): Buffer {
  return new MessageWriter().int32(12).raw(Buffer.from(data, 'utf8')).finish(R);
}
