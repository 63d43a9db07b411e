// A pgml statement the pooler cannot serve: the SQLSTATE and message the client gets.

export class PgmlError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}
