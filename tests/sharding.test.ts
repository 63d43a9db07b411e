// Sharding against three real Postgres 15 clusters as shards, and a fourth
// holding every row as the reference: PgCat's routing (SET SHARD, SET
// SHARDING KEY, comments, automatic_sharding_key, default_shard), rows placed
// as Postgres's PARTITION BY HASH would, multi-row INSERT split inside the
// client's transaction, cross-shard SELECTs equal to the single-node answer
// (ORDER BY, LIMIT/OFFSET, aggregates, GROUP BY, nearest neighbours, with
// pgml.embed as the probe), refused key-less writes, DDL on every shard, and
// a dead shard failing the statement by name.
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { mulberry32 } from '../engine/onnx/bert-synth.js';
import pg from 'pg';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres, type PgCluster } from './harness/postgres.js';
import { freePort } from './harness/ports.js';
import { errorFields, frame, RawClient } from './harness/raw-client.js';

// Plain SQL stand-ins for pgvector's operators on real[] (Postgres 15 here has no pgvector).
const SCHEMA = `
CREATE TABLE docs (id bigint PRIMARY KEY, category text, score int, price numeric(10,2), body text, emb real[]);
CREATE FUNCTION l2(a real[], b real[]) RETURNS float8 LANGUAGE sql IMMUTABLE STRICT AS
  $$ SELECT sqrt(sum((x - y)::float8 ^ 2)) FROM unnest(a, b) AS t(x, y) $$;
CREATE FUNCTION cosine(a real[], b real[]) RETURNS float8 LANGUAGE sql IMMUTABLE STRICT AS
  $$ SELECT 1 - sum(x::float8 * y) / nullif(sqrt(sum(x::float8 * x)) * sqrt(sum(y::float8 * y)), 0) FROM unnest(a, b) AS t(x, y) $$;
CREATE FUNCTION neg_ip(a real[], b real[]) RETURNS float8 LANGUAGE sql IMMUTABLE STRICT AS
  $$ SELECT -sum(x::float8 * y) FROM unnest(a, b) AS t(x, y) $$;
CREATE OPERATOR <-> (LEFTARG = real[], RIGHTARG = real[], FUNCTION = l2);
CREATE OPERATOR <=> (LEFTARG = real[], RIGHTARG = real[], FUNCTION = cosine);
CREATE OPERATOR <#> (LEFTARG = real[], RIGHTARG = real[], FUNCTION = neg_ip);
ALTER TABLE docs OWNER TO app;
GRANT CREATE ON SCHEMA public TO app;
`;

const WORDS = ['quick', 'brown', 'fox', 'lazy', 'dog', 'postgres', 'shard', 'vector', 'pooler', 'café', 'naïve', 'über', 'search', 'index'];


interface Doc {
  id: bigint;
  category: string | null;
  score: number | null;
  price: string;
  body: string;
}

function makeDocs(n: number): Doc[] {
  const r = mulberry32(11);
  const ids = new Set<bigint>([0n, -1n, 1n, 9223372036854775807n, -9223372036854775808n]);
  while (ids.size < n) ids.add(BigInt(Math.floor((r() - 0.5) * 2 ** 53)) * (r() < 0.3 ? 1000n : 1n));
  return [...ids].map((id, i) => ({
    id,
    category: r() < 0.1 ? null : 'abcde'[Math.floor(r() * 5)]!,
    score: r() < 0.1 ? null : Math.floor(r() * 100),
    price: (Math.floor(r() * 100000) / 100).toFixed(2),
    body: Array.from({ length: 3 + Math.floor(r() * 5) }, () => WORDS[Math.floor(r() * WORDS.length)]).join(' ') + ` #${i}`,
  }));
}

const lit = (s: string | null): string => (s === null ? 'NULL' : `'${s.replaceAll("'", "''")}'`);
const valuesOf = (docs: Doc[]): string =>
  '(id, category, score, price, body, emb) VALUES ' +
  docs.map((d) => `(${d.id}, ${lit(d.category)}, ${d.score ?? 'NULL'}, ${d.price}, ${lit(d.body)}, pgml.embed('lexical', ${lit(d.body)}))`).join(', ');

