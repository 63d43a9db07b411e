// Server connection budgets held across a fleet (issue 15): three PgLynx
// members share one redis-server; each configures pool_size 4 for the same
// (pool, user, server), and 4 is what Postgres sees at most over all of
// them (pg_stat_activity sampled every 50 ms), not 12, while five clients
// per member run short statements: no query fails, every member's clients
// get work done. A member killed with SIGKILL: its leases expire and the
// two others hold the whole budget within the lease TTL + 1 s. Redis
// stopped: members keep serving within a local share and the total stays
// within the budget.
import t from 'tap';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx, type PglynxProcess } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { primaryShard } from './harness/pool-config.js';
import { startPostgres } from './harness/postgres.js';
import { startRedis } from './harness/redis.js';
import { sleep } from './harness/wait.js';

type Row = Record<string, string | null>;
const BUDGET = 4;
const LEASE_TTL_MS = 1000;
const CLIENTS_PER_MEMBER = 5;

const pg = await startPostgres({ users: [{ name: 'app', password: 'pw' }], t });
const redis = await startRedis({ t });

async function member(): Promise<PglynxProcess> {
  const port = await freePort();
  return startPglynx(
    configToml({
      port,
      general: { redis_url: redis.url, fleet_lease_ttl_ms: LEASE_TTL_MS, connect_timeout: 10_000 },
      pools: { app: { users: [{ username: 'app', password: 'pw', pool_size: BUDGET }], shards: [primaryShard(pg)] } },
    }),
    { t, logLevel: 'info' },
  );
}

const members = [await member(), await member(), await member()];

/** Server connections Postgres has from the poolers now. */
const onServer = async (): Promise<number> =>
  Number((await pg.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'app'"))[0].n);

/** Samples onServer() every 50 ms until stopped; the largest count seen. */
/** Samples above the budget (`ms:count`), shown when a test fails. */
const over: string[] = [];
function sampler(): { stop: () => Promise<number> } {
  let running = true;
  let max = 0;
  const loop = (async () => {
    while (running) {
      const n = await onServer();
      if (n > BUDGET) over.push(`${Date.now() % 100000}:${n}`);
      max = Math.max(max, n);
      await sleep(50);
    }
  })();
  return { stop: async () => ((running = false), await loop, max) };
}

interface Load {
  done: number[];
  failed: string[][];
  stop: () => Promise<void>;
}

/** Five clients per member running SELECT pg_sleep(0.02) back to back. */
function load(targets: PglynxProcess[]): Load {
  let running = true;
  const done = targets.map(() => 0);
  const failed: string[][] = targets.map(() => []);
  const loops = targets.flatMap((m, i) =>
    Array.from({ length: CLIENTS_PER_MEMBER }, async () => {
      const c = await pgClient({ port: m.port, user: 'app', password: 'pw', database: 'app', query_timeout: 20_000 });
      while (running) {
        try {
          await c.query('SELECT pg_sleep(0.02)');
          done[i]++;
        } catch (err) {
          failed[i].push((err as Error).message);
        }
      }
      await c.end().catch(() => {});
    }),
  );
  return { done, failed, stop: async () => ((running = false), void (await Promise.all(loops))) };
}

async function heldBy(m: PglynxProcess): Promise<number> {
  const admin = await pgClient({ port: m.port, user: 'admin', password: 'admin', database: 'pgcat' });
  try {
    const row = (await admin.query<Row>('SHOW DATABASES')).rows.find((r) => r.name === 'app_shard_0_primary');
    return Number(row?.current_connections ?? NaN);
  } finally {
    await admin.end();
  }
}

t.test(`three members, pool_size ${BUDGET} each: Postgres sees ${BUDGET} at most`, async (t) => {
  await sleep(LEASE_TTL_MS); // every member knows the other two
  const seen = sampler();
  const work = load(members);
  await sleep(3000);
  await work.stop();
  const max = await seen.stop();
  t.ok(max <= BUDGET, `at most ${BUDGET} server connections seen (max ${max})`);
  t.ok(max >= BUDGET - 1, `and the budget is used (max ${max})`);
  t.same(work.failed, [[], [], []], 'no query failed');
  for (const [i, n] of work.done.entries()) t.ok(n > 10, `member ${i}'s clients got work done (${n} statements)`);
});

t.test('a member killed: the other two hold its share within the lease TTL + 1 s', async (t) => {
  const [a, b, c] = members;
  const seen = sampler();
  const work = load([a, b]);
  await sleep(1000);
  c.kill('SIGKILL');
  await c.exited;
  const killedAt = Date.now();
  let took = Infinity;
  while (Date.now() - killedAt < LEASE_TTL_MS + 3000) {
    if ((await heldBy(a)) + (await heldBy(b)) === BUDGET) {
      took = Date.now() - killedAt;
      break;
    }
    await sleep(50);
  }
  await sleep(500);
  await work.stop();
  const max = await seen.stop();
  t.ok(took <= LEASE_TTL_MS + 1000, `A and B hold all ${BUDGET} ${took} ms after the kill`);
  t.ok(max <= BUDGET, `never more than ${BUDGET} on the server (max ${max})`);
  t.same(work.failed, [[], []], "no query of A's or B's clients failed");
});

t.test('Redis stopped: the members keep serving within the budget', async (t) => {
  const [a, b] = members;
  const seen = sampler();
  const work = load([a, b]);
  await sleep(500);
  await redis.stop();
  await sleep(2000);
  await redis.start(); // empty: every lease and member key is gone
  await sleep(1500);
  await work.stop();
  const max = await seen.stop();
  t.ok(max <= BUDGET, `at most ${BUDGET} on the server (max ${max}; over: ${over.join(' ') || 'none'})`);
  t.same(work.failed, [[], []], 'no query failed');
  t.ok(work.done[0] > 10 && work.done[1] > 10, `both served (${work.done.join(', ')})`);
});
