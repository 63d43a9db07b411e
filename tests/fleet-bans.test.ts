// Bans shared by a fleet (issue 15): two PgLynx processes with the same
// redis_url in front of a real primary and two streaming replicas. A BAN on
// one member's admin console shows in the other's SHOW BANS within 200 ms
// (pub/sub), and its reads leave the server; UNBAN likewise. Nothing
// echoes: the member that banned keeps its own reason and applies nothing
// back. A member that joins later takes up the bans in force. A replica
// that dies is banned by both within 200 ms of the first to see it.
import t from 'tap';
import type pg from 'pg';
import { primaryShard } from './harness/pool-config.js';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx, type PglynxProcess } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';
import { startRedis } from './harness/redis.js';
import { pollValue } from './harness/wait.js';

type Row = Record<string, string | null>;
const SHARED_WITHIN_MS = 200;

const primary = await startPostgres({ replication: true, t });
const replicas = [await primary.startReplica({ t }), await primary.startReplica({ t })];
const [r0, r1] = replicas.map((r) => r.port);
const redis = await startRedis({ t });

interface Member {
  proc: PglynxProcess;
  admin: pg.Client;
  app: pg.Client;
  metricsPort: number;
}

async function member(): Promise<Member> {
  const port = await freePort();
  const metricsPort = await freePort();
  const proc = await startPglynx(
    configToml({
      port,
      general: { redis_url: redis.url, ban_time: 60, enable_prometheus_exporter: true, prometheus_exporter_port: metricsPort },
      pools: {
        split: {
          query_parser_enabled: true,
          query_parser_read_write_splitting: true,
          primary_reads_enabled: false,
          users: [{ username: 'postgres', password: 'x', pool_size: 4 }],
          shards: [primaryShard(primary, 'postgres', [r0, r1])],
        },
      },
    }),
    { t, logLevel: 'info' },
  );
  const admin = await pgClient({ port, user: 'admin', password: 'admin', database: 'pgcat' });
  const app = await pgClient({ port, user: 'postgres', password: 'x', database: 'split', query_timeout: 5000 });
  t.teardown(async () => {
    await admin.end();
    await app.end();
  });
  return { proc, admin, app, metricsPort };
}

const bansOf = async (m: Member): Promise<Row[]> => (await m.admin.query<Row>('SHOW BANS')).rows;
const fleetSize = async (m: Member): Promise<number> => (await m.admin.query('SHOW FLEET')).rows.length;

/** Polls `m`'s SHOW BANS back to back until `ok`; the ms it took, or Infinity after 3 s. */
async function msUntil(m: Member, ok: (rows: Row[]) => boolean): Promise<number> {
  const start = performance.now();
  while (performance.now() - start < 3000) {
    if (ok(await bansOf(m))) return performance.now() - start;
  }
  return Infinity;
}

