// `npm start` on a machine with no Postgres: the shipped pgcat.toml serves
// an embedded PGlite (with pgvector) through the pooler, and its data
// survives a restart. The shipped file is used as is, except for the port
// and its location (a temp dir, so the data dir is a temp dir too).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { psql } from './harness/clients.js';
import { REPO_ROOT, startPglynx } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';

t.test('shipped pgcat.toml: embedded backend through the pooler', async (t) => {
  const port = await freePort();
  const shipped = readFileSync(path.join(REPO_ROOT, 'pgcat.toml'), 'utf8');
  t.match(shipped, /servers = \[\["pglite:\.\/\.pglynx-data", 0, "primary"\]\]/, 'ships the embedded backend');
  const config = shipped.replace(/^port = 6432$/m, `port = ${port}`).replace(/^enable_prometheus_exporter = true$/m, 'enable_prometheus_exporter = false');
  const scratch = mkdtempSync(path.join(tmpdir(), 'pglynx-quickstart-'));
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
  const conn = { host: '127.0.0.1', port, user: 'postgres', db: 'postgres', password: 'postgres' };

  // As shipped: the relative data dir lives next to the config file.
  let pooler = await startPglynx(config, { t, logLevel: 'warn' });
  const setup = await psql({
    ...conn,
    sql: "CREATE EXTENSION IF NOT EXISTS vector; CREATE TABLE items (id int PRIMARY KEY, emb vector(3)); INSERT INTO items VALUES (1, '[1,2,3]'), (2, '[9,9,9]');",
  });
  t.equal(setup.code, 0, `CREATE EXTENSION vector through PgLynx: ${setup.stderr}`);
  const nearest = await psql({ ...conn, sql: "SELECT id FROM items ORDER BY emb <-> '[1,2,4]' LIMIT 1" });
  t.equal(nearest.stdout.trim(), '1', 'pgvector nearest neighbour through the pooler');
  t.ok(existsSync(path.join(path.dirname(pooler.configPath), '.pglynx-data')), 'data dir created next to the config');
  t.equal(await pooler.stop('SIGINT'), 0, 'stops cleanly');

  // Data survives a restart (absolute data dir, so both runs share it).
  const persistent = config.replace('pglite:./.pglynx-data', `pglite:${path.join(scratch, 'data')}`);
  pooler = await startPglynx(persistent, { t, logLevel: 'warn' });
  t.equal((await psql({ ...conn, sql: 'CREATE TABLE kept (v text); INSERT INTO kept VALUES (\'still here\')' })).code, 0);
  t.equal(await pooler.stop('SIGINT'), 0);
  pooler = await startPglynx(persistent, { t, logLevel: 'warn' });
  t.equal((await psql({ ...conn, sql: 'SELECT v FROM kept' })).stdout.trim(), 'still here', 'rows survive a restart');
  const wrong = await psql({ ...conn, password: 'nope', sql: 'SELECT 1' });
  t.match(wrong.stderr, /password authentication failed for user "postgres"/, 'clients still authenticate');
  await pooler.stop('SIGINT');
});
