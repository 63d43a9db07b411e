// Evaluates a compiled expression over combined aggregates (agg-expr.ts) for
// one merged group, with Postgres's semantics for the types involved:
// integers (int2/int4/int8, overflow and division by zero raise the same
// SQLSTATEs, division truncates), numeric (exact: numeric_add/mul/div/mod
// scales, round() half away from zero), float8 (IEEE, round() half to even),
// text and bool (comparisons, three-valued AND/OR/NOT). The result is printed
// as the type the shards' RowDescription gives the column.

import type { AggExpr, ArithOp, CastTarget, CompareOp } from './agg-expr.js';
import { formatFloat4, formatFloat8 } from './floats.js';
import { addNumeric, compareNumeric, divNumeric, formatNumeric, parseNumeric, type Decimal } from './numeric.js';
import { Oid, parseFloatText } from './values.js';
import { MergeError, type Cell } from './wire.js';

type Value =
  | null
  | { k: 'int'; v: bigint; width: 2 | 4 | 8 }
  | { k: 'num'; v: Decimal }
  | { k: 'float'; v: number }
  | { k: 'text'; v: string }
  | { k: 'bool'; v: boolean };

const INT_NAMES = { 2: 'smallint', 4: 'integer', 8: 'bigint' } as const;
const INT_LIMIT = { 2: 1n << 15n, 4: 1n << 31n, 8: 1n << 63n } as const;

function int(v: bigint, width: 2 | 4 | 8): Value {
  const lim = INT_LIMIT[width];
  if (v < -lim || v >= lim) throw new MergeError('22003', `${INT_NAMES[width]} out of range`);
  return { k: 'int', v, width };
}

const divisionByZero = (): MergeError => new MergeError('22012', 'division by zero');
const pow10 = (n: number): bigint => 10n ** BigInt(n);

/** Half away from zero, as numeric.c's round_var. */
function roundDiv(a: bigint, b: bigint): bigint {
  const neg = a < 0n;
  const q = (2n * (neg ? -a : a) + b) / (2n * b);
  return neg ? -q : q;
}

function roundNumeric(d: Decimal, scale: number): Decimal {
  if (d.kind !== 'finite') return d;
  if (scale >= d.scale) return { kind: 'finite', units: d.units * pow10(scale - d.scale), scale };
  const q = roundDiv(d.units, pow10(d.scale - scale));
  return scale >= 0 ? { kind: 'finite', units: q, scale } : { kind: 'finite', units: q * pow10(-scale), scale: 0 };
}

/** rint(): half to even. */
function rint(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 ? 2 * Math.round(x / 2) : r;
}

function toDecimal(v: NonNullable<Value>): Decimal {
  if (v.k === 'num') return v.v;
  if (v.k === 'int') return { kind: 'finite', units: v.v, scale: 0 };
  if (v.k === 'float') {
    // float8_numeric prints DBL_DIG (15) significant digits.
    if (Number.isNaN(v.v)) return { kind: 'nan' };
    if (!Number.isFinite(v.v)) return { kind: 'inf', negative: v.v < 0 };
    return parseNumeric(String(Number(v.v.toPrecision(15))));
  }
  if (v.k === 'text') return parseNumeric(v.v);
  throw new MergeError('42846', 'cannot cast type boolean to numeric');
}

function toFloat(v: NonNullable<Value>): number {
  if (v.k === 'float') return v.v;
  if (v.k === 'int') return Number(v.v);
  if (v.k === 'num') return v.v.kind === 'nan' ? NaN : v.v.kind === 'inf' ? (v.v.negative ? -Infinity : Infinity) : Number(formatNumeric(v.v));
  if (v.k === 'text') return parseFloatText(v.v);
  throw new MergeError('42846', 'cannot cast type boolean to double precision');
}

function toInt(v: NonNullable<Value>, width: 2 | 4 | 8): Value {
  if (v.k === 'int') return int(v.v, width);
  if (v.k === 'bool') return int(v.v ? 1n : 0n, width);
  if (v.k === 'text') return int(BigInt(v.v.trim()), width);
  if (v.k === 'float') {
    if (!Number.isFinite(v.v)) throw new MergeError('22003', `${INT_NAMES[width]} out of range`);
    return int(BigInt(rint(v.v)), width);
  }
  const d = roundNumeric(v.v, 0);
  if (d.kind !== 'finite') throw new MergeError('0A000', `cannot convert ${formatNumeric(d)} to ${INT_NAMES[width]}`);
  return int(d.units, width);
}

