// Two small facts about parsed TOML values that every config reader needs:
// what counts as a table, and how a key path is written in messages.

/** A TOML table (the parser returns null-prototype objects; arrays and dates are not tables). */
export function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Dotted path for messages; segments that are not bare TOML keys are quoted. */
export function formatPath(segments: readonly string[]): string {
  return segments.map((s) => (/^[A-Za-z0-9_-]+$/.test(s) ? s : JSON.stringify(s))).join('.');
}
