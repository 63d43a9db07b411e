// Server side of SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL speaks it,
// so PgLynx can authenticate its own clients.
//
// Wire flow (all inside 'R' / 'p' messages, built by the caller):
//   S: AuthenticationSASL (10), mechanism list = "SCRAM-SHA-256" \0 \0
//   C: SASLInitialResponse = mechanism cstring + int32 len + client-first-message
//   S: AuthenticationSASLContinue (11) + server-first-message   (clientFirst())
//   C: SASLResponse = client-final-message (raw bytes)
//   S: AuthenticationSASLFinal (12) + server-final-message      (clientFinal())
//   S: AuthenticationOk (0)
// On any ScramError the caller sends an ErrorResponse (28P01), as Postgres does;
// Postgres never sends the RFC's "e=" server-final form either.
//
// Channel binding is not offered (no SCRAM-SHA-256-PLUS): gs2 flag "n" or "y"
// is accepted, "p=" is rejected. "y" means "client could bind but thinks the
// server cannot", which is true of PgLynx even on TLS, so it is no downgrade.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { KEY_LEN, decodeBase64, hmac, scramKeysSync, scramNonce, sha256, xor } from './scram-crypto.js';

export { saslprep } from './scram-crypto.js';

/** The only mechanism PgLynx lists in AuthenticationSASL. */
export const SCRAM_SHA_256 = 'SCRAM-SHA-256';

const DEFAULT_ITERATIONS = 4096; // Postgres's scram_iterations default
const DEFAULT_SALT_LEN = 16; // Postgres's SCRAM_DEFAULT_SALT_LEN

export interface ScramSecret {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

export class ScramError extends Error {
  constructor(reason: string) {
    super(`SCRAM: ${reason}`);
    this.name = 'ScramError';
  }
}

// ---------------------------------------------------------------------------
// Secrets

/** Compute a verifier from a plaintext password, like CREATE ROLE ... PASSWORD does. */
export function scramSecretFromPassword(
  password: string,
  iterations: number = DEFAULT_ITERATIONS,
  salt: Buffer = randomBytes(DEFAULT_SALT_LEN),
): ScramSecret {
  if (!Number.isInteger(iterations) || iterations < 1) {
    throw new RangeError(`SCRAM iteration count must be a positive integer, got ${iterations}`);
  }
  const { clientKey, serverKey } = scramKeysSync(password, salt, iterations);
  return { iterations, salt: Buffer.from(salt), storedKey: sha256(clientKey), serverKey };
}

const SECRET_RE = /^SCRAM-SHA-256\$([1-9][0-9]*):([^$:]+)\$([^$:]+):([^$:]+)$/;

/**
 * Parse Postgres's stored verifier format (pg_authid.rolpassword):
 *   SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>
 * Returns null for anything else (plaintext, md5 hash, corrupt value).
 */
export function parseScramSecret(text: string): ScramSecret | null {
  const m = SECRET_RE.exec(text);
  if (!m) return null;
  const iterations = Number(m[1]);
  const salt = decodeBase64(m[2]!);
  const storedKey = decodeBase64(m[3]!);
  const serverKey = decodeBase64(m[4]!);
  if (!Number.isSafeInteger(iterations) || iterations > 0x7fffffff) return null;
  if (!salt || salt.length === 0 || storedKey?.length !== KEY_LEN || serverKey?.length !== KEY_LEN) return null;
  return { iterations, salt, storedKey, serverKey };
}

/** Inverse of parseScramSecret: the text Postgres stores in rolpassword. */
export function formatScramSecret(secret: ScramSecret): string {
  return (
    `SCRAM-SHA-256$${secret.iterations}:${secret.salt.toString('base64')}` +
    `$${secret.storedKey.toString('base64')}:${secret.serverKey.toString('base64')}`
  );
}

// ---------------------------------------------------------------------------
// Wire helper

/**
 * Parse a SASLInitialResponse ('p') payload: mechanism cstring, int32 length
 * of the initial response (-1 = none), then that many bytes.
 */
export function parseSaslInitialResponse(body: Buffer): { mechanism: string; data: string } {
  const nul = body.indexOf(0);
  if (nul < 0) throw new ScramError('malformed SASLInitialResponse: unterminated mechanism name');
  const mechanism = body.toString('utf8', 0, nul);
  if (body.length < nul + 5) throw new ScramError('malformed SASLInitialResponse: missing data length');
  const len = body.readInt32BE(nul + 1);
  const start = nul + 5;
  if (len === -1 && body.length === start) return { mechanism, data: '' };
  if (len < 0 || body.length !== start + len) {
    throw new ScramError('malformed SASLInitialResponse: data length does not match message length');
  }
  return { mechanism, data: body.toString('utf8', start) };
}

// ---------------------------------------------------------------------------
// Session

// printable = %x21-2B / %x2D-7E (printable ASCII except ",")
const PRINTABLE_RE = /^[\x21-\x2b\x2d-\x7e]+$/;

interface Attr {
  name: string;
  value: string;
}

function parseAttr(part: string | undefined, expected: string | null, what: string): Attr {
  if (part === undefined || !/^[A-Za-z]=/.test(part)) {
    throw new ScramError(`malformed ${what}: expected ${expected ? `"${expected}=" attribute` : 'attribute'}`);
  }
  const name = part[0]!;
  if (expected !== null && name !== expected) {
    throw new ScramError(`malformed ${what}: expected "${expected}=" attribute, got "${name}="`);
  }
  return { name, value: part.slice(2) };
}

export interface ScramServerOptions {
  /**
   * Server part of the nonce. Defaults to 18 random bytes, base64 (as
   * Postgres does). Only tests should set it (e.g. RFC 7677's vector).
   */
  serverNonce?: string;
}

type State = 'init' | 'first-done' | 'finished' | 'failed';

/**
 * One SCRAM exchange for one client connection. Feed it the client's two
 * messages in order; it returns the server's replies or throws ScramError.
 * The username in client-first is ignored, as Postgres does: the startup
 * packet's user is the one being authenticated (clients send "n=*" or "n=").
 */
export class ScramServerSession {
  private state: State = 'init';
  private readonly serverNonce: string;
  private gs2Header = '';
  private nonce = '';
  private clientFirstBare = '';
  private serverFirst = '';

