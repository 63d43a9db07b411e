// The admin console and the exporter in front of a primary and two
// streaming replicas: SHOW SERVERS / POOLS / STATS / DATABASES cover every
// server of the pool, and the drill commands BAN / UNBAN / SHOW BANS move
// reads (counted with inet_server_port() over 200 reads) and show up in
// SHOW DATABASES, SHOW BANS and pgcat_servers_is_banned. A primary cannot be
// banned; a BAN with seconds runs out by itself.
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { freePort } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';

type Row = Record<string, string | null>;

const primary = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'pw' }], replication: true, t });
const replicas = [await primary.startReplica({ t }), await primary.startReplica({ t })];
const [r0, r1] = replicas.map((r) => r.port);
const port = await freePort();
const metricsPort = await freePort();
const pooler = await startPglynx(
  configToml({
    port,
    general: { ban_time: 60, enable_prometheus_exporter: true, prometheus_exporter_port: metricsPort },
    pools: {
      split: {
        pool_mode: 'transaction',
        load_balancing_mode: 'random',
        query_parser_enabled: true,
        query_parser_read_write_splitting: true,
        primary_reads_enabled: false,
        users: [{ username: 'app', password: 'pw', pool_size: 5 }],
        shards: [primaryShard(primary, 'postgres', [r0, r1])],
      },
    },
  }),
  { t, logLevel: 'warn' },
);

const app = await pgClient({ port: pooler.port, user: 'app', password: 'pw', database: 'split', query_timeout: 5000 });
const admin = await pgClient({ port: pooler.port, user: 'admin', password: 'admin', database: 'pgcat' });
const notices: string[] = [];
admin.on('notice', (n) => notices.push(n.message ?? ''));
t.teardown(async () => {
  await app.end();
  await admin.end();
});

/** Which server port each of `n` reads ran on. */
async function readPorts(n = 200): Promise<Map<number, number>> {
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const p = (await app.query('SELECT inet_server_port() AS port')).rows[0].port as number;
    counts.set(p, (counts.get(p) ?? 0) + 1);
  }
  return counts;
}

const show = async (what: string): Promise<Row[]> => (await admin.query<Row>(`SHOW ${what}`)).rows;
const codeOf = (p: Promise<unknown>): Promise<{ code?: string; message?: string }> =>
  p.then(
    () => ({}),
    (err: { code?: string; message?: string }) => err,
  );

/** pgcat_servers_is_banned per server port (label index: 0 primary, 1 and 2 the replicas). */
async function bannedMetric(): Promise<Map<string, { role: string; value: number }>> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const out = new Map<string, { role: string; value: number }>();
  for (const m of text.matchAll(/^pgcat_servers_is_banned\{([^}]*)\} (\S+)$/gm)) {
    const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (labels.pool === 'split') out.set(labels.index, { role: labels.role, value: Number(m[2]) });
  }
  return out;
}

t.test('every server of the pool in SHOW DATABASES / SERVERS / POOLS / STATS', async (t) => {
  const reads = await readPorts();
  t.same([...reads.keys()].sort(), [r0, r1].sort(), 'reads go to both replicas, never the primary');
  const dbs = await show('DATABASES');
  t.same(
    dbs.map((r) => [r.name, r.port, r.disabled]),
    [
      ['split_shard_0_primary', String(primary.port), '0'],
      ['split_shard_0_replica_0', String(r0), '0'],
      ['split_shard_0_replica_1', String(r1), '0'],
    ],
    'SHOW DATABASES: one row per server, PgCat-named',
  );
  const servers = (await show('SERVERS')).filter((r) => r.database === 'split');
  const serverPorts = new Set(servers.map((r) => Number(r.port)));
  t.ok(serverPorts.has(r0) && serverPorts.has(r1), 'SHOW SERVERS lists the replicas’ connections');
  t.ok(servers.every((r) => r.banned === 'false'), 'none banned');
  const pool = (await show('POOLS')).find((r) => r.database === 'split')!;
  t.equal(Number(pool.sv_active) + Number(pool.sv_idle) + Number(pool.sv_tested), servers.length, 'SHOW POOLS counts every server’s connections');
  const stats = await show('STATS');
  t.same(stats.map((r) => r.instance), dbs.map((r) => r.name), 'SHOW STATS: one row per server');
  const queries = (name: string): number => Number(stats.find((r) => r.instance === name)!.total_query_count);
  t.ok(queries('split_shard_0_replica_0') + queries('split_shard_0_replica_1') >= 200, 'replica rows carry the reads');
  const metric = await bannedMetric();
  t.same([...metric.entries()].sort(), [['0', { role: 'primary', value: 0 }], ['1', { role: 'replica', value: 0 }], ['2', { role: 'replica', value: 0 }]]);
});

