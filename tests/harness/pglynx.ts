// Runs the pooler under test as a real child process, from source via tsx,
// the way an operator would run it: `pglynx CONFIG_PATH --log-level LEVEL`.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import toml from 'toml';
import { onExitSync, type Teardown } from './cleanup.js';
import { waitForPort } from './ports.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ENTRY = path.join(REPO_ROOT, 'bin', 'pglynx.ts');
const OUTPUT_CAP = 16 << 20; // keep the newest 16 MB of logs; debug runs with 1,000 clients are chatty

export interface StartPglynxOptions {
  logLevel?: string;
  env?: Record<string, string>;
  /** Registers stop() as teardown of this tap test. */
  t?: Teardown;
  /** How long to wait for the port to accept TCP. Default 20 s. */
  timeoutMs?: number;
}

export interface PglynxProcess {
  readonly host: string;
  readonly port: number;
  readonly configPath: string;
  readonly pid: number;
  /** Everything written to stdout and stderr so far, interleaved. */
  output(): string;
  /** Resolves once `pattern` appears in the output (checked from `from`, an output() length). */
  waitForOutput(pattern: string | RegExp, timeoutMs?: number, from?: number): Promise<void>;
  /** Sends `signal` (SIGKILL after 15 s) and resolves with the exit code (null if killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
  /** Overwrites the config file (for reload tests). */
  writeConfig(toml: string): void;
  /** Resolves with the exit code (null if killed by a signal) when the process exits. */
  readonly exited: Promise<number | null>;
}

function listenAddress(configToml: string): { host: string; port: number } {
  const parsed = toml.parse(configToml) as { general?: { host?: unknown; port?: unknown } };
  const port = parsed.general?.port;
  if (typeof port !== 'number') throw new Error('startPglynx: config has no general.port');
  const host = parsed.general?.host;
  // A wildcard bind is reachable on loopback.
  return { host: typeof host === 'string' && host !== '0.0.0.0' && host !== '::' ? host : '127.0.0.1', port };
}