  constructor(
    private readonly secret: ScramSecret,
    options: ScramServerOptions = {},
  ) {
    this.serverNonce = options.serverNonce ?? scramNonce();
    if (!PRINTABLE_RE.test(this.serverNonce)) throw new ScramError('server nonce must be printable ASCII without ","');
  }

  /** True once clientFinal() verified the client's proof. */
  get authenticated(): boolean {
    return this.state === 'finished';
  }

  /** Handle client-first-message; returns server-first-message. */
  clientFirst(message: string): string {
    this.expectState('init', 'client-first-message');
    try {
      return this.handleFirst(message);
    } catch (err) {
      this.state = 'failed';
      throw err;
    }
  }

  /** Handle client-final-message; returns server-final-message ("v=..."). */
  clientFinal(message: string): string {
    this.expectState('first-done', 'client-final-message');
    try {
      const reply = this.handleFinal(message);
      this.state = 'finished';
      return reply;
    } catch (err) {
      this.state = 'failed';
      throw err;
    }
  }

  private expectState(state: State, what: string): void {
    if (this.state !== state) throw new ScramError(`unexpected ${what} (exchange state: ${this.state})`);
  }

  private handleFirst(message: string): string {
    const what = 'client-first-message';
    // gs2-header = gs2-cbind-flag "," [authzid] ","
    const c1 = message.indexOf(',');
    const c2 = c1 < 0 ? -1 : message.indexOf(',', c1 + 1);
    if (c2 < 0) throw new ScramError(`malformed ${what}: missing GS2 header`);
    const flag = message.slice(0, c1);
    if (flag.startsWith('p=')) {
      throw new ScramError(
        'client requested channel binding (SCRAM-SHA-256-PLUS), which this server does not offer; use SCRAM-SHA-256',
      );
    }
    if (flag !== 'n' && flag !== 'y') throw new ScramError(`malformed ${what}: unexpected channel-binding flag "${flag}"`);
    if (c2 !== c1 + 1) throw new ScramError('client uses an authorization identity, which is not supported');
    this.gs2Header = message.slice(0, c2 + 1);
    this.clientFirstBare = message.slice(c2 + 1);

    const parts = this.clientFirstBare.split(',');
    if (parts[0]?.startsWith('m=')) throw new ScramError('client requires an unsupported SCRAM extension');
    parseAttr(parts[0], 'n', what); // username: ignored, the startup packet's user counts
    const nonce = parseAttr(parts[1], 'r', what).value;
    if (!PRINTABLE_RE.test(nonce)) throw new ScramError(`malformed ${what}: client nonce must be printable ASCII`);
    for (const p of parts.slice(2)) parseAttr(p, null, what); // optional extensions: validated, ignored

    this.nonce = nonce + this.serverNonce;
    this.serverFirst = `r=${this.nonce},s=${this.secret.salt.toString('base64')},i=${this.secret.iterations}`;
    this.state = 'first-done';
    return this.serverFirst;
  }

  private handleFinal(message: string): string {
    const what = 'client-final-message';
    // The proof is the last attribute; AuthMessage uses everything before it.
    const proofAt = message.lastIndexOf(',p=');
    if (proofAt < 0) throw new ScramError(`malformed ${what}: missing proof`);
    const withoutProof = message.slice(0, proofAt);
    const proofB64 = message.slice(proofAt + 3);

    const parts = withoutProof.split(',');
    const binding = parseAttr(parts[0], 'c', what).value;
    if (binding !== Buffer.from(this.gs2Header, 'utf8').toString('base64')) {
      throw new ScramError('channel-binding attribute in client-final-message does not match client-first-message');
    }
    const nonce = parseAttr(parts[1], 'r', what).value;
    if (nonce !== this.nonce) throw new ScramError('nonce in client-final-message does not match');
    for (const p of parts.slice(2)) parseAttr(p, null, what);

    const proof = decodeBase64(proofB64);
    if (!proof || proof.length !== KEY_LEN) throw new ScramError(`malformed ${what}: invalid proof`);

    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const clientSignature = hmac(this.secret.storedKey, authMessage);
    const clientKey = xor(proof, clientSignature);
    if (!timingSafeEqual(sha256(clientKey), this.secret.storedKey)) {
      throw new ScramError('password authentication failed (invalid client proof)');
    }
    return `v=${hmac(this.secret.serverKey, authMessage).toString('base64')}`;
  }
}