async function metric(m: Member, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${m.metricsPort}/metrics`)).text();
  const found = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return found ? Number(found[1]) : NaN;
}

async function readPorts(m: Member, n = 40): Promise<Set<number>> {
  const ports = new Set<number>();
  for (let i = 0; i < n; i++) ports.add((await m.app.query('SELECT inet_server_port() AS port')).rows[0].port as number);
  return ports;
}

const a = await member();
const b = await member();
// Both have subscribed once each sees the other.
await pollValue(() => fleetSize(b), (n) => n === 2, 5000);
await pollValue(() => fleetSize(a), (n) => n === 2, 5000);

t.test('BAN on A is honoured by B within 200 ms; UNBAN likewise; nothing echoes', async (t) => {
  const ban = await a.admin.query<Row>(`BAN 127.0.0.1:${r0}`);
  t.equal(ban.rows.length, 1, 'A banned the replica');
  const banMs = await msUntil(b, (rows) => rows.some((r) => r.port === String(r0)));
  t.ok(banMs <= SHARED_WITHIN_MS, `B lists the ban ${banMs.toFixed(1)} ms after A's BAN returned`);
  const onB = (await bansOf(b)).find((r) => r.port === String(r0))!;
  t.match(onB.reason, /^fleet: admin BAN for 60 s \(member .+\)$/, "B's reason names the member that banned");
  t.ok(Number(onB.ban_remaining_seconds) > 55, 'for the same length');
  t.same([...(await readPorts(b))], [r1], "B's reads leave the banned replica");

  const unban = await a.admin.query<Row>(`UNBAN 127.0.0.1:${r0}`);
  t.equal(unban.rows.length, 1, 'A unbanned it');
  const unbanMs = await msUntil(b, (rows) => rows.length === 0);
  t.ok(unbanMs <= SHARED_WITHIN_MS, `B drops the ban ${unbanMs.toFixed(1)} ms after A's UNBAN returned`);
  t.same([...(await readPorts(b))].sort(), [r0, r1].sort(), "B's reads use both replicas again");

  // B applied two messages and sent none back; A applied none.
  t.equal(await metric(b, 'pglynx_fleet_bans_published_total'), 0, 'B published nothing (no echo)');
  t.equal(await metric(b, 'pglynx_fleet_bans_applied_total'), 2, 'B applied the ban and the unban');
  t.equal(await metric(a, 'pglynx_fleet_bans_applied_total'), 0, 'A applied nothing back');

  // The other way round: B bans, A follows.
  await b.admin.query(`BAN 127.0.0.1:${r1} 30`);
  const backMs = await msUntil(a, (rows) => rows.some((r) => r.port === String(r1)));
  t.ok(backMs <= SHARED_WITHIN_MS, `A lists B's ban after ${backMs.toFixed(1)} ms`);
  t.match((await bansOf(b)).find((r) => r.port === String(r1))?.reason, /^admin BAN/, 'B keeps its own reason');
});

t.test('a member that joins later takes up the bans in force', async (t) => {
  const c = await member();
  const rows = await pollValue(() => bansOf(c), (r) => r.some((x) => x.port === String(r1)), 3000);
  t.ok(rows.some((x) => x.port === String(r1) && /^fleet: /.test(x.reason ?? '')), 'C lists the ban B set before C started');
  await a.admin.query(`UNBAN 127.0.0.1:${r1}`);
  const ms = await msUntil(c, (r) => r.length === 0);
  t.ok(ms <= SHARED_WITHIN_MS, `UNBAN on A reaches C too (${ms.toFixed(1)} ms)`);
  t.equal((await bansOf(b)).length, 0, 'and B');
  await c.proc.stop();
});

t.test('a replica that dies: banned by both within 200 ms of the first to see it', async (t) => {
  await replicas[0].kill();
  const seen: { a?: number; b?: number } = {};
  const start = performance.now();
  // Reads on A find the dead replica (or either member's role probe does, every 500 ms).
  const reads = (async () => {
    while (seen.a === undefined && performance.now() - start < 5000) await a.app.query('SELECT 1').catch(() => {});
  })();
  while ((seen.a === undefined || seen.b === undefined) && performance.now() - start < 5000) {
    const [ra, rb] = await Promise.all([bansOf(a), bansOf(b)]);
    const now = performance.now();
    if (seen.a === undefined && ra.some((r) => r.port === String(r0))) seen.a = now;
    if (seen.b === undefined && rb.some((r) => r.port === String(r0))) seen.b = now;
  }
  await reads;
  t.ok(seen.a !== undefined && seen.b !== undefined, 'both banned the dead replica');
  const gap = Math.abs((seen.a ?? Infinity) - (seen.b ?? -Infinity));
  t.ok(gap <= SHARED_WITHIN_MS, `the second within ${gap.toFixed(1)} ms of the first`);
  const reasons = [...(await bansOf(a)), ...(await bansOf(b))].filter((r) => r.port === String(r0)).map((r) => r.reason);
  t.comment(`reasons: ${reasons.join(' | ')}`);
  t.ok(reasons.some((r) => /^fleet: /.test(r ?? '')), 'one of them has it from the fleet');
});