function toText(v: NonNullable<Value>): string {
  switch (v.k) {
    case 'int':
      return v.v.toString();
    case 'num':
      return formatNumeric(v.v);
    case 'float':
      return formatFloat8(v.v);
    case 'bool':
      return v.v ? 'true' : 'false';
    default:
      return v.v;
  }
}

function cast(v: Value, target: CastTarget, scale: number | undefined): Value {
  if (v === null) return null;
  switch (target) {
    case 'int2':
      return toInt(v, 2);
    case 'int4':
      return toInt(v, 4);
    case 'int8':
      return toInt(v, 8);
    case 'numeric': {
      const d = toDecimal(v);
      return { k: 'num', v: scale === undefined ? d : roundNumeric(d, scale) };
    }
    case 'float4':
      return { k: 'float', v: Math.fround(toFloat(v)) };
    case 'float8':
      return { k: 'float', v: toFloat(v) };
    default:
      return { k: 'text', v: toText(v) };
  }
}

function mulNumeric(a: Decimal, b: Decimal): Decimal {
  if (a.kind !== 'finite' || b.kind !== 'finite') return { kind: 'nan' };
  return { kind: 'finite', units: a.units * b.units, scale: a.scale + b.scale };
}

function modNumeric(a: Decimal, b: Decimal): Decimal {
  if (a.kind !== 'finite' || b.kind !== 'finite') return { kind: 'nan' };
  if (b.units === 0n) throw divisionByZero();
  const s = Math.max(a.scale, b.scale);
  return { kind: 'finite', units: (a.units * pow10(s - a.scale)) % (b.units * pow10(s - b.scale)), scale: s };
}

const negateDecimal = (d: Decimal): Decimal => (d.kind === 'finite' ? { ...d, units: -d.units } : d.kind === 'inf' ? { ...d, negative: !d.negative } : d);

/** A parameter's text read as the kind of the value it meets (Postgres infers its type from that operand). */
function coerceText(v: Value, other: Value): Value {
  if (v?.k !== 'text' || other === null || other.k === 'text') return v;
  if (other.k === 'bool') return { k: 'bool', v: /^(t|true|y|yes|on|1)$/i.test(v.v.trim()) };
  if (other.k === 'float') return { k: 'float', v: parseFloatText(v.v) };
  if (other.k === 'int' && /^\s*[+-]?\d+\s*$/.test(v.v)) return int(BigInt(v.v.trim()), other.width);
  return { k: 'num', v: parseNumeric(v.v) };
}

function arith(op: ArithOp, x: Value, y: Value): Value {
  const a = coerceText(x, y);
  const b = coerceText(y, x);
  if (a === null || b === null) return null;
  if (a.k === 'text' || b.k === 'text' || a.k === 'bool' || b.k === 'bool') throw new MergeError('0A000', `cross-shard queries cannot evaluate ${op} on text or boolean values`);
  if (a.k === 'float' || b.k === 'float') {
    const x = toFloat(a);
    const y = toFloat(b);
    if (op === '%') throw new MergeError('42883', 'operator does not exist: double precision % double precision');
    if (op === '/' && y === 0) throw divisionByZero();
    const r = op === '+' ? x + y : op === '-' ? x - y : op === '*' ? x * y : x / y;
    if (!Number.isFinite(r) && Number.isFinite(x) && Number.isFinite(y)) throw new MergeError('22003', 'value out of range: overflow');
    return { k: 'float', v: r };
  }
  if (a.k === 'num' || b.k === 'num') {
    const x = toDecimal(a);
    const y = toDecimal(b);
    if (op === '+') return { k: 'num', v: addNumeric(x, y) };
    if (op === '-') return { k: 'num', v: addNumeric(x, negateDecimal(y)) };
    if (op === '*') return { k: 'num', v: mulNumeric(x, y) };
    if (y.kind === 'finite' && y.units === 0n) throw divisionByZero();
    return { k: 'num', v: op === '/' ? divNumeric(x, y) : modNumeric(x, y) };
  }
  const width = Math.max(a.width, b.width) as 2 | 4 | 8;
  if ((op === '/' || op === '%') && b.v === 0n) throw divisionByZero();
  const r = op === '+' ? a.v + b.v : op === '-' ? a.v - b.v : op === '*' ? a.v * b.v : op === '/' ? a.v / b.v : a.v % b.v;
  return int(r, width);
}

