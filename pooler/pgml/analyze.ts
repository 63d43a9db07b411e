// The `pgml.*` calls of client SQL
// (find-calls.ts), read from the statement's one parse (router/parse.ts
// keeps them with the statement). Texts without "pgml" never reach the
// parser, so ordinary traffic pays one indexOf.

import { statementOf } from '../router/parse.js';
import type { PgmlAnalysis } from './find-calls.js';

export { PgmlError } from './find-calls.js';
export type { PgmlAnalysis, PgmlArg, PgmlCall, PgmlFunction } from './find-calls.js';

const MARKER = /pgml/i;

/** Quick test on raw bytes: could this statement call pgml at all? */
export function mentionsPgml(buf: Buffer, start: number, end: number): boolean {
  const i = buf.indexOf('pgml', start, 'latin1');
  if (i >= 0 && i < end) return true;
  const j = buf.indexOf('PGML', start, 'latin1');
  return j >= 0 && j < end;
}

/** The pgml.embed calls of `sql`, or null when it has none. Throws PgmlError. */
export function analyzePgml(sql: string): PgmlAnalysis | null {
  if (!MARKER.test(sql)) return null;
  return statementOf(sql).pgml;
}

