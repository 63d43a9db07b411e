// What the two Node driver programs share: the check runner and its output
// format (`ok CHECK` / `not ok CHECK: error`, exit 1 if any failed), the
// workload size, and the embedding checks. The Python, Go, Java and Ruby
// programs print the same lines (see tests/drivers.test.ts).
export const CONNS = 4;
export const ITERATIONS = 50;

export type Vector = number[];

export function require(ok: boolean, message: string): asserts ok {
  if (!ok) throw new Error(message);
}

/** A 384-float, L2-normalised embedding as the driver decoded it. */
export function unitVector(v: unknown): Vector {
  require(Array.isArray(v) && v.length === 384 && v.every((x) => typeof x === 'number'), `expected 384 floats, got ${JSON.stringify(v)?.slice(0, 80)}`);
  require(Math.abs(Math.hypot(...v) - 1) < 1e-4, 'not unit length');
  return v;
}

/** Runs each check in order, reporting each (one failing check does not stop the others), then `cleanup`, then exits. */
export async function runChecks(checks: Record<string, () => Promise<void>>, cleanup?: () => Promise<void>): Promise<never> {
  let failed = false;
  for (const [name, fn] of Object.entries(checks)) {
    try {
      await fn();
      console.log(`ok ${name}`);
    } catch (e) {
      failed = true;
      const err = e as Error & { code?: string };
      const text = `${err.name}${err.code ? ` ${err.code}` : ''}: ${err.message}`;
      console.log(`not ok ${name}: ${text.split(/\s+/).join(' ')}`);
    }
  }
  await cleanup?.().catch(() => {});
  process.exit(failed ? 1 : 0);
}
