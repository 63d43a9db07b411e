// Roles shared by a fleet (issue 15): two PgLynx members in front of a
// primary and a standby, both configured role = "auto". When the standby is
// promoted, the member whose probe sees it first tells the other through
// Redis, so both name it the primary within 200 ms of each other (each
// probe alone runs every 500 ms, so without the fleet the gap is anywhere
// up to 500 ms). A role a member's config writes is not overridden.
import t from 'tap';
import type pg from 'pg';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';
import { startRedis } from './harness/redis.js';
import { pollValue } from './harness/wait.js';

type Row = Record<string, string | null>;

const primary = await startPostgres({ replication: true, t });
const standby = await primary.startReplica({ t });
const redis = await startRedis({ t });

interface Member {
  admin: pg.Client;
  metricsPort: number;
}

async function member(standbyRole: 'auto' | 'replica'): Promise<Member> {
  const port = await freePort();
  const metricsPort = await freePort();
  await startPglynx(
    configToml({
      port,
      general: { redis_url: redis.url, enable_prometheus_exporter: true, prometheus_exporter_port: metricsPort },
      pools: {
        app: {
          users: [{ username: 'postgres', password: 'x', pool_size: 2 }],
          shards: [{ database: 'postgres', servers: [['127.0.0.1', primary.port, 'auto'], ['127.0.0.1', standby.port, standbyRole]] }],
        },
      },
    }),
    { t, logLevel: 'info' },
  );
  const admin = await pgClient({ port, user: 'admin', password: 'admin', database: 'pgcat' });
  t.teardown(() => admin.end());
  return { admin, metricsPort };
}

/** The role `m` gives the standby now (SHOW DATABASES names servers by their role in effect). */
async function standbyRole(m: Member): Promise<string> {
  const row = (await m.admin.query<Row>('SHOW DATABASES')).rows.find((r) => r.port === String(standby.port));
  return /_primary$/.test(row?.name ?? '') ? 'primary' : 'replica';
}

async function applied(m: Member): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${m.metricsPort}/metrics`)).text();
  return Number(/^pglynx_fleet_bans_applied_total (\S+)$/m.exec(text)?.[1] ?? NaN);
}

const a = await member('auto');
const b = await member('auto');
// C writes the standby's role in its config: the fleet must not change it.
const c = await member('replica');
t.test('three members; the standby starts as a replica on each', async (t) => {
  for (const m of [a, b, c]) {
    t.equal(await pollValue(async () => (await m.admin.query('SHOW FLEET')).rows.length, (n) => n === 3, 5000), 3);
    t.equal(await pollValue(() => standbyRole(m), (r) => r === 'replica', 5000), 'replica');
  }
});

t.test('a promotion seen by one member is applied by the other within 200 ms', async (t) => {
  await standby.promote();
  const seen: { a?: number; b?: number } = {};
  const start = performance.now();
  while ((seen.a === undefined || seen.b === undefined) && performance.now() - start < 5000) {
    const [ra, rb] = await Promise.all([standbyRole(a), standbyRole(b)]);
    const now = performance.now();
    if (seen.a === undefined && ra === 'primary') seen.a = now;
    if (seen.b === undefined && rb === 'primary') seen.b = now;
  }
  t.ok(seen.a !== undefined && seen.b !== undefined, 'both name the promoted standby primary');
  const gap = Math.abs((seen.a ?? Infinity) - (seen.b ?? -Infinity));
  t.ok(gap <= 200, `the second ${gap.toFixed(1)} ms after the first`);
  t.ok((await applied(a)) + (await applied(b)) >= 1, 'one of them applied the other\'s message');
  t.ok((await applied(c)) >= 1, 'C received it too');
  t.equal(await standbyRole(c), 'replica', 'C keeps the role its config writes');
});
