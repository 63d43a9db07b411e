// For tests: typed access to node-postgres's SCRAM client (pg/lib/crypto/sasl.js, the
// code pg.Client runs) and to pg-protocol's serializer, both CommonJS.
// require() is used on purpose: pg-protocol's ESM wrapper (esm/index.js in a
// package without "type": "module") breaks under tap's TypeScript loader, and
// pg's crypto subpath ships no typings.

import { createRequire } from 'node:module';

/** The session object sasl.js mutates between steps. */
export interface PgSaslSession {
  mechanism: string;
  clientNonce: string;
  response: string;
  message: string;
  serverSignature?: string;
}

/** The part of pg/lib/crypto/sasl.js PgLynx uses. */
export interface PgSasl {
  startSession(mechanisms: string[], stream?: unknown, scramMaxIterations?: number): PgSaslSession;
  continueSession(session: PgSaslSession, password: string, serverData: string, stream?: unknown): Promise<void>;
  finalizeSession(session: PgSaslSession, serverData: string): void;
}

const require = createRequire(import.meta.url);
export const pgSasl = require('pg/lib/crypto/sasl.js') as PgSasl;
export const { serialize } = require('pg-protocol') as typeof import('pg-protocol');
