// Pipelining (issue 14): with pipeline_depth > 1 and the pool saturated,
// independent autocommit units of waiting clients are sent on a busy server
// connection behind the one it runs, and each reply reaches its own client
// (counted by ReadyForQuery). Against a real Postgres 15, with node-postgres
// and raw protocol clients: replies never cross clients, an error stays with
// its unit, a cancel for a queued unit waits for it to run and hits only it,
// transactions / SET / LISTEN / COPY keep a server to themselves, named
// prepared statements shared across servers work in pipelined units, and
// nobody is queued behind a statement learned to run long.
import net from 'node:net';
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx, type ConfigPool } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';
import { RawClient, cancelRequest, dataRow, errorFields, msg } from './harness/raw-client.js';
import { sleep } from './harness/wait.js';

const pg = await startPostgres({ users: [{ name: 'app', password: 'apppw' }], databases: [{ name: 'app', owner: 'app' }, { name: 'app_s1', owner: 'app' }], t });
await pg.query('CREATE TABLE items (id int PRIMARY KEY, v text)', [], 'app');
await pg.query('ALTER TABLE items OWNER TO app', [], 'app');
await pg.query("INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 1000) g", [], 'app');
// flaky(): every odd call fails with 57014 as a cancel would (a stray cancel, seen from the wire).
await pg.query('CREATE SEQUENCE flaky_calls', [], 'app');
await pg.query('GRANT USAGE ON SEQUENCE flaky_calls TO app', [], 'app');
await pg.query(
  "CREATE FUNCTION flaky() RETURNS text LANGUAGE plpgsql AS $$ BEGIN IF nextval('flaky_calls') % 2 = 1 THEN " +
    "RAISE EXCEPTION 'canceling statement due to user request' USING ERRCODE = 'query_canceled'; END IF; RETURN 'fine'; END $$",
  [],
  'app',
);

const user = (pool_size: number) => [{ username: 'app', password: 'apppw', pool_size }];
const pool = (pool_size: number, extra: Partial<ConfigPool> = {}): ConfigPool => ({
  pool_mode: 'transaction',
  users: user(pool_size),
  shards: [primaryShard(pg, 'app')],
  ...extra,
});

const pooler = await startPglynx(
  configToml({
    port: await freePort(),
    general: { connect_timeout: 10_000 },
    pools: {
      // Saturated at once by 100 clients on 4 connections.
      busy: pool(4, { pipeline_depth: 4, pipeline_max_wait_ms: 50 }),
      // One connection and a generous wait bound: units queue behind a sleeping one deterministically.
      one: pool(1, { pipeline_depth: 4, pipeline_max_wait_ms: 60_000, pipeline_writes: true }),
      // Shared prepared statements (PgCat's cache) with pipelining.
      prepared: pool(2, { pipeline_depth: 4, pipeline_max_wait_ms: 50, prepared_statements_cache_size: 100 }),
      // The same as busy, pipelining off: nothing is ever queued behind.
      off: pool(4),
      // pgml calls computed by the pooler, then pipelined.
      pgml: pool(2, { pipeline_depth: 4, pipeline_max_wait_ms: 50 }),
      // One connection, statement_timeout 500 ms for its user: a timeout is its own client's only.
      timed: { ...pool(1, { pipeline_depth: 4, pipeline_max_wait_ms: 60_000 }), users: [{ username: 'app', password: 'apppw', pool_size: 1, statement_timeout: 500 }] },
      // Two connections, a 100 ms bound: a text learned to run longer takes nobody behind it.
      slow: pool(2, { pipeline_depth: 4, pipeline_max_wait_ms: 100 }),
      // Sharded (two databases as two shards, one connection each): per shard connection. Key-less statements go to shard 0.
      sharded: {
        ...pool(1, { pipeline_depth: 4, pipeline_max_wait_ms: 60_000, query_parser_enabled: true, automatic_sharding_key: 'items.id', default_shard: 'shard_0' }),
        shards: [primaryShard(pg, 'app'), primaryShard(pg, 'app_s1')],
      },
    },
    extra: { models: { lexical: { builtin: 'hash-384' } } },
  }),
  { t },
);

