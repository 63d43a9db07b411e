// The auth_query text as sent to the server, apart from the wire code in
// auth-query.ts so it can be checked on its own.

/** A SQL string literal, as PQescapeLiteral makes it (E'' when backslashes occur). */
export function quoteLiteral(s: string): string {
  const body = s.replace(/'/g, "''");
  return s.includes('\\') ? ` E'${body.replace(/\\/g, '\\\\')}'` : `'${body}'`;
}

/**
 * The auth_query with the user name in place of $1. PgCat substitutes the
 * bare text (so its docs write '$1' in quotes), PgBouncer binds a parameter
 * (so its docs write $1 bare); both spellings become one quoted literal.
 * Client-chosen names must never reach the SQL unquoted.
 */
export function authQuerySql(query: string, user: string): string {
  const literal = quoteLiteral(user);
  return query.replace(/'\$1'|\$1(?![0-9])/g, () => literal);
}
