// Queries a server connection runs for the pooler itself (parameter sync,
// health checks, auth_query, the role probe): their rows and errors, which
// never reach a client.

/** Raised by an internal query the server answered with an ErrorResponse. */
export class ServerQueryError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** One row of an internal query: each column as text, null for NULL. */
export type TextRow = (string | null)[];

export interface InternalQuery {
  resolve(rows: TextRow[] | null): void;
  reject(e: Error): void;
  error: ServerQueryError | null;
  /** Collects DataRows (queryRows); null for a plain query. */
  rows: TextRow[] | null;
}
