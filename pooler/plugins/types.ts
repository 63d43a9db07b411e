// What a query plugin sees and may decide (PgCat's plugins: intercept,
// table_access, query_logger). Plugins run on the client's simple-protocol
// Query text, and on the statement text of extended-protocol Parse messages
// (checksParse), before it is routed; they must be fast and synchronous.

export interface QueryContext {
  user: string;
  database: string;
}

/** Answer the query from the pooler: rows already encoded (RowDescription, DataRows, CommandComplete). */
export interface ReplyVerdict {
  kind: 'reply';
  messages: Buffer;
}

/** Refuse the query with an error, as Postgres would. */
export interface ErrorVerdict {
  kind: 'error';
  code: string;
  message: string;
}

export type PluginVerdict = ReplyVerdict | ErrorVerdict | null;

export interface QueryPlugin {
  readonly name: string;
  /** Also run on each Parse's statement text (a Parse can only be refused there, not answered). */
  readonly checksParse: boolean;
  onQuery(sql: string, ctx: QueryContext): PluginVerdict;
}