t.test('BAN a replica: reads leave it; UNBAN: they come back', async (t) => {
  const ban = await admin.query<Row>(`BAN 127.0.0.1:${r0}`);
  t.equal(ban.command, 'BAN');
  t.same(ban.rows, [{ db: 'split', user: 'app', role: 'replica', host: '127.0.0.1', port: String(r0) }], 'BAN reports what it banned');
  const reads = await readPorts();
  t.same([...reads.entries()], [[r1, 200]], `200 reads, all on the other replica (${JSON.stringify([...reads])})`);

  // A ban closes the server's connections and no new ones are opened, so
  // SHOW SERVERS has nothing of it left unbanned; SHOW DATABASES and BANS show the ban.
  const servers = (await show('SERVERS')).filter((r) => r.database === 'split');
  t.ok(servers.filter((r) => Number(r.port) === r0).every((r) => r.banned === 'true'), 'SHOW SERVERS: no unbanned connection to it');
  t.ok(servers.some((r) => Number(r.port) === r1 && r.banned === 'false'), 'SHOW SERVERS: the other replica serves, unbanned');
  t.equal((await show('DATABASES')).find((r) => r.name === 'split_shard_0_replica_0')!.disabled, '1', 'SHOW DATABASES: disabled');
  const bans = await show('BANS');
  t.equal(bans.length, 1);
  t.match(bans[0], { db: 'split', user: 'app', role: 'replica', host: '127.0.0.1', port: String(r0), reason: /admin BAN/, ban_duration_seconds: '60' });
  t.ok(Number(bans[0].ban_remaining_seconds) > 50 && Number(bans[0].ban_remaining_seconds) <= 60, 'ban_time by default');
  t.same((await bannedMetric()).get('1'), { role: 'replica', value: 1 }, 'pgcat_servers_is_banned 1');
  t.same((await bannedMetric()).get('2'), { role: 'replica', value: 0 });

  const unban = await admin.query<Row>(`UNBAN 127.0.0.1:${r0}`);
  t.equal(unban.command, 'UNBAN');
  t.equal(unban.rows.length, 1, 'UNBAN reports the server');
  t.equal((await admin.query(`UNBAN 127.0.0.1:${r0}`)).rows.length, 0, 'a second UNBAN has nothing to do');
  const back = await readPorts();
  t.ok((back.get(r0) ?? 0) > 40 && (back.get(r1) ?? 0) > 40, `reads return to it (${JSON.stringify([...back])})`);
  t.same(await show('BANS'), []);
  t.same((await bannedMetric()).get('1'), { role: 'replica', value: 0 });
});

t.test('BAN refuses a primary, and bad arguments', async (t) => {
  const err = await codeOf(admin.query(`BAN 127.0.0.1:${primary.port}`));
  t.equal(err.code, '55000', 'the primary is refused');
  t.match(err.message, /primary of split_shard_0_primary.*never banned/);
  t.same(await show('BANS'), [], 'nothing was banned');
  // PgCat's SQLSTATE for bad input (its admin_spec.rb expects PG::SystemError).
  t.equal((await codeOf(admin.query('BAN'))).code, '58000', 'no address');
  t.equal((await codeOf(admin.query('BAN 127.0.0.1:1'))).code, '58000', 'an address no pool has');
  t.equal((await codeOf(admin.query('BAN a'))).code, '58000', 'a host no pool has');
  t.equal((await codeOf(admin.query(`BAN 127.0.0.1:${r0} soon`))).code, '58000', 'seconds not a number');
  t.equal((await codeOf(admin.query(`BAN 127.0.0.1:${r0} 0`))).code, '58000', 'zero seconds');
  t.equal((await codeOf(admin.query(`BAN 127.0.0.1:${r0} -5`))).code, '58000', 'negative seconds');
  t.equal((await codeOf(admin.query('BAN a a a'))).code, '58000', 'too many arguments');
  t.equal((await codeOf(admin.query('UNBAN'))).code, '58000', 'UNBAN with no address');
  t.same(await show('BANS'), [], 'still nothing banned');

  // A bare host (PgCat's form) covers every server on it: the replicas are
  // banned, the primary skipped, and the admin told both.
  notices.length = 0;
  const all = await admin.query<Row>('BAN 127.0.0.1 30');
  t.same(all.rows.map((r) => Number(r.port)).sort(), [r0, r1].sort(), 'both replicas banned');
  t.match(notices.join('\n'), /not banned \(primaries are never banned\): split_shard_0_primary/);
  t.match(notices.join('\n'), /every replica of split shard 0 is now banned/);
  // As PgCat (admin_spec.rb "bans/unbans hosts"): a second BAN lists only
  // what it newly banned, nothing here, and leaves the running bans alone.
  const remaining = (await show('BANS')).map((r) => r.ban_duration_seconds);
  const again = await admin.query<Row>('BAN 127.0.0.1 10');
  t.equal(again.command, 'BAN');
  t.equal(again.rows.length, 0, 'BAN of hosts already banned returns no rows');
  t.same((await show('BANS')).map((r) => r.ban_duration_seconds), remaining, 'their bans keep their 30 s');
  t.equal((await admin.query('UNBAN 127.0.0.1')).rows.length, 2);
  t.equal((await admin.query('UNBAN 127.0.0.1')).rows.length, 0, 'a second UNBAN lists nothing');
  t.same(await show('BANS'), []);
});

t.test('BAN with seconds runs out by itself', async (t) => {
  const start = Date.now();
  await admin.query(`BAN 127.0.0.1:${r1} 2`);
  t.match((await show('BANS'))[0], { port: String(r1), ban_duration_seconds: '2' });
  const during = await readPorts(100);
  t.same([...during.keys()], [r0], 'reads avoid it while banned');
  while ((await show('BANS')).length > 0) {
    if (Date.now() - start > 10_000) throw new Error('the 2 s ban did not expire');
    await new Promise((r) => setTimeout(r, 100));
  }
  const lasted = Date.now() - start;
  t.ok(lasted >= 1900 && lasted < 4000, `expired after ${lasted} ms`);
  const after = await readPorts();
  t.ok((after.get(r1) ?? 0) > 40, `reads return to it (${JSON.stringify([...after])})`);
  t.same((await bannedMetric()).get('2'), { role: 'replica', value: 0 });
});
