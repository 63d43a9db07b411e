// SCRAM-SHA-256 primitives (RFC 5802 / RFC 7677) shared by both sides of
// PgLynx's SCRAM: the server side that checks clients (scram-server.ts) and
// the client side that logs into Postgres (scram-client.ts).
//
//   SaltedPassword  = Hi(SASLprep(password), salt, i)   (PBKDF2-HMAC-SHA-256)
//   ClientKey       = HMAC(SaltedPassword, "Client Key")
//   StoredKey       = H(ClientKey)
//   ServerKey       = HMAC(SaltedPassword, "Server Key")
//   ClientProof     = ClientKey XOR HMAC(StoredKey, AuthMessage)
//   ServerSignature = HMAC(ServerKey, AuthMessage)

import { createHash, createHmac, pbkdf2, pbkdf2Sync, randomBytes } from 'node:crypto';

/** SHA-256 output length: every key and proof. */
export const KEY_LEN = 32;
/** Postgres's SCRAM_RAW_NONCE_LEN. */
const RAW_NONCE_LEN = 18;

export function hmac(key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

export function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** A fresh nonce as Postgres makes one: 18 random bytes, base64 (printable, no ","). */
export function scramNonce(): string {
  return randomBytes(RAW_NONCE_LEN).toString('base64');
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Strict base64: Buffer.from(x, 'base64') silently skips garbage, which would
 * turn a corrupt secret, salt or proof into a wrong-but-accepted value.
 */
export function decodeBase64(text: string): Buffer | null {
  return BASE64_RE.test(text) ? Buffer.from(text, 'base64') : null;
}

/** The two keys a password yields for one salt and iteration count. */
export interface ScramKeyPair {
  clientKey: Buffer;
  serverKey: Buffer;
}

function keysFromSalted(salted: Buffer): ScramKeyPair {
  return { clientKey: hmac(salted, 'Client Key'), serverKey: hmac(salted, 'Server Key') };
}

/** Hi() and the keys, blocking (verifier creation at config load). */
export function scramKeysSync(password: string, salt: Buffer, iterations: number): ScramKeyPair {
  return keysFromSalted(pbkdf2Sync(Buffer.from(saslprep(password), 'utf8'), salt, iterations, KEY_LEN, 'sha256'));
}

/** Hi() and the keys on libuv's thread pool (a server login: the event loop keeps serving). */
export function scramKeys(password: string, salt: Buffer, iterations: number): Promise<ScramKeyPair> {
  return new Promise((resolve, reject) => {
    pbkdf2(Buffer.from(saslprep(password), 'utf8'), salt, iterations, KEY_LEN, 'sha256', (err, salted) => {
      if (err) reject(err);
      else resolve(keysFromSalted(salted));
    });
  });
}

// ---------------------------------------------------------------------------
// SASLprep (RFC 4013), approximated.
//
// Postgres runs pg_saslprep() on the password before PBKDF2, both when it
// stores a verifier and when a client (libpq) answers, so we must do the same
// or non-ASCII passwords would not match. Steps:
//   * pure ASCII: returned unchanged (Postgres has the same fast path, and it
//     skips the prohibition checks for ASCII too);
//   * otherwise map non-ASCII spaces (C.1.2) to U+0020, drop "mapped to
//     nothing" characters (B.1), and normalize with NFKC;
//   * if the result contains prohibited characters (C.2-C.9), Postgres falls
//     back to the raw password, and so do we.
// Approximation: String.prototype.normalize('NFKC') uses the runtime's Unicode
// version rather than Unicode 3.2, and we skip the unassigned code point (A.1)
// and bidi (RFC 3454 section 6) checks. For real-world passwords the result is
// identical.

const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g;
// eslint-disable-next-line no-misleading-character-class
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200C\u200D\u2060\uFE00-\uFE0F\uFEFF]/g;

function isProhibited(cp: number): boolean {
  return (
    cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f) || // C.2.1 / C.2.2 controls
    cp === 0x06dd || cp === 0x070f || cp === 0x180e ||
    cp === 0x2028 || cp === 0x2029 || (cp >= 0x2060 && cp <= 0x2063) ||
    (cp >= 0x1d173 && cp <= 0x1d17a) ||
    (cp >= 0xe000 && cp <= 0xf8ff) || cp >= 0xf0000 || // C.3 private use
    (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe || // C.4 non-characters
    (cp >= 0xd800 && cp <= 0xdfff) || // C.5 lone surrogates
    (cp >= 0xfff9 && cp <= 0xfffd) || // C.6 / C.2.2
    (cp >= 0x2ff0 && cp <= 0x2ffb) || // C.7
    cp === 0x0340 || cp === 0x0341 || cp === 0x200e || cp === 0x200f ||
    (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x206a && cp <= 0x206f) || // C.8
    cp === 0xe0001 || (cp >= 0xe0020 && cp <= 0xe007f) // C.9 tagging
  );
}

export function saslprep(password: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  const prepared = password.replace(NON_ASCII_SPACE, ' ').replace(MAPPED_TO_NOTHING, '').normalize('NFKC');
  for (const ch of prepared) {
    if (isProhibited(ch.codePointAt(0) ?? 0)) return password;
  }
  return prepared;
}
