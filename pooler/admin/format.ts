// Shared shapes of admin console results: column specs, the way times,
// waits and object ids are printed, and which server a pool talks to.

import type { Config } from '../../config/types.js';
import type { Pool } from '../pool/pool.js';
import type { PoolEntry } from '../pools.js';
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
 * object's id in the same hex shape, so a client row and its server row can
 * be matched up (client ids are their BackendKeyData process ids).
 */
export function ptr(id: number): string {
  return `0x${id.toString(16).padStart(8, '0')}`;
}

export const flag = (b: boolean): number => (b ? 1 : 0);

export interface ServedAddress {
  /** PgCat's address name: `<pool>_shard_<n>_primary` (or `_replica_<i>`). */
  name: string;
  /** Host and port as written in the config (an embedded backend stays `pglite:...`). */
  host: string;
  port: number;
  database: string;
}

/**
 * The server a pool's connections go to. This mirrors the choice made in
 * pools.ts poolSettings (shard "0", else the first; its primary, else its
 * first server) until routing across shards and replicas lands.
 */
export function servedAddress(config: Config, entry: PoolEntry): ServedAddress {
  const pc = config.pools[entry.poolName];
  const shardKey = pc?.shards['0'] ? '0' : Object.keys(pc?.shards ?? {})[0];
  const shard = shardKey !== undefined ? pc.shards[shardKey] : undefined;
  const server = shard?.servers.find((s) => s.role === 'primary') ?? shard?.servers[0];
  if (!shard || !server) {
    // The pool outlived its config entry (mid-reload): report what it uses.
    const s = entry.pool.settings.server;
    return { name: `${entry.poolName}_shard_0_primary`, host: s.host, port: s.port, database: s.database };
  }
  const role = server.role === 'primary' ? 'primary' : `replica_${shard.servers.filter((s) => s.role !== 'primary').indexOf(server)}`;
  return { name: `${entry.poolName}_shard_${shardKey}_${role}`, host: server.host, port: server.port, database: shard.database };
}

/**
 * PgBouncer's server states: `idle` in the pool, `active` linked to a
 * client, `tested` checked out with no client (being reset with
 * ROLLBACK / DISCARD ALL, or having session parameters synced).
 */
export function serverState(pool: Pool, conn: ServerConnection): 'active' | 'idle' | 'tested' {
  if (pool.isIdle(conn)) return 'idle';
  return conn.owner ? 'active' : 'tested';
}
