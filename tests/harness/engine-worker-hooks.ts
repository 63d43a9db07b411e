// Hidden inputs that make an engine worker misbehave, so tests can prove
// crash and hang isolation against real worker threads. Test-only: an
// engine started with `workerHooks: ENGINE_WORKER_HOOKS` has every worker
// import this module (WorkerData.hooks in engine/worker-protocol.ts); the
// production pooler never passes it, so its workers carry none of this.
//
//   "\0pglynx-test:crash"      the worker thread exits (process.exit in a worker ends only that thread)
//   "\0pglynx-test:hang"       the worker spins forever (until model_timeout_ms terminates it)
//   "\0pglynx-test:sleep:<ms>" the batch holding it takes <ms> longer
//   "\0pglynx-test:fail"       the batch fails with an error, the worker survives
//
// A NUL byte cannot occur in a Postgres text value, so no SQL client could
// send these anyway.

/** Pass as EngineOptions.workerHooks. */
export const ENGINE_WORKER_HOOKS = import.meta.url;
export const TEST_HOOK_PREFIX = '\u0000pglynx-test:';

/** Acts on any hook input in a batch; runs in the worker before the batch is embedded (or the sequence starts). */
export async function beforeInputs(texts: readonly string[]): Promise<void> {
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
