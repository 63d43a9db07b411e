// float4/float8 text output as Postgres 12+ prints it with the default
// extra_float_digits (1): the shortest digits that read back to the same
// value (Ryu in src/common/d2s.c, f2s.c), in fixed notation when the decimal
// exponent is in [-4, 15) for float8 or [-4, 6) for float4, else d.ddde+XX.
// Used for sums and averages the merger computes itself.

/** float8out. */
export function formatFloat8(x: number): string {
  const special = specialText(x);
  if (special !== null) return special;
  // toExponential() without an argument gives the shortest round-trip digits.
  const [mantissa, exp] = x.toExponential().split('e');
  return layout(mantissa.replace('-', '').replace('.', ''), Number(exp), x < 0 || Object.is(x, -0), 15);
}

/** float4out; `x` must already be a float4 value (Math.fround). */
export function formatFloat4(x: number): string {
  const special = specialText(x);
  if (special !== null) return special;
  const abs = Math.abs(x);
  const [digits, exp] = shortestFloat4(abs);
  return layout(digits, exp, x < 0 || Object.is(x, -0), 6);
}

function specialText(x: number): string | null {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  return null;
}

/** Shortest decimal digits (and exponent of the first) that round to `abs` as a float4. */
function shortestFloat4(abs: number): [string, number] {
  for (let p = 1; p <= 9; p++) {
    const [m, e] = abs.toExponential(p - 1).split('e');
    const digits = BigInt(m.replace('.', ''));
    const exp = Number(e) - (p - 1);
    // The nearest p-digit decimal, or (next to a power of two, where the
    // rounding interval is lopsided) one of its neighbours.
    let best: [bigint, number] | null = null;
    for (const d of [digits, digits - 1n, digits + 1n]) {
      if (d <= 0n) continue;
      const v = Number(`${d}e${exp}`);
      if (Math.fround(v) !== abs) continue;
      if (best === null || Math.abs(v - abs) < Math.abs(Number(`${best[0]}e${exp}`) - abs)) best = [d, exp];
    }
    if (best) {
      const s = best[0].toString().replace(/0+$/, '');
      // Exponent of the first digit: the integer has s.length + (stripped zeros) digits.
      return [s, best[1] + best[0].toString().length - 1];
    }
  }
  const [m, e] = abs.toExponential(8).split('e');
  return [m.replace('.', '').replace(/0+$/, ''), Number(e)];
}

/** Places the decimal point as Ryu's to_chars does. `digits` has no leading or trailing zeros. */
function layout(digits: string, exp: number, negative: boolean, fixedBelow: number): string {
  digits = digits.replace(/0+$/, '') || '0';
  let s: string;
  if (exp >= -4 && exp < fixedBelow) {
    if (exp < 0) s = `0.${'0'.repeat(-exp - 1)}${digits}`;
    else if (digits.length <= exp + 1) s = digits + '0'.repeat(exp + 1 - digits.length);
    else s = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  } else {
    const mant = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp).toString().padStart(2, '0');
    s = `${mant}e${exp < 0 ? '-' : '+'}${e}`;
  }
  return negative ? `-${s}` : s;
}
