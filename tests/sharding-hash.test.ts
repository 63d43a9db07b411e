// pg_bigint_hash must pick the same shard as Postgres's PARTITION BY HASH on
// a bigint column (checked against a real Postgres 15). sha1 against PgCat's
// definition is a unit test: tests/unit/sharding-keys.test.ts.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { pgBigintHash, shardForKey } from '../pooler/sharding/hash.js';
import { startPostgres } from './harness/postgres.js';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function testKeys(): bigint[] {
  const keys: bigint[] = [0n, 1n, -1n, 2n, -2n, INT64_MIN, INT64_MAX, INT64_MIN + 1n, INT64_MAX - 1n];
  for (const edge of [2n ** 31n, 2n ** 32n, 2n ** 53n, 2n ** 62n]) {
    for (const d of [-1n, 0n, 1n]) keys.push(edge + d, -(edge + d));
  }
  for (let i = -1000n; i <= 1000n; i++) keys.push(i);
  const random = randomBytes(8 * 10_000);
  for (let i = 0; i < 10_000; i++) keys.push(random.readBigInt64LE(8 * i));
  // Mid-sized values (ids as applications use them).
  const mid = randomBytes(4 * 2000);
  for (let i = 0; i < 2000; i++) keys.push(BigInt(mid.readUInt32LE(4 * i)) * 1000n + BigInt(i));
  return keys;
}

t.test('pg_bigint_hash is bit-identical to Postgres hash partitioning', async (t) => {
  const pg = await startPostgres({ t });
  const keys = testKeys();
  const keyArray = keys.map(String);
  t.ok(keys.length >= 10_000, `${keys.length} keys`);

  for (const modulus of [3, 7]) {
    await pg.query(`CREATE TABLE p${modulus} (k bigint) PARTITION BY HASH (k)`);
    for (let r = 0; r < modulus; r++) {
      await pg.query(`CREATE TABLE p${modulus}_${r} PARTITION OF p${modulus} FOR VALUES WITH (MODULUS ${modulus}, REMAINDER ${r})`);
    }
    // Each key's partition, as Postgres routes the row.
    const rows = await pg.query<{ k: string; part: string }>(
      `INSERT INTO p${modulus} SELECT unnest($1::bigint[]) RETURNING k::text, tableoid::regclass::text AS part`,
      [keyArray],
    );
    t.equal(rows.length, keys.length);
    const mismatches = rows.filter((row) => pgBigintHash(BigInt(row.k), modulus) !== Number(row.part.split('_')[1]));
    t.same(mismatches.slice(0, 5), [], `modulus ${modulus}: every key in Postgres's partition`);
    // The text path (SQL literals, Bind parameters) agrees with the bigint one.
    const textMismatches = rows.filter((row) => shardForKey('pg_bigint_hash', row.k, modulus) !== pgBigintHash(BigInt(row.k), modulus));
    t.same(textMismatches.slice(0, 5), [], `modulus ${modulus}: text keys hash alike`);
  }

  // Large moduli take the BigInt remainder path: satisfies_hash_partition
  // checks any (modulus, remainder) against the parent's partition key.
  for (const modulus of [1_000_000_007, 2 ** 31 - 1, 5]) {
    const remainders = keys.map((k) => pgBigintHash(k, modulus));
    const [row] = await pg.query<{ ok: boolean; n: string }>(
      `SELECT bool_and(satisfies_hash_partition('p3'::regclass, $2, r, k)) AS ok, count(*) AS n
         FROM unnest($1::bigint[], $3::int[]) AS u(k, r)`,
      [keyArray, modulus, remainders],
    );
    t.equal(row.n, String(keys.length));
    t.equal(row.ok, true, `modulus ${modulus}: satisfies_hash_partition agrees for every key`);
    // And it does say no: every shifted remainder is rejected.
    const [wrong] = await pg.query<{ any: boolean }>(
      `SELECT bool_or(satisfies_hash_partition('p3'::regclass, $2, r, k)) AS any FROM unnest($1::bigint[], $3::int[]) AS u(k, r)`,
      [keyArray, modulus, remainders.map((r) => (r + 1) % modulus)],
    );
    t.equal(wrong.any, false, `modulus ${modulus}: wrong remainders are rejected`);
  }
});
