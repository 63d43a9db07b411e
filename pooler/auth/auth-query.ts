// auth_query passthrough (PgCat's auth_passthrough.rs, PgBouncer's
// auth_query): a pool with `auth_query` serves users whose passwords the
// config does not hold. At login the pooler connects to the pool's server
// as auth_query_user, runs auth_query for the client's user name, and
// authenticates the client against the stored secret it gets back:
//   "md5<hex>"          -> MD5 challenge (verifyMd5Response takes the hash)
//   "SCRAM-SHA-256$..." -> SCRAM (ScramServerSession takes the verifier)
// Once the client is in, its server connections log in as that same user
// with what the exchange left us (see passthrough-credentials.ts).

import type { PoolConfig } from '../../config/types.js';
import type { LoginEntry } from './login-entry.js';
import { mockEntry } from './mock-auth.js';
import { ServerConnection } from '../server/connection.js';
import { isMd5Secret } from './md5.js';
import { parseScramSecret } from './scram-server.js';
import { encodeScramKeys } from './passthrough-credentials.js';
import { authQuerySql } from './auth-query-sql.js';
import type { AuthQueryCache } from './auth-query-cache.js';
import type { AuthQueryTarget, StoredSecret } from './auth-query-types.js';

export type { AuthQueryTarget, StoredSecret } from './auth-query-types.js';

/** A pool whose auth_query settings are complete (config/load.ts requires all three together). */
export function hasAuthQuery(pc: PoolConfig): boolean {
  return pc.auth_query !== null && pc.auth_query_user !== null && pc.auth_query_password !== null;
}

/** Turns a stored password into a StoredSecret; null for anything else (plaintext, garbage). */
export function parseStoredSecret(text: string): StoredSecret | null {
  if (isMd5Secret(text)) return { kind: 'md5', hash: text };
  const secret = parseScramSecret(text);
  return secret ? { kind: 'scram', secret } : null;
}

/**
 * Runs the auth_query for `user` on a fresh connection (as PgCat does),
 * opened like the pool's own server connections (server_tls, the DNS cache,
 * connect_timeout) and logged in as auth_query_user. Resolves null when the
 * server has no usable secret for the user (no row, NULL password, a row for
 * another name); rejects when the query cannot run or does not answer within
 * connect_timeout.
 */
export async function fetchSecret(target: AuthQueryTarget, user: string): Promise<StoredSecret | null> {
  const { server } = target;
  // A connection of its own: no mirrors, no keepalive (it lives for one query).
  const conn = await ServerConnection.connect({ ...server, mirrors: undefined, keepAliveIdleMs: 0 });
  const timer = setTimeout(() => conn.close(`auth_query timed out after ${server.connectTimeout} ms`), server.connectTimeout);
  try {
    const rows = await conn.queryRows(authQuerySql(target.query, user)).catch((err: Error) => {
      throw new Error(`auth_query failed: ${err.message}`);
    });
    const row = rows[0];
    if (!row || row.length === 0) return null;
    // PgCat's shape is (user name, hash) and it checks the name; a single
    // column is taken as the hash.
    if (row.length >= 2 && row[0] !== user) return null;
    const text = row[row.length >= 2 ? 1 : 0];
    return typeof text === 'string' ? parseStoredSecret(text) : null;
  } finally {
    clearTimeout(timer);
    conn.close('auth_query done');
  }
}

/**
 * A login entry for a user the server does not know: it still gets a
 * challenge of the kind the pool's known users get, which no answer passes,
 * so the reply (28P01) does not tell which user names exist.
 */
export function decoyEntry(kind: StoredSecret['kind'], reason: string): LoginEntry {
  return mockEntry(kind === 'scram' ? 'scram-sha-256' : 'md5', reason);
}

/**
 * The login entry for a stored secret. `useCredential` gets the server
 * password for the pool once the client proved its password: the md5 hash,
 * or the SCRAM keys recovered from the client's proof.
 */
export function secretEntry(stored: StoredSecret, useCredential: (credential: string) => void): LoginEntry {
  if (stored.kind === 'md5') {
    return { password: stored.hash, scram: null, authMethod: 'md5', onAuthenticated: () => useCredential(stored.hash) };
  }
  const { secret } = stored;
  return {
    password: null,
    scram: secret,
    authMethod: 'scram-sha-256',
    onAuthenticated: (clientKey) => {
      if (clientKey) useCredential(encodeScramKeys({ iterations: secret.iterations, salt: secret.salt, clientKey, serverKey: secret.serverKey }));
    },
  };
}

/**
 * The login entry of an auth_query user: the stored secret (or a decoy when
 * the server has none), with `refresh` to fetch it once more when the
 * client's password does not match, as PgCat refetches its hash: the
 * password may have changed on the server, or the role been created, since
 * the secret was cached.
 */
export function authQueryEntry(
  cache: AuthQueryCache,
  target: AuthQueryTarget | null,
  database: string,
  user: string,
  useCredential: (credential: string) => void,
): Promise<LoginEntry> {
  const entryFor = (stored: StoredSecret | null): LoginEntry =>
    stored ? secretEntry(stored, useCredential) : decoyEntry(cache.decoyKind(database), 'auth_query found no secret for the user');
  if (!target) return Promise.resolve(decoyEntry(cache.decoyKind(database), 'the pool has no auth_query'));
  return cache.lookup(target, database, user).then((stored) => ({
    ...entryFor(stored),
    refresh: async () => entryFor(await cache.refresh(target, database, user)),
  }));
}
