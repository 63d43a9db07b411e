// Config pieces for a pool in front of harness Postgres clusters, for
// configToml (pglynx.ts): the shard every test writes the same way.

import type { ConfigShard } from './pglynx.js';

/** Anything with the port a harness cluster listens on (a PgCluster), or the port. */
export type ClusterPort = number | { port: number };

const portOf = (c: ClusterPort): number => (typeof c === 'number' ? c : c.port);

/** A shard of `database` on one primary at 127.0.0.1 (a harness cluster), and its replicas if any. */
export function primaryShard(primary: ClusterPort, database = 'postgres', replicas: ClusterPort[] = []): ConfigShard {
  return {
    database,
    servers: [['127.0.0.1', portOf(primary), 'primary'], ...replicas.map((r): [string, number, 'replica'] => ['127.0.0.1', portOf(r), 'replica'])],
  };
}
