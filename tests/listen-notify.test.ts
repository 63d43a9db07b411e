// LISTEN / NOTIFY in transaction mode (issue 16, point 4), against a real
// Postgres 15 through node-postgres: 100 clients LISTEN through a pool of
// 2 server connections (no server is pinned to a listener: the pool keeps
// one LISTEN connection of its own), a NOTIFY reaches every one of them; a
// client busy in a transaction gets it when the transaction ends; UNLISTEN
// and a disconnect stop delivery; NOTIFY inside a transaction arrives at
// its COMMIT only.
import t from 'tap';
import type pg from 'pg';
import { primaryShard } from './harness/pool-config.js';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';
import { sleep, waitFor } from './harness/wait.js';

const db = await startPostgres({ users: [{ name: 'app', password: 'apppw' }], databases: [{ name: 'app', owner: 'app' }], t });
const pooler = await startPglynx(
  configToml({
    port: await freePort(),
    pools: { app: { pool_mode: 'transaction', users: [{ username: 'app', password: 'apppw', pool_size: 2 }], shards: [primaryShard(db, 'app')] } },
  }),
  { t },
);
const connect = (): Promise<pg.Client> => pgClient({ port: pooler.port, user: 'app', password: 'apppw', database: 'app' });

/** Notifications a client received, by channel. */
function heard(c: pg.Client): { channel: string; payload?: string }[] {
  const got: { channel: string; payload?: string }[] = [];
  c.on('notification', (n) => got.push({ channel: n.channel, payload: n.payload }));
  return got;
}

t.test('a NOTIFY reaches 100 listening clients on a pool of 2 server connections', async (t) => {
  const listeners = await Promise.all(Array.from({ length: 100 }, connect));
  const inboxes = listeners.map(heard);
  for (const l of listeners) await l.query('LISTEN news');
  // No server is held by a listener: every one of them (and a sender) still runs statements on the 2 servers.
  const ran = await Promise.all(listeners.map((l) => l.query('SELECT 1 AS one')));
  t.equal(ran.length, 100, 'listeners run statements while listening');
  const sender = await connect();
  await sender.query("NOTIFY news, 'hello'");
  await waitFor(async () => inboxes.every((i) => i.length >= 1), 5000);
  t.ok(inboxes.every((i) => i.length === 1 && i[0].channel === 'news' && i[0].payload === 'hello'), 'every listener got the one notification');
  await sender.query("SELECT pg_notify('news', 'again')");
  await waitFor(async () => inboxes.every((i) => i.length >= 2), 5000);
  t.ok(inboxes.every((i) => i[1].payload === 'again'), 'pg_notify too');
  await Promise.all(listeners.map((l) => l.end()));
  await sender.end();
});

t.test('a client in a transaction gets the notification when it ends; NOTIFY in a transaction arrives at COMMIT', async (t) => {
  const busy = await connect();
  const inbox = heard(busy);
  await busy.query('LISTEN jobs');
  const sender = await connect();
  await busy.query('BEGIN');
  await busy.query('SELECT 1');
  await sender.query("NOTIFY jobs, 'while busy'");
  await sleep(200);
  t.equal(inbox.length, 0, 'held while its transaction is open');
  await busy.query('COMMIT');
  await waitFor(async () => inbox.length === 1, 5000);
  t.equal(inbox[0].payload, 'while busy', 'delivered once it ended');
  await sender.query('BEGIN');
  await sender.query("NOTIFY jobs, 'on commit'");
  await sleep(200);
  t.equal(inbox.length, 1, 'nothing before the sender commits');
  await sender.query('COMMIT');
  await waitFor(async () => inbox.length === 2, 5000);
  t.equal(inbox[1].payload, 'on commit', 'delivered at COMMIT');
  await busy.end();
  await sender.end();
});

t.test('UNLISTEN and a disconnect stop delivery; others keep theirs', async (t) => {
  const a = await connect();
  const b = await connect();
  const inboxA = heard(a);
  const inboxB = heard(b);
  await a.query('LISTEN one; LISTEN two');
  await b.query('LISTEN two');
  const sender = await connect();
  await a.query('UNLISTEN one');
  await sender.query("NOTIFY one, 'x'");
  await sender.query("NOTIFY two, 'y'");
  await waitFor(async () => inboxA.length >= 1 && inboxB.length >= 1, 5000);
  await sleep(100);
  t.same(inboxA.map((n) => n.payload), ['y'], 'a hears two only after UNLISTEN one');
  await a.query('UNLISTEN *');
  await b.end();
  await sender.query("NOTIFY two, 'z'");
  await sleep(200);
  t.same(inboxA.map((n) => n.payload), ['y'], 'nothing after UNLISTEN *');
  const c = await connect();
  const inboxC = heard(c);
  await c.query('LISTEN two');
  await sender.query("NOTIFY two, 'w'");
  await waitFor(async () => inboxC.length === 1, 5000);
  t.equal(inboxC[0].payload, 'w', 'a new listener after b left hears the channel');
  for (const x of [a, c, sender]) await x.end();
});