/** Orders two non-NULL values of comparable types. */
function compareValues(a: NonNullable<Value>, b: NonNullable<Value>): number {
  if (a.k === 'text' && b.k === 'text') return Buffer.compare(Buffer.from(a.v), Buffer.from(b.v));
  if (a.k === 'bool' || b.k === 'bool') {
    const x = a.k === 'bool' ? a.v : a.k === 'text' ? /^t/i.test(a.v) : null;
    const y = b.k === 'bool' ? b.v : b.k === 'text' ? /^t/i.test(b.v) : null;
    if (x === null || y === null) throw new MergeError('42883', 'cross-shard queries cannot compare a boolean with a number');
    return Number(x) - Number(y);
  }
  if (a.k === 'float' || b.k === 'float') {
    const x = toFloat(a);
    const y = toFloat(b);
    if (Number.isNaN(x)) return Number.isNaN(y) ? 0 : 1;
    if (Number.isNaN(y)) return -1;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return compareNumeric(toDecimal(a), toDecimal(b));
}

/** compareValues with a parameter's text read as the other operand's kind. */
function order(x: NonNullable<Value>, y: NonNullable<Value>): number {
  return compareValues(coerceText(x, y) ?? x, coerceText(y, x) ?? y);
}

function compare(op: CompareOp, x: Value, y: Value): Value {
  const a = coerceText(x, y);
  const b = coerceText(y, x);
  if (a === null || b === null) return null;
  const c = compareValues(a, b);
  const r = op === '=' ? c === 0 : op === '<>' ? c !== 0 : op === '<' ? c < 0 : op === '>' ? c > 0 : op === '<=' ? c <= 0 : c >= 0;
  return { k: 'bool', v: r };
}

function truth(v: Value): boolean | null {
  if (v === null) return null;
  if (v.k !== 'bool') throw new MergeError('42804', 'argument of AND/OR/NOT/HAVING must be type boolean');
  return v.v;
}

function fn(name: string, args: Value[]): Value {
  switch (name) {
    case 'coalesce':
      return args.find((a) => a !== null) ?? null;
    case 'nullif':
      return args[0] !== null && args[1] !== null && order(args[0], args[1]) === 0 ? null : args[0];
    case 'greatest':
    case 'least': {
      let best: Value = null;
      for (const a of args) {
        if (a !== null && (best === null || order(a, best) * (name === 'greatest' ? 1 : -1) > 0)) best = a;
      }
      return best;
    }
    case 'abs': {
      const a = args[0];
      if (a === null || args.length !== 1) return null;
      if (a.k === 'int') return int(a.v < 0n ? -a.v : a.v, a.width);
      if (a.k === 'float') return { k: 'float', v: Math.abs(a.v) };
      const d = toDecimal(a);
      return { k: 'num', v: d.kind === 'finite' && d.units < 0n ? negateDecimal(d) : d };
    }
    default: {
      // round(x) / round(numeric, n)
      const [a, n] = args;
      if (a === null || (args.length === 2 && n === null)) return null;
      if (a.k === 'float' && args.length === 1) return { k: 'float', v: rint(a.v) };
      const digits = n === undefined || n === null ? 0 : n.k === 'int' ? Number(n.v) : n.k === 'text' ? Number.parseInt(n.v, 10) : Number(toText(n));
      return { k: 'num', v: roundNumeric(toDecimal(a), digits) };
    }
  }
}

/** A combined cell as a value of its type. */
function decodeCell(cell: Cell, typeOid: number): Value {
  if (cell === null) return null;
  const s = cell.toString('utf8');
  switch (typeOid) {
    case Oid.int2:
      return { k: 'int', v: BigInt(s), width: 2 };
    case Oid.int4:
      return { k: 'int', v: BigInt(s), width: 4 };
    case Oid.int8:
    case Oid.oid:
      return { k: 'int', v: BigInt(s), width: 8 };
    case Oid.numeric:
      return { k: 'num', v: parseNumeric(s) };
    case Oid.float4:
    case Oid.float8:
      return { k: 'float', v: parseFloatText(s) };
    case Oid.bool:
      return { k: 'bool', v: s === 't' };
    default:
      return { k: 'text', v: s };
  }
}

/** One combined group's values, and the statement's Bind parameters (text). */
export interface EvalContext {
  cells: readonly Cell[];
  types: readonly number[];
  params?: readonly (string | bigint | null)[];
}

export function evaluate(e: AggExpr, ctx: EvalContext): Value {
  const ev = (x: AggExpr): Value => evaluate(x, ctx);
  const { cells, types } = ctx;
  if ('param' in e) {
    const p = ctx.params?.[e.param - 1];
    if (p === undefined) throw new MergeError('08P01', `no value for parameter $${e.param}`);
    return p === null ? null : typeof p === 'bigint' ? { k: 'int', v: p, width: 8 } : { k: 'text', v: p };
  }
  if ('col' in e) return decodeCell(cells[e.col], types[e.col]);
  if ('int' in e) return int(e.int, e.int >= -(1n << 31n) && e.int < 1n << 31n ? 4 : 8);
  if ('numeric' in e) return { k: 'num', v: parseNumeric(e.numeric) };
  if ('text' in e) return { k: 'text', v: e.text };
  if ('bool' in e) return { k: 'bool', v: e.bool };
  if ('null' in e) return null;
  if ('arith' in e) return arith(e.arith, ev(e.left), ev(e.right));
  if ('negate' in e) {
    const v = ev(e.negate);
    return v === null ? null : arith('-', v.k === 'int' ? { k: 'int', v: 0n, width: v.width } : { k: 'int', v: 0n, width: 4 }, v);
  }
  if ('compare' in e) return compare(e.compare, ev(e.left), ev(e.right));
  if ('concat' in e) {
    const [a, b] = e.concat.map(ev);
    return a === null || b === null ? null : { k: 'text', v: toText(a) + toText(b) };
  }
  if ('case' in e) {
    // Only the chosen branch is evaluated, as in Postgres.
    for (const [when, result] of e.case) if (truth(ev(when)) === true) return ev(result);
    return ev(e.else);
  }
  if ('and' in e) {
    const vs = e.and.map((x) => truth(ev(x)));
    return vs.includes(false) ? { k: 'bool', v: false } : vs.includes(null) ? null : { k: 'bool', v: true };
  }
  if ('or' in e) {
    const vs = e.or.map((x) => truth(ev(x)));
    return vs.includes(true) ? { k: 'bool', v: true } : vs.includes(null) ? null : { k: 'bool', v: false };
  }
  if ('not' in e) {
    const v = truth(ev(e.not));
    return v === null ? null : { k: 'bool', v: !v };
  }
  if ('isNull' in e) return { k: 'bool', v: (ev(e.isNull) === null) !== e.negated };
  if ('fn' in e) return fn(e.fn, e.args.map(ev));
  return cast(ev(e.arg), e.cast, e.scale);
}

/** HAVING: keep the group only when the condition is true. */
export function holds(e: AggExpr, ctx: EvalContext): boolean {
  return truth(evaluate(e, ctx)) === true;
}

/** A value printed as the column type the shards described. */
export function formatAs(v: Value, typeOid: number): Cell {
  if (v === null) return null;
  let s: string;
  switch (typeOid) {
    case Oid.int2:
    case Oid.int4:
    case Oid.int8: {
      const i = toInt(v, typeOid === Oid.int2 ? 2 : typeOid === Oid.int4 ? 4 : 8);
      s = i === null ? '' : toText(i);
      break;
    }
    case Oid.numeric:
      s = v.k === 'int' ? v.v.toString() : formatNumeric(toDecimal(v));
      break;
    case Oid.float4:
      s = formatFloat4(Math.fround(toFloat(v)));
      break;
    case Oid.float8:
      s = formatFloat8(toFloat(v));
      break;
    case Oid.bool:
      s = v.k === 'bool' ? (v.v ? 't' : 'f') : toText(v);
      break;
    default:
      s = toText(v);
  }
  return Buffer.from(s, 'utf8');
}
