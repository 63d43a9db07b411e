// The multi-shard binding: a sharded pool's client runs its units on the
// sharded executor (sharding/executor.ts), which reports back the same
// state changes the direct binding makes, so statement_timeout,
// idle_client_in_transaction_timeout, graceful drain, SHOW CLIENTS and
// wait statistics apply as they do with one server.

import { TxStatus } from '../protocol/codes.js';
import { ShardedExecutor, type ShardedClient } from '../sharding/executor.js';
import { ClientState } from './client-state.js';
import { countCheckoutFailure } from './attach.js';
import type { SessionCore } from './session-core.js';

/** The executor for `s`, writing its replies with `write` (the session's reply path). */
export function shardedExecutor(s: SessionCore, write: (bytes: Buffer) => void): ShardedExecutor {
  const client: ShardedClient = {
    get cluster() {
      return s.cluster;
    },
    get sharding() {
      return s.settings.sharding!;
    },
    shardState: s.shardState,
    params: s.params,
    get statements() {
      return s.pool.sharesPreparedStatements ? s.clientStatements() : null;
    },
    role: (bytes) => s.routing.route(bytes, s.settings.routing),
    write,
    terminate: (code, message) => s.terminate(code, message),
    unitStarted: () => {
      s.counters.queries += 1;
      if (s.clocks.statementSince === 0 && s.settings.statementTimeout > 0) s.clocks.statementSince = Date.now();
      s.clocks.idleInTransactionSince = 0;
      s.transition(ClientState.Active);
    },
    waiting: (waiting) => s.transition(waiting ? ClientState.Waiting : ClientState.Active),
    unitsDone: (txStatus) => {
      s.clocks.statementSince = 0;
      if (txStatus === TxStatus.Idle) {
        s.transition(ClientState.Idle);
        return;
      }
      if (s.settings.idleInTransactionTimeout > 0) s.clocks.idleInTransactionSince = Date.now();
      s.transition(ClientState.InTransaction);
    },
    // The direct path's rule (attach.ts), the same count: one per unit that found no server.
    checkoutFailed: () => countCheckoutFailure(s),
  };
  return new ShardedExecutor(client, s.log);
}
