// The Prometheus exporter in front of a real Postgres 15 cluster: PgCat's
// metric names, types and labels (so PgCat dashboards keep working), query
// and transaction counters that move by exactly what clients ran, Node's
// process metrics, the shipped Grafana dashboard using only exported names,
// and the exporter following enable_prometheus_exporter across reloads.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { primaryShard } from './harness/pool-config.js';
import { pgClient } from './harness/clients.js';
import { configToml, REPO_ROOT, startPglynx, type ConfigPool } from './harness/pglynx.js';
import { freePort, isPortOpen, waitForPort, waitForPortClosed } from './harness/ports.js';
import { startPostgres } from './harness/postgres.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Scrape {
  samples: Sample[];
  /** Metric family name -> TYPE. */
  types: Map<string, string>;
}

/** Parses the Prometheus text format (enough of it for these metrics). */
function parseMetrics(text: string): Scrape {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1], type[2]);
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return { samples, types };
}

async function scrape(port: number): Promise<Scrape> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
  return parseMetrics(await res.text());
}

function find(s: Scrape, name: string, labels: Record<string, string>): Sample[] {
  return s.samples.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
}

/** The one value of `name` for exactly these labels. */
function value(s: Scrape, name: string, labels: Record<string, string>): number {
  const hits = s.samples.filter((x) => x.name === name && JSON.stringify(Object.entries(x.labels).sort()) === JSON.stringify(Object.entries(labels).sort()));
  if (hits.length !== 1) throw new Error(`${name}${JSON.stringify(labels)}: ${hits.length} samples`);
  return hits[0].value;
}

// PgCat's metrics (src/prometheus.rs), by label set and type.
const ADDRESS_COUNTERS = [
  'pgcat_stats_total_query_count', 'pgcat_stats_total_query_time', 'pgcat_stats_total_received', 'pgcat_stats_total_sent',
  'pgcat_stats_total_xact_count', 'pgcat_stats_total_xact_time', 'pgcat_stats_total_wait_time',
  'pgcat_servers_bytes_received', 'pgcat_servers_bytes_sent', 'pgcat_servers_transaction_count', 'pgcat_servers_query_count',
  'pgcat_servers_error_count',
];
const ADDRESS_GAUGES = [
  'pgcat_stats_avg_query_count', 'pgcat_stats_avg_query_time', 'pgcat_stats_avg_recv', 'pgcat_stats_avg_sent',
  'pgcat_stats_avg_errors', 'pgcat_stats_avg_xact_count', 'pgcat_stats_avg_xact_time', 'pgcat_stats_avg_wait_time',
  'pgcat_servers_idle_count', 'pgcat_servers_active_count', 'pgcat_servers_tested_count', 'pgcat_servers_login_count',
  'pgcat_servers_is_banned', 'pgcat_servers_is_paused', 'pgcat_databases_pool_size', 'pgcat_databases_current_connections',
];
const POOL_GAUGES = [
  'pgcat_pools_maxwait_us', 'pgcat_pools_maxwait', 'pgcat_pools_cl_waiting', 'pgcat_pools_cl_active', 'pgcat_pools_cl_idle',
  'pgcat_pools_sv_idle', 'pgcat_pools_sv_active', 'pgcat_pools_sv_login', 'pgcat_pools_sv_tested',
];
const PROCESS_METRICS = [
  'process_cpu_user_seconds_total', 'process_cpu_system_seconds_total', 'process_resident_memory_bytes',
  'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_version_info',
];

const APP = { username: 'app', password: 'apppw' };
const pg = await startPostgres({ auth: 'scram-sha-256', users: [{ name: 'app', password: 'apppw' }], databases: [{ name: 'appdb', owner: 'app' }], t });
// Pool name and server database differ, so the `pool` and `database` labels can be told apart.
const pools: Record<string, ConfigPool> = {
  app: { pool_mode: 'transaction', users: [{ ...APP, pool_size: 3 }], shards: [primaryShard(pg, 'appdb')] },
};
const ADDRESS = { host: '127.0.0.1', shard: '0', role: 'primary', pool: 'app', index: '0', database: 'appdb', username: 'app' };
const POOL = { pool: 'app', user: 'app' };

const metricsPort = await freePort();
const pooler = await startPglynx(
  configToml({ port: await freePort(), general: { enable_prometheus_exporter: true, prometheus_exporter_port: metricsPort }, pools }),
  { t, logLevel: 'info' },
);
await waitForPort('127.0.0.1', metricsPort, 10_000);

t.test('PgCat metric names, types and labels', async (t) => {
  const s = await scrape(metricsPort);
  for (const name of [...ADDRESS_COUNTERS, ...ADDRESS_GAUGES]) {
    t.equal(s.types.get(name), ADDRESS_COUNTERS.includes(name) ? 'counter' : 'gauge', `${name} type`);
    t.doesNotThrow(() => value(s, name, ADDRESS), `${name} has one sample with labels host, shard, role, pool, index, database, username`);
  }
  for (const name of POOL_GAUGES) {
    t.equal(s.types.get(name), 'gauge', `${name} type`);
    t.doesNotThrow(() => value(s, name, POOL), `${name} has one sample with labels pool, user`);
  }
  t.equal(value(s, 'pgcat_databases_pool_size', ADDRESS), 3, 'pool_size is the configured one');
  t.equal(value(s, 'pgcat_servers_is_paused', ADDRESS), 0);
  const pgcat = [...s.types.keys()].filter((n) => n.startsWith('pgcat_'));
  t.same(pgcat.sort(), [...ADDRESS_COUNTERS, ...ADDRESS_GAUGES, ...POOL_GAUGES].sort(), 'exactly PgCat\'s metric families');
});