const connect = (database: string) => pgClient({ port: pooler.port, user: 'app', password: 'apppw', database });
const raw = (database: string) => RawClient.connect({ host: '127.0.0.1', port: pooler.port, user: 'app', password: 'apppw', database });

/** A CancelRequest for `client`'s backend key, through the pooler; resolves when the pooler has closed the request. */
function sendCancel(client: RawClient): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const s = net.connect(pooler.port, '127.0.0.1', () => s.end(cancelRequest(client.processId, client.secretKey)));
    s.on('close', () => resolve());
    s.on('error', reject);
  });
}

/** SHOW POOLS' `pipelined` for a pool (units queued behind another since start; summed over a sharded pool's rows). */
async function pipelined(database: string): Promise<number> {
  const admin = await pgClient({ port: pooler.port, user: 'admin', password: 'admin', database: 'pgcat' });
  try {
    const { rows } = await admin.query('SHOW POOLS');
    const mine = rows.filter((r: Record<string, string>) => r.database === database);
    return mine.length ? mine.reduce((n: number, r: Record<string, string>) => n + Number(r.pipelined), 0) : NaN;
  } finally {
    await admin.end();
  }
}

/** 100 clients, each running `rounds` statements with its own random values, checking every answer. */
async function crowd(database: string, rounds: number, extended: boolean): Promise<number> {
  const clients = await Promise.all(Array.from({ length: 100 }, () => connect(database)));
  let wrong = 0;
  try {
    await Promise.all(
      clients.map(async (c, i) => {
        for (let r = 0; r < rounds; r++) {
          const n = Math.floor(Math.random() * 1_000_000);
          const id = 1 + ((i * 7 + r) % 1000);
          const res = extended
            ? await c.query('SELECT $1::int AS n, $2::int AS client, v FROM items WHERE id = $3', [n, i, id])
            : await c.query(`SELECT ${n} AS n, ${i} AS client, v FROM items WHERE id = ${id}`);
          const row = res.rows[0] as { n: number; client: number; v: string };
          if (row.n !== n || row.client !== i || row.v !== `v${id}`) wrong += 1;
        }
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
  return wrong;
}

t.test('100 clients on 4 connections: every reply reaches its own client', async (t) => {
  const before = await pipelined('busy');
  t.equal(await crowd('busy', 30, false), 0, 'simple protocol: no answer crossed clients');
  t.equal(await crowd('busy', 30, true), 0, 'extended protocol: no answer crossed clients');
  const queued = (await pipelined('busy')) - before;
  t.ok(queued > 100, `units were pipelined (${queued})`);
});

t.test('pipelining off: the same crowd, nothing queued behind', async (t) => {
  t.equal(await crowd('off', 10, false), 0, 'no answer crossed clients');
  t.equal(await pipelined('off'), 0, 'SHOW POOLS pipelined stays 0');
});

t.test('named prepared statements shared across servers, pipelined', async (t) => {
  const before = await pipelined('prepared');
  const clients = await Promise.all(Array.from({ length: 40 }, () => connect('prepared')));
  let wrong = 0;
  await Promise.all(
    clients.map(async (c, i) => {
      for (let r = 0; r < 20; r++) {
        const id = 1 + ((i * 13 + r) % 1000);
        const res = await c.query({ name: 'by_id', text: 'SELECT id, v, $2::int AS client FROM items WHERE id = $1', values: [id, i] });
        const row = res.rows[0] as { id: number; v: string; client: number };
        if (row.id !== id || row.v !== `v${id}` || row.client !== i) wrong += 1;
      }
    }),
  );
  await Promise.all(clients.map((c) => c.end()));
  t.equal(wrong, 0, 'every prepared execution answered its own client');
  t.ok((await pipelined('prepared')) > before, 'prepared units were pipelined');
});

t.test('pgml calls in pipelined units: each client gets its own embedding', async (t) => {
  const inputs = Array.from({ length: 40 }, (_, i) => `text number ${i} about ${i % 7 === 0 ? 'cats' : 'markets'}`);
  const serial = await connect('pgml');
  const expected: number[][] = [];
  for (const input of inputs) expected.push((await serial.query("SELECT pgml.embed('lexical', $1) AS e", [input])).rows[0].e as number[]);
  await serial.end();
  const before = await pipelined('pgml');
  const clients = await Promise.all(inputs.map(() => connect('pgml')));
  let wrong = 0;
  await Promise.all(
    clients.map(async (c, i) => {
      for (let r = 0; r < 5; r++) {
        const extended = r % 2 === 0;
        const res = extended
          ? await c.query("SELECT pgml.embed('lexical', $1) AS e, $2::int AS client", [inputs[i], i])
          : await c.query(`SELECT pgml.embed('lexical', '${inputs[i]}') AS e, ${i} AS client`);
        const row = res.rows[0] as { e: number[]; client: number };
        if (row.client !== i || JSON.stringify(row.e) !== JSON.stringify(expected[i])) wrong += 1;
      }
    }),
  );
  await Promise.all(clients.map((c) => c.end()));
  t.equal(wrong, 0, 'every embedding reached the client that asked for it');
  t.ok((await pipelined('pgml')) > before, 'pgml units were pipelined');
});

t.test('an error in a pipelined unit stays with it; the units behind run as if alone', async (t) => {
  const head = await raw('one');
  const failing = await raw('one');
  const after = await raw('one');
  const before = await pipelined('one');
  // head holds the only connection for a while; the next two queue behind it.
  head.send(msg.query('SELECT pg_sleep(0.4), 1 AS head'));
  await sleep(100);
  failing.send(msg.query('SELECT 1/0'));
  await sleep(50);
  after.send(msg.query("SELECT 'after' AS x"));
  const [h, f, a] = await Promise.all([head.readUntilReady(1, 5000), failing.readUntilReady(1, 5000), after.readUntilReady(1, 5000)]);
  t.equal((await pipelined('one')) - before, 2, 'both units were queued behind the sleeping one');
  t.same(dataRow(h.find((m) => m.type === 'D')!.body), ['', '1'], 'the head got its own row');
  const err = f.find((m) => m.type === 'E');
  t.equal(err && errorFields(err.body).get('C'), '22012', 'the failing unit got division_by_zero');
  t.same(dataRow(a.find((m) => m.type === 'D')!.body), ['after'], 'the unit after the error got its row');
  t.notOk(a.some((m) => m.type === 'E'), 'and no error');
  // The extended protocol: an error skips to its own Sync, not into the next unit.
  head.send(msg.query('SELECT pg_sleep(0.3)'));
  await sleep(100);
  failing.send(msg.parse('SELECT 1/$1::int'), msg.bind(['0']), msg.execute(), msg.sync());
  await sleep(50);
  after.send(msg.parse('SELECT $1::text'), msg.bind(['fine']), msg.execute(), msg.sync());
  const [, f2, a2] = await Promise.all([head.readUntilReady(1, 5000), failing.readUntilReady(1, 5000), after.readUntilReady(1, 5000)]);
  t.equal(errorFields(f2.find((m) => m.type === 'E')!.body).get('C'), '22012', 'extended: the failing unit got its error');
  t.same(dataRow(a2.find((m) => m.type === 'D')!.body), ['fine'], 'extended: the next unit got its row');
  for (const c of [head, failing, after]) c.end();
});

t.test('a cancel for a queued unit waits until it runs and cancels only it', async (t) => {
  const head = await raw('one');
  const target = await raw('one');
  const before = await pipelined('one');
  head.send(msg.query("SELECT pg_sleep(0.5), 'head' AS who"));
  await sleep(100);
  target.send(msg.query("SELECT pg_sleep(5), 'target' AS who"));
  await sleep(100);
  t.equal((await pipelined('one')) - before, 1, 'the target unit is queued behind the head');
  const sentAt = Date.now();
  await sendCancel(target);
  const h = await head.readUntilReady(1, 5000);
  t.notOk(h.some((m) => m.type === 'E'), 'the head was not cancelled');
  t.same(dataRow(h.find((m) => m.type === 'D')!.body), ['', 'head'], 'the head got its row');
  const tr = await target.readUntilReady(1, 5000);
  const err = tr.find((m) => m.type === 'E');
  t.equal(err && errorFields(err.body).get('C'), '57014', 'the target was cancelled');
  t.ok(Date.now() - sentAt < 3000, 'once it ran, not after its 5 s');
  head.end();
  target.end();
});

t.test('a cancel meant for the unit ahead that lands on a queued read: the read runs again, its client sees one answer', async (t) => {
  const calls = async (): Promise<number> => Number((await pg.query('SELECT last_value FROM flaky_calls', [], 'app'))[0].last_value);
  const alone = await raw('one');
  // Control: with no cancel sent, a 57014 is the statement's own answer and passes through untouched.
  const first = await alone.query('SELECT flaky() AS f');
  t.equal(errorFields(first.find((m) => m.type === 'E')!.body).get('C'), '57014', 'no cancel nearby: the 57014 reaches the client');
  t.same(dataRow((await alone.query('SELECT flaky() AS f')).find((m) => m.type === 'D')!.body), ['fine'], 'and the next call answers');
  const head = await raw('one');
  const reader = await raw('one');
  const before = await pipelined('one');
  head.send(msg.query("SELECT pg_sleep(0.4), 'head' AS who"));
  await sleep(100);
  const callsBefore = await calls();
  reader.send(msg.query('SELECT flaky() AS f')); // its next call fails with 57014, as if the cancel below hit it
  await sleep(100);
  t.equal((await pipelined('one')) - before, 1, 'the read is queued behind the head');
  await sendCancel(head);
  const h = await head.readUntilReady(1, 5000);
  t.equal(errorFields(h.find((m) => m.type === 'E')!.body).get('C'), '57014', 'the head, whose client asked, was cancelled');
  const r = await reader.readUntilReady(1, 5000);
  t.notOk(r.some((m) => m.type === 'E'), 'the queued read shows no error');
  t.same(dataRow(r.find((m) => m.type === 'D')!.body), ['fine'], 'it got the answer of its second run');
  t.equal(r.filter((m) => m.type === 'Z').length, 1, 'one ReadyForQuery: the first run was never shown');
  t.equal((await calls()) - callsBefore, 2, 'it ran twice');
  // Once only: a read that fails with 57014 again is answered with it.
  head.send(msg.query("SELECT pg_sleep(0.4), 'head' AS who"));
  await sleep(100);
  // One call more: each run of f, g below is then a fine call and a failing one, so both runs fail.
  await pg.query("SELECT nextval('flaky_calls')", [], 'app');
  reader.send(msg.query('SELECT flaky() AS f, flaky() AS g'));
  await sleep(100);
  await sendCancel(head);
  await head.readUntilReady(1, 5000);
  const again = await reader.readUntilReady(1, 5000);
  t.equal(errorFields(again.find((m) => m.type === 'E')!.body).get('C'), '57014', 'a second 57014 reaches the client (retried once only)');
  for (const c of [alone, head, reader]) c.end();
});

t.test('transactions, SET, LISTEN and COPY are never pipelined', async (t) => {
  const head = await raw('one');
  const other = await raw('one');
  for (const sql of ['BEGIN', "SET application_name = 'x'", 'LISTEN chan', 'COPY items TO STDOUT', 'SELECT 1; SET search_path = public', 'DO $$BEGIN END$$']) {
    const before = await pipelined('one');
    head.send(msg.query('SELECT pg_sleep(0.2)'));
    await sleep(60);
    other.send(msg.query(sql));
    await head.readUntilReady(1, 5000);
    const replies = await other.readMessages((m) => m.type === 'Z' || m.type === 'H', 5000);
    if (replies.some((m) => m.type === 'H')) {
      other.send(msg.copyDone());
      await other.readUntilReady(1, 5000);
    }
    if (sql === 'BEGIN') {
      other.send(msg.query('COMMIT'));
      await other.readUntilReady(1, 5000);
    }
    t.equal((await pipelined('one')) - before, 0, `${sql}: waited for a server of its own`);
  }
  // An autocommit write is pipelined when pipeline_writes = true (this pool). A fresh client:
  // `other` has its own application_name now, which no server has (units only go where the parameters match).
  const writer = await raw('one');
  const before = await pipelined('one');
  head.send(msg.query('SELECT pg_sleep(0.2)'));
  await sleep(60);
  writer.send(msg.query("UPDATE items SET v = 'v1' WHERE id = 1"));
  await Promise.all([head.readUntilReady(1, 5000), writer.readUntilReady(1, 5000)]);
  t.equal((await pipelined('one')) - before, 1, 'an autocommit write was pipelined (pipeline_writes)');
  for (const c of [head, other, writer]) c.end();
});

t.test('a client leaving while its unit is queued does not disturb the others', async (t) => {
  const head = await raw('one');
  const leaver = await raw('one');
  const last = await raw('one');
  head.send(msg.query("SELECT pg_sleep(0.3), 'head'"));
  await sleep(80);
  leaver.send(msg.query("SELECT pg_sleep(0.1), 'leaver'"));
  await sleep(40);
  last.send(msg.query("SELECT 'last' AS who"));
  await sleep(40);
  leaver.destroy();
  const [h, l] = await Promise.all([head.readUntilReady(1, 5000), last.readUntilReady(1, 5000)]);
  t.same(dataRow(h.find((m) => m.type === 'D')!.body), ['', 'head'], 'the head got its row');
  t.same(dataRow(l.find((m) => m.type === 'D')!.body), ['last'], 'the unit behind the leaver got its own row');
  // The connection went back to the pool clean: the next statement runs.
  const again = await last.query("SELECT 'again'");
  t.same(dataRow(again.find((m) => m.type === 'D')!.body), ['again'], 'the server serves the next statement');
  head.end();
  last.end();
});

t.test('a statement learned to run long takes no units behind it, even just after it started', async (t) => {
  const a = await raw('slow');
  const c = await raw('slow');
  const b = await raw('slow');
  // Both connections open (one each), then the pool's typical unit: a millisecond or two.
  await Promise.all([a.query('SELECT pg_sleep(0.02)'), c.query('SELECT pg_sleep(0.02)')]);
  for (let i = 0; i < 5; i++) await a.query('SELECT 1');
  const learn = Date.now();
  await a.query('SELECT pg_sleep(0.4)'); // 400 ms, past pipeline_max_wait_ms (100): learned
  t.ok(Date.now() - learn >= 400, 'the slow statement ran once');
  const before = await pipelined('slow');
  // Both connections busy: the slow text on one, a shorter unit (never seen: not known slow) on the other.
  a.send(msg.query('SELECT pg_sleep(0.4)'));
  c.send(msg.query("SELECT pg_sleep(0.05), 'short' AS who"));
  await sleep(20);
  const sent = Date.now();
  b.send(msg.query("SELECT 'behind' AS who"));
  const got = await b.readUntilReady(1, 5000);
  const waited = Date.now() - sent;
  t.same(dataRow(got.find((m) => m.type === 'D')!.body), ['behind'], 'the unit got its row');
  t.ok(waited < 250, `it was not queued behind the 400 ms statement that had just started (waited ${waited} ms)`);
  t.equal((await pipelined('slow')) - before, 1, 'it was queued behind the short unit instead');
  await Promise.all([a.readUntilReady(1, 5000), c.readUntilReady(1, 5000)]);
  for (const x of [a, b, c]) x.end();
});

t.test('sharded pools pipeline per shard connection', async (t) => {
  const head = await raw('sharded');
  const behind = await raw('sharded');
  const failing = await raw('sharded');
  const before = await pipelined('sharded');
  head.send(msg.query("SELECT pg_sleep(0.4), 'head' AS who"));
  await sleep(100);
  failing.send(msg.query('SELECT 1/0'));
  await sleep(30);
  behind.send(msg.query("SELECT 'behind' AS who"));
  const [h, f, b] = await Promise.all([head.readUntilReady(1, 5000), failing.readUntilReady(1, 5000), behind.readUntilReady(1, 5000)]);
  t.equal((await pipelined('sharded')) - before, 2, "both units were queued behind the head on shard 0's one connection");
  t.same(dataRow(h.find((m) => m.type === 'D')!.body), ['', 'head'], 'the head got its row');
  t.equal(errorFields(f.find((m) => m.type === 'E')!.body).get('C'), '22012', 'the failing unit got its error');
  t.same(dataRow(b.find((m) => m.type === 'D')!.body), ['behind'], 'the unit behind it got its own row');
  // A transaction keeps its shard connection: nothing is queued behind it.
  const mid = await pipelined('sharded');
  await head.query('BEGIN');
  head.send(msg.query('SELECT pg_sleep(0.2)'));
  await sleep(60);
  behind.send(msg.query("SELECT 'waits' AS who"));
  await head.readUntilReady(1, 5000);
  await head.query('COMMIT');
  t.same(dataRow((await behind.readUntilReady(1, 5000)).find((m) => m.type === 'D')!.body), ['waits'], 'it ran after the transaction');
  t.equal((await pipelined('sharded')) - mid, 0, 'nothing was queued behind a transaction');
  // A crowd: every reply still reaches its own client.
  const clients = await Promise.all(Array.from({ length: 30 }, () => connect('sharded')));
  let wrong = 0;
  await Promise.all(
    clients.map(async (c, i) => {
      for (let r = 0; r < 10; r++) {
        const n = Math.floor(Math.random() * 1_000_000);
        const row = (await c.query(`SELECT ${n} AS n, ${i} AS client`)).rows[0] as { n: number; client: number };
        if (row.n !== n || row.client !== i) wrong += 1;
      }
    }),
  );
  await Promise.all(clients.map((c) => c.end()));
  t.equal(wrong, 0, '30 clients on one shard connection: no answer crossed clients');
  for (const c of [head, behind, failing]) c.end();
});

t.test("statement_timeout stays per client: the head's timeout does not touch the units behind it", async (t) => {
  const head = await raw('timed');
  const behind = await raw('timed');
  const before = await pipelined('timed');
  const started = Date.now();
  head.send(msg.query("SELECT pg_sleep(0.8), 'head'")); // past its 500 ms
  await sleep(100);
  behind.send(msg.query("SELECT 'behind' AS who"));
  await sleep(50);
  t.equal((await pipelined('timed')) - before, 1, 'the second unit is queued behind the sleeping head');
  const h = await head.readMessages((m) => m.type === 'E' || m.type === 'Z', 5000);
  const err = h.find((m) => m.type === 'E');
  t.equal(err && errorFields(err.body).get('C'), '57014', `the head's client got its statement timeout (${Date.now() - started} ms)`);
  const b = await behind.readUntilReady(1, 5000);
  t.notOk(b.some((m) => m.type === 'E'), 'the unit behind it got no error');
  t.same(dataRow(b.find((m) => m.type === 'D')!.body), ['behind'], 'and its own row, once the head was done');
  const again = await behind.query("SELECT 'next' AS who");
  t.same(dataRow(again.find((m) => m.type === 'D')!.body), ['next'], 'the pool serves the next statement');
  head.destroy();
  behind.end();
});
