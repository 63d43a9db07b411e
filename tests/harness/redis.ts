// Real throwaway redis-server processes for fleet tests: a random port, no
// persistence, a temp dir for its working files. Never the machine's Redis
// on 6379. stop() ends it; start() runs it again on the same port (to test
// a pooler losing Redis mid-run and rejoining).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onExitSync, type Teardown } from './cleanup.js';
import { freePort, waitForPort, waitForPortClosed } from './ports.js';

export const REDIS_SERVER = process.env.PGLYNX_REDIS_SERVER ?? 'redis-server';

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** `redis://127.0.0.1:PORT/0`, for `[general] redis_url`. */
  readonly url: string;
  /** Starts it again on the same port after stop(). */
  start(): Promise<void>;
  /** SIGTERM (SIGKILL after 5 s); the port closes. The temp dir stays until close(). */
  stop(): Promise<void>;
  /** SIGSTOP: it keeps its connections but answers nothing (a hung Redis); resume() with SIGCONT. */
  pause(): void;
  resume(): void;
  /** stop() and remove its temp dir. Idempotent. */
  close(): Promise<void>;
  /** Everything it wrote to stdout and stderr. */
  output(): string;
}

export interface StartRedisOptions {
  /** Registers close() as teardown of this tap test. */
  t?: Teardown;
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const host = '127.0.0.1';
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pglynx-redis-'));
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let out = '';
  let closed = false;

  const start = async (): Promise<void> => {
    if (child) return;
    const proc = spawn(
      REDIS_SERVER,
      ['--port', String(port), '--bind', host, '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = proc;
    proc.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d));
    exited = new Promise<void>((resolve) => {
      proc.on('close', () => {
        if (child === proc) child = null;
        resolve();
      });
      proc.on('error', (err) => {
        out += `\n[harness] spawn failed: ${err.message}\n`;
        if (child === proc) child = null;
        resolve();
      });
    });
    await waitForPort(host, port, 10_000, () => (child === proc ? undefined : `redis-server exited before listening:\n${out}`));
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    if (!proc) return;
    proc.kill('SIGCONT'); // a paused server cannot act on SIGTERM
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
    await waitForPortClosed(host, port, 5_000);
  };

  const unregister = onExitSync(() => {
    child?.kill('SIGKILL'); // SIGKILL also ends a stopped process
    rmSync(dir, { recursive: true, force: true });
  });

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await stop();
    rmSync(dir, { recursive: true, force: true });
    unregister();
  };

  try {
    await start();
  } catch (err) {
    await close();
    throw err;
  }
  opts.t?.teardown(() => close());
  const signal = (sig: NodeJS.Signals): void => {
    if (!child) throw new Error('redis-server is not running');
    child.kill(sig);
  };
  return {
    host, port, url: `redis://${host}:${port}/0`, start, stop, close, output: () => out,
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
  };
}
