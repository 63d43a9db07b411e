// Shared shapes of admin console results: column specs and the way times,
// waits and object ids are printed.

import type { Pool } from '../pool/pool.js';
import type { ServerConnection } from '../server/connection.js';
import type { ColumnSpec } from '../protocol/messages/rows.js';
import type { AdminReply, AdminValue } from './context.js';

/** Counters are typed int8 so drivers hand back numbers; names and states are text. */
export const int = (name: string): ColumnSpec => ({ name, type: 'int' });
export const text = (name: string): ColumnSpec => ({ name, type: 'text' });

/** A SHOW result: the tag is plain SHOW, as PgBouncer and PgCat send. */
export function table(columns: ColumnSpec[], rows: AdminValue[][]): AdminReply {
  return { columns, rows, tag: 'SHOW' };
}

/** PgBouncer prints times as `YYYY-MM-DD HH:MM:SS`; we add the zone, always UTC, so logs line up. */
export function timestamp(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** A wait in ms as PgBouncer's pair of columns: whole seconds, then the microseconds left over. */
export function splitWait(ms: number): [number, number] {
  const us = Math.max(0, Math.round(ms * 1000));
  return [Math.floor(us / 1_000_000), us % 1_000_000];
}

/**
 * PgBouncer's `ptr` / `link` columns hold object addresses; ours hold the
 * object's id in PgCat's client_id shape (`0x` and 8 upper-case hex
 * digits), so a server's `link` is its client's `client_id` in SHOW
 * CLIENTS (client ids are their BackendKeyData process ids).
 */
export function ptr(id: number): string {
  return `0x${id.toString(16).toUpperCase().padStart(8, '0')}`;
}

export const flag = (b: boolean): number => (b ? 1 : 0);

/**
 * PgBouncer's server states: `idle` in the pool, `active` linked to a
 * client, `tested` checked out with no client (being reset with
 * ROLLBACK / DISCARD ALL, or having session parameters synced).
 */
export function serverState(pool: Pool, conn: ServerConnection): 'active' | 'idle' | 'tested' {
  if (pool.isIdle(conn)) return 'idle';
  return conn.owner ? 'active' : 'tested';
}
