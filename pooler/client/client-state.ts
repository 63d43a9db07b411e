// The states of a logged-in client, as PgBouncer's SocketState: one at a
// time, changed only by ClientSession.transition (login lives in login.ts).
//
//   Idle ──send──▶ Active ──all answered, transaction over──▶ Idle
//    │               ▲  └──all answered, transaction open──▶ InTransaction
//    └─no server────▶ Waiting ──server attached──┘            │
//                                                   send ◀────┘
//   any ──end()──▶ Closed
//
// Whichever binding runs the client's statements (one server, or the
// sharded executor's shard links) drives the same states, so timeouts,
// graceful drain, SHOW CLIENTS and wait statistics do not depend on it.

export const ClientState = {
  /** Between transactions: nothing sent, nothing owed. */
  Idle: 0,
  /** Waiting for a server (checkout, the role probe, a shard link): the client's socket is paused. */
  Waiting: 1,
  /** Statements in flight (statement_timeout runs while a Query or Sync is unanswered). */
  Active: 2,
  /** Everything answered inside an open transaction (idle_client_in_transaction_timeout runs). */
  InTransaction: 3,
  /** The client is gone or being let go; nothing more is read. */
  Closed: 4,
} as const;
export type ClientState = (typeof ClientState)[keyof typeof ClientState];

/** PgBouncer's client state in SHOW CLIENTS / SHOW POOLS: linked to a server (or in a transaction), waiting for one, or idle. */
export function clientStateLabel(state: ClientState, holdsServer: boolean): 'active' | 'waiting' | 'idle' {
  if (state === ClientState.Waiting) return 'waiting';
  return holdsServer || state === ClientState.Active || state === ClientState.InTransaction ? 'active' : 'idle';
}