/** Rows as arrays of raw text, as the server sent them. */
const RAW = { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig;
async function rows(c: pg.Client, text: string, values?: unknown[]): Promise<(string | null)[][]> {
  const r = await c.query({ text, values, rowMode: 'array', types: RAW });
  return r.rows as (string | null)[][];
}

t.test('sharding', async (t) => {
  const users = [{ name: 'app', password: 'pw' }];
  const shards: PgCluster[] = [];
  for (let i = 0; i < 3; i++) shards.push(await startPostgres({ auth: 'md5', users, t }));
  const single = await startPostgres({ auth: 'md5', users, t });
  for (const c of [...shards, single]) await c.query(SCHEMA);
  const port = await freePort();
  const user = { username: 'app', password: 'pw', pool_size: 4 };
  const shardList = shards.map((c) => primaryShard(c));
  const pooler = await startPglynx(
    configToml({
      port,
      pools: {
        shop: {
          pool_mode: 'transaction',
          query_parser_enabled: true,
          automatic_sharding_key: 'docs.id',
          sharding_function: 'pg_bigint_hash',
          prepared_statements_cache_size: 100,
          users: [user],
          shards: shardList,
        },
        manual: {
          pool_mode: 'transaction',
          sharding_key_regex: '/\\* sharding_key: (-?\\d+) \\*/',
          shard_id_regex: '/\\* shard_id: (\\d+) \\*/',
          default_shard: 'shard_1',
          users: [user],
          shards: shardList,
        },
        ref: { pool_mode: 'transaction', users: [user], shards: [primaryShard(single)] },
      },
      extra: { models: { lexical: { builtin: 'hash-384' } } },
    }),
    { t, logLevel: 'warn' },
  );
  const connect = (database: string): Promise<pg.Client> => pgClient({ port: pooler.port, user: 'app', password: 'pw', database, query_timeout: 20_000 });
  const shop = await connect('shop');
  const manual = await connect('manual');
  const ref = await connect('ref');
  t.teardown(async () => {
    for (const c of [shop, manual, ref]) await c.end().catch(() => undefined);
  });
  const docs = makeDocs(300);

  await t.test('multi-row INSERT split by shard inside the transaction', async (t) => {
    await shop.query('BEGIN');
    await shop.query(`INSERT INTO docs ${valuesOf(docs.slice(0, 50))}`);
    await shop.query('ROLLBACK');
    let total = 0;
    for (const s of shards) total += Number((await s.query('SELECT count(*) AS n FROM docs'))[0].n);
    t.equal(total, 0, 'a rolled-back split INSERT left no row on any shard');

    await shop.query('BEGIN');
    for (let i = 0; i < docs.length; i += 100) {
      const r = await shop.query(`INSERT INTO docs ${valuesOf(docs.slice(i, i + 100))}`);
      t.equal(r.rowCount, Math.min(100, docs.length - i), `INSERT of rows ${i}-${i + 99} reports its row count`);
    }
    await shop.query('COMMIT');
    await ref.query(`INSERT INTO docs ${valuesOf(docs)}`);
    const counts = await Promise.all(shards.map(async (s) => Number((await s.query('SELECT count(*) AS n FROM docs'))[0].n)));
    t.equal(counts.reduce((a, b) => a + b, 0), docs.length, `all ${docs.length} rows stored once (${counts.join(' + ')})`);
    t.ok(counts.every((n) => n > 50), 'every shard holds a share');
  });

  await t.test('rows sit where PARTITION BY HASH (bigint, modulus 3) puts them', async (t) => {
    await single.query('CREATE TABLE part (id bigint) PARTITION BY HASH (id)');
    for (let r = 0; r < 3; r++) await single.query(`CREATE TABLE part_${r} PARTITION OF part FOR VALUES WITH (MODULUS 3, REMAINDER ${r})`);
    await single.query('INSERT INTO part SELECT id FROM docs');
    let mismatches = 0;
    for (let r = 0; r < 3; r++) {
      const expected = (await single.query<{ id: string }>(`SELECT id::text FROM part_${r} ORDER BY id`)).map((x) => x.id);
      const actual = (await shards[r]!.query<{ id: string }>('SELECT id::text FROM docs ORDER BY id')).map((x) => x.id);
      t.same(actual, expected, `shard ${r} holds exactly partition ${r}'s ${expected.length} keys`);
      if (actual.join() !== expected.join()) mismatches += 1;
    }
    t.equal(mismatches, 0);
  });

  const shardOf = async (id: bigint): Promise<number> => {
    for (let s = 0; s < 3; s++) if ((await shards[s]!.query('SELECT 1 FROM docs WHERE id = $1', [String(id)])).length > 0) return s;
    throw new Error(`no shard holds ${id}`);
  };
  const directCount = async (s: number): Promise<string> => String((await shards[s]!.query('SELECT count(*) AS n FROM docs'))[0].n);

  await t.test('routing: SET SHARD, SET SHARDING KEY, SHOW SHARD', async (t) => {
    for (let s = 0; s < 3; s++) {
      await shop.query(`SET SHARD TO '${s}'`);
      t.same(await rows(shop, 'SELECT count(*) FROM docs'), [[await directCount(s)]], `SET SHARD TO '${s}' runs there`);
      t.same(await rows(shop, 'SHOW SHARD'), [[String(s)]], 'SHOW SHARD');
    }
    const id = docs[7]!.id;
    await shop.query(`SET SHARDING KEY TO '${id}'`);
    const s = await shardOf(id);
    t.same(await rows(shop, 'SELECT count(*) FROM docs'), [[await directCount(s)]], `SET SHARDING KEY TO '${id}' picks shard ${s}`);
    await shop.query("SET SHARD TO '7'").then(
      () => t.fail('SET SHARD TO a missing shard succeeded'),
      (err: Error) => t.match(err.message, /shard 7 does not exist/),
    );
    // Back to automatic routing.
    await shop.end();
  });

  const shop2 = await connect('shop');
  t.teardown(() => shop2.end().catch(() => undefined));

  await t.test('routing: automatic_sharding_key in simple and extended queries', async (t) => {
    for (const d of docs.slice(0, 20)) {
      const simple = await rows(shop2, `SELECT id, body FROM docs WHERE id = ${d.id}`);
      t.same(simple, [[String(d.id), d.body]], `WHERE id = ${d.id}`);
    }
    const d = docs[3]!;
    t.same(await rows(shop2, 'SELECT body FROM docs WHERE id = $1', [String(d.id)]), [[d.body]], 'WHERE id = $1 (resolved at Bind)');
    const some = docs.slice(10, 16).map((x) => x.id);
    const expected = [...some].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map((x) => [String(x)]);
    t.same(await rows(shop2, `SELECT id FROM docs WHERE id IN (${some.join(', ')}) ORDER BY id`), expected, 'IN list over several shards');
    const upd = await shop2.query('UPDATE docs SET score = score WHERE id = $1', [String(d.id)]);
    t.equal(upd.rowCount, 1, 'UPDATE with its key');
  });

  await t.test('routing: a named prepared statement follows its key to each shard', async (t) => {
    for (const d of docs.slice(20, 40)) {
      const r = await shop2.query({ name: 'by_id', text: 'SELECT body FROM docs WHERE id = $1', values: [String(d.id)], rowMode: 'array' });
      t.same(r.rows, [[d.body]], `by_id(${d.id})`);
    }
  });

  await t.test('routing: comments and default_shard (no query parser)', async (t) => {
    t.same(await rows(manual, '/* shard_id: 2 */ SELECT count(*) FROM docs'), [[await directCount(2)]], 'shard_id comment');
    const id = docs[5]!.id;
    const s = await shardOf(id);
    t.same(await rows(manual, `/* sharding_key: ${id} */ SELECT count(*) FROM docs`), [[await directCount(s)]], `sharding_key comment -> shard ${s}`);
    t.same(await rows(manual, 'SELECT count(*) FROM docs'), [[await directCount(1)]], 'no hint: default_shard = shard_1');
  });

  await t.test('cross-shard SELECT equals the single-node answer', async (t) => {
    const probe = `{${Array.from({ length: 384 }, (_, i) => ((i * 7919) % 13) / 13 - 0.4).join(',')}}`;
    const shapes: [string, unknown[]?][] = [
      ['SELECT id, body FROM docs ORDER BY id'],
      ['SELECT id FROM docs ORDER BY id DESC LIMIT 10'],
      ['SELECT id, score FROM docs ORDER BY score NULLS FIRST, id LIMIT 15 OFFSET 5'],
      ['SELECT category, score, id FROM docs ORDER BY category, score DESC, id'],
      ['SELECT count(*) FROM docs'],
      ['SELECT count(score), sum(score), min(score), max(score) FROM docs'],
      ['SELECT avg(score) FROM docs'],
      ['SELECT avg(price), sum(price) FROM docs'],
      ['SELECT category, count(*) FROM docs GROUP BY category ORDER BY category'],
      ['SELECT category, sum(score), avg(score), min(body), max(id) FROM docs GROUP BY category ORDER BY category NULLS FIRST'],
      ['SELECT id FROM docs WHERE score > 50 ORDER BY id'],
      ['SELECT id, price FROM docs ORDER BY price DESC, id LIMIT 7'],
      ['SELECT body FROM docs ORDER BY body, id LIMIT 20'],
      ['SELECT id FROM docs ORDER BY score * 2 DESC NULLS LAST, id LIMIT 10'],
      ["SELECT count(*) FROM docs WHERE category = 'b'"],
      ['SELECT id FROM docs WHERE false'],
      ['SELECT count(*), sum(score), avg(price) FROM docs WHERE false'],
      ['SELECT category, count(*) AS n FROM docs GROUP BY category ORDER BY n DESC, category LIMIT 3'],
      ['SELECT max(price), min(category) FROM docs'],
      ['SELECT id, emb <-> $1 AS distance FROM docs ORDER BY emb <-> $1 LIMIT 5', [probe]],
      ['SELECT id FROM docs ORDER BY emb <=> $1 LIMIT 5', [probe]],
      ['SELECT id FROM docs ORDER BY emb <#> $1 LIMIT 5', [probe]],
      ["SELECT id, body FROM docs ORDER BY emb <-> pgml.embed('lexical', 'quick brown postgres') LIMIT 5"],
      // Lexical embeddings of texts with the same words tie: id breaks the tie.
      ['SELECT id, emb <-> pgml.embed($1, $2) FROM docs ORDER BY emb <-> pgml.embed($1, $2), id LIMIT 4', ['lexical', 'lazy shard vector']],
      ['SELECT id, score FROM docs WHERE score IS NOT NULL ORDER BY score, id LIMIT $1 OFFSET $2', [6, 3]],
      // Expressions over aggregates, HAVING, DISTINCT aggregates (issue 16, point 3).
      ['SELECT round(avg(id), 2) FROM docs'],
      ['SELECT category, sum(score) / count(*) AS q, round(avg(price), 2), coalesce(sum(score), 0), avg(score)::int FROM docs GROUP BY category ORDER BY category NULLS FIRST'],
      ['SELECT category, count(*) FROM docs GROUP BY category HAVING count(*) > 5 AND avg(score) > 0 ORDER BY category'],
      ['SELECT count(DISTINCT category), sum(DISTINCT score), count(DISTINCT score) FROM docs'],
      ['SELECT DISTINCT category FROM docs ORDER BY category'],
      ['SELECT category, count(DISTINCT score) FROM docs WHERE id > $1 GROUP BY category HAVING count(*) > $2 ORDER BY 1', [10, 1]],
    ];
    for (const [sql, values] of shapes) {
      const expected = await rows(ref, sql, values);
      const actual = await rows(shop2, sql, values).catch((err: Error) => [[`error: ${err.message}`]]);
      t.same(actual, expected, `${sql} (${expected.length} rows)`);
    }
  });

  await t.test('key-less writes refused; DDL on every shard', async (t) => {
    await shop2.query('UPDATE docs SET score = 0').then(
      () => t.fail('a key-less UPDATE ran'),
      (err: Error & { code?: string }) => {
        t.equal(err.code, '0A000');
        t.match(err.message, /sharding key \(docs\.id\)/);
      },
    );
    // Several statements in one Query: refused whole, not cut after its BEGIN.
    await shop2.query(`BEGIN; INSERT INTO docs (id, body) VALUES (424242, 'x'); COMMIT`).then(
      () => t.fail('a multi-statement Query ran on a sharded pool'),
      (err: Error & { code?: string }) => t.equal(err.code, '0A000', err.message),
    );
    t.same(await rows(shop2, 'SELECT id FROM docs WHERE id = 424242'), [], 'nothing of it was inserted');
    await shop2.query('CREATE INDEX docs_score ON docs (score)');
    for (let s = 0; s < 3; s++) {
      t.equal((await shards[s]!.query("SELECT count(*)::int AS n FROM pg_indexes WHERE indexname = 'docs_score'"))[0].n, 1, `index on shard ${s}`);
    }
  });

  await t.test('a malformed Bind closes only that client', async (t) => {
    const c = await RawClient.connect({ host: '127.0.0.1', port: pooler.port, user: 'app', password: 'pw', database: 'shop' });
    // Bind claiming one 1000-byte parameter that is not there.
    const body = Buffer.concat([Buffer.from('\0\0'), Buffer.from([0, 0, 0, 1]), Buffer.from([0, 0, 3, 0xe8])]);
    const parse = Buffer.concat([Buffer.from('\0SELECT 1\0'), Buffer.from([0, 0])]);
    c.send(frame('P', parse), frame('B', body), frame('S'));
    const got = await c.readMessages('Z', 5000);
    const e = got.find((m) => m.type === 'E');
    t.equal(e ? errorFields(e.body).get('C') : null, '08P01', `protocol violation (${e ? errorFields(e.body).get('M') : 'no error'})`);
    c.end();
    t.ok(Number((await rows(shop2, 'SELECT count(*) FROM docs'))[0]![0]) > 0, 'the pooler and other clients go on');
  });

  await t.test('a dead shard fails the statement, naming it', async (t) => {
    const [{ id: liveId, body }] = await shards[0]!.query<{ id: string; body: string }>('SELECT id::text AS id, body FROM docs LIMIT 1');
    await shards[2]!.kill();
    await rows(shop2, 'SELECT count(*) FROM docs').then(
      (r) => t.fail(`a partial result reached the client: ${JSON.stringify(r)}`),
      (err: Error) => t.match(err.message, /shard 2/),
    );
    t.same(await rows(shop2, `SELECT body FROM docs WHERE id = ${liveId}`), [[body]], 'single-shard reads on live shards go on');
  });
});
