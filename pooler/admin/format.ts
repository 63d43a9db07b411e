// Shared shapes of admin console results: column specs, the way times,
// waits and object ids are printed, and how each server of a pool is named.

import type { Config } from '../../config/types.js';
import type { ClusterMember } from '../pool/cluster.js';
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
 * object's id in PgCat's client_id shape (`0x` and 8 upper-case hex
 * digits), so a server's `link` is its client's `client_id` in SHOW
 * CLIENTS (client ids are their BackendKeyData process ids).
 */
export function ptr(id: number): string {
  return `0x${id.toString(16).toUpperCase().padStart(8, '0')}`;
}

export const flag = (b: boolean): number => (b ? 1 : 0);

/** One server of a (pool, user) cluster, named and labelled as PgCat names its addresses. */
export interface MemberAddress {
  member: ClusterMember;
  /** PgCat's address name: `<pool>_shard_<n>_primary`, or `_replica_<i>` (i counts the shard's replicas). */
  name: string;
  /** Host and port as written in the config (an embedded backend stays `pglite:...`). */
  host: string;
  port: number;
  database: string;
  /** The shard's key in the config ("0", "1", ...). */
  shard: string;
}

/**
 * Every server of a pool entry, shard by shard in config order. Names use
 * the role in effect, so an `auto` server is named by what the probe found
 * (a promoted standby becomes `_primary`).
 */
export function memberAddresses(config: Config, entry: PoolEntry): MemberAddress[] {
  const pc = Object.hasOwn(config.pools, entry.poolName) ? config.pools[entry.poolName] : undefined;
  // pools.ts buildCluster orders shards by their numeric key.
  const keys = pc ? Object.keys(pc.shards).sort((a, b) => Number(a) - Number(b)) : [];
  return entry.cluster.shards.flatMap((servers, s) => {
    const shard = keys[s] ?? String(s);
    let replicas = 0;
    return servers.map((member) => {
      const resolved = member.pool.settings.server;
      // Missing only while a pool outlives its config entry (mid-reload): report what it uses.
      const configured = pc?.shards[shard]?.servers[member.index];
      const suffix = member.role === 'primary' ? 'primary' : `replica_${replicas++}`;
      return {
        member,
        name: `${entry.poolName}_shard_${shard}_${suffix}`,
        host: configured?.host ?? resolved.host,
        port: configured?.port ?? resolved.port,
        database: resolved.database,
        shard,
      };
    });
  });
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
