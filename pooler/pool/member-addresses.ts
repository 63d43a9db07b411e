// How each server of a pool entry is named and labelled, as PgCat names its
// addresses: read by the admin console (SHOW SERVERS, SHOW STATS, BAN) and
// the Prometheus exporter alike.

import type { Config } from '../../config/types.js';
import type { ClusterMember } from './cluster.js';
import type { PoolEntry } from './registry.js';

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
  // The registry orders shards by their numeric key.
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
