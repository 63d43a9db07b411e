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

import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

/** The only mechanism PgLynx lists in AuthenticationSASL. */
export const SCRAM_SHA_256 = 'SCRAM-SHA-256';

const KEY_LEN = 32; // SHA-256 output
const DEFAULT_ITERATIONS = 4096; // Postgres's scram_iterations default
const DEFAULT_SALT_LEN = 16; // Postgres's SCRAM_DEFAULT_SALT_LEN
const RAW_NONCE_LEN = 18; // Postgres's SCRAM_RAW_NONCE_LEN

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
// SASLprep (RFC 4013), approximated.
//
// Postgres runs pg_saslprep() on the password before PBKDF2, both when it
// stores a verifier and when a client (libpq, node-postgres) answers, so we
// must do the same or non-ASCII passwords would not match. Steps:
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

// ---------------------------------------------------------------------------
// Secrets

function hmac(key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/** Compute a verifier from a plaintext password, like CREATE ROLE ... PASSWORD does. */
export function scramSecretFromPassword(
  password: string,
  iterations: number = DEFAULT_ITERATIONS,
  salt: Buffer = randomBytes(DEFAULT_SALT_LEN),
): ScramSecret {
  if (!Number.isInteger(iterations) || iterations < 1) {
    throw new RangeError(`SCRAM iteration count must be a positive integer, got ${iterations}`);
  }
  const salted = pbkdf2Sync(Buffer.from(saslprep(password), 'utf8'), salt, iterations, KEY_LEN, 'sha256');
  return {
    iterations,
    salt: Buffer.from(salt),
    storedKey: sha256(hmac(salted, 'Client Key')),
    serverKey: hmac(salted, 'Server Key'),
  };
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

// Strict: Buffer.from(x, 'base64') silently skips garbage, which would turn a
// corrupt secret or proof into a wrong-but-accepted value.
function decodeBase64(text: string): Buffer | null {
  return BASE64_RE.test(text) ? Buffer.from(text, 'base64') : null;
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
    this.serverNonce = options.serverNonce ?? randomBytes(RAW_NONCE_LEN).toString('base64');
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
    const clientKey = Buffer.alloc(KEY_LEN);
    for (let i = 0; i < KEY_LEN; i++) clientKey[i] = proof[i]! ^ clientSignature[i]!;
    if (!timingSafeEqual(sha256(clientKey), this.secret.storedKey)) {
      throw new ScramError('password authentication failed (invalid client proof)');
    }
    return `v=${hmac(this.secret.serverKey, authMessage).toString('base64')}`;
  }
}
