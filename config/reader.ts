// Typed access to the values of a parsed pgcat.toml.
//
// Every check failure is a ConfigError naming the file, the dotted key path
// and the reason, e.g. "general.port: expected integer, got string".

import { formatPath, isTable } from './toml-values.js';
import { ConfigError } from './errors.js';

export type Table = Record<string, unknown>;
export type Path = readonly string[];

/** TOML type names, so "expected integer, got string" reads like the file. */
export function typeName(v: unknown): string {
  if (typeof v === 'bigint') return 'integer';
  if (typeof v === 'number') return 'float';
  if (v instanceof Date) return 'datetime';
  if (Array.isArray(v)) return 'array';
  return isTable(v) ? 'table' : typeof v;
}

/** Typed access to one file's values; every check failure names the key. */
export class Reader {
  constructor(readonly file: string) {}

  fail(path: Path | null, reason: string): never {
    const key = path && path.length > 0 ? formatPath(path) : null;
    throw new ConfigError(this.file, key, reason.replace(/\s*[\r\n]+\s*/g, ' '));
  }

  private get(t: Table, key: string): unknown {
    return Object.hasOwn(t, key) ? t[key] : undefined;
  }

  private missing(path: Path, what = 'key'): never {
    return this.fail(path, `required ${what} is missing`);
  }

  private wrongType(path: Path, expected: string, v: unknown): never {
    return this.fail(path, `expected ${expected}, got ${typeName(v)}`);
  }

  table(t: Table, key: string, path: Path): Table | undefined {
    const v = this.get(t, key);
    if (v === undefined || isTable(v)) return v;
    return this.wrongType([...path, key], 'table', v);
  }

  reqTable(t: Table, key: string, path: Path): Table {
    return this.table(t, key, path) ?? this.missing([...path, key], 'section');
  }

  asTable(v: unknown, path: Path): Table {
    return isTable(v) ? v : this.wrongType(path, 'table', v);
  }

  optStr(t: Table, key: string, path: Path): string | null {
    const v = this.get(t, key);
    if (v === undefined) return null;
    return typeof v === 'string' ? v : this.wrongType([...path, key], 'string', v);
  }

  str(t: Table, key: string, path: Path, def?: string): string {
    return this.optStr(t, key, path) ?? def ?? this.missing([...path, key]);
  }

  bool(t: Table, key: string, path: Path, def?: boolean): boolean {
    const v = this.get(t, key);
    if (v === undefined) return def ?? this.missing([...path, key]);
    return typeof v === 'boolean' ? v : this.wrongType([...path, key], 'boolean', v);
  }

  /** A non-negative integer (all PgCat's integers are unsigned or used so). */
  toInt(v: unknown, path: Path, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    if (typeof v !== 'bigint') return this.wrongType(path, 'integer', v);
    if (v < BigInt(min) || v > BigInt(max)) {
      const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `between ${min} and ${max}`;
      return this.fail(path, `must be ${range}, got ${v}`);
    }
    return Number(v);
  }

  optInt(t: Table, key: string, path: Path, min?: number, max?: number): number | null {
    const v = this.get(t, key);
    return v === undefined ? null : this.toInt(v, [...path, key], min, max);
  }

  int(t: Table, key: string, path: Path, def?: number, min?: number, max?: number): number {
    return this.optInt(t, key, path, min, max) ?? def ?? this.missing([...path, key]);
  }

  optOneOf<T>(t: Table, key: string, path: Path, allowed: Record<string, T>): T | null {
    const v = this.optStr(t, key, path);
    if (v === null) return null;
    return Object.hasOwn(allowed, v) ? allowed[v]! : this.unknownValue([...path, key], v, allowed);
  }

  oneOf<T>(t: Table, key: string, path: Path, allowed: Record<string, T>, def: T): T {
    return this.optOneOf(t, key, path, allowed) ?? def;
  }

  unknownValue(path: Path, v: string, allowed: Record<string, unknown>, name = path[path.length - 1]): never {
    const names = [...new Set(Object.values(allowed))].join(', ');
    return this.fail(path, `unknown ${name} ${JSON.stringify(v)}; expected one of: ${names}`);
  }

  strArray(v: unknown, path: Path): string[] {
    if (!Array.isArray(v)) return this.wrongType(path, 'array of strings', v);
    return v.map((s, i) => (typeof s === 'string' ? s : this.wrongType([...path, String(i)], 'string', s)));
  }
}
