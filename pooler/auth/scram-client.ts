// Client side of SCRAM-SHA-256 (RFC 5802 / RFC 7677) for logging into a
// Postgres server, from a password or from keys (auth_query users, whose
// ClientKey and ServerKey a client's proof revealed: passthrough-credentials.ts).
//
// Channel binding is not used: the gs2 header is "n,," ("the client does not
// support it"), as node-postgres without a TLS stream and libpq with
// channel_binding=disable send. Postgres ignores the SCRAM user name (the
// startup packet's user counts), so "n=" is empty, as libpq sends it.
//
// Errors are plain Error; the caller (server-auth.ts) wraps them.

import { timingSafeEqual } from 'node:crypto';
import { decodeBase64, hmac, scramKeys, scramNonce, sha256, xor, type ScramKeyPair } from './scram-crypto.js';

/** What logs into a server with SCRAM without the password. */
export interface ScramKeys extends ScramKeyPair {
  iterations: number;
  salt: Buffer;
}

export interface ScramClientOptions {
  /** Client nonce; random unless a test pins one (RFC 7677's vector). */
  nonce?: string;
  /** SCRAM user name; Postgres ignores it, so it is empty unless a test sets one. */
  user?: string;
}

/** Largest iteration count a server may ask for: bounds the work an impostor can demand. */
const MAX_ITERATIONS = 1 << 24;

/** Derived keys by password, salt and iterations: one PBKDF2 per password, not per server connection. */
const derived = new Map<string, Promise<ScramKeyPair>>();
const DERIVED_MAX = 256;

function keysFor(password: string, salt: Buffer, iterations: number): Promise<ScramKeyPair> {
  const key = `${iterations}:${salt.toString('base64')}:${password}`;
  let keys = derived.get(key);
  if (!keys) {
    if (derived.size >= DERIVED_MAX) derived.delete(derived.keys().next().value!);
    keys = scramKeys(password, salt, iterations);
    keys.catch(() => derived.delete(key));
    derived.set(key, keys);
  }
  return keys;
}

/** One SCRAM exchange with one server: first(), then final(serverFirst), then verify(serverFinal). */
export class ScramClient {
  private readonly clientNonce: string;
  private readonly clientFirstBare: string;
  private step: 'start' | 'first-sent' | 'final-sent' | 'verified' = 'start';
  private authMessage = '';
  private serverKey: Buffer | null = null;

  constructor(
    private readonly secret: { password: string } | { keys: ScramKeys },
    options: ScramClientOptions = {},
  ) {
    this.clientNonce = options.nonce ?? scramNonce();
    this.clientFirstBare = `n=${options.user ?? ''},r=${this.clientNonce}`;
  }

  /** client-first-message (SASLInitialResponse data). */
  first(): string {
    if (this.step !== 'start') throw new Error('SCRAM exchange already started');
    this.step = 'first-sent';
    return `n,,${this.clientFirstBare}`;
  }

  /** client-final-message for the server-first-message. */
  async final(serverFirst: string): Promise<string> {
    if (this.step !== 'first-sent') throw new Error('unexpected server-first-message');
    const { nonce, salt, iterations } = parseServerFirst(serverFirst);
    if (!nonce.startsWith(this.clientNonce) || nonce.length === this.clientNonce.length) {
      throw new Error('server nonce does not extend the client nonce');
    }
    let keys: ScramKeyPair;
    if ('keys' in this.secret) {
      // The keys derive from one salt and iteration count; another pair means
      // the role's password changed since a client revealed them.
      const k = this.secret.keys;
      if (iterations !== k.iterations || !salt.equals(k.salt)) {
        throw new Error("the server's SCRAM secret changed since the client logged in; the client must log in again");
      }
      keys = k;
    } else {
      keys = await keysFor(this.secret.password, salt, iterations);
    }
    const withoutProof = `c=biws,r=${nonce}`; // biws = base64("n,,")
    this.authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    this.serverKey = keys.serverKey;
    this.step = 'final-sent';
    const proof = xor(keys.clientKey, hmac(sha256(keys.clientKey), this.authMessage));
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Check server-final-message ("v=" + ServerSignature): the server knows the verifier. */
  verify(serverFinal: string): void {
    if (this.step !== 'final-sent' || !this.serverKey) throw new Error('unexpected server-final-message');
    const m = /^v=([A-Za-z0-9+/=]+)$/.exec(serverFinal.trim());
    if (!m) throw new Error(serverFinal.startsWith('e=') ? `server error ${serverFinal.slice(2)}` : 'malformed server-final-message');
    const actual = decodeBase64(m[1]!);
    const expected = hmac(this.serverKey, this.authMessage);
    if (!actual || actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
      throw new Error('server signature does not match');
    }
    this.step = 'verified';
  }

  /** True once the server's signature checked out. */
  get verified(): boolean {
    return this.step === 'verified';
  }
}

/** server-first-message: r=<nonce>,s=<salt>,i=<iterations>[,extensions]. */
function parseServerFirst(message: string): { nonce: string; salt: Buffer; iterations: number } {
  const parts = message.split(',');
  if (parts[0]?.startsWith('m=')) throw new Error('server requires an unsupported SCRAM extension');
  const attr = (i: number, name: string): string => {
    const p = parts[i];
    if (p === undefined || !p.startsWith(`${name}=`)) throw new Error(`malformed server-first-message: expected "${name}=" attribute`);
    return p.slice(2);
  };
  const nonce = attr(0, 'r');
  // printable = %x21-2B / %x2D-7E
  if (!/^[\x21-\x2b\x2d-\x7e]+$/.test(nonce)) throw new Error('malformed server-first-message: nonce is not printable');
  const salt = decodeBase64(attr(1, 's'));
  if (!salt || salt.length === 0) throw new Error('malformed server-first-message: salt is not base64');
  const iterText = attr(2, 'i');
  const iterations = /^[1-9][0-9]{0,9}$/.test(iterText) ? Number(iterText) : NaN;
  if (!(iterations > 0)) throw new Error('malformed server-first-message: bad iteration count');
  if (iterations > MAX_ITERATIONS) throw new Error(`server asked for ${iterations} SCRAM iterations (at most ${MAX_ITERATIONS} accepted)`);
  return { nonce, salt, iterations };
}
