// Prometheus exporter (PgCat's `enable_prometheus_exporter`): GET /metrics
// on its own HTTP port, in the text exposition format.
//
// Metric names, types and label names are PgCat's (src/prometheus.rs), so
// dashboards and alerts written for PgCat keep working unchanged:
//   pgcat_stats_*      SHOW STATS per address      labels host, shard, role, pool, index, database, username
//   pgcat_servers_*    SHOW SERVERS per address    same labels
//   pgcat_databases_*  SHOW DATABASES per address  same labels
//   pgcat_pools_*      SHOW POOLS per (pool, user) labels pool, user
// An address is one server of a (pool, user) cluster: every shard's
// primary and replicas, labelled with the role in effect (an `auto` server
// by what the probe found) and its index in the shard's server list.
//
// Nothing here runs on the hot path: values are read from the pools' own
// counters when Prometheus scrapes, and set into fresh metrics right then.
// Node's process metrics (CPU, memory, event loop lag...) come from
// prom-client's default collectors, kept on a registry of their own.
// The model engine adds pglynx_engine_* (engine/metrics.ts).
// The SQL parser adds pglynx_sql_* (stats/sql-metrics.ts).
// The fleet adds pglynx_fleet_* (fleet/metrics.ts).

import http from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { registerEngineMetrics } from '../../engine/metrics.js';
import { registerSqlMetrics } from './sql-metrics.js';
import { registerFleetMetrics } from '../fleet/metrics.js';
import type { AdminContext } from '../admin/context.js';
import { memberAddresses } from '../pool/member-addresses.js';
import type { Logger } from '../logger.js';
import type { Cluster } from '../pool/cluster.js';
import type { PoolCounters } from '../pool/pool.js';
import { msOf, type TrafficAverages, type TrafficTotals } from './traffic.js';

const ADDRESS_LABELS = ['host', 'shard', 'role', 'pool', 'index', 'database', 'username'] as const;
const POOL_LABELS = ['pool', 'user'] as const;

type AddressLabel = (typeof ADDRESS_LABELS)[number];
type PoolLabel = (typeof POOL_LABELS)[number];

/** What one scrape knows about one server (address) of a pool entry. */
interface AddressSample {
  labels: Record<AddressLabel, string>;
  totals: TrafficTotals;
  averages: TrafficAverages;
  counters: PoolCounters;
  size: number;
  paused: boolean;
  banned: boolean;
}

/** What one scrape knows about one (pool, user): its servers' counters summed. */
interface PoolSample {
  labels: Record<PoolLabel, string>;
  counters: Pick<PoolCounters, 'idle' | 'active' | 'connecting' | 'maxWaitMs'>;
  clients: { active: number; waiting: number; idle: number };
}

type MetricSpec = {
  /** Without the `pgcat_` prefix, as in PgCat's lookup table. */
  name: string;
  /** PgLynx's own metrics are `pglynx_` (PgCat has no such metric). */
  prefix?: 'pglynx';
  help: string;
  type: 'counter' | 'gauge';
} & ({ labels: 'address'; value(s: AddressSample): number } | { labels: 'pool'; value(s: PoolSample): number });

