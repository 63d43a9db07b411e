// node-postgres (`pg`) through PgLynx: named queries ({ name, text, values })
// are parsed once per connection under the client's name and then only
// bound, while the pooler moves the connection between servers. Run by hand:
//
//   node --import tsx tests/drivers/node-pg.ts
//
// Connection from PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE (pg reads them).
// Prints `ok CHECK` or `not ok CHECK: error` per check (see
// tests/drivers.test.ts); exit 1 if any check failed.
import pg from 'pg';
import { type Vector, runChecks, require, unitVector, CONNS, ITERATIONS } from './checks.js';

const TABLE = 'drv_node_pg';

async function withConn<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionTimeoutMillis: 10_000 });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function worker(w: number): Promise<void> {
  await withConn(async (c) => {
    for (let i = 0; i < ITERATIONS; i++) {
      const r = await c.query({ name: 'sum', text: 'SELECT $1::int + $2::int AS s, $3::text AS t', values: [w, i, `w${w}`] });
      require(r.rows[0].s === w + i && r.rows[0].t === `w${w}`, `worker ${w} iteration ${i}: got ${JSON.stringify(r.rows[0])}`);
      const ins = { name: 'ins', text: `INSERT INTO ${TABLE} (worker, i, kind) VALUES ($1, $2, $3)` };
      await c.query('BEGIN');
      await c.query({ ...ins, values: [w, i, 'tx'] });
      await c.query('COMMIT');
      if (i % 10 === 9) {
        await c.query('BEGIN');
        await c.query({ ...ins, values: [w, i, 'rolled_back'] });
        const err = await c.query({ name: 'div', text: 'SELECT 1 / $1::int', values: [0] }).then(
          () => new Error('division by zero did not fail'),
          (e: Error & { code?: string }) => (e.code === '22012' ? null : e),
        );
        if (err) throw err;
        await c.query('ROLLBACK');
      }
    }
  });
}

const POSITIONAL = "SELECT pgml.embed('lexical', $1) AS e";

async function embed(text: string, values: unknown[], name?: string): Promise<Vector> {
  return withConn(async (c) => unitVector((await c.query({ text, values, name })).rows[0].e));
}

await runChecks({
  async setup() {
    await withConn(async (c) => {
      await c.query(`DROP TABLE IF EXISTS ${TABLE}`);
      await c.query(`CREATE TABLE ${TABLE} (id serial PRIMARY KEY, worker int NOT NULL, i int NOT NULL, kind text NOT NULL, emb real[])`);
    });
  },
  async prepared() {
    await Promise.all(Array.from({ length: CONNS }, (_, w) => worker(w)));
  },
  async 'embed positional'() {
    const a = await embed(POSITIONAL, ['hello world'], 'emb');
    const b = await embed(POSITIONAL, ['stock markets fell']);
    require(JSON.stringify(a) !== JSON.stringify(b), 'different inputs gave the same embedding');
    require(JSON.stringify(await embed(POSITIONAL, ['hello world'])) === JSON.stringify(a), 'not deterministic');
  },
  async 'embed named'() {
    const a = await embed("SELECT pgml.embed(transformer => 'lexical', text => $1) AS e", ['hello world'], 'emb_named');
    require(JSON.stringify(a) === JSON.stringify(await embed(POSITIONAL, ['hello world'])), 'named form differs from positional');
  },
  async 'embed literal'() {
    const a = await embed("SELECT pgml.embed('lexical', 'hello world') AS e", [], 'emb_literal');
    require(JSON.stringify(a) === JSON.stringify(await embed(POSITIONAL, ['hello world'])), 'literal differs from parameter');
  },
  async 'embed insert'() {
    await withConn(async (c) => {
      await c.query('BEGIN');
      for (let i = 0; i < 3; i++) {
        await c.query({
          name: 'ins_emb',
          text: `INSERT INTO ${TABLE} (worker, i, kind, emb) VALUES (-1, $1, 'embed', pgml.embed('lexical', $2))`,
          values: [i, `doc ${i}`],
        });
      }
      await c.query('COMMIT');
      const r = await c.query(`SELECT count(*)::int AS n FROM ${TABLE} WHERE kind = 'embed' AND array_length(emb, 1) = $1`, [384]);
      require(r.rows[0].n === 3, `${r.rows[0].n} stored embeddings, expected 3`);
    });
  },
  async count() {
    await withConn(async (c) => {
      const r = await c.query(`SELECT kind, count(*)::int AS n FROM ${TABLE} WHERE kind <> $1 GROUP BY kind`, ['embed']);
      const rows = Object.fromEntries(r.rows.map((x) => [x.kind, x.n]));
      require(JSON.stringify(rows) === JSON.stringify({ tx: CONNS * ITERATIONS }), `rows by kind ${JSON.stringify(rows)}, expected {"tx":${CONNS * ITERATIONS}}`);
    });
  },
});
