// Session parameters the pooler keeps in line between a client and whichever
// server it borrows (as PgBouncer does): the ones Postgres reports with
// ParameterStatus, so changes made with SET are seen and followed.

import { quoteString } from '../router/sql-quote.js';

/** Parameters a client may set at startup or with SET and expect to keep. */
export const TRACKED_PARAMETERS = [
  'application_name',
  'client_encoding',
  'DateStyle',
  'IntervalStyle',
  'TimeZone',
  'standard_conforming_strings',
] as const;

const TRACKED = new Set<string>(TRACKED_PARAMETERS);
const LOWER_TO_NAME = new Map(TRACKED_PARAMETERS.map((p) => [p.toLowerCase(), p]));

/** The canonical name of a tracked parameter (startup keys are case-insensitive), or null. */
export function trackedName(key: string): string | null {
  if (TRACKED.has(key)) return key;
  return LOWER_TO_NAME.get(key.toLowerCase()) ?? null;
}


/** The SET statements that make `server` match `client`, or null if they agree. */
export function parameterSyncQuery(client: Map<string, string>, server: Map<string, string>): string | null {
  let sql = '';
  for (const [name, value] of client) {
    if (server.get(name) !== value) sql += `SET ${name} = ${quoteString(value)};`;
  }
  return sql || null;
}
