// What the admin console may see and do: a narrow view of the pooler, so
// command handlers stay pure functions of it (and testable without sockets).

import type { Config } from '../../config/types.js';
import type { Engine } from '../../engine/engine.js';
import type { ClientSession } from '../client/session.js';
import type { FleetView } from '../fleet/fleet.js';
import type { PoolEntry } from '../pool/registry.js';
import type { ColumnSpec } from '../protocol/messages/rows.js';

export interface AdminContext {
  readonly version: string;
  readonly startedAt: number;
  config(): Config;
  /** One entry per (pool, user). */
  pools(): PoolEntry[];
  /** Logged-in client sessions (not admin ones). */
  clients(): ClientSession[];
  /** Admin console sessions, listed by SHOW CLIENTS as PgCat lists them. */
  readonly adminClients: Set<AdminClient>;
  /** The model engine (SHOW MODELS, pglynx_engine_* metrics); null before it starts. */
  engine(): Engine | null;
  /** The fleet sharing state through Redis (SHOW FLEET, pglynx_fleet_* metrics); null or absent without redis_url. */
  fleet?(): FleetView | null;
  /** Re-read the config file; resolves with an error message when it was rejected. */
  reload(): Promise<string | null>;
  /** Wait for in-flight transactions, then hold new ones (all pools, or one database / user). */
  pause(database?: string, user?: string): Promise<void>;
  resume(database?: string, user?: string): void;
  /** Graceful shutdown, as SIGINT. */
  shutdown(): void;
}

export type AdminValue = string | number | bigint | null;

/** Who is logged in to the admin console (SHOW CLIENTS). */
export interface AdminClient {
  readonly processId: number;
  readonly database: string;
  readonly user: string;
  readonly applicationName: string;
  readonly connectedAt: number;
}

/** A result set, or just a command tag (RELOAD, PAUSE...). */
export interface AdminReply {
  columns?: ColumnSpec[];
  rows?: AdminValue[][];
  tag: string;
  /** NOTICE sent before the result (e.g. SET accepted and ignored), with an optional DETAIL. */
  notice?: string;
  noticeDetail?: string;
}

/**
 * SQLSTATE system_error: what PgCat answers every refused admin command
 * with (its own test suite expects ruby-pg's PG::SystemError), so scripts
 * written against PgCat's console see the same class of error.
 */
export const ADMIN_REFUSED = '58000';

/** An admin command error, sent as ErrorResponse with its SQLSTATE (and a DETAIL saying what exactly). */
export class AdminError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly detail?: string,
  ) {
    super(message);
  }
}

/** PgCat's words for a command it does not know, and for an unknown SHOW. */
export const UNSUPPORTED = 'Unsupported query against the admin database';
export const UNSUPPORTED_SHOW = 'Unsupported SHOW query against the admin database';

/** Databases that reach the admin console, as in PgCat and PgBouncer. */
export const ADMIN_DATABASES = new Set(['pgcat', 'pgbouncer']);
