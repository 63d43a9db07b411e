// postgres.js (`postgres`) through PgLynx: with prepare: true (its default)
// every parameterised query is a named statement, described before its first
// execution, and transactions run through sql.begin(). Run by hand:
//
//   node --import tsx tests/drivers/postgres-js.ts
//
// Connection from PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE (postgres.js
// reads them). Prints `ok CHECK` or `not ok CHECK: error` per check (see
// tests/drivers.test.ts); exit 1 if any check failed.
import postgres from 'postgres';
import { type Vector, runChecks, require, unitVector, CONNS, ITERATIONS } from './checks.js';

const TABLE = 'drv_postgres_js';

// One postgres.js instance with CONNS connections; it spreads queries over them.
const sql = postgres({ max: CONNS, prepare: true, connect_timeout: 10, onnotice: () => {} });
const table = sql(TABLE);

async function worker(w: number): Promise<void> {
  for (let i = 0; i < ITERATIONS; i++) {
    const [r] = await sql`SELECT ${w}::int + ${i}::int AS s, ${`w${w}`}::text AS t`;
    require(r.s === w + i && r.t === `w${w}`, `worker ${w} iteration ${i}: got ${JSON.stringify(r)}`);
    await sql.begin(async (tx) => {
      await tx`INSERT INTO ${table} (worker, i, kind) VALUES (${w}, ${i}, 'tx')`;
    });
    if (i % 10 === 9) {
      const err = await sql
        .begin(async (tx) => {
          await tx`INSERT INTO ${table} (worker, i, kind) VALUES (${w}, ${i}, 'rolled_back')`;
          await tx`SELECT 1 / ${0}::int`; // sql.begin sends ROLLBACK when this throws
        })
        .then(
          () => new Error('division by zero did not fail'),
          (e: Error & { code?: string }) => (e.code === '22012' ? null : e),
        );
      if (err) throw err;
    }
  }
}

async function positional(text: string): Promise<Vector> {
  return unitVector((await sql`SELECT pgml.embed('lexical', ${text}) AS e`)[0].e);
}

await runChecks(
  {
    async setup() {
      await sql`DROP TABLE IF EXISTS ${table}`;
      await sql`CREATE TABLE ${table} (id serial PRIMARY KEY, worker int NOT NULL, i int NOT NULL, kind text NOT NULL, emb real[])`;
    },
    async prepared() {
      await Promise.all(Array.from({ length: CONNS }, (_, w) => worker(w)));
    },
    async 'embed positional'() {
      const a = await positional('hello world');
      const b = await positional('stock markets fell');
      require(JSON.stringify(a) !== JSON.stringify(b), 'different inputs gave the same embedding');
      require(JSON.stringify(await positional('hello world')) === JSON.stringify(a), 'not deterministic');
    },
    async 'embed named'() {
      const a = unitVector((await sql`SELECT pgml.embed(transformer => 'lexical', text => ${'hello world'}) AS e`)[0].e);
      require(JSON.stringify(a) === JSON.stringify(await positional('hello world')), 'named form differs from positional');
    },
    async 'embed literal'() {
      const a = unitVector((await sql`SELECT pgml.embed('lexical', 'hello world') AS e`)[0].e);
      require(JSON.stringify(a) === JSON.stringify(await positional('hello world')), 'literal differs from parameter');
    },
    async 'embed insert'() {
      await sql.begin(async (tx) => {
        for (let i = 0; i < 3; i++) await tx`INSERT INTO ${table} (worker, i, kind, emb) VALUES (-1, ${i}, 'embed', pgml.embed('lexical', ${`doc ${i}`}))`;
      });
      const [r] = await sql`SELECT count(*)::int AS n FROM ${table} WHERE kind = 'embed' AND array_length(emb, 1) = ${384}`;
      require(r.n === 3, `${r.n} stored embeddings, expected 3`);
    },
    async count() {
      const r = await sql`SELECT kind, count(*)::int AS n FROM ${table} WHERE kind <> ${'embed'} GROUP BY kind`;
      const rows = Object.fromEntries(r.map((x) => [x.kind, x.n]));
      require(JSON.stringify(rows) === JSON.stringify({ tx: CONNS * ITERATIONS }), `rows by kind ${JSON.stringify(rows)}, expected {"tx":${CONNS * ITERATIONS}}`);
    },
  },
  () => sql.end({ timeout: 5 }),
);
