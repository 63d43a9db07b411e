// What a client session is told at login and on reload: who it is and the
// settings of its pool.

import type { QueryPlugin } from '../plugins/types.js';
import type { EmbeddingProvider } from '../pgml/rewrite.js';
import type { RoutingSettings } from '../router/route.js';
import type { ShardingContext } from '../sharding/context.js';

/** Who the client is (SHOW CLIENTS, reload re-pointing). */
export interface ClientIdentity {
  database: string;
  user: string;
  applicationName: string;
  remoteAddress: string;
  remotePort: number;
}

export interface SessionSettings {
  idleInTransactionTimeout: number;
  statementTimeout: number;
  /** Query plugins of the pool (empty: the Query text is never decoded). */
  plugins: QueryPlugin[];
  /** The model engine behind pgml.embed, when models are configured. */
  pgml: EmbeddingProvider | null;
  /** Role routing (default_role, query parser, primary reads). */
  routing: RoutingSettings;
  /** Health check of a connection idle longer than delayMs before reuse (PgCat's healthcheck_*). */
  healthcheck: { delayMs: number; timeoutMs: number };
  /** Shard routing of a pool with several shards (null: one shard). */
  sharding: ShardingContext | null;
  /** PgCat's checkout_failure_limit: disconnect after this many failed checkouts (0: never). */
  checkoutFailureLimit: number;
  /** general.max_message_size: the framer refuses a longer message at its header. */
  maxMessageSize: number;
}
