// Last-resort cleanup for things tests start outside the Node process
// (Postgres clusters, the pooler, temp dirs). Normal teardown is async and
// explicit; this only catches what is still alive when the process exits or
// is interrupted, so a failing or ^C'ed test never leaks a postmaster.
//
// Only synchronous work is possible in an 'exit' handler, so hooks must be sync.

type Hook = () => void;

const hooks = new Set<Hook>();
// SIGALRM is how tap's runner ends a test file that timed out.
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGALRM'] as const;
let installed = false;

function runHooks(): void {
  for (const hook of [...hooks]) {
    hooks.delete(hook);
    try {
      hook();
    } catch {
      // Best effort: one failing hook must not keep the others from running.
    }
  }
}

function onSignal(sig: NodeJS.Signals): void {
  runHooks();
  // Step aside and re-raise, so the signal has the effect it would have had
  // without us: the default action (death) if nobody else listens, or
  // tap's signal-exit handler, which only acts when it is the last listener.
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  process.kill(process.pid, sig);
}

/** Runs `hook` synchronously at process exit or on SIGINT/SIGTERM/SIGHUP/SIGALRM. Returns an unregister function. */
export function onExitSync(hook: Hook): () => void {
  if (!installed) {
    installed = true;
    process.on('exit', runHooks);
    for (const s of SIGNALS) process.on(s, onSignal);
  }
  hooks.add(hook);
  return () => {
    hooks.delete(hook);
  };
}

/** The part of a tap Test this harness uses; lets helpers register their own teardown. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}