// Byte directions follow PgCat's definitions, which are the server's side:
// "received" is what came back from Postgres (what PgLynx forwarded to
// clients, TrafficTotals.sent) and "sent" is what went to Postgres (what
// clients sent, TrafficTotals.received).
// Times in SHOW STATS's (PgCat's) units: query and transaction times in
// milliseconds, wait times in microseconds. PgCat resets its stats_total_*
// every stats period; here they are true running totals, as a Prometheus
// counter must be, so rate() and increase() work on them.
const SPECS: MetricSpec[] = [
  { name: 'stats_total_query_count', type: 'counter', labels: 'address', help: 'Queries run through the pooler', value: (s) => s.totals.queryCount },
  { name: 'stats_total_query_time', type: 'counter', labels: 'address', help: 'Time spent running queries, in milliseconds', value: (s) => msOf(s.totals.queryTimeUs) },
  { name: 'stats_total_received', type: 'counter', labels: 'address', help: 'Bytes received from the server', value: (s) => s.totals.sent },
  { name: 'stats_total_sent', type: 'counter', labels: 'address', help: 'Bytes sent to the server', value: (s) => s.totals.received },
  { name: 'stats_total_xact_count', type: 'counter', labels: 'address', help: 'Transactions run through the pooler (autocommit statements count as one each)', value: (s) => s.totals.xactCount },
  { name: 'stats_total_xact_time', type: 'counter', labels: 'address', help: 'Time spent in transactions, in milliseconds', value: (s) => msOf(s.totals.xactTimeUs) },
  { name: 'stats_total_wait_time', type: 'counter', labels: 'address', help: 'Time clients spent waiting for a server connection, in microseconds', value: (s) => s.totals.waitTimeUs },
  { name: 'stats_avg_query_count', type: 'gauge', labels: 'address', help: 'Queries per second over the last stats period (15 s)', value: (s) => s.averages.queryCount },
  { name: 'stats_avg_query_time', type: 'gauge', labels: 'address', help: 'Mean query duration over the last stats period, in milliseconds', value: (s) => msOf(s.averages.queryTimeUs) },
  { name: 'stats_avg_recv', type: 'gauge', labels: 'address', help: 'Bytes per second received from the server over the last stats period', value: (s) => s.averages.sent },
  { name: 'stats_avg_sent', type: 'gauge', labels: 'address', help: 'Bytes per second sent to the server over the last stats period', value: (s) => s.averages.recv },
  { name: 'stats_avg_errors', type: 'gauge', labels: 'address', help: 'Errors per second over the last stats period', value: (s) => s.averages.errors },
  { name: 'stats_avg_xact_count', type: 'gauge', labels: 'address', help: 'Transactions per second over the last stats period', value: (s) => s.averages.xactCount },
  { name: 'stats_avg_xact_time', type: 'gauge', labels: 'address', help: 'Mean transaction duration over the last stats period, in milliseconds', value: (s) => msOf(s.averages.xactTimeUs) },
  { name: 'stats_avg_wait_time', type: 'gauge', labels: 'address', help: 'Microseconds clients waited for a server connection per second, over the last stats period', value: (s) => s.averages.waitTimeUs },

  // PgCat splits the longest current wait as PgBouncer does: whole seconds, and the microseconds left over.
  { name: 'pools_maxwait_us', type: 'gauge', labels: 'pool', help: 'Longest current wait for a server connection: microseconds part', value: (s) => (s.counters.maxWaitMs * 1000) % 1_000_000 },
  { name: 'pools_maxwait', type: 'gauge', labels: 'pool', help: 'Longest current wait for a server connection: whole seconds', value: (s) => Math.floor(s.counters.maxWaitMs / 1000) },
  { name: 'pools_cl_waiting', type: 'gauge', labels: 'pool', help: 'Clients waiting for a server connection', value: (s) => s.clients.waiting },
  { name: 'pools_cl_active', type: 'gauge', labels: 'pool', help: 'Clients holding a server connection', value: (s) => s.clients.active },
  { name: 'pools_cl_idle', type: 'gauge', labels: 'pool', help: 'Clients connected and idle', value: (s) => s.clients.idle },
  { name: 'pools_sv_idle', type: 'gauge', labels: 'pool', help: 'Server connections idle in the pool', value: (s) => s.counters.idle },
  { name: 'pools_sv_active', type: 'gauge', labels: 'pool', help: 'Server connections checked out (or being reset)', value: (s) => s.counters.active },
  { name: 'pools_sv_login', type: 'gauge', labels: 'pool', help: 'Server connections being opened', value: (s) => s.counters.connecting },
  // Checkout health checks (healthcheck_delay) are not counted apart from active connections.
  { name: 'pools_sv_tested', type: 'gauge', labels: 'pool', help: 'Server connections being health-checked (always 0 in PgLynx)', value: () => 0 },

  { name: 'servers_bytes_received', type: 'counter', labels: 'address', help: 'Bytes received from the server', value: (s) => s.totals.sent },
  { name: 'servers_bytes_sent', type: 'counter', labels: 'address', help: 'Bytes sent to the server', value: (s) => s.totals.received },
  { name: 'servers_transaction_count', type: 'counter', labels: 'address', help: 'Transactions run on the server', value: (s) => s.totals.xactCount },
  { name: 'servers_query_count', type: 'counter', labels: 'address', help: 'Queries run on the server', value: (s) => s.totals.queryCount },
  { name: 'servers_error_count', type: 'counter', labels: 'address', help: 'Errors (server connections lost or refused, checkout timeouts)', value: (s) => s.totals.errors },
  { name: 'servers_idle_count', type: 'gauge', labels: 'address', help: 'Server connections idle', value: (s) => s.counters.idle },
  { name: 'servers_active_count', type: 'gauge', labels: 'address', help: 'Server connections active', value: (s) => s.counters.active },
  { name: 'servers_tested_count', type: 'gauge', labels: 'address', help: 'Server connections being health-checked (always 0 in PgLynx)', value: () => 0 },
  { name: 'servers_login_count', type: 'gauge', labels: 'address', help: 'Server connections logging in', value: (s) => s.counters.connecting },
  { name: 'servers_is_banned', type: 'gauge', labels: 'address', help: '1 when the server is banned (BAN, failed health check or probe), else 0', value: (s) => (s.banned ? 1 : 0) },
  { name: 'servers_is_paused', type: 'gauge', labels: 'address', help: '1 when the pool is paused (PAUSE), else 0', value: (s) => (s.paused ? 1 : 0) },

  { name: 'stats_total_pipelined', prefix: 'pglynx', type: 'counter', labels: 'address', help: 'Units queued behind another client\'s on a busy server connection (pipeline_depth)', value: (s) => s.totals.pipelined },

  { name: 'databases_pool_size', type: 'gauge', labels: 'address', help: 'Most server connections the pool may open', value: (s) => s.size },
  { name: 'databases_current_connections', type: 'gauge', labels: 'address', help: 'Server connections open now', value: (s) => s.counters.total },
];

