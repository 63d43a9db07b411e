// Quoting for SQL text the pooler writes itself (SET statements, LISTEN,
// shard queries). The server runs with standard_conforming_strings on
// (Postgres's default since 9.1): a quote is doubled, a backslash is itself.

/** A string constant: 'it''s'. */
export function quoteString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** An identifier, always quoted so its case and characters are kept: "My ""Name""". */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
