// pgml.embed from SQL through PgLynx, in front of a real Postgres 15 that
// has no extension: the built-in lexical model, simple and extended
// protocol, named statements computed per execution, nearest-neighbour
// search with a plain SQL distance function, and the errors.
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { pgClient, psql } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres } from './harness/postgres.js';
import { freePort } from './harness/ports.js';

t.test('pgml.embed through the pooler', async (t) => {
  const pg = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'pw' }], settings: { log_statement: 'all' }, t });
  await pg.query(`CREATE TABLE docs (id serial PRIMARY KEY, body text, emb real[])`);
  await pg.query(`GRANT ALL ON docs TO app; GRANT ALL ON SEQUENCE docs_id_seq TO app`);
  // Postgres 15 here has no pgvector: Euclidean distance on real[] in SQL.
  await pg.query(`CREATE FUNCTION l2(a real[], b real[]) RETURNS float8 LANGUAGE sql IMMUTABLE AS
    'SELECT sqrt(sum((x - y) ^ 2)) FROM unnest(a, b) AS u(x, y)'`);
  const port = await freePort();
  const pooler = await startPglynx(
    configToml({
      port,
      pools: {
        app: {
          pool_mode: 'transaction',
          prepared_statements_cache_size: 100,
          users: [{ username: 'app', password: 'pw', pool_size: 3 }],
          shards: [primaryShard(pg)],
        },
      },
      extra: { models: { lexical: { builtin: 'hash-384' } } },
    }),
    { t, logLevel: 'warn' },
  );
  const c = await pgClient({ port: pooler.port, user: 'app', password: 'pw', database: 'app' });
  t.teardown(() => c.end());

  await t.test('simple protocol: a real[] named embed, unit length', async (t) => {
    const r = await c.query("SELECT pgml.embed('lexical', 'hello world')");
    t.same(r.fields.map((f) => f.name), ['embed']);
    const v = r.rows[0].embed as number[];
    t.equal(v.length, 384);
    t.ok(Math.abs(Math.hypot(...v) - 1) < 1e-5, 'L2-normalised');
    const again = await c.query("SELECT pgml.embed('lexical', 'hello world') AS e");
    t.same(again.rows[0].e, v, 'deterministic');
  });

  await t.test('extended protocol: INSERT with the input as a parameter, read back', async (t) => {
    const bodies = ['the cat sat on the mat', 'stock markets fell sharply', 'a dog chased the cat'];
    for (const b of bodies) await c.query("INSERT INTO docs (body, emb) VALUES ($1, pgml.embed('lexical', $1))", [b]);
    const rows = (await pg.query<{ n: string }>('SELECT count(*) AS n FROM docs WHERE array_length(emb, 1) = 384'))[0];
    t.equal(Number(rows.n), 3, 'three 384-dim embeddings stored on the server');
    const direct = await c.query("SELECT pgml.embed('lexical', $1) AS e", ['stock markets fell sharply']);
    const stored = await c.query('SELECT emb FROM docs WHERE body = $1', ['stock markets fell sharply']);
    t.same(stored.rows[0].emb, direct.rows[0].e, 'stored embedding equals the computed one');
  });

  await t.test('nearest neighbour with the probe computed by the pooler', async (t) => {
    const r = await c.query("SELECT body FROM docs ORDER BY l2(emb, pgml.embed('lexical', $1)) LIMIT 1", ['markets fell']);
    t.equal(r.rows[0].body, 'stock markets fell sharply');
    const s = await psql({ host: '127.0.0.1', port: pooler.port, user: 'app', db: 'app', password: 'pw', sql: "SELECT body FROM docs ORDER BY l2(emb, pgml.embed('lexical', 'the cat')) LIMIT 1" });
    t.match(s.stdout.trim(), /cat/, `psql (simple protocol): ${s.stderr}`);
  });

  await t.test('named statement: computed per execution', async (t) => {
    const q = { name: 'probe', text: "SELECT pgml.embed('lexical', $1) AS e" };
    const a = await c.query({ ...q, values: ['alpha'] });
    const b = await c.query({ ...q, values: ['beta'] });
    t.notSame(a.rows[0].e, b.rows[0].e, 'different inputs, different embeddings');
    const a2 = await c.query({ ...q, values: ['alpha'] });
    t.same(a2.rows[0].e, a.rows[0].e);
  });

  await t.test('several calls, NULL, text[] overload, inside a transaction', async (t) => {
    const two = await c.query("SELECT pgml.embed('lexical', 'a') AS x, pgml.embed('lexical', 'b') AS y");
    t.equal(two.rows[0].x.length, 384);
    t.notSame(two.rows[0].x, two.rows[0].y);
    const n = await c.query("SELECT pgml.embed('lexical', $1::text) AS e", [null]);
    t.equal(n.rows[0].e, null, 'NULL input gives NULL');
    const many = await c.query("SELECT pgml.embed('lexical', ARRAY['one', 'two', 'three'])");
    t.equal(many.rows.length, 3, 'one row per input');
    await c.query('BEGIN');
    await c.query("INSERT INTO docs (body, emb) VALUES ('in tx', pgml.embed('lexical', 'in tx'))");
    await c.query('ROLLBACK');
    const gone = await c.query("SELECT count(*)::int AS n FROM docs WHERE body = 'in tx'");
    t.equal(gone.rows[0].n, 0, 'rolled back with its transaction');
  });

  await t.test('errors', async (t) => {
    await t.rejects(c.query("SELECT pgml.embed('nope', 'x')"), { code: '42704' }, 'unknown model');
    await t.rejects(c.query("SELECT pgml.embed('lexical', body) FROM docs"), { code: '0A000' }, 'a column argument');
    await t.rejects(c.query("SELECT pgml.embed('nope', $1)", ['x']), { code: '42704' }, 'unknown model, extended');
    await c.query('BEGIN');
    await t.rejects(c.query("SELECT pgml.embed('nope', 'x')"), { code: '42704' });
    await t.rejects(c.query('SELECT 1'), { code: '25P02' }, 'the error aborted the transaction, as a server error would');
    await c.query('ROLLBACK');
    const ok = await c.query('SELECT 1 AS one');
    t.equal(ok.rows[0].one, 1, 'the client carries on');
  });

  await t.test('the server never sees pgml.', async (t) => {
    const log = await pg.log();
    t.match(log, /real\[\]/, 'rewritten statements reached the server');
    // Errors are raised through DO blocks whose message text may name pgml.embed.
    const statements = log.split('\n').filter((l) => /statement:|execute/.test(l) && !l.includes('DO $pglynx$'));
    t.ok(statements.length > 10, 'statements were logged');
    t.notMatch(statements.join('\n'), /pgml\./, 'no statement mentions pgml.');
  });
});
