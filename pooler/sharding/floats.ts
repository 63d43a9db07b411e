// float4/float8 text output as Postgres 12+ prints it with the default
// extra_float_digits (1), for sums and averages the merger computes itself.
//
// Postgres uses Ryu (src/common/d2s.c, f2s.c) built without
// STRICTLY_SHORTEST: the rounding interval around the value is open, so at
// an exact midpoint it may print one digit more than JavaScript's shortest
// form (which accepts the bound), and it breaks exact ties to even. This
// redoes Ryu's digit removal on exact BigInt values (slower, same digits).
// Fixed notation when the decimal exponent is in [-4, 15) for float8 or
// [-4, 6) for float4, else d.ddde+XX.

const f64 = new DataView(new ArrayBuffer(8));

/** float8out. */
export function formatFloat8(x: number): string {
  const special = specialText(x);
  if (special !== null) return special;
  f64.setFloat64(0, Math.abs(x));
  const bits = f64.getBigUint64(0);
  const [digits, exp] = shortest(Number(bits >> 52n), bits & ((1n << 52n) - 1n), 52, 1023);
  return layout(digits, exp, x < 0, 15);
}

/** float4out; `x` must already be a float4 value (Math.fround). */
export function formatFloat4(x: number): string {
  const special = specialText(x);
  if (special !== null) return special;
  f64.setFloat32(0, Math.abs(x));
  const bits = f64.getUint32(0);
  const [digits, exp] = shortest(bits >>> 23, BigInt(bits & 0x7fffff), 23, 127);
  return layout(digits, exp, x < 0, 6);
}

function specialText(x: number): string | null {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  return null;
}

/**
 * Ryu's shortest digits of a positive finite float: the digit string (no
 * trailing zeros) and the decimal exponent of its first digit.
 */
function shortest(ieeeExponent: number, ieeeMantissa: bigint, mantissaBits: number, bias: number): [string, number] {
  // Two extra bits so the interval bounds are integers (as in Ryu).
  const e2 = (ieeeExponent === 0 ? 1 : ieeeExponent) - bias - mantissaBits - 2;
  const m2 = ieeeExponent === 0 ? ieeeMantissa : (1n << BigInt(mantissaBits)) | ieeeMantissa;
  const mmShift = ieeeMantissa !== 0n || ieeeExponent <= 1 ? 1n : 0n;
  let vr = 4n * m2;
  let vp = 4n * m2 + 2n;
  let vm = 4n * m2 - 1n - mmShift;
  let e10 = 0;
  if (e2 >= 0) {
    const k = 1n << BigInt(e2);
    vr *= k;
    vp *= k;
    vm *= k;
  } else {
    // m * 2^e2 = m * 5^-e2 * 10^e2: exact decimal integers.
    const k = 5n ** BigInt(-e2);
    vr *= k;
    vp *= k;
    vm *= k;
    e10 = e2;
  }
  vp -= 1n; // the upper bound itself is excluded (acceptBounds = false)
  let removed = 0;
  let lastRemoved = 0n;
  let vrTrailingZeros = true;
  while (vp / 10n > vm / 10n) {
    vrTrailingZeros &&= lastRemoved === 0n;
    lastRemoved = vr % 10n;
    vr /= 10n;
    vp /= 10n;
    vm /= 10n;
    removed++;
  }
  // Exactly halfway: round to even.
  if (vrTrailingZeros && lastRemoved === 5n && vr % 2n === 0n) lastRemoved = 4n;
  const output = vr + (vr === vm || lastRemoved >= 5n ? 1n : 0n);
  const s = output.toString();
  const trimmed = s.replace(/0+$/, '');
  return [trimmed, e10 + removed + s.length - 1];
}

/** Places the decimal point as Ryu's to_chars does. */
function layout(digits: string, exp: number, negative: boolean, fixedBelow: number): string {
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
