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

import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ScramSecret } from './scram-server.js';

const KEY_LEN = 32;
const KEYS_PREFIX = '\u0000pglynx-scram-keys:';

/** What logs into a server with SCRAM without the password. */
export interface ScramKeys {
  iterations: number;
  salt: Buffer;
  clientKey: Buffer;
  serverKey: Buffer;
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

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

/**
 * Client side of SCRAM-SHA-256 from keys rather than a password, for one
 * server login. Throws Error on anything unexpected; the caller wraps it.
 * No channel binding (gs2 header "n,,"), like the password path.
 */
export class ScramKeyClient {
  private readonly clientNonce = randomBytes(18).toString('base64');
  private clientFirstBare = '';
  private authMessage: string | null = null;

  constructor(private readonly keys: ScramKeys) {}

  /** client-first-message (the SASLInitialResponse data). */
  first(): string {
    // Postgres ignores the SCRAM user name: the startup packet's user counts.
    this.clientFirstBare = `n=,r=${this.clientNonce}`;
    return `n,,${this.clientFirstBare}`;
  }

  /** client-final-message for the server-first-message. */
  final(serverFirst: string): string {
    if (!this.clientFirstBare || this.authMessage !== null) throw new Error('unexpected server-first-message');
    const attrs = new Map<string, string>();
    for (const part of serverFirst.split(',')) {
      if (/^[A-Za-z]=/.test(part)) attrs.set(part[0]!, part.slice(2));
    }
    const nonce = attrs.get('r') ?? '';
    const salt = Buffer.from(attrs.get('s') ?? '', 'base64');
    const iterations = Number(attrs.get('i'));
    if (!nonce.startsWith(this.clientNonce) || nonce.length === this.clientNonce.length) {
      throw new Error('server nonce does not extend the client nonce');
    }
    // The keys derive from one salt and iteration count; another pair means
    // the role's password changed since a client revealed them.
    if (iterations !== this.keys.iterations || !salt.equals(this.keys.salt)) {
      throw new Error("the server's SCRAM secret changed since the client logged in; the client must log in again");
    }
    const withoutProof = `c=biws,r=${nonce}`; // biws = base64("n,,")
    this.authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const proof = xor(this.keys.clientKey, hmac(sha256(this.keys.clientKey), this.authMessage));
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Check server-final-message ("v=" + ServerSignature): the server knows the verifier. */
  verify(serverFinal: string): void {
    if (this.authMessage === null) throw new Error('unexpected server-final-message');
    const m = /^v=([A-Za-z0-9+/=]+)$/.exec(serverFinal.trim());
    const expected = hmac(this.keys.serverKey, this.authMessage);
    const actual = m ? Buffer.from(m[1]!, 'base64') : Buffer.alloc(0);
    if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
      throw new Error('server signature does not match');
    }
  }
}
