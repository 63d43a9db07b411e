// Hidden inputs that make a worker misbehave, so tests can prove crash and
// hang isolation against real worker threads. They only work when the
// pooler process runs with PGLYNX_ENGINE_TEST_HOOKS=1 (read once, when an
// engine starts); otherwise these strings are embedded like any other text.
//
//   "\0pglynx-test:crash"      the worker thread exits (process.exit in a worker ends only that thread)
//   "\0pglynx-test:hang"       the worker spins forever (until model_timeout_ms terminates it)
//   "\0pglynx-test:sleep:<ms>" the batch holding it takes <ms> longer
//   "\0pglynx-test:fail"       the batch fails with an error, the worker survives
//
// A NUL byte cannot occur in a Postgres text value, so no SQL client can
// send these, even with the hooks enabled.

export const TEST_HOOKS_ENV = 'PGLYNX_ENGINE_TEST_HOOKS';
export const TEST_HOOK_PREFIX = '\u0000pglynx-test:';

export function testHooksEnabled(): boolean {
  return process.env[TEST_HOOKS_ENV] === '1';
}

/** Acts on any hook input in a batch; runs in the worker before the batch is embedded. */
export async function runTestHooks(texts: readonly string[]): Promise<void> {
  for (const text of texts) {
    if (!text.startsWith(TEST_HOOK_PREFIX)) continue;
    const hook = text.slice(TEST_HOOK_PREFIX.length);
    if (hook === 'crash') process.exit(70);
    if (hook === 'hang') for (;;);
    if (hook === 'fail') throw new Error('test hook: this batch fails');
    const sleep = /^sleep:(\d+)$/.exec(hook);
    if (sleep) await new Promise((r) => setTimeout(r, Number(sleep[1])));
  }
}
