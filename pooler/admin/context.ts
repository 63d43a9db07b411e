// What the admin console may see and do: a narrow view of the pooler, so
// command handlers stay pure functions of it (and testable without sockets).

import type { Config } from '../../config/types.js';
import type { Engine } from '../../engine/engine.js';
import type { ClientSession } from '../client/session.js';
import type { PoolEntry } from '../pools.js';
import type { ColumnSpec } from '../protocol/messages/rows.js';

export interface AdminContext {
  readonly version: string;
  readonly startedAt: number;
  config(): Config;
  /** One entry per (pool, user). */
  pools(): PoolEntry[];
  /** Logged-in client sessions (not admin ones). */
  clients(): ClientSession[];
  /** The model engine (SHOW MODELS, pglynx_engine_* metrics); null before it starts. */
  engine(): Engine | null;
  /** Re-read the config file; resolves with an error message when it was rejected. */
  reload(): Promise<string | null>;
  /** Wait for in-flight transactions, then hold new ones (all pools, or one database / user). */
  pause(database?: string, user?: string): Promise<void>;
  resume(database?: string, user?: string): void;
  /** Graceful shutdown, as SIGINT. */
  shutdown(): void;
}

export type AdminValue = string | number | bigint | null;

/** A result set, or just a command tag (RELOAD, PAUSE...). */
export interface AdminReply {
  columns?: ColumnSpec[];
  rows?: AdminValue[][];
  tag: string;
  /** NOTICE sent before the result (e.g. SET accepted and ignored). */
  notice?: string;
}

/** An admin command error, sent as ErrorResponse with its SQLSTATE. */
export class AdminError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** Databases that reach the admin console, as in PgCat and PgBouncer. */
export const ADMIN_DATABASES = new Set(['pgcat', 'pgbouncer']);
