// What a driver sees of a pgml.embed statement: its OWN statement's
// ParameterDescription and RowDescription (pgx and asyncpg bind exactly the
// parameters Describe reports; the rewrite adds one per call), PostgresML's
// named-argument form, and errors raised for the pooler without the
// PL/pgSQL CONTEXT of the DO block that raises them. Real Postgres 15, a raw
// protocol client and node-postgres, with prepared statements off and on.
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres } from './harness/postgres.js';
import { freePort } from './harness/ports.js';
import { dataRow, errorFields, msg, RawClient, types, type RawMessage } from './harness/raw-client.js';

const TEXT = 25;
const INT4 = 23;
const REAL_ARRAY = 1021;

/** ParameterDescription: the parameter type OIDs. */
function paramTypes(m: RawMessage): number[] {
  const n = m.body.readInt16BE(0);
  return Array.from({ length: n }, (_, i) => m.body.readInt32BE(2 + 4 * i));
}

/** RowDescription: [name, type OID] per column. */
function columns(m: RawMessage): [string, number][] {
  const n = m.body.readInt16BE(0);
  const out: [string, number][] = [];
  let i = 2;
  for (let c = 0; c < n; c++) {
    const end = m.body.indexOf(0, i);
    out.push([m.body.toString('utf8', i, end), m.body.readInt32BE(end + 7)]);
    i = end + 19;
  }
  return out;
}

function only(ms: RawMessage[], type: string): RawMessage[] {
  return ms.filter((m) => m.type === type);
}

