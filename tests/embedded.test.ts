// The embedded PGlite backend: served over the wire to pg and psql, pgvector
// available, data persisting across restarts, shared per data dir, and the
// multiplexer behaviour the pooler relies on (see pooler/embedded/pglite-backend.ts).

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { pino } from 'pino';
import t from 'tap';
import { sleep } from './harness/wait.js';
import {
  parseEmbeddedHost,
  startEmbeddedBackend,
  stopAllEmbeddedBackends,
  type EmbeddedBackend,
} from '../pooler/embedded/pglite-backend.js';

const run = promisify(execFile);
const root = mkdtempSync(join(tmpdir(), 'pglynx-embedded-'));
const dataDir = join(root, 'data');
const log = pino({ level: 'warn' }, pino.destination(2));

t.teardown(async () => {
  await stopAllEmbeddedBackends();
  rmSync(root, { recursive: true, force: true });
});

function client(be: EmbeddedBackend): pg.Client {
  // user/database/password are ignored by PGlite; send what a pooler would.
  return new pg.Client({ host: be.host, port: be.port, user: 'app', password: 'secret', database: 'appdb' });
}

// Async on purpose: the server runs on this event loop, a sync child would deadlock it.
async function psql(be: EmbeddedBackend, sql: string): Promise<string> {
  const { stdout } = await run(
    '/usr/bin/psql',
    ['-h', be.host, '-p', String(be.port), '-U', 'postgres', '-d', 'postgres', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-c', sql],
    // pglite-socket answers SSLRequest with 'N' but does not understand GSSENCRequest.
    { env: { ...process.env, PGSSLMODE: 'disable', PGGSSENCMODE: 'disable', PGCONNECT_TIMEOUT: '10' }, timeout: 30_000 },
  );
  return stdout.trim();
}

/** Does anything accept connections on the backend's Unix socket? */
function socketOpen(be: EmbeddedBackend): Promise<boolean> {
  return new Promise((res) => {
    const s = connect(join(be.host, `.s.PGSQL.${be.port}`));
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

/** TCP ports this process listens on (from /proc/net/tcp, state 0A = LISTEN, by socket inode). */
async function listeningTcpPorts(): Promise<number[]> {
  const { readdirSync, readlinkSync } = await import('node:fs');
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {}
  }
  const ports: number[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A' && inodes.has(f[9])) ports.push(parseInt(f[1].split(':')[1], 16));
    }
  }
  return ports.sort((a, b) => a - b);
}
const tcpBefore = await listeningTcpPorts();


t.test('parseEmbeddedHost', async (t) => {
  t.equal(parseEmbeddedHost('localhost', '/cfg'), null);
  t.equal(parseEmbeddedHost('10.0.0.1', '/cfg'), null);
  t.equal(parseEmbeddedHost('pglite:./.pglynx-data', '/cfg'), '/cfg/.pglynx-data');
  t.equal(parseEmbeddedHost('PGLITE:data', '/cfg'), '/cfg/data');
  t.equal(parseEmbeddedHost('pglite:/abs/dir', '/cfg'), '/abs/dir');
  t.equal(parseEmbeddedHost('pglite:memory://', '/cfg'), 'memory://');
  t.throws(() => parseEmbeddedHost('pglite:', '/cfg'), /needs a data directory/);
});

t.test('pgvector over the wire, persisting across restarts', async (t) => {
  let started = performance.now();
  const be = await startEmbeddedBackend(dataDir, { log });
  t.comment(`first start (initdb + pgvector): ${Math.round(performance.now() - started)} ms`);
  t.ok(be.host.startsWith('/'), `a Unix socket directory: ${be.host}`);
  t.equal(statSync(be.host).mode & 0o777, 0o700, 'only this OS user may reach the socket');
  t.equal(statSync(join(be.host, `.s.PGSQL.${be.port}`)).isSocket(), true, 'libpq-style socket file');
  t.same(await listeningTcpPorts(), tcpBefore, 'no TCP port opened by the embedded backend');
  t.equal(be.dataDir, dataDir);
  t.ok(existsSync(join(dataDir, '.pglynx.lock')), 'data dir is locked while running');

  const c = client(be);
  await c.connect();
  const who = await c.query<{ u: string; d: string }>('SELECT current_user AS u, current_database() AS d');
  t.same(who.rows, [{ u: 'postgres', d: 'postgres' }], 'startup user/database are ignored');
  await c.query('CREATE EXTENSION IF NOT EXISTS vector');
  await c.query('CREATE TABLE items (id int PRIMARY KEY, emb vector(3))');
  await c.query("INSERT INTO items VALUES (1, '[1,2,3]'), (2, '[10,10,10]'), (3, '[1,2,4]')");
  const near = await c.query<{ id: number }>("SELECT id FROM items ORDER BY emb <-> '[1,2,3]' LIMIT 2");
  t.same(near.rows.map((r) => r.id), [1, 3]);
  const param = await c.query<{ id: number }>('SELECT id FROM items ORDER BY emb <-> $1::vector LIMIT 1', ['[10,9,10]']);
  t.same(param.rows, [{ id: 2 }], 'extended protocol with a vector parameter');
  await c.end();

  t.equal(await psql(be, "SELECT string_agg(id::text, ',' ORDER BY emb <-> '[1,2,3]') FROM items"), '1,3,2', 'psql');
  t.equal(await psql(be, "SELECT extversion IS NOT NULL FROM pg_extension WHERE extname = 'vector'"), 't');

  await be.stop();
  t.notOk(await socketOpen(be), 'socket closed after stop');
  t.notOk(existsSync(be.host), 'socket directory removed');
  t.notOk(existsSync(join(dataDir, '.pglynx.lock')), 'lock released');

  started = performance.now();
  const again = await startEmbeddedBackend(dataDir, { log });
  t.comment(`restart on existing data dir: ${Math.round(performance.now() - started)} ms`);
  const c2 = client(again);
  await c2.connect();
  const rows = await c2.query<{ id: number; emb: string }>('SELECT id, emb::text AS emb FROM items ORDER BY id');
  t.same(rows.rows, [
    { id: 1, emb: '[1,2,3]' },
    { id: 2, emb: '[10,10,10]' },
    { id: 3, emb: '[1,2,4]' },
  ], 'rows survived the restart');
  await c2.end();
  await again.stop();
});

t.test('two pools naming one data dir share one instance', async (t) => {
  const a = await startEmbeddedBackend(dataDir, { log });
  const b = await startEmbeddedBackend(dataDir, { log });
  t.equal(a.host, b.host, 'same server');
  await a.stop();
  await a.stop(); // idempotent: must not release b's reference
  t.ok(await socketOpen(b), 'still serving while a handle remains');
  t.equal(await psql(b, 'SELECT count(*) FROM items'), '3');
  await b.stop();
  t.notOk(await socketOpen(b), 'last release stops it');
});

t.test('a data dir locked by another live process is refused', async (t) => {
  const dir = join(root, 'locked');
  mkdirSync(dir, { recursive: true });
  // The parent (tap runner) is alive and is not us: looks like a second pooler.
  writeFileSync(join(dir, '.pglynx.lock'), `${process.ppid}\n`);
  await t.rejects(startEmbeddedBackend(dir, { log }), /in use by process/);
  t.equal(readFileSync(join(dir, '.pglynx.lock'), 'utf8').trim(), String(process.ppid), 'foreign lock left alone');

  // A lock whose owner is gone is stale and taken over.
  writeFileSync(join(dir, '.pglynx.lock'), '999999999\n');
  const be = await startEmbeddedBackend(dir, { log });
  t.equal(readFileSync(join(dir, '.pglynx.lock'), 'utf8').trim(), String(process.pid));
  await be.stop();
});

t.test('concurrent connections: multiplexed onto one session', async (t) => {
  const be = await startEmbeddedBackend('memory://', { log, maxConnections: 4 });
  t.teardown(() => be.stop());
  const c1 = client(be);
  const c2 = client(be);
  await Promise.all([c1.connect(), c2.connect()]);

  // Each client runs its queries in sequence, the two clients side by side.
  const loop = async (c: pg.Client, offset: number) => {
    const got: number[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await c.query<{ v: number }>('SELECT $1::int + $2::int AS v', [i, offset]);
      got.push(r.rows[0]?.v ?? -1);
    }
    return got;
  };
  const [a, b] = await Promise.all([loop(c1, 0), loop(c2, 100)]);
  t.same(a, Array.from({ length: 20 }, (_, i) => i), 'c1 answered');
  t.same(b, Array.from({ length: 20 }, (_, i) => i + 100), 'c2 answered');

  // A transaction block on one socket makes the other socket's queries wait.
  await c1.query('CREATE TABLE t (x int)');
  await c1.query('BEGIN');
  await c1.query('INSERT INTO t VALUES (1)');
  let c2Done = false;
  const waiting = c2.query<{ n: string }>('SELECT count(*) AS n FROM t').then((r) => {
    c2Done = true;
    return r.rows[0]?.n;
  });
  await sleep(300);
  t.notOk(c2Done, 'c2 queued while c1 is in a transaction');
  await c1.query('COMMIT');
  t.equal(await waiting, '1', 'c2 runs after COMMIT and sees the row');

  // Session state is shared: documented hazard for the pooler.
  await c1.query("SET application_name = 'from_c1'");
  const seen = await c2.query<{ application_name: string }>('SHOW application_name');
  t.equal(seen.rows[0]?.application_name, 'from_c1', 'SET on one socket is visible on the other');

  // Terminate on one socket leaves the shared backend usable for the other.
  await c1.end();
  const after = await c2.query<{ ok: number }>('SELECT 1 AS ok');
  t.same(after.rows, [{ ok: 1 }]);
  await c2.end();
});

t.test('a disconnect inside a transaction rolls back and unblocks others', async (t) => {
  const be = await startEmbeddedBackend('memory://', { log });
  t.teardown(() => be.stop());
  const c1 = client(be);
  const c2 = client(be);
  await Promise.all([c1.connect(), c2.connect()]);
  await c1.query('CREATE TABLE r (x int)');
  await c1.query('BEGIN');
  await c1.query('INSERT INTO r VALUES (1)');
  const pending = c2.query<{ n: string }>('SELECT count(*) AS n FROM r');
  c1.on('error', () => undefined);
  (c1 as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  const res = await pending;
  t.equal(res.rows[0]?.n, '0', 'c1 transaction rolled back');
  await c2.end();
});

t.test('a StartupMessage with an empty user does not wedge the other sockets', async (t) => {
  const be = await startEmbeddedBackend('memory://', { log: pino({ level: 'silent' }) });
  t.teardown(() => be.stop());
  const c1 = client(be);
  await c1.connect();

  // Protocol 3.0 StartupMessage with user "" (leaving `user` out is accepted).
  const body = Buffer.from('\0\x03\0\0user\0\0database\0postgres\0\0', 'latin1');
  const len = Buffer.alloc(4);
  len.writeInt32BE(body.length + 4);
  const raw = connect(join(be.host, `.s.PGSQL.${be.port}`));
  const reply = await new Promise<Buffer>((res, rej) => {
    raw.once('data', res);
    raw.once('error', rej);
    raw.write(Buffer.concat([len, body]));
  });
  raw.destroy();
  t.equal(String.fromCharCode(reply[0] ?? 0), 'E', 'FATAL ErrorResponse');
  t.match(reply.toString('latin1'), /no PostgreSQL user name/);

  const after = await c1.query<{ ok: number }>('SELECT 1 AS ok');
  t.same(after.rows, [{ ok: 1 }], 'an already connected socket still works');
  await c1.end();
});
