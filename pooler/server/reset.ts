// Undoing what a client left on a server connection in transaction mode
// (PgCat's cleanup_server_connections), narrowly: PgCat sends RESET ROLE;
// RESET ALL after SET and DEALLOCATE ALL after PREPARE. A DISCARD ALL after
// a mere SET would also drop the pooler's shared prepared statements, which
// every later client would then prepare again.

/** Kinds of session state a client left on a server connection (bits). */
export const Dirty = {
  /** SET / RESET of run-time parameters, SET ROLE. */
  Params: 1,
  /** PREPARE, or a named protocol-level Parse that reached the server under the client's name. */
  Statements: 2,
  /** DECLARE ... WITH HOLD. */
  Cursors: 4,
  Listen: 8,
  /** Temporary tables. */
  Temp: 16,
  /** Anything only DISCARD ALL undoes (SET SESSION AUTHORIZATION, LOAD...). */
  Other: 32,
} as const;

/** The statement that undoes `dirt`, and whether it drops the server's prepared statements. */
export function resetQuery(dirt: number): { sql: string; dropsStatements: boolean } {
  if (dirt & Dirty.Other) return { sql: 'DISCARD ALL', dropsStatements: true };
  let sql = '';
  if (dirt & Dirty.Params) sql += 'RESET ROLE; RESET ALL; ';
  if (dirt & Dirty.Statements) sql += 'DEALLOCATE ALL; ';
  if (dirt & Dirty.Cursors) sql += 'CLOSE ALL; ';
  if (dirt & Dirty.Listen) sql += 'UNLISTEN *; ';
  if (dirt & Dirty.Temp) sql += 'DISCARD TEMP; ';
  return { sql: sql.trimEnd(), dropsStatements: (dirt & Dirty.Statements) !== 0 };
}
