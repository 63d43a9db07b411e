// Server credentials for users that authenticate through auth_query
// (pooler/auth/auth-query.ts): the pooler never learns their passwords, only
// what Postgres stores (pg_authid.rolpassword), and still has to log into the
// server as them.
//
// * md5: the stored "md5<hex>" hash is all the md5 exchange needs (the reply
//   is md5(hex + salt)), so the hash itself serves as the server password.
// * SCRAM-SHA-256: the stored verifier holds StoredKey = H(ClientKey), which
//   cannot produce a proof. But a client that just passed our SCRAM exchange
//   revealed ClientKey = ClientProof XOR ClientSignature (PgBouncer does the
//   same), and ClientKey + ServerKey are enough to log into the server with
//   SCRAM: only the PBKDF2 step, which needs the password, is skipped.
//
// Those keys travel to the server login (pooler/server/login.ts) as the
// connection's "password" string, in a form that no real password can take:
// it starts with a NUL byte, which a PasswordMessage (a C string) cannot carry.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { ScramSecret } from './scram-server.js';
import type { ScramKeys } from './scram-client.js';
import { KEY_LEN, hmac, sha256, xor } from './scram-crypto.js';

export type { ScramKeys } from './scram-client.js';

const KEYS_PREFIX = '\u0000pglynx-scram-keys:';

/** The md5 PasswordMessage for a stored "md5<hex>" hash (no password needed). */
export function md5ResponseFromHash(storedHash: string, salt: Buffer): string {
  const inner = Buffer.from(storedHash.slice(3), 'utf8');
  return 'md5' + createHash('md5').update(Buffer.concat([inner, salt])).digest('hex');
}

/**
 * ClientKey from a SCRAM exchange our server side (ScramServerSession)
 * accepted: the same AuthMessage it verified, taken from the raw messages.
 * Returns null when the messages do not yield a key matching the verifier
 * (cannot happen after a successful exchange; checked anyway).
 */
export function recoverClientKey(secret: ScramSecret, clientFirst: string, serverFirst: string, clientFinal: string): Buffer | null {
  const c1 = clientFirst.indexOf(',');
  const c2 = c1 < 0 ? -1 : clientFirst.indexOf(',', c1 + 1);
  const proofAt = clientFinal.lastIndexOf(',p=');
  if (c2 < 0 || proofAt < 0) return null;
  const proof = Buffer.from(clientFinal.slice(proofAt + 3), 'base64');
  if (proof.length !== KEY_LEN) return null;
  const authMessage = `${clientFirst.slice(c2 + 1)},${serverFirst},${clientFinal.slice(0, proofAt)}`;
  const clientKey = xor(proof, hmac(secret.storedKey, authMessage));
  return timingSafeEqual(sha256(clientKey), secret.storedKey) ? clientKey : null;
}

/** The server "password" carrying SCRAM keys (see the header). */
export function encodeScramKeys(keys: ScramKeys): string {
  const b64 = (b: Buffer): string => b.toString('base64');
  return `${KEYS_PREFIX}${keys.iterations}:${b64(keys.salt)}:${b64(keys.clientKey)}:${b64(keys.serverKey)}`;
}

/** The keys in a server password made by encodeScramKeys, or null for a real password. */
export function decodeScramKeys(password: string): ScramKeys | null {
  if (!password.startsWith(KEYS_PREFIX)) return null;
  const [iter, salt, clientKey, serverKey] = password.slice(KEYS_PREFIX.length).split(':');
  const keys = {
    iterations: Number(iter),
    salt: Buffer.from(salt ?? '', 'base64'),
    clientKey: Buffer.from(clientKey ?? '', 'base64'),
    serverKey: Buffer.from(serverKey ?? '', 'base64'),
  };
  const valid = Number.isSafeInteger(keys.iterations) && keys.clientKey.length === KEY_LEN && keys.serverKey.length === KEY_LEN;
  return valid ? keys : null;
}
