// Exact decimal arithmetic on Postgres `numeric` text values, for combining
// per-shard partial aggregates: the merged sum/avg must print exactly as a
// single Postgres would (same digits, same display scale).
//
// A finite value is units / 10^scale, with `scale` the display scale (dscale)
// Postgres prints, trailing zeros included.

export type Decimal =
  | { kind: 'finite'; units: bigint; scale: number }
  | { kind: 'nan' }
  | { kind: 'inf'; negative: boolean };

const NAN: Decimal = { kind: 'nan' };

// From src/backend/utils/adt/numeric.c and utils/numeric.h.
const NUMERIC_MIN_SIG_DIGITS = 16;
const DEC_DIGITS = 4; // decimal digits per NBASE (10000) digit
const NUMERIC_MIN_DISPLAY_SCALE = 0;
const NUMERIC_MAX_DISPLAY_SCALE = 1000;

const pow10Cache: bigint[] = [];
function pow10(n: number): bigint {
  if (n < 64) return (pow10Cache[n] ??= 10n ** BigInt(n));
  return 10n ** BigInt(n);
}

/** numeric_out text (also accepts an exponent, as numeric_in does). Throws RangeError. */
export function parseNumeric(text: string): Decimal {
  const t = text.trim();
  if (/^nan$/i.test(t)) return NAN;
  if (/^[+]?inf(inity)?$/i.test(t)) return { kind: 'inf', negative: false };
  if (/^-inf(inity)?$/i.test(t)) return { kind: 'inf', negative: true };
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(t);
  if (!m || (m[2] === '' && !m[3])) throw new RangeError(`invalid numeric value "${text}"`);
  const frac = m[3] ?? '';
  let digits = m[2] + frac;
  let scale = frac.length - (m[4] ? Number(m[4]) : 0);
  if (scale < 0) {
    digits += '0'.repeat(-scale);
    scale = 0;
  }
  const units = BigInt(digits === '' ? '0' : digits);
  return { kind: 'finite', units: m[1] === '-' ? -units : units, scale };
}

/** As numeric_out prints it: exactly `scale` fraction digits, no exponent. */
export function formatNumeric(d: Decimal): string {
  if (d.kind === 'nan') return 'NaN';
  if (d.kind === 'inf') return d.negative ? '-Infinity' : 'Infinity';
  const negative = d.units < 0n;
  let s = (negative ? -d.units : d.units).toString();
  if (d.scale > 0) {
    s = s.padStart(d.scale + 1, '0');
    s = `${s.slice(0, s.length - d.scale)}.${s.slice(s.length - d.scale)}`;
  }
  return negative ? `-${s}` : s;
}

/** Postgres order: -Infinity < finite < Infinity < NaN (NaN equals NaN). */
export function compareNumeric(a: Decimal, b: Decimal): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb || a.kind !== 'finite' || b.kind !== 'finite') return ra - rb;
  const x = a.scale >= b.scale ? a.units : a.units * pow10(b.scale - a.scale);
  const y = b.scale >= a.scale ? b.units : b.units * pow10(a.scale - b.scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

function rank(d: Decimal): number {
  if (d.kind === 'nan') return 3;
  if (d.kind === 'inf') return d.negative ? 0 : 2;
  return 1;
}

/** numeric_add: the result keeps the larger display scale. */
export function addNumeric(a: Decimal, b: Decimal): Decimal {
  if (a.kind === 'nan' || b.kind === 'nan') return NAN;
  if (a.kind === 'inf') return b.kind === 'inf' && b.negative !== a.negative ? NAN : a;
  if (b.kind === 'inf') return b;
  const scale = Math.max(a.scale, b.scale);
  return { kind: 'finite', units: a.units * pow10(scale - a.scale) + b.units * pow10(scale - b.scale), scale };
}

/** A canonical text for grouping: equal values (1.0 and 1.00) give equal keys. */
export function numericKey(d: Decimal): string {
  if (d.kind !== 'finite') return formatNumeric(d);
  let { units, scale } = d;
  while (scale > 0 && units % 10n === 0n) {
    units /= 10n;
    scale--;
  }
  return formatNumeric({ kind: 'finite', units, scale });
}

/** Weight (in NBASE digits) and value of the first non-zero NBASE digit, as numeric.c stores them. */
function weightAndFirstDigit(d: { units: bigint; scale: number }): [number, number] {
  const abs = d.units < 0n ? -d.units : d.units;
  if (abs === 0n) return [0, 0];
  // 10^p <= |value| < 10^(p+1); NBASE digits are aligned on the decimal point.
  const p = abs.toString().length - 1 - d.scale;
  const weight = Math.floor(p / DEC_DIGITS);
  const shift = d.scale + DEC_DIGITS * weight;
  const first = shift >= 0 ? abs / pow10(shift) : abs * pow10(-shift);
  return [weight, Number(first)];
}

/** select_div_scale(): the display scale numeric_div gives a quotient. */
export function selectDivScale(a: { units: bigint; scale: number }, b: { units: bigint; scale: number }): number {
  const [weight1, first1] = weightAndFirstDigit(a);
  const [weight2, first2] = weightAndFirstDigit(b);
  // Estimate of the quotient's weight; equal first digits: assume a < b.
  let qweight = weight1 - weight2;
  if (first1 <= first2) qweight--;
  let rscale = NUMERIC_MIN_SIG_DIGITS - qweight * DEC_DIGITS;
  rscale = Math.max(rscale, a.scale, b.scale, NUMERIC_MIN_DISPLAY_SCALE);
  return Math.min(rscale, NUMERIC_MAX_DISPLAY_SCALE);
}

/**
 * numeric_div(a, b): quotient at select_div_scale, rounded half away from
 * zero (div_var with round = true). Throws RangeError on division by zero.
 */
export function divNumeric(a: Decimal, b: Decimal): Decimal {
  if (a.kind === 'nan' || b.kind === 'nan') return NAN;
  if (b.kind === 'finite' && b.units === 0n) throw new RangeError('division by zero');
  if (a.kind === 'inf') {
    if (b.kind === 'inf') return NAN;
    return { kind: 'inf', negative: a.negative !== b.units < 0n };
  }
  if (b.kind === 'inf') return { kind: 'finite', units: 0n, scale: a.scale };
  const rscale = selectDivScale(a, b);
  // a/b * 10^rscale = a.units * 10^(rscale - a.scale + b.scale) / b.units; rscale >= a.scale.
  let num = a.units * pow10(rscale - a.scale + b.scale);
  let den = b.units;
  const negative = num < 0n !== den < 0n;
  if (num < 0n) num = -num;
  if (den < 0n) den = -den;
  const q = (2n * num + den) / (2n * den);
  return { kind: 'finite', units: negative ? -q : q, scale: rscale };
}
