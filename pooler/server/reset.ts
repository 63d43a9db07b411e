// Undoing what a client left on a server connection in transaction mode
// (PgCat's cleanup_server_connections), narrowly: PgCat sends RESET ROLE;
// RESET ALL after SET and DEALLOCATE ALL after PREPARE. A DISCARD ALL after
// a mere SET would also drop the pooler's shared prepared statements, which
// every later client would then prepare again.

/** Kinds of session state a client left on a server connection (bits). */
export const Dirty = {
  /** SET / RESET of run-time parameters, SET ROLE, set_config(..., false). */
  Params: 1,
  /** PREPARE, or a named protocol-level Parse that reached the server under the client's name. */
  Statements: 2,
  /** DECLARE ... WITH HOLD. */
  Cursors: 4,
  Listen: 8,
  /** Temporary tables, views, sequences, functions (pg_temp). */
  Temp: 16,
  /**
   * Anything only DISCARD ALL undoes (SET SESSION AUTHORIZATION, LOAD), or
   * that cannot be seen (a DO block, a fast-path FunctionCall): the full reset.
   */
  Other: 32,
  /** Session-level advisory locks (pg_advisory_lock, pg_try_advisory_lock...). */
  Advisory: 64,
  /** A sequence's currval / lastval (nextval, setval). */
  Sequences: 128,
} as const;

/** Every bit: the reset for server_reset_query_always. */
export const ALL_DIRTY = 255;

/** The statement that undoes `dirt`, and whether it drops the server's prepared statements. */
export function resetQuery(dirt: number): { sql: string; dropsStatements: boolean } {
  // DISCARD ALL is CLOSE ALL, SET SESSION AUTHORIZATION DEFAULT, RESET ALL,
  // DEALLOCATE ALL, UNLISTEN *, pg_advisory_unlock_all(), DISCARD PLANS /
  // TEMP / SEQUENCES; RESET ROLE first since RESET ALL leaves the role.
  if (dirt & Dirty.Other) return { sql: 'RESET ROLE; DISCARD ALL', dropsStatements: true };
  let sql = '';
  if (dirt & Dirty.Params) sql += 'RESET ROLE; RESET ALL; ';
  if (dirt & Dirty.Statements) sql += 'DEALLOCATE ALL; ';
  if (dirt & Dirty.Cursors) sql += 'CLOSE ALL; ';
  if (dirt & Dirty.Listen) sql += 'UNLISTEN *; ';
  if (dirt & Dirty.Temp) sql += 'DISCARD TEMP; ';
  if (dirt & Dirty.Sequences) sql += 'DISCARD SEQUENCES; ';
  if (dirt & Dirty.Advisory) sql += 'SELECT pg_advisory_unlock_all(); ';
  return { sql: sql.trimEnd(), dropsStatements: (dirt & Dirty.Statements) !== 0 };
}
