// Embedded Postgres backend: PGlite (WASM Postgres) run in-process and served
// over the Postgres wire protocol by @electric-sql/pglite-socket, so that
// `npm start` works with no Postgres installed. A pool names it with the server
// host `pglite:<data dir>`; the pooler then connects to its private Unix socket like to any
// other server (StartupMessage, Authentication, ...).
//
// What PGlite over pglite-socket is, as observed with PGlite 0.5.14 /
// pglite-socket 0.2.17 (tests/embedded.test.ts checks the load-bearing parts):
//
// One session, many sockets. PGlite is a single Postgres backend. The socket
// server accepts up to `maxConnections` sockets and multiplexes them: every
// protocol message of every socket goes into one FIFO and is executed alone
// against that one backend. Consequences:
//  - Explicit transaction blocks are serialised: while a socket is inside
//    BEGIN..COMMIT (or a failed block), messages of other sockets wait in the
//    queue (they do not fail). An idle-in-transaction socket therefore stalls
//    every other socket; if it disconnects, the server issues ROLLBACK and the
//    others proceed.
//  - Session state is shared by all sockets: SET/GUCs, named prepared
//    statements (same name on two sockets -> "already exists"), temp tables,
//    and DISCARD ALL / DEALLOCATE ALL on one socket wipes them for all.
//  - Interleaving is per message, not per Sync. The extended protocol outside
//    BEGIN is not protected: if socket A's Parse/Bind/Execute/Sync arrive in
//    separate TCP chunks (large messages, drivers that Parse+Describe+Flush
//    first, a pooler forwarding as it reads), socket B's messages can run in
//    between. Seen: B's simple Query drops A's unnamed statement ("unnamed
//    prepared statement does not exist"), and after an error in A's batch the
//    backend skips until Sync, silently swallowing B's Query so B hangs.
//  - Sockets beyond maxConnections get the raw text "Too many connections\n"
//    (not a protocol ErrorResponse) and are closed.
// So the pooler should open ONE server connection per embedded backend (for
// all pools sharing the data dir) and multiplex clients onto it itself, which
// loses nothing: PGlite executes one message at a time regardless.
//
// Protocol quirks: the StartupMessage's user/database/options are ignored
// (always user "postgres", database "postgres", superuser); no password is
// asked (AuthenticationOk at once); SSLRequest gets 'N'; GSSENCRequest is not
// understood (clients must not send it: PGGSSENCMODE=disable for libpq);
// CancelRequest is swallowed (cancel has no effect); ParameterStatus messages
// are re-sent before ReadyForQuery after every Sync; Terminate ('X') does not
// make the server close the socket, the client side must close it.
//
// A StartupMessage with user="" is fatal for the whole instance (leaving
// `user` out is fine): PGlite sends the FATAL ErrorResponse, then throws, and
// its WASM state is broken: every later StartupMessage throws "null function
// or function signature mismatch" while already connected sockets keep
// working. Unguarded, the throw also wedges pglite-socket's queue forever (its
// processQueue returns without clearing `processing`), hanging every socket;
// guardQueue() keeps the queue alive and logs. The cure is a restart. Other
// startup fields (database, options=-c ..., application_name) are ignored
// without error; pg_terminate_backend() returns false; ERRORs, even FATAL-coded
// RAISEs inside queries, are ordinary ErrorResponses.
//
// PGlite runs on this thread: while it executes a query the event loop is
// blocked (a `pg_sleep(1)` freezes all pooler I/O for a second).

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

/** The subset of a pino logger this module uses. */
export interface EmbeddedLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface EmbeddedBackendOptions {
  log?: EmbeddedLogger;
  /**
   * Sockets the server accepts at once (default 64). Only the first start of a
   * data dir decides it; later starts sharing the instance get the same one.
   */
  maxConnections?: number;
}