t.test('pgml.embed as drivers see it', async (t) => {
  const pg = await startPostgres({
    auth: 'md5',
    users: [{ name: 'app', password: 'pw' }],
    databases: [{ name: 'shard0', owner: 'app' }, { name: 'shard1', owner: 'app' }],
    t,
  });
  await pg.query('CREATE TABLE secret (x int)');
  const port = await freePort();
  // Named statements outlive a transaction only in session mode or with prepared statements on.
  const pool = (mode: string, cache: number) => ({
    pool_mode: mode,
    prepared_statements_cache_size: cache,
    users: [{ username: 'app', password: 'pw', pool_size: 2 }],
    shards: [primaryShard(pg)],
  });
  const pooler = await startPglynx(
    configToml({
      port,
      general: { prepared_statements: true },
      pools: {
        plain: pool('session', 0),
        prepared: pool('transaction', 100),
        guarded: { ...pool('transaction', 0), query_parser_enabled: true },
        sharded: {
          ...pool('transaction', 100),
          query_parser_enabled: true,
          sharding_function: 'pg_bigint_hash',
          automatic_sharding_key: 'items.id',
          shards: [0, 1].map((n) => primaryShard(pg, `shard${n}`)),
        },
      },
      extra: { models: { lexical: { builtin: 'hash-384' } }, plugins: { table_access: { enabled: true, tables: ['secret'] } } },
    }),
    { t, logLevel: 'warn' },
  );

  for (const database of ['plain', 'prepared']) {
    await t.test(database === 'plain' ? 'session mode, prepared statements off' : 'transaction mode, prepared statements on', async (t) => {
      const raw = await RawClient.connect({ host: '127.0.0.1', port: pooler.port, user: 'app', password: 'pw', database });
      t.teardown(() => raw.destroy());
      const simple = await raw.query("SELECT pgml.embed('lexical', 'hello world')");
      const expected = dataRow(only(simple, 'D')[0].body)[0];
      t.match(expected, /^\{/, 'the simple protocol gives the embedding');

      await t.test('Describe statement: the client parameters, PostgresML row', async (t) => {
        raw.send(msg.parse("SELECT pgml.embed('lexical', $1)"), msg.describeStatement(), msg.sync());
        const r = await raw.readUntilReady();
        t.equal(types(r), '1tTZ');
        t.same(paramTypes(only(r, 't')[0]), [TEXT], 'one parameter, text');
        t.same(columns(only(r, 'T')[0]), [['embed', REAL_ARRAY]], 'column embed, real[]');
        raw.send(msg.parse("SELECT pgml.embed('lexical', 'hello world')"), msg.describeStatement(), msg.sync());
        const c = await raw.readUntilReady();
        t.same(paramTypes(only(c, 't')[0]), [], 'constants only: no parameter');
      });

      await t.test('pgx flow: prepare a named statement, then Bind/Describe portal/Execute', async (t) => {
        raw.send(msg.parse("SELECT pgml.embed('lexical', $1)", 'embed_q'), msg.describeStatement('embed_q'), msg.sync());
        const prep = await raw.readUntilReady();
        t.same(paramTypes(only(prep, 't')[0]), [TEXT]);
        for (let i = 0; i < 2; i++) {
          raw.send(msg.bind(['hello world'], 'embed_q'), msg.describePortal(), msg.execute(), msg.sync());
          const r = await raw.readUntilReady();
          t.equal(types(r), '2TDCZ');
          t.same(columns(only(r, 'T')[0]), [['embed', REAL_ARRAY]], 'portal: column embed, real[]');
          t.equal(dataRow(only(r, 'D')[0].body)[0], expected, 'same embedding as the simple protocol');
        }
        // Described again later, alone in its batch (asyncpg re-describes).
        raw.send(msg.describeStatement('embed_q'), msg.sync());
        t.same(paramTypes(only(await raw.readUntilReady(), 't')[0]), [TEXT]);
      });

      await t.test('declared types and parameters used outside the call are kept', async (t) => {
        raw.send(
          Buffer.concat([msg.parse("SELECT $2::int AS n, pgml.embed('lexical', $1) AS e", '', [0, INT4])]),
          msg.describeStatement(),
          msg.bind(['hello world', '7']),
          msg.execute(),
          msg.sync(),
        );
        const r = await raw.readUntilReady();
        t.equal(types(r), '1tT2DCZ');
        t.same(paramTypes(only(r, 't')[0]), [TEXT, INT4]);
        t.same(dataRow(only(r, 'D')[0].body), ['7', expected]);
      });

      await t.test('other Describes in the same batch, and an error before one', async (t) => {
        raw.send(
          msg.parse('SELECT $1::int + $2::int AS s', 'other'),
          msg.parse("SELECT pgml.embed('lexical', $1)", 'emb2'),
          msg.describeStatement('other'),
          msg.describeStatement('emb2'),
          msg.describeStatement('other'),
          msg.sync(),
        );
        const r = await raw.readUntilReady();
        t.same(only(r, 't').map(paramTypes), [[INT4, INT4], [TEXT], [INT4, INT4]], 'each Describe answered with its own statement');
        raw.send(msg.parse('SELEC oops'), msg.describeStatement('emb2'), msg.sync(), msg.describeStatement('emb2'), msg.sync());
        const e = await raw.readUntilReady(2);
        t.equal(types(e), 'EZtTZ', 'the skipped Describe is not confused with the next one');
        t.same(paramTypes(only(e, 't')[0]), [TEXT]);
      });

      await t.test('Describe answered on Flush, before the Sync', async (t) => {
        raw.send(msg.parse("SELECT pgml.embed('lexical', $1)"), msg.describeStatement(), msg.flush());
        const d = await raw.readMessages('T');
        t.equal(types(d), '1tT');
        t.same(paramTypes(only(d, 't')[0]), [TEXT]);
        raw.send(msg.bind(['hello world']), msg.execute(), msg.sync());
        const r = await raw.readUntilReady();
        t.equal(types(r), '2DCZ');
        t.equal(dataRow(only(r, 'D')[0].body)[0], expected);
      });

      await t.test('pipelined behind a large reply still in flight', async (t) => {
        // 4 MB in one DataRow: the pooler is mid-message when the Describe goes out.
        raw.send(msg.query("SELECT repeat('x', 4000000)"));
        await raw.readMessages('T');
        raw.send(msg.parse("SELECT pgml.embed('lexical', $1)", 'emb3'), msg.describeStatement('emb3'), msg.sync());
        const r = await raw.readUntilReady(2, 20_000);
        t.equal(types(r), 'DCZ1tTZ');
        t.equal(only(r, 'D')[0].body.length, 4_000_006, 'the large row arrives whole');
        t.same(paramTypes(only(r, 't')[0]), [TEXT]);
      });

      await t.test("PostgresML's named arguments", async (t) => {
        const named = await raw.query("SELECT pgml.embed(transformer => 'lexical', text => 'hello world', kwargs => '{}')");
        t.equal(dataRow(only(named, 'D')[0].body)[0], expected, 'simple protocol');
        raw.send(msg.parse("SELECT pgml.embed(transformer => 'lexical', text => $1)"), msg.describeStatement(), msg.bind(['hello world']), msg.execute(), msg.sync());
        const r = await raw.readUntilReady();
        t.equal(types(r), '1tT2DCZ');
        t.same(paramTypes(only(r, 't')[0]), [TEXT]);
        t.equal(dataRow(only(r, 'D')[0].body)[0], expected, 'extended protocol');
        const many = await raw.query("SELECT pgml.embed(transformer => 'lexical', inputs => ARRAY['hello world', 'b'])");
        t.equal(only(many, 'D').length, 2, 'inputs => text[]: one row per input');
        t.equal(dataRow(only(many, 'D')[0].body)[0], expected);
      });

      await t.test('a refused call reads as the pooler error: no PL/pgSQL CONTEXT', async (t) => {
        const r = await raw.query("SELECT pgml.embed(transformer => 'lexical', text => relname) FROM pg_class");
        const f = errorFields(only(r, 'E')[0].body);
        t.equal(f.get('C'), '0A000');
        t.equal(f.get('W'), undefined, 'no CONTEXT');
        t.equal(f.get('F'), undefined, 'no server source file');
        raw.send(msg.parse("SELECT pgml.embed('nope', $1)"), msg.describeStatement(), msg.sync());
        const e = await raw.readUntilReady();
        t.equal(types(e), 'EZ');
        t.equal(errorFields(only(e, 'E')[0].body).get('W'), undefined, 'extended protocol: no CONTEXT');
      });
    });
  }

  await t.test('prepared statements on: one named statement described and run on both servers', async (t) => {
    const a = await RawClient.connect({ host: '127.0.0.1', port: pooler.port, user: 'app', password: 'pw', database: 'prepared' });
    const b = await RawClient.connect({ host: '127.0.0.1', port: pooler.port, user: 'app', password: 'pw', database: 'prepared' });
    t.teardown(() => {
      a.destroy();
      b.destroy();
    });
    const expected = dataRow(only(await a.query("SELECT pgml.embed('lexical', 'moved')"), 'D')[0].body)[0];
    a.send(msg.parse("SELECT pgml.embed('lexical', $1)", 'moving'), msg.sync()); // deferred: prepared at first use
    t.equal(types(await a.readUntilReady()), '1Z');
    const pids = new Set<string>();
    let last = '';
    for (let i = 0; i < 4; i++) {
      // b holds the server a used last (trying until it gets that one), so a moves to the other.
      for (let tries = 0; last && tries < 4; tries++) {
        const held = dataRow(only(await b.query('BEGIN; SELECT pg_backend_pid()'), 'D')[0].body)[0];
        if (held === last) break;
        await b.query('COMMIT');
      }
      a.send(
        msg.query('BEGIN; SELECT pg_backend_pid()'),
        msg.describeStatement('moving'),
        msg.bind(['moved'], 'moving'),
        msg.describePortal(),
        msg.execute(),
        msg.sync(),
        msg.query('COMMIT'),
      );
      const r = await a.readUntilReady(3);
      t.equal(types(r), 'CTDCZtT2TDCZCZ', `round ${i}`);
      last = dataRow(only(r, 'D')[0].body)[0]!;
      pids.add(last);
      t.same(paramTypes(only(r, 't')[0]), [TEXT]);
      t.equal(dataRow(only(r, 'D')[1].body)[0], expected);
      await b.query('COMMIT');
    }
    t.equal(pids.size, 2, 'the statement ran on both server connections');
  });

  await t.test('sharded pool: the Describe is cut too', async (t) => {
    const raw = await RawClient.connect({ host: '127.0.0.1', port: pooler.port, user: 'app', password: 'pw', database: 'sharded' });
    t.teardown(() => raw.destroy());
    const expected = dataRow(only(await raw.query("SELECT pgml.embed('lexical', 'hello world')"), 'D')[0].body)[0];
    raw.send(msg.parse("SELECT pgml.embed(transformer => 'lexical', text => $1)", 'sq'), msg.describeStatement('sq'), msg.sync());
    const d = await raw.readUntilReady();
    t.equal(types(d), '1tTZ');
    t.same(paramTypes(only(d, 't')[0]), [TEXT]);
    raw.send(msg.bind(['hello world'], 'sq'), msg.describePortal(), msg.execute(), msg.sync());
    const r = await raw.readUntilReady();
    t.equal(types(r), '2TDCZ');
    t.equal(dataRow(only(r, 'D')[0].body)[0], expected);
  });

  await t.test('node-postgres: named arguments, and err.where on a refusal', async (t) => {
    const c = await pgClient({ port: pooler.port, user: 'app', password: 'pw', database: 'plain' });
    t.teardown(() => c.end());
    const a = await c.query("SELECT pgml.embed(transformer => 'lexical', text => $1, kwargs => '{}') AS e", ['hello world']);
    const b = await c.query("SELECT pgml.embed('lexical', 'hello world') AS e");
    t.same(a.rows[0].e, b.rows[0].e);
    await c.query('BEGIN');
    const err = await c.query("SELECT pgml.embed('lexical', relname) FROM pg_class").catch((e: unknown) => e as { code?: string; where?: string });
    t.equal(err.code, '0A000');
    t.equal(err.where, undefined, 'no CONTEXT');
    await t.rejects(c.query('SELECT 1'), { code: '25P02' }, 'the transaction is aborted, as by a server error');
    await c.query('ROLLBACK');
  });

  await t.test('a plugin refusal inside a transaction also reads as the pooler error', async (t) => {
    const c = await pgClient({ port: pooler.port, user: 'app', password: 'pw', database: 'guarded' });
    t.teardown(() => c.end());
    await c.query('BEGIN');
    const err = await c.query('SELECT * FROM secret').catch((e: unknown) => e as { code?: string; where?: string; file?: string });
    t.equal(err.code, '42501');
    t.equal(err.where, undefined, 'no CONTEXT');
    t.equal(err.file, undefined, 'no server source file');
    await t.rejects(c.query('SELECT 1'), { code: '25P02' }, 'the transaction is aborted');
    await c.query('ROLLBACK');
    const ok = await c.query('SELECT 1 AS one');
    t.equal(ok.rows[0].one, 1);
  });
});
