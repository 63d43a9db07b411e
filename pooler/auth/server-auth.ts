// Client side of Postgres authentication: what PgLynx answers when a real
// Postgres server sends it an Authentication ('R') request.
//
// SCRAM runs on PgLynx's own client (scram-client.ts), from a password or
// from the keys an auth_query login revealed. Channel binding is never used
// (gs2 flag "n"), so a server that only offers SCRAM-SHA-256-PLUS cannot be
// logged into.

import { passwordMessage, saslInitialResponse, saslResponse } from '../protocol/messages/password.js';
import { isMd5Secret, md5PasswordResponse } from './md5.js';
import { decodeScramKeys, md5ResponseFromHash } from './passthrough-credentials.js';
import { ScramClient } from './scram-client.js';

// Authentication request codes (the int32 after 'R').
const AUTH_OK = 0;
const AUTH_KERBEROS_V5 = 2;
const AUTH_CLEARTEXT = 3;
const AUTH_MD5 = 5;
const AUTH_SCM_CREDENTIAL = 6;
const AUTH_GSS = 7;
const AUTH_GSS_CONTINUE = 8;
const AUTH_SSPI = 9;
const AUTH_SASL = 10;
const AUTH_SASL_CONTINUE = 11;
const AUTH_SASL_FINAL = 12;

const SCRAM_SHA_256 = 'SCRAM-SHA-256';

export class ServerAuthError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ServerAuthError';
  }
}

const UNSUPPORTED: Record<number, string> = {
  [AUTH_KERBEROS_V5]: 'Kerberos V5',
  [AUTH_SCM_CREDENTIAL]: 'SCM credentials',
  [AUTH_GSS]: 'GSSAPI',
  [AUTH_GSS_CONTINUE]: 'GSSAPI',
  [AUTH_SSPI]: 'SSPI',
};

/** Split AuthenticationSASL's mechanism list: cstrings ended by an empty one. */
function parseMechanisms(data: Buffer): string[] {
  const out: string[] = [];
  let pos = 0;
  while (pos < data.length) {
    const nul = data.indexOf(0, pos);
    if (nul < 0) throw new ServerAuthError('malformed AuthenticationSASL message: unterminated mechanism name');
    if (nul === pos) return out;
    out.push(data.toString('utf8', pos, nul));
    pos = nul + 1;
  }
  throw new ServerAuthError('malformed AuthenticationSASL message: missing list terminator');
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Answers one server's authentication requests for one backend connection.
 * Feed it every 'R' message payload in order until it has seen AuthenticationOk.
 */
export class ServerAuthenticator {
  /** From the password, or from keys for auth_query users (see passthrough-credentials.ts). */
  private scram: ScramClient | null = null;
  private scramFinalSent = false;
  private ok = false;

  constructor(
    private readonly user: string,
    private readonly password: string | null,
  ) {}

  /** True once the server sent AuthenticationOk. */
  get authenticated(): boolean {
    return this.ok;
  }

  /**
   * `body` is an 'R' message payload (int32 code + data). Returns the complete
   * frontend message to write, or null when nothing is to be sent.
   */
  async respond(body: Buffer): Promise<Buffer | null> {
    if (body.length < 4) throw new ServerAuthError('malformed Authentication message: shorter than 4 bytes');
    const code = body.readInt32BE(0);
    const data = body.subarray(4);
    switch (code) {
      case AUTH_OK:
        // A server that started SCRAM must prove it knows the verifier before
        // we trust it (otherwise an impostor could skip SASLFinal).
        if (this.scram && !this.scram.verified) {
          throw new ServerAuthError('server sent AuthenticationOk before completing SCRAM authentication');
        }
        this.ok = true;
        return null;
      case AUTH_CLEARTEXT:
        return passwordMessage(this.requirePassword('cleartext'));
      case AUTH_MD5: {
        if (data.length !== 4) throw new ServerAuthError('malformed AuthenticationMD5Password message: salt must be 4 bytes');
        const password = this.requirePassword('md5');
        // A stored "md5<hex>" hash (auth_query) answers the challenge by itself;
        // Postgres never stores such a string as a plaintext password either.
        return passwordMessage(isMd5Secret(password) ? md5ResponseFromHash(password, data) : md5PasswordResponse(this.user, password, data));
      }
      case AUTH_SASL:
        return this.saslStart(data);
      case AUTH_SASL_CONTINUE:
        return this.saslContinue(data);
      case AUTH_SASL_FINAL:
        this.saslFinal(data);
        return null;
      default: {
        const name = UNSUPPORTED[code];
        throw new ServerAuthError(
          name
            ? `server requested ${name} authentication (code ${code}), which PgLynx does not support`
            : `server requested unknown authentication method (code ${code})`,
        );
      }
    }
  }

  private requirePassword(method: string): string {
    // node-postgres also refuses an empty SCRAM password; treat it as missing.
    if (this.password === null || this.password === '') {
      throw new ServerAuthError(
        `server requested ${method} password authentication for user "${this.user}", but no password is configured`,
      );
    }
    // SCRAM keys are no password: never send them in clear or hash them.
    if (method !== SCRAM_SHA_256 && decodeScramKeys(this.password)) {
      throw new ServerAuthError(
        `server requested ${method} password authentication for user "${this.user}", but only SCRAM keys are known (auth_query)`,
      );
    }
    return this.password;
  }

  private saslStart(data: Buffer): Buffer {
    if (this.scram) throw new ServerAuthError('server restarted SASL authentication');
    const mechanisms = parseMechanisms(data);
    if (!mechanisms.includes(SCRAM_SHA_256)) {
      throw new ServerAuthError(
        `server offered SASL mechanism(s) ${mechanisms.join(', ') || '(none)'}; ` +
          `PgLynx supports only ${SCRAM_SHA_256} (no channel binding)`,
      );
    }
    const password = this.requirePassword(SCRAM_SHA_256);
    const keys = decodeScramKeys(password);
    this.scram = new ScramClient(keys ? { keys } : { password });
    return saslInitialResponse(SCRAM_SHA_256, this.scram.first());
  }

  private async saslContinue(data: Buffer): Promise<Buffer> {
    if (!this.scram || this.scramFinalSent) throw new ServerAuthError('unexpected AuthenticationSASLContinue message');
    this.scramFinalSent = true;
    try {
      return saslResponse(await this.scram.final(data.toString('utf8')));
    } catch (err) {
      throw new ServerAuthError(`SCRAM exchange with server failed: ${describe(err)}`, { cause: err });
    }
  }

  private saslFinal(data: Buffer): void {
    if (!this.scram || !this.scramFinalSent || this.scram.verified) {
      throw new ServerAuthError('unexpected AuthenticationSASLFinal message');
    }
    try {
      this.scram.verify(data.toString('utf8'));
    } catch (err) {
      throw new ServerAuthError(`server SCRAM signature did not verify: ${describe(err)}`, { cause: err });
    }
  }
}
