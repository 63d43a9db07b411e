// One client's LISTENs in transaction mode (pool/notify-hub.ts): the pooler
// answers a Query made only of LISTEN / UNLISTEN itself, once the pool's
// LISTEN connection listens too, and passes notifications on when the
// client is idle (held meanwhile, as Postgres holds them until a
// transaction ends).

import { SqlState, TxStatus } from '../protocol/codes.js';
import { errorResponse } from '../protocol/messages/error.js';
import { commandComplete } from '../protocol/messages/rows.js';
import { readyForQuery } from '../protocol/messages/status.js';
import type { ListenOp } from '../router/listen-statements.js';
import type { NotificationListener, NotifyHub } from '../pool/notify-hub.js';
import { ClientState } from './client-state.js';

/** What a client's listens need of its session (an interface: session-core.ts imports this file's types). */
export interface ListeningClient {
  readonly closed: boolean;
  readonly clientState: ClientState;
  write(bytes: Buffer): void;
  transition(next: ClientState): void;
}

/** Notifications held for a busy client at most; older ones are dropped past it (Postgres's queue is bounded too). */
const MAX_HELD = 10_000;

export class ClientListens implements NotificationListener {
  /** The hub the client listens through (its pool's primary), once it has. */
  private hub: NotifyHub | null = null;
  private held: Buffer[] = [];

  constructor(
    private readonly s: ListeningClient,
    /** Run what the client sent while the pooler answered (queued batches). */
    private readonly resume: () => void,
  ) {}

  /** Answer `ops` (the client is between transactions): the reply goes once the hub listens. */
  answer(hub: NotifyHub, ops: readonly ListenOp[]): void {
    const s = this.s;
    this.hub = hub;
    // Later messages queue behind the answer, in order.
    s.transition(ClientState.Waiting);
    let done: Promise<void> = Promise.resolve();
    const replies: Buffer[] = [];
    for (const op of ops) {
      // The hub runs them in order: the last one done means all are.
      done = 'listen' in op ? hub.listen(op.listen, this) : hub.unlisten(op.unlisten, this);
      replies.push(commandComplete('listen' in op ? 'LISTEN' : 'UNLISTEN'));
    }
    const reply = (body: Buffer): void => {
      if (s.closed) return;
      s.write(Buffer.concat([body, readyForQuery(TxStatus.Idle)]));
      s.transition(ClientState.Idle);
      this.resume();
    };
    done.then(
      () => reply(Buffer.concat(replies)),
      (err: Error) => reply(errorResponse(SqlState.ConnectionFailure, `LISTEN: the pooler's listening connection failed: ${err.message}`)),
    );
  }

  deliverNotification(message: Buffer): void {
    const s = this.s;
    if (s.closed) return;
    if (s.clientState === ClientState.Idle) s.write(message);
    else {
      if (this.held.length >= MAX_HELD) this.held.shift();
      this.held.push(message);
    }
  }

  /** The client is idle again: what was held goes now. */
  flush(): void {
    if (this.held.length === 0 || this.s.closed) return;
    const held = this.held;
    this.held = [];
    this.s.write(held.length === 1 ? held[0] : Buffer.concat(held));
  }

  /** The client left: it listens no more. */
  leave(): void {
    this.held = [];
    void this.hub?.unlisten(null, this).catch(() => undefined);
    this.hub = null;
  }
}
