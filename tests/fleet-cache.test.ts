// The embedding cache shared by a fleet (issue 15): two PgLynx processes
// with the same redis_url and the same model. An embedding computed on A is
// a hit on B: B's engine is not called (SHOW MODELS calls stay 0), B's
// SHOW FLEET row counts a remote hit, and the vector is A's, bit for bit.
// In a text[] call, what Redis has is taken and only the rest computed.
// Vectors are stored in Redis as raw float32 with a TTL.
import t from 'tap';
import type pg from 'pg';
import { Redis } from 'ioredis';
import { primaryShard } from './harness/pool-config.js';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';
import { startRedis } from './harness/redis.js';

type Row = Record<string, string | null>;
const EMBEDDING_TTL_MS = 600_000;

const postgres = await startPostgres({ t });
const redis = await startRedis({ t });

interface Member {
  app: pg.Client;
  admin: pg.Client;
}

async function member(): Promise<Member> {
  const port = await freePort();
  await startPglynx(
    configToml({
      port,
      general: { redis_url: redis.url, fleet_embedding_ttl_ms: EMBEDDING_TTL_MS },
      pools: { app: { users: [{ username: 'postgres', password: 'x', pool_size: 2 }], shards: [primaryShard(postgres)] } },
      extra: { models: { lexical: { builtin: 'hash-384' } } },
    }),
    { t, logLevel: 'info' },
  );
  const app = await pgClient({ port, user: 'postgres', password: 'x', database: 'app' });
  const admin = await pgClient({ port, user: 'admin', password: 'admin', database: 'pgcat' });
  t.teardown(async () => {
    await app.end();
    await admin.end();
  });
  return { app, admin };
}

/** Inputs the engine computed (summed over instances) and the member's own remote hits. */
async function counts(m: Member): Promise<{ calls: number; remoteHits: number }> {
  const models = (await m.admin.query<Row>('SHOW MODELS')).rows.filter((r) => r.model === 'lexical');
  const self = (await m.admin.query<Row>('SHOW FLEET')).rows.find((r) => r.self === '1')!;
  return { calls: models.reduce((n, r) => n + Number(r.calls), 0), remoteHits: Number(self.embedding_remote_hits) };
}

const embed = async (m: Member, text: string): Promise<number[]> =>
  (await m.app.query("SELECT pgml.embed('lexical', $1) AS e", [text])).rows[0].e as number[];

const a = await member();
const b = await member();
const probe = new Redis(redis.url);
t.teardown(() => probe.disconnect());

t.test('an embedding computed on A is a hit on B: B computes nothing', async (t) => {
  const text = 'the fleet shares its embeddings';
  const onA = await embed(a, text);
  t.equal(onA.length, 384);
  t.equal((await counts(a)).calls, 1, 'A computed it');

  const onB = await embed(b, text);
  t.same(onB, onA, 'the same vector');
  t.same(await counts(b), { calls: 0, remoteHits: 1 }, "B's engine was not called; one remote hit");

  // Now in B's local cache: a second call is a local hit, not another remote one.
  t.same(await embed(b, text), onA);
  t.same(await counts(b), { calls: 0, remoteHits: 1 }, 'the next call is served locally');

  // In Redis: 384 float32 = 1536 bytes, with a TTL.
  const keys = await probe.keys('pglynx:fleet:emb:lexical:*');
  t.equal(keys.length, 1, 'one key');
  t.equal((await probe.getBuffer(keys[0]))?.byteLength, 384 * 4, 'raw float32');
  const ttl = await probe.pttl(keys[0]);
  t.ok(ttl > 0 && ttl <= EMBEDDING_TTL_MS, `expires (pttl ${ttl})`);
});

t.test('a text[] call on A takes what B computed and computes only the rest', async (t) => {
  const onB = await embed(b, 'computed on B');
  t.equal((await counts(b)).calls, 1, 'B computed it');
  const before = await counts(a);
  const rows = (await a.app.query("SELECT pgml.embed('lexical', ARRAY['computed on B', 'new on A']) AS e")).rows;
  t.equal(rows.length, 2, 'one row per input');
  t.same(rows[0].e, onB, "B's vector");
  const after = await counts(a);
  t.equal(after.calls - before.calls, 1, 'A computed one input');
  t.equal(after.remoteHits - before.remoteHits, 1, 'and took one from Redis');
  t.same(await embed(b, 'new on A'), rows[1].e, "and B now takes A's");
  t.equal((await counts(b)).remoteHits, 2);
});
