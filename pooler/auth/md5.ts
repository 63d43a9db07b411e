// PostgreSQL MD5 password authentication (AuthenticationMD5Password, code 5).
//
// The client proves knowledge of md5(password + user) without sending it:
//   response = "md5" + md5hex(md5hex(password + user) + salt)
// where salt is 4 random bytes chosen by the server for this connection.
// The stored form in pg_authid is "md5" + md5hex(password + user), which is
// all a verifier needs; that is why a pg_authid md5 hash is password-equivalent.

import * as crypto from 'node:crypto';
import { createHash, randomFillSync } from 'node:crypto';

const MD5_SECRET_RE = /^md5[0-9a-f]{32}$/;

function md5hex(data: Buffer | string): string {
  return createHash('md5').update(data).digest('hex');
}

/** Random bytes drawn 4 KB at a time: one call into the CSPRNG per 1,024 logins, not one per login. */
const saltPool = Buffer.alloc(4096);
let saltOffset = saltPool.length;

/** 4 random bytes for an AuthenticationMD5Password request (a fresh copy: the pool is refilled). */
export function md5Salt(): Buffer {
  if (saltOffset + 4 > saltPool.length) {
    randomFillSync(saltPool);
    saltOffset = 0;
  }
  saltOffset += 4;
  return Buffer.from(saltPool.subarray(saltOffset - 4, saltOffset));
}

/** md5hex(password + user) of plaintext passwords, so a login hashes once, not twice (bounded: cleared when full). */
const storedHashes = new Map<string, string>();
const MAX_STORED_HASHES = 10_000;

function storedHashOf(password: string, user: string): string {
  const key = `${user}\0${password}`;
  let hash = storedHashes.get(key);
  if (hash === undefined) {
    if (storedHashes.size >= MAX_STORED_HASHES) storedHashes.clear();
    hash = md5hex(password + user);
    storedHashes.set(key, hash);
  }
  return hash;
}

/** True when `secret` is a stored Postgres md5 hash ("md5" + 32 lowercase hex). */
export function isMd5Secret(secret: string): boolean {
  return MD5_SECRET_RE.test(secret);
}

/** The stored pg_authid form of a plaintext password: "md5" + md5hex(password + user). */
export function md5Secret(user: string, password: string): string {
  return 'md5' + md5hex(password + user);
}

/** crypto.hash, the one-shot digest (Node >= 20.12: several times cheaper than a Hash object); undefined on older Node. */
const hashOnce = typeof crypto.hash === 'function' ? crypto.hash : undefined;

// Second stage, shared by client and verifier. `storedHash` is the 32 hex
// digits (without the "md5" prefix); the salt is mixed in as raw bytes.
function saltedResponse(storedHash: string, salt: Buffer): string {
  if (hashOnce && storedHash.length === 32 && salt.length === 4) {
    const input = Buffer.allocUnsafe(36);
    input.write(storedHash, 0, 'latin1');
    salt.copy(input, 32);
    return 'md5' + hashOnce('md5', input, 'hex');
  }
  return 'md5' + createHash('md5').update(storedHash, 'utf8').update(salt).digest('hex');
}

/** a === b in time that depends only on the lengths (the expected response's is public: always 35). */
function sameString(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** What a client sends in its PasswordMessage in reply to an MD5 request. */
export function md5PasswordResponse(user: string, password: string, salt: Buffer): string {
  return saltedResponse(md5hex(password + user), salt);
}

/**
 * Check a client's md5 PasswordMessage.
 *
 * `secret` is either a plaintext password or a stored "md5<32 hex>" hash (as
 * found in pg_authid or returned by an auth_query). A SCRAM verifier cannot be
 * used for md5 (Postgres refuses it too), and an empty secret never matches
 * (Postgres never stores empty passwords), so both return false.
 */
export function verifyMd5Response(response: string, user: string, secret: string, salt: Buffer): boolean {
  if (secret === '' || secret.startsWith('SCRAM-SHA-256$')) return false;
  const storedHash = isMd5Secret(secret) ? secret.slice(3) : storedHashOf(secret, user);
  // The expected length is always 35, so the length check leaks nothing secret.
  return sameString(response, saltedResponse(storedHash, salt));
}
