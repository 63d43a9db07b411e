// Mock authentication for logins that cannot succeed (unknown user or pool,
// a user without a password, a user the auth_query server does not know).
// As PgBouncer and Postgres (its "mock" SCRAM exchange) do, such a client is
// challenged exactly like a real user and then told that its password was
// wrong, so the login reveals neither which users nor which pools exist.
//
// A real SCRAM user always gets the same salt and iteration count, so the
// mock ones must too: the salt is derived from the user name and a secret
// drawn once per process (Postgres uses a per-cluster nonce the same way).

import { createHmac, randomBytes } from 'node:crypto';
import type { AuthType } from '../../config/types.js';
import type { ScramSecret } from './scram-server.js';
import type { LoginEntry } from './login-entry.js';

const MOCK_KEY = randomBytes(32);
const SALT_LEN = 16; // Postgres's SCRAM_DEFAULT_SALT_LEN, as for configured users
const ITERATIONS = 4096; // Postgres's scram_iterations default, as for configured users

/** A SCRAM secret no password matches, with a salt that is the same on every attempt for `user`. */
export function mockScramSecret(user: string): ScramSecret {
  const salt = createHmac('sha256', MOCK_KEY).update(`salt\0${user}`).digest().subarray(0, SALT_LEN);
  // The keys are never revealed (no server-final is sent after a failed proof); random ones match nothing.
  return { iterations: ITERATIONS, salt, storedKey: randomBytes(32), serverKey: randomBytes(32) };
}

/** A stored md5 hash no password matches (the challenge salt is random per attempt anyway). */
export function mockMd5Hash(): string {
  return `md5${randomBytes(16).toString('hex')}`;
}

/**
 * A login entry no password passes, challenged as a real user of `method`
 * would be (trust still asks: an unknown user has nothing to be trusted
 * with). `reason` is for the log only. The SCRAM secret is filled in by the
 * login from the user name.
 */
export function mockEntry(method: AuthType, reason: string): LoginEntry {
  return method === 'scram-sha-256'
    ? { password: null, scram: null, authMethod: 'scram-sha-256', unknown: reason }
    : { password: mockMd5Hash(), scram: null, authMethod: 'md5', unknown: reason };
}

/** Postgres truncates names to NAMEDATALEN - 1 bytes; names echoed in errors and logs are cut there, so a client cannot make them huge. */
export const MAX_NAME_BYTES = 63;

/** `name` cut to MAX_NAME_BYTES of UTF-8, on a character boundary. */
export function shortName(name: string): string {
  if (name.length <= MAX_NAME_BYTES / 4) return name;
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length <= MAX_NAME_BYTES) return name;
  let end = MAX_NAME_BYTES;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // do not split a character
  return bytes.toString('utf8', 0, end);
}
