// The state a client session shares with its parts (batch walk, server
// attach, direct binding, server loss, replies, sharded binding). Types
// only: the parts import this, never session.ts, so there is no cycle.

import type net from 'node:net';
import type { Logger } from 'pino';
import type { Checkout } from '../pool/checkout.js';
import type { Cluster, ClusterMember } from '../pool/cluster.js';
import type { Pool } from '../pool/pool.js';
import type { DescribeReplies } from '../pgml/describe-replies.js';
import type { ClientStatements } from '../prepared/statements.js';
import type { ShardState } from '../sharding/shard-state.js';
import type { RoutingState } from '../router/route.js';
import type { ShardedExecutor } from '../sharding/executor.js';
import type { ClientCounters } from '../stats/client-counters.js';
import type { ClientState } from './client-state.js';
import type { ClientClocks } from './janitor.js';
import type { ClientIdentity, SessionSettings } from './session-settings.js';
import type { StrayCancelGuard } from './stray-cancel-guard.js';
import type { SessionSets } from './session-sets.js';
import type { ClientListens } from './listens.js';

export interface SessionCore {
  readonly socket: net.Socket;
  readonly log: Logger;
  readonly identity: ClientIdentity;
  /** Reported parameters the client expects its server to have (application_name, TimeZone...). */
  readonly params: Map<string, string>;
  /** Bumped whenever `params` changes (param-match.ts). */
  readonly paramsVersion: number;
  readonly processId: number;
  /** PgCat's SET SERVER ROLE / SET PRIMARY READS, and statement kinds. */
  readonly routing: RoutingState;
  /** SET SHARD TO / SET SHARDING KEY TO. */
  readonly shardState: ShardState;
  readonly counters: ClientCounters;
  readonly clocks: ClientClocks;
  /** The server the direct binding holds (one at a time). */
  readonly checkout: Checkout;
  /** Server replies to edit before the client sees them: pgml Describes, errors raised for the pooler. */
  readonly replyEdits: DescribeReplies;
  readonly cluster: Cluster;
  /** The pool of the server in use, or last used (one member of the cluster). */
  pool: Pool;
  readonly settings: SessionSettings;
  readonly clientState: ClientState;
  readonly closed: boolean;
  readonly isSessionMode: boolean;

  // The direct binding (one server for the transaction or the session).
  /** The cluster member the attached server belongs to. */
  member: ClusterMember | null;
  /** Bytes framed while no server was attached, and their Query/Sync count. */
  queued: Buffer[];
  queuedSyncs: number;
  /** An extended-protocol batch is open (Parse/Bind/... sent, no Sync yet). */
  unsynced: boolean;
  /** Dirty bits (server/reset.ts) seen before a server was attached. */
  pendingDirty: number;
  /** Members that failed the batch being placed (not tried again for it). */
  excluded: Set<ClusterMember> | null;
  /** An autocommit read in flight that may be retried elsewhere if its server dies before answering. */
  retryable: { bytes: Buffer; syncs: number } | null;
  repliedSinceSend: boolean;
  /** LISTENs answered by the pooler in transaction mode, and notifications held for it (listens.ts). */
  readonly listens: ClientListens;
  /** SET / RESET the client keeps across transactions (session-sets.ts). */
  readonly sets: SessionSets;
  /** Replies of a pipelined unit that a cancel meant for another may hit (stray-cancel.ts). */
  readonly stray: StrayCancelGuard;
  /** PgCat's checkout_failure_limit counts failures over the client's life. */
  checkoutFailures: number;

  // The multi-shard binding (a sharded pool).
  readonly sharded: ShardedExecutor | null;

  /** The one place the client's state changes (and with it, reading from its socket). */
  transition(next: ClientState): void;
  /** The transaction in flight is gone (server lost): its time is not counted in SHOW STATS. */
  forgetTransaction(): void;
  /** The server's socket is full: stop reading the client until it drains. */
  waitForServerDrain(): void;
  /** The client's named statements (shared prepared statements), made on first use. */
  clientStatements(): ClientStatements;
  write(bytes: Buffer): void;
  terminate(code: string, message: string): void;
  end(): void;
}
