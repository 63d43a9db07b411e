// Where a `node --cpu-prof` profile spends its time: self time per function
// and per file, the busiest first. For the pooler's hot path (pgbench.sh
// with PGLYNX_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR").
//
// Usage: node --import tsx benchmarks/lib/cpuprofile-top.ts FILE.cpuprofile [N] [FROM_S] [TO_S]
//   N: rows per table (40); FROM_S / TO_S: only samples in that window, in
//   seconds from the profile's start (one pgbench run; skips start-up).
//
// The profiler samples wall time: a thread descheduled inside a syscall (a
// socket write that wakes the reader on a busy machine) is charged to that
// native function. Per-process CPU from /proc (pgbench.sh) is the measure;
// the profile says where the JavaScript part of it goes.

import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg, fromArg, toArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: cpuprofile-top.ts FILE.cpuprofile [N]\n');
  process.exit(2);
}
const top = Number(topArg ?? 40);
const fromUs = Number(fromArg ?? 0) * 1e6;
const toUs = toArg === undefined ? Infinity : Number(toArg) * 1e6;
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));

const selfUs = new Map<number, number>();
let total = 0;
let clock = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  clock += dt;
  if (clock < fromUs || clock > toUs) return;
  selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  total += dt;
});

const shortUrl = (url: string): string => url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/');
const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
for (const [id, us] of selfUs) {
  const f = byId.get(id)!.callFrame;
  const where = f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : '(native)';
  const name = `${f.functionName || '(anonymous)'} ${where}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + us);
  const fileKey = f.url ? shortUrl(f.url) : f.functionName || '(native)';
  byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + us);
}

const idle = [...byFunction].filter(([k]) => k.startsWith('(idle)')).reduce((s, [, v]) => s + v, 0);
const busy = total - idle;
const print = (title: string, m: Map<string, number>): void => {
  process.stdout.write(`\n${title} (share of busy time ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(2)} s)\n`);
  for (const [k, us] of [...m].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`${((100 * us) / busy).toFixed(1).padStart(5)}%  ${k}\n`);
  }
};
print('self time by function', byFunction);
print('self time by file', byFile);
