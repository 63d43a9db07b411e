// The SET / RESET a transaction-mode client has made, kept across its
// transactions and replayed on whichever server it borrows (PgDog does the
// same; PgCat loses them at the end of each transaction). A change counts
// once it has taken effect: its unit came back to idle without an error
// (a SET inside a transaction block, once that commits). Until then it is
// pending; when it cannot be known what took effect (an error in the same
// unit or transaction), the server gets the check-in reset instead and
// the client keeps what it had.

import { TxStatus } from '../protocol/codes.js';
import type { SetOp } from '../router/session-sets.js';
import { Dirty } from '../server/reset.js';
import type { ServerConnection } from '../server/connection.js';
import { quoteIdent } from '../router/sql-quote.js';

export class SessionSets {
  /** Parameter name -> the SQL text of its value, as the client last set it. */
  readonly values = new Map<string, string>();
  private pending: SetOp[] = [];
  /** The server's error count when the pending changes were sent (-1: not sent yet). */
  private errorsBase = -1;

  /** A text of SET / RESET statements goes to the server. */
  expect(ops: readonly SetOp[]): void {
    for (const op of ops) this.pending.push(op);
  }

  /** The unit carrying pending changes is sent to `server`. */
  sentOn(server: ServerConnection): void {
    if (this.pending.length > 0 && this.errorsBase < 0) this.errorsBase = server.errorsSeen;
  }

  /** The client's unit is done on `server` (every reply in): keep what took effect. */
  settle(server: ServerConnection): void {
    if (this.pending.length === 0) return;
    const ops = this.pending;
    // Kept only from autocommit units that came back without an error. Inside a transaction block the
    // SET lives or dies with a COMMIT or ROLLBACK the pooler does not read: the check-in reset undoes it, as PgCat's.
    const clean = server.txStatus === TxStatus.Idle && server.errorsSeen === this.errorsBase;
    this.pending = [];
    this.errorsBase = -1;
    if (!clean) {
      server.markDirty(Dirty.Params);
      return;
    }
    for (const op of ops) {
      apply(this.values, op);
      apply(server.sessionSets, op);
    }
  }

  /** The server was lost under the unit: nothing pending is known to have taken effect. */
  forget(): void {
    this.pending = [];
    this.errorsBase = -1;
  }
}

function apply(values: Map<string, string>, op: SetOp): void {
  if ('all' in op) values.clear();
  else if (op.value === null) values.delete(op.name);
  else values.set(op.name, op.value);
}

/** Whether `server` has exactly the client's kept parameters. */
export function setsMatch(client: ReadonlyMap<string, string>, server: ReadonlyMap<string, string>): boolean {
  if (client.size !== server.size) return false;
  for (const [name, value] of client) if (server.get(name) !== value) return false;
  return true;
}

/** The statements that give `server` the client's kept parameters (and reset the ones a previous client left), or ''. */
export function setsSyncQuery(client: ReadonlyMap<string, string>, server: ReadonlyMap<string, string>): string {
  let sql = '';
  for (const name of server.keys()) if (!client.has(name)) sql += `RESET ${guc(name)};`;
  for (const [name, value] of client) if (server.get(name) !== value) sql += `SET ${guc(name)} = ${value};`;
  return sql;
}

/** A parameter name as SQL: bare when it reads back the same, else quoted. */
function guc(name: string): string {
  return /^[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)?$/.test(name) ? name : quoteIdent(name);
}
