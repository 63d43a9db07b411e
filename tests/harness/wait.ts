// Waiting in tests: a plain pause, and polling for a condition that becomes
// true some time later (a replica catching up, a pooler closing servers).

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface WaitForOptions {
  timeoutMs: number;
  /** Pause between checks; 50 ms unless told. */
  intervalMs?: number;
  /** What was awaited, for the error on timeout. */
  message?: string;
}

/**
 * Checks `condition` until it holds; resolves with the milliseconds it took.
 * `timeout`: milliseconds, or options.
 * A check that throws counts as not yet (the thing polled may not be up).
 * Rejects after `timeoutMs` with `message` in the error.
 */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeout: number | WaitForOptions): Promise<number> {
  const opts = typeof timeout === 'number' ? { timeoutMs: timeout } : timeout;
  const start = Date.now();
  const interval = opts.intervalMs ?? 50;
  while (Date.now() - start < opts.timeoutMs) {
    if (await Promise.resolve().then(condition).catch(() => false)) return Date.now() - start;
    await sleep(interval);
  }
  throw new Error(`${opts.message ?? 'condition'} not met within ${opts.timeoutMs} ms`);
}

/**
 * Reads a value until `ok` accepts it or `timeoutMs` passes, and returns
 * the last value read either way (the caller asserts on it, so a failure
 * shows what was seen). Errors from `read` are not caught.
 */
export async function pollValue<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs: number, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value) || Date.now() > deadline) return value;
    await sleep(intervalMs);
  }
}