t.test('only GET /metrics is served', async (t) => {
  for (const p of ['/', '/metric', '/metrics/x']) {
    const res = await fetch(`http://127.0.0.1:${metricsPort}${p}`);
    t.equal(res.status, 404, `GET ${p}`);
    await res.arrayBuffer();
  }
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  t.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  await res.arrayBuffer();
});

t.test('100 autocommit queries move the query and transaction counters by exactly 100', async (t) => {
  const client = await pgClient({ port: pooler.port, user: 'app', password: 'apppw', database: 'app' });
  t.teardown(() => client.end());
  const before = await scrape(metricsPort);
  t.equal(value(before, 'pgcat_pools_cl_idle', POOL), 1, 'the connected client is idle');
  for (let i = 0; i < 100; i++) await client.query('SELECT 1');
  const after = await scrape(metricsPort);
  const delta = (name: string): number => value(after, name, ADDRESS) - value(before, name, ADDRESS);
  t.equal(delta('pgcat_stats_total_query_count'), 100, 'stats_total_query_count +100');
  t.equal(delta('pgcat_stats_total_xact_count'), 100, 'stats_total_xact_count +100');
  t.equal(delta('pgcat_servers_query_count'), 100, 'servers_query_count +100');
  t.equal(delta('pgcat_servers_transaction_count'), 100, 'servers_transaction_count +100');
  t.ok(delta('pgcat_stats_total_query_time') > 0, 'query time grew');
  t.ok(delta('pgcat_stats_total_xact_time') > 0, 'transaction time grew');
  // PgCat's direction: "sent" went to the server, 100 Query messages of 14 bytes ('Q', length, "SELECT 1\0").
  t.equal(delta('pgcat_stats_total_sent'), 1400, 'bytes sent to the server');
  t.equal(delta('pgcat_servers_bytes_sent'), 1400, 'servers_bytes_sent agrees');
  t.ok(delta('pgcat_stats_total_received') > delta('pgcat_stats_total_sent'), 'bytes from the server (row + tags) exceed the queries');
  t.equal(delta('pgcat_servers_error_count'), 0, 'no errors');
  t.equal(value(after, 'pgcat_pools_cl_idle', POOL), 1);
  t.equal(value(after, 'pgcat_pools_cl_active', POOL), 0);
  t.equal(value(after, 'pgcat_pools_cl_waiting', POOL), 0);
  const servers = value(after, 'pgcat_databases_current_connections', ADDRESS);
  t.ok(servers >= 1 && servers <= 3, `server connections open: ${servers}`);
  t.equal(value(after, 'pgcat_pools_sv_idle', POOL) + value(after, 'pgcat_pools_sv_active', POOL), servers, 'sv_idle + sv_active = current_connections');
});

t.test('Node process metrics are served too', async (t) => {
  const s = await scrape(metricsPort);
  for (const name of PROCESS_METRICS) t.ok(find(s, name, {}).length > 0, name);
  t.ok(value(s, 'process_resident_memory_bytes', {}) > 0, 'RSS is a real number');
});

t.test('the Grafana dashboard uses only exported metrics', async (t) => {
  const dashboard = JSON.parse(readFileSync(path.join(REPO_ROOT, 'dashboards', 'pglynx-grafana.json'), 'utf8')) as {
    panels: { targets?: { expr: string }[] }[];
    templating: { list: { type: string; query: unknown }[] };
  };
  t.ok(dashboard.templating.list.some((v) => v.type === 'datasource' && v.query === 'prometheus'), 'Prometheus datasource variable');
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((x) => x.expr));
  t.ok(exprs.length >= 10, `${exprs.length} queries`);
  const s = await scrape(metricsPort);
  const families = new Set(s.samples.map((x) => x.name));
  const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:pgcat|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1])));
  for (const name of used) t.ok(families.has(name), `${name} is exported`);
  for (const want of ['pgcat_pools_cl_active', 'pgcat_pools_cl_waiting', 'pgcat_stats_total_xact_count', 'pgcat_stats_total_query_count', 'nodejs_eventloop_lag_p99_seconds']) {
    t.ok(used.has(want), `dashboard shows ${want}`);
  }
});

t.test('no exporter when disabled; reloads start and stop it', async (t) => {
  const port = await freePort();
  const q = await freePort();
  const cfg = (enabled: boolean): string =>
    configToml({ port, general: { enable_prometheus_exporter: enabled, prometheus_exporter_port: q }, pools });
  const off = await startPglynx(cfg(false), { t, logLevel: 'info' });
  await off.waitForOutput('PgLynx is listening');
  await new Promise((r) => setTimeout(r, 500));
  t.notOk(await isPortOpen('127.0.0.1', q), 'nothing listens on prometheus_exporter_port');
  t.notMatch(off.output(), /Prometheus metrics on/, 'no exporter started');

  let from = off.output().length;
  off.writeConfig(cfg(true));
  off.kill('SIGHUP');
  await off.waitForOutput('config reloaded', 10_000, from);
  await waitForPort('127.0.0.1', q, 5000);
  t.pass('reload enabling it starts the exporter');
  const s = await scrape(q);
  t.ok(find(s, 'pgcat_pools_cl_idle', POOL).length === 1, 'and it serves the pools');

  from = off.output().length;
  off.writeConfig(cfg(false));
  off.kill('SIGHUP');
  await off.waitForOutput('config reloaded', 10_000, from);
  await waitForPortClosed('127.0.0.1', q, 5000);
  t.pass('reload disabling it stops the exporter');
});
