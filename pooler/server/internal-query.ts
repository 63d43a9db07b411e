// Queries a server connection runs for the pooler itself (parameter sync,
// health checks, auth_query, the role probe): their rows and errors, which
// never reach a client.

import { parseErrorFields } from '../protocol/messages/error.js';
import { parseDataRow } from '../protocol/messages/data-row.js';

/** Raised by an internal query the server answered with an ErrorResponse. */
export class ServerQueryError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** One row of an internal query: each column as text, null for NULL. */
export type TextRow = (string | null)[];

/** One internal query in flight: what its replies add up to until its ReadyForQuery. */
export class InternalQuery {
  /** The first ErrorResponse (the query fails with it once answered). */
  private error: ServerQueryError | null = null;

  constructor(
    private readonly resolve: (rows: TextRow[] | null) => void,
    /** Also called directly when the connection closes under it. */
    readonly reject: (e: Error) => void,
    /** Collects DataRows (queryRows); null for a plain query. */
    readonly rows: TextRow[] | null,
  ) {}

  /** A DataRow of its result (watched only when rows are wanted). */
  onRow(body: Buffer): void {
    this.rows?.push(parseDataRow(body).map((cell) => (cell === null ? null : cell.toString('utf8'))));
  }

  /** An ErrorResponse body. */
  onError(body: Buffer): void {
    if (this.error) return;
    const f = parseErrorFields(body);
    this.error = new ServerQueryError(f.get('C') ?? 'XX000', f.get('M') ?? 'unknown server error');
  }

  /** Its ReadyForQuery arrived. */
  settle(): void {
    if (this.error) this.reject(this.error);
    else this.resolve(this.rows);
  }
}