export interface EmbeddedBackend {
  /**
   * The directory of its Unix socket (`<host>/.s.PGSQL.<port>`, as libpq
   * names sockets): created mode 0700, so only this OS user can connect.
   * PGlite asks no password and makes every connection superuser; a TCP
   * port would let any local user bypass the pooler's authentication.
   */
  readonly host: string;
  /** The number in the socket's file name (no TCP port is opened). */
  readonly port: number;
  /** Absolute data directory, or a `memory://` URL. */
  readonly dataDir: string;
  readonly maxConnections: number;
  /** Releases this handle; the last release stops the server and closes PGlite. */
  stop(): Promise<void>;
}

/** The socket file is `.s.PGSQL.5432` in a private directory, as a local Postgres's would be. */
const SOCKET_PORT = 5432;
const DEFAULT_MAX_CONNECTIONS = 64;
const PREFIX = 'pglite:';
const LOCK_FILE = '.pglynx.lock';
// server.stop() waits for sockets to close; a half-closed one could hold it forever.
const STOP_TIMEOUT_MS = 5000;

/**
 * The data dir for a `pglite:<dir>` server host, or null for any other host.
 * Relative dirs resolve against `baseDir` (the config file's directory);
 * `~/` means the home directory; `memory://` keeps PGlite in memory.
 */
export function parseEmbeddedHost(host: string, baseDir: string = process.cwd()): string | null {
  if (host.slice(0, PREFIX.length).toLowerCase() !== PREFIX) return null;
  const dir = host.slice(PREFIX.length).trim();
  if (dir === '') {
    throw new Error(`server host "${host}" needs a data directory, e.g. "pglite:./.pglynx-data"`);
  }
  if (dir.startsWith('memory://')) return dir;
  if (dir === '~' || dir.startsWith('~/')) return join(homedir(), dir.slice(1));
  return resolve(baseDir, dir);
}

/** True when a server host string names the embedded backend. */
export function isEmbeddedHost(host: string): boolean {
  return host.slice(0, PREFIX.length).toLowerCase() === PREFIX;
}

interface Instance {
  db: PGlite;
  server: PGLiteSocketServer;
  socketDir: string;
  maxConnections: number;
  unlock: () => void;
}

interface Entry {
  refs: number;
  ready: Promise<Instance>;
  log: EmbeddedLogger | undefined;
}

// PGlite must be opened once per directory, so pools naming the same dir share
// one instance, ref-counted by the handles given out.
const registry = new Map<string, Entry>();
// Shutdowns in progress, so a restart of the same dir waits for the close.
const closing = new Map<string, Promise<void>>();

/**
 * Starts (or joins) the embedded backend for `dataDir` (as returned by
 * parseEmbeddedHost). Each call returns its own handle; stop() each one.
 */
export async function startEmbeddedBackend(
  dataDir: string,
  opts: EmbeddedBackendOptions = {},
): Promise<EmbeddedBackend> {
  const key = dataDir.startsWith('memory://') ? dataDir : resolve(dataDir);
  let entry = registry.get(key);
  if (!entry) {
    const created: Entry = { refs: 0, ready: open(key, opts), log: opts.log };
    // A failed start must not poison later attempts.
    created.ready.catch(() => {
      if (registry.get(key) === created) registry.delete(key);
    });
    registry.set(key, created);
    entry = created;
  }
  entry.refs++;
  let inst: Instance;
  try {
    inst = await entry.ready;
  } catch (err) {
    entry.refs--;
    throw err;
  }
  const shared = entry;
  let stopped: Promise<void> | null = null;
  return {
    host: inst.socketDir,
    port: SOCKET_PORT,
    dataDir: key,
    maxConnections: inst.maxConnections,
    stop: () => (stopped ??= release(key, shared)),
  };
}

/** Stops every embedded backend regardless of handles, e.g. on pooler shutdown. */
export async function stopAllEmbeddedBackends(): Promise<void> {
  const entries = [...registry.entries()];
  registry.clear();
  await Promise.all(entries.map(([key, entry]) => shutdown(key, entry)));
  await Promise.all([...closing.values()]);
}

async function release(key: string, entry: Entry): Promise<void> {
  entry.refs--;
  if (entry.refs > 0 || registry.get(key) !== entry) return closing.get(key);
  registry.delete(key);
  await shutdown(key, entry);
}

