// Small pieces every benchmark script needs: statistics and formatting for
// its tables, a shell helper for version strings, how idle the machine is,
// and where its report goes (stdout and benchmarks/results/).

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};

export const fmt = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

/** A command's output, or why it failed (for the report's version lines). */
export const sh = (cmd: string, args: string[]): string => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    return `(${cmd} failed: ${(err as Error).message.split('\n')[0]})`;
  }
};

/** Clock ticks per second of /proc/stat and /proc/<pid>/stat times. */
export const CLK_TCK = Number(sh('getconf', ['CLK_TCK'])) || 100;

/** Fraction of the machine's CPU time spent idle (idle + iowait) over the next `ms`. */
export function cpuIdleFraction(ms: number): Promise<number> {
  const read = (): number[] => readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  const a = read();
  return sleep(ms).then(() => {
    const b = read();
    const d = b.map((x, i) => x - a[i]!);
    const total = d.reduce((s, x) => s + x, 0);
    return total === 0 ? NaN : (d[3]! + d[4]!) / total;
  });
}

/** Print the report and keep it as benchmarks/results/<name>-<stamp>.md; returns that path. */
export function writeReport(repo: string, name: string, stamp: string, lines: string[]): string {
  const text = lines.join('\n') + '\n';
  process.stdout.write(text);
  const dir = path.join(repo, 'benchmarks', 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}-${stamp}.md`);
  writeFileSync(file, text);
  return file;
}