/** Env for the child: ours minus what tap injects (loaders, TAP_*), which must not leak into the pooler. */
function childEnv(extra: Record<string, string> | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k === 'NODE_OPTIONS' || k === 'TAP' || k.startsWith('TAP_') || k.startsWith('_TAPJS')) continue;
    if (k.startsWith('TS_NODE_') || k === 'NODE_V8_COVERAGE') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export async function startPglynx(configToml: string, opts: StartPglynxOptions = {}): Promise<PglynxProcess> {
  const { host, port } = listenAddress(configToml);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pglynx-cfg-'));
  const configPath = path.join(dir, 'pgcat.toml');
  writeFileSync(configPath, configToml);

  const child = spawn(
    process.execPath,
    [...(process.env.PGLYNX_NODE_ARGS ?? '').split(' ').filter(Boolean), '--import', 'tsx', ENTRY, configPath, '--log-level', opts.logLevel ?? 'info'],
    { cwd: REPO_ROOT, env: childEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  const collect = (d: string): void => {
    out += d;
    if (out.length > OUTPUT_CAP) out = out.slice(out.length - OUTPUT_CAP / 2);
  };
  child.stdout.setEncoding('utf8').on('data', collect);
  child.stderr.setEncoding('utf8').on('data', collect);

  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    // 'close' rather than 'exit': by then stdout/stderr are drained, so
    // output() is complete when a test awaits stop() or exited.
    child.on('close', (code) => {
      exitCode = code;
      resolve(code);
    });
    // Spawn failure: no 'exit' follows.
    child.on('error', (err) => {
      collect(`\n[harness] spawn failed: ${err.message}\n`);
      exitCode = null;
      resolve(null);
    });
  });

  let removed = false;
  const cleanupSync = (): void => {
    if (exitCode === undefined) child.kill('SIGKILL');
    if (!removed) rmSync(dir, { recursive: true, force: true });
    removed = true;
  };
  const unregister = onExitSync(cleanupSync);

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    if (exitCode === undefined) {
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    cleanupSync();
    unregister();
    return exitCode ?? null;
  };

  try {
    await waitForPort(host, port, opts.timeoutMs ?? 20_000, () =>
      exitCode === undefined ? undefined : `pglynx exited with ${exitCode} before listening on ${host}:${port}:\n${out}`,
    );
  } catch (err) {
    await stop('SIGKILL');
    throw err;
  }

  const proc: PglynxProcess = {
    host,
    port,
    configPath,
    pid: child.pid ?? -1,
    output: () => out,
    async waitForOutput(pattern, timeoutMs = 10_000, from = 0) {
      const deadline = Date.now() + timeoutMs;
      const hit = (): boolean => {
        const s = out.slice(from);
        return typeof pattern === 'string' ? s.includes(pattern) : pattern.test(s);
      };
      while (!hit()) {
        if (Date.now() > deadline) throw new Error(`pglynx output lacks ${String(pattern)} after ${timeoutMs} ms:\n${out.slice(-4000)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    stop,
    kill: (signal = 'SIGKILL') => {
      child.kill(signal);
    },
    writeConfig: (text) => writeFileSync(configPath, text),
    exited,
  };
  opts.t?.teardown(() => stop());
  return proc;
}

// ---------------------------------------------------------------- config builder

export type TomlValue = string | number | boolean | TomlValue[] | { [key: string]: TomlValue };

export interface ConfigUser {
  username: string;
  password?: string;
  pool_size?: number;
  min_pool_size?: number;
  pool_mode?: 'transaction' | 'session';
  server_username?: string;
  server_password?: string;
  statement_timeout?: number;
  [key: string]: TomlValue | undefined;
}

export interface ConfigShard {
  database: string;
  /** [host, port, role] */
  servers: [string, number, 'primary' | 'replica' | 'auto'][];
  [key: string]: TomlValue | undefined;
}

export interface ConfigPool {
  users: ConfigUser[];
  shards: ConfigShard[];
  pool_mode?: 'transaction' | 'session';
  [key: string]: TomlValue | ConfigUser[] | ConfigShard[] | undefined;
}

export interface ConfigTomlOptions {
  port: number;
  /** Merged over the defaults (host 127.0.0.1, admin/admin). */
  general?: Record<string, TomlValue>;
  pools?: Record<string, ConfigPool>;
  /** Other top-level sections, e.g. { plugins: {...} }. */
  extra?: Record<string, TomlValue>;
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/;

function tomlKey(k: string): string {
  return BARE_KEY.test(k) ? k : tomlString(k);
}

function tomlString(s: string): string {
  let r = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '"') r += '\\"';
    else if (ch === '\\') r += '\\\\';
    else if (ch === '\n') r += '\\n';
    else if (ch === '\r') r += '\\r';
    else if (ch === '\t') r += '\\t';
    else if (c < 0x20 || c === 0x7f) r += `\\u${c.toString(16).padStart(4, '0')}`;
    else r += ch;
  }
  return `${r}"`;
}

function isTable(v: unknown): v is Record<string, TomlValue | undefined> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function tomlInline(v: TomlValue): string {
  if (typeof v === 'string') return tomlString(v);
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`TOML cannot hold ${v}`);
    return String(v);
  }
  if (Array.isArray(v)) return `[${v.map(tomlInline).join(', ')}]`;
  return `{ ${Object.entries(v)
    .map(([k, x]) => `${tomlKey(k)} = ${tomlInline(x)}`)
    .join(', ')} }`;
}

/** A table as TOML: its plain keys under [path], then each sub-table as its own section. */
function tomlTable(pathKeys: string[], table: Record<string, TomlValue | undefined>): string {
  const lines: string[] = [];
  const subs: [string, Record<string, TomlValue | undefined>][] = [];
  for (const [k, v] of Object.entries(table)) {
    if (v === undefined) continue;
    if (isTable(v)) subs.push([k, v]);
    else lines.push(`${tomlKey(k)} = ${tomlInline(v)}`);
  }
  let out = '';
  if (pathKeys.length > 0 && (lines.length > 0 || subs.length === 0)) out += `[${pathKeys.map(tomlKey).join('.')}]\n`;
  if (lines.length > 0) out += `${lines.join('\n')}\n\n`;
  for (const [k, v] of subs) out += tomlTable([...pathKeys, k], v);
  return out;
}

/** A pgcat.toml for tests. Users and shards are keyed "0", "1", ... as PgCat does. */
export function configToml(opts: ConfigTomlOptions): string {
  const pools: Record<string, TomlValue> = {};
  for (const [name, { users, shards, ...rest }] of Object.entries(opts.pools ?? {})) {
    const settings = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as Record<string, TomlValue>;
    pools[name] = {
      ...settings,
      users: Object.fromEntries(users.map((u, i) => [String(i), dropUndefined(u)])),
      shards: Object.fromEntries(shards.map((s, i) => [String(i), dropUndefined(s)])),
    };
  }
  const doc: Record<string, TomlValue> = {
    general: { host: '127.0.0.1', admin_username: 'admin', admin_password: 'admin', ...opts.general, port: opts.port },
    ...opts.extra,
  };
  if (Object.keys(pools).length > 0) doc.pools = pools;
  return tomlTable([], doc);
}

function dropUndefined(o: Record<string, TomlValue | undefined>): Record<string, TomlValue> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Record<string, TomlValue>;
}
