// The fast layer in one process: `npm run test:unit` runs this file, which
// imports every tests/unit/*.test.ts. Each test file costs tap a process of
// its own (node, the TypeScript loader, tap itself: 1.5-3 s of CPU); the
// unit tests themselves take well under a second each, so one process keeps
// the whole layer to seconds on a busy 2-core machine. `npm test` still runs
// each file in its own process (tap's include matches *.test.ts, not this).
// The script also points ts-node at tests/unit/tsconfig.json, whose
// transpiler is esbuild (tests/harness/esbuild-transpiler.cjs): this process
// loads most of the pooler, and TypeScript's transpileModule was a quarter
// of its CPU.
import '../harness/pg-protocol-hook.js';
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
for (const file of readdirSync(here).filter((f) => f.endsWith('.test.ts')).sort()) {
  await import(`./${file.replace(/\.ts$/, '.js')}`);
}
