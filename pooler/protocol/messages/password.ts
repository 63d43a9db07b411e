// The frontend 'p' messages a pooler logging in to a server sends: a
// password (cleartext or md5), SASLInitialResponse and SASLResponse.

import { Frontend } from '../codes.js';
import { builder } from '../serializer.js';

export function passwordMessage(password: string): Buffer {
  return builder.begin(Frontend.Password).cstring(password).finish();
}

export function saslInitialResponse(mechanism: string, data: string): Buffer {
  return builder.begin(Frontend.Password).cstring(mechanism).lengthPrefixedString(data).finish();
}

export function saslResponse(data: string): Buffer {
  return builder.begin(Frontend.Password).string(data).finish();
}
