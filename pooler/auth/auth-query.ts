// auth_query passthrough (PgCat's auth_passthrough.rs, PgBouncer's
// auth_query): a pool with `auth_query` serves users whose passwords the
// config does not hold. At login the pooler connects to the pool's server
// as auth_query_user, runs auth_query for the client's user name, and
// authenticates the client against the stored secret it gets back:
//   "md5<hex>"          -> MD5 challenge (verifyMd5Response takes the hash)
//   "SCRAM-SHA-256$..." -> SCRAM (ScramServerSession takes the verifier)
// Once the client is in, its server connections log in as that same user
// with what the exchange left us (see passthrough-credentials.ts).

import net from 'node:net';
import type { PoolConfig } from '../../config/types.js';
import type { LoginEntry } from '../client/login.js';
import { mockEntry } from './mock-auth.js';
import { Backend } from '../protocol/codes.js';
import { MessageFramer } from '../protocol/framer.js';
import { parseErrorFields } from '../protocol/messages/error.js';
import type { ServerOptions } from '../server/connection.js';
import { login } from '../server/login.js';
import { openServerSocket } from '../server/address.js';
import { negotiateServerTls } from '../tls/server.js';
import { isMd5Secret } from './md5.js';
import { parseScramSecret, type ScramSecret } from './scram-server.js';
import { encodeScramKeys } from './passthrough-credentials.js';
import { authQuerySql } from './auth-query-sql.js';
import { serialize } from './pg-sasl.js';
import type { AuthQueryCache } from './auth-query-cache.js';

/** What the server stores for a role, in a form the login can check. */
export type StoredSecret = { kind: 'md5'; hash: string } | { kind: 'scram'; secret: ScramSecret };

/** Where and how to run a pool's auth_query: the pool's server, logged into as auth_query_user. */
export interface AuthQueryTarget {
  server: ServerOptions;
  query: string;
}

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
 * logged in and encrypted exactly like the pool's own server connections.
 * Resolves null when the server has no usable secret for the user (no row,
 * NULL password, a row for another name); rejects when the query cannot run.
 */
export async function fetchSecret(target: AuthQueryTarget, user: string): Promise<StoredSecret | null> {
  const { server } = target;
  const plain = await openServerSocket(server.host, server.port, server.connectTimeout);
  let socket = plain;
  try {
    if (server.tls?.enabled) socket = await negotiateServerTls(plain, server.host, server.port, server.tls, server.connectTimeout);
    // A late error (reset after Terminate) must not go unhandled.
    socket.on('error', () => {});
    await login(socket, server, server.connectTimeout);
    const row = await firstRow(socket, authQuerySql(target.query, user), server.connectTimeout);
    if (!row || row.length === 0) return null;
    // PgCat's shape is (user name, hash) and it checks the name; a single
    // column is taken as the hash.
    if (row.length >= 2 && row[0] !== user) return null;
    const text = row[row.length >= 2 ? 1 : 0];
    return typeof text === 'string' ? parseStoredSecret(text) : null;
  } finally {
    if (!socket.destroyed) socket.end(serialize.end());
    plain.on('error', () => {});
  }
}


/** Runs one simple Query; resolves with its first row's text values (null for NULL), or null without rows. */
function firstRow(socket: net.Socket, sql: string, timeoutMs: number): Promise<(string | null)[] | null> {
  return new Promise((resolve, reject) => {
    const framer = new MessageFramer();
    let row: (string | null)[] | null = null;
    let error: Error | null = null;
    const done = (err: Error | null): void => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('close', onClose);
      if (err) reject(err);
      else resolve(row);
    };
    const timer = setTimeout(() => done(new Error(`auth_query timed out after ${timeoutMs} ms`)), timeoutMs);
    const onClose = (): void => done(new Error('server closed the connection while running auth_query'));
    const onData = (chunk: Buffer): void => {
      let batch;
      try {
        batch = framer.push(chunk);
      } catch (err) {
        done(err as Error);
        return;
      }
      const { buffer, messages } = batch;
      for (let i = 0; i < messages.length; i += 3) {
        const body = buffer.subarray(messages[i + 1] + 5, messages[i + 2]);
        switch (messages[i]) {
          case Backend.DataRow:
            row ??= parseDataRow(body);
            break;
          case Backend.ErrorResponse:
            error ??= new Error(`auth_query failed: ${parseErrorFields(body).get('M') ?? 'server error'}`);
            break;
          case Backend.ReadyForQuery:
            done(error);
            return;
        }
      }
    };
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.write(serialize.query(sql));
  });
}

/** DataRow: int16 column count, then per column int32 length (-1 = NULL) and the bytes. */
function parseDataRow(body: Buffer): (string | null)[] {
  const values: (string | null)[] = [];
  let pos = 2;
  for (let n = body.readInt16BE(0); n > 0; n--) {
    const len = body.readInt32BE(pos);
    pos += 4;
    values.push(len < 0 ? null : body.toString('utf8', pos, pos + len));
    if (len > 0) pos += len;
  }
  return values;
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