type Bound = { spec: MetricSpec; counter: Counter<string> } | { spec: MetricSpec; gauge: Gauge<string> };

function register(registry: Registry): Bound[] {
  return SPECS.map((spec) => {
    const config = {
      name: `${spec.prefix ?? 'pgcat'}_${spec.name}`,
      help: spec.help,
      labelNames: spec.labels === 'address' ? [...ADDRESS_LABELS] : [...POOL_LABELS],
      registers: [registry],
    };
    return spec.type === 'counter' ? { spec, counter: new Counter(config) } : { spec, gauge: new Gauge(config) };
  });
}

function samples(ctx: AdminContext): { addresses: AddressSample[]; pools: PoolSample[] } {
  // Clients are counted against the cluster they use: it follows them
  // across reloads, and identity strings would not.
  const clients = new Map<Cluster, PoolSample['clients']>();
  for (const c of ctx.clients()) {
    let n = clients.get(c.cluster);
    if (!n) clients.set(c.cluster, (n = { active: 0, waiting: 0, idle: 0 }));
    n[c.state] += 1;
  }
  const config = ctx.config();
  const addresses: AddressSample[] = [];
  const pools: PoolSample[] = [];
  for (const e of ctx.pools()) {
    const sum = { idle: 0, active: 0, connecting: 0, maxWaitMs: 0 };
    // As PgCat's: host as configured (not where an embedded backend
    // resolved to), the shard key, the role and index in the shard's list.
    for (const a of memberAddresses(config, e)) {
      const { pool } = a.member;
      const counters = pool.counters;
      addresses.push({
        labels: { host: a.host, shard: a.shard, role: a.member.role, pool: e.poolName, index: String(a.member.index), database: a.database, username: e.user.username },
        totals: pool.stats.totals,
        averages: pool.stats.averages,
        counters,
        size: pool.settings.size,
        paused: pool.isPaused,
        banned: a.member.banned,
      });
      sum.idle += counters.idle;
      sum.active += counters.active;
      sum.connecting += counters.connecting;
      sum.maxWaitMs = Math.max(sum.maxWaitMs, counters.maxWaitMs);
    }
    pools.push({ labels: { pool: e.poolName, user: e.user.username }, counters: sum, clients: clients.get(e.cluster) ?? { active: 0, waiting: 0, idle: 0 } });
  }
  return { addresses, pools };
}

/** Reset every metric and set it from the pools: removed pools disappear, totals are exact. */
function refresh(bound: Bound[], ctx: AdminContext): void {
  const { addresses, pools } = samples(ctx);
  for (const b of bound) {
    const spec = b.spec;
    const values: [Record<string, string>, number][] =
      spec.labels === 'address' ? addresses.map((s) => [s.labels, spec.value(s)]) : pools.map((s) => [s.labels, spec.value(s)]);
    if ('counter' in b) {
      b.counter.reset();
      for (const [labels, v] of values) b.counter.inc(labels, v);
    } else {
      b.gauge.reset();
      for (const [labels, v] of values) b.gauge.set(labels, v);
    }
  }
}

// Process metrics are process-wide, and their collectors (event loop delay
// monitor, GC observer) cannot be taken down again: set them up once and
// share them across exporter restarts (reloads that toggle the exporter).
let processRegistry: Registry | null = null;

function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export interface PrometheusExporter {
  /** The port it listens on (the real one when 0 was asked for). */
  readonly port: number;
  close(): Promise<void>;
}

export async function startPrometheusExporter(
  ctx: AdminContext,
  opts: { host: string; port: number; log: Logger },
): Promise<PrometheusExporter> {
  const registry = new Registry();
  const bound = register(registry);
  const refreshEngine = registerEngineMetrics(registry, () => ctx.engine());
  registerSqlMetrics(registry);
  const refreshFleet = registerFleetMetrics(registry, () => ctx.fleet?.() ?? null);
  const nodeRegistry = processMetrics();

  const scrape = async (): Promise<string> => {
    refresh(bound, ctx);
    refreshEngine();
    refreshFleet();
    return (await registry.metrics()) + (await nodeRegistry.metrics());
  };

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    scrape().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: Error) => {
        opts.log.error({ err: err.message }, 'Prometheus scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('scrape failed\n');
      },
    );
  });
  // A scraper may be slow or go away; neither may hold the pooler up.
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => opts.log.error({ err: err.message }, 'Prometheus exporter error'));
  const addr = server.address();
  const port = addr && typeof addr === 'object' ? addr.port : opts.port;
  opts.log.info({ host: opts.host, port }, `Prometheus metrics on http://${opts.host}:${port}/metrics`);

  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Prometheus keeps its connection alive between scrapes; do not wait for it.
        server.closeAllConnections();
      }),
  };
}