function shutdown(key: string, entry: Entry): Promise<void> {
  const done = entry.ready
    .then((inst) => closeInstance(key, inst, entry.log), () => undefined)
    .finally(() => {
      if (closing.get(key) === done) closing.delete(key);
    });
  closing.set(key, done);
  return done;
}

async function open(key: string, opts: EmbeddedBackendOptions): Promise<Instance> {
  const log = opts.log;
  const maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw new Error(`maxConnections must be a positive integer, got ${maxConnections}`);
  }
  await closing.get(key);

  const inMemory = key.startsWith('memory://');
  const fresh = inMemory || !existsSync(join(key, 'PG_VERSION'));
  const unlock = inMemory ? () => undefined : lockDataDir(key);
  const started = performance.now();
  log?.info({ dataDir: key, fresh }, fresh ? 'initialising embedded PGlite (first start takes a few seconds)' : 'opening embedded PGlite');

  let db: PGlite | undefined;
  // mkdtemp creates the directory with mode 0700.
  const socketDir = mkdtempSync(join(tmpdir(), 'pglynx-pglite-'));
  try {
    // pgvector ships as a separate bundle; registering it here is what makes
    // `CREATE EXTENSION vector` work for clients.
    db = await PGlite.create({ dataDir: key, extensions: { vector } });
    guardQueue(db, key, log);
    const server = new PGLiteSocketServer({ db, path: join(socketDir, `.s.PGSQL.${SOCKET_PORT}`), maxConnections });
    server.addEventListener('error', (ev) => {
      log?.warn({ dataDir: key, err: (ev as CustomEvent<unknown>).detail }, 'embedded PGlite socket error');
    });
    server.addEventListener('connection', (ev) => {
      log?.debug({ dataDir: key, client: (ev as CustomEvent<unknown>).detail }, 'embedded PGlite connection');
    });
    await server.start();
    const ms = Math.round(performance.now() - started);
    log?.info({ dataDir: key, socket: server.getServerConn(), ms, maxConnections }, 'embedded PGlite listening');
    return { db, server, socketDir, maxConnections, unlock };
  } catch (err) {
    await db?.close().catch(() => undefined);
    rmSync(socketDir, { recursive: true, force: true });
    unlock();
    throw err;
  }
}

async function closeInstance(key: string, inst: Instance, log: EmbeddedLogger | undefined): Promise<void> {
  try {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      inst.server.stop().then(() => false),
      new Promise<boolean>((res) => {
        timer = setTimeout(() => res(true), STOP_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) log?.warn({ dataDir: key }, 'embedded PGlite socket server did not close in time');
    // close() checkpoints, so the data dir is clean for the next start.
    await inst.db.close();
    log?.info({ dataDir: key }, 'embedded PGlite stopped');
  } finally {
    rmSync(inst.socketDir, { recursive: true, force: true });
    inst.unlock();
  }
}

// pglite-socket runs every message through db.execProtocolRawStream and, if
// that throws, never processes its queue again (see the header). The client
// already got PGlite's ErrorResponse, so swallowing the throw after logging it
// lets the other sockets carry on.
function guardQueue(db: PGlite, dataDir: string, log: EmbeddedLogger | undefined): void {
  const exec = db.execProtocolRawStream.bind(db);
  db.execProtocolRawStream = async (message, options) => {
    try {
      await exec(message, options);
    } catch (err) {
      const detail = err instanceof Error ? err.message : JSON.stringify(err);
      log?.error({ dataDir, err: detail }, 'embedded PGlite failed on a protocol message; restart it if new connections hang');
    }
  };
}

// PGlite takes no lock of its own: two processes opening one dir both write
// to it and lose or corrupt data. A pid file refuses the second process.
function lockDataDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number.parseInt(readFileSync(file, 'utf8'), 10);
      if (owner > 0 && owner !== process.pid && isAlive(owner)) {
        throw new Error(`embedded PGlite data dir ${dir} is in use by process ${owner} (${file})`);
      }
      // Left behind by a process that exited without stopping the backend.
      rmSync(file, { force: true });
    }
  }
  throw new Error(`could not lock embedded PGlite data dir ${dir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
