// SHOW POOLS and SHOW LISTS: how many clients and server connections are in
// each state, per (database, user) pool and overall.

import { poolKey } from '../pool/registry.js';
import type { AdminContext, AdminReply } from './context.js';
import { int, serverState, splitWait, table, text } from './format.js';

interface PoolCounts {
  clIdle: number;
  clActive: number;
  clWaiting: number;
  svActive: number;
  svIdle: number;
  svTested: number;
  svLogin: number;
  maxWaitMs: number;
  /** Units queued behind another client's on a busy server (pipelining), since start. */
  pipelined: number;
}

/** Client and server states per pool key, counted the same way for every SHOW. */
function countStates(ctx: AdminContext): Map<string, PoolCounts> {
  const counts = new Map<string, PoolCounts>();
  for (const e of ctx.pools()) {
    const c: PoolCounts = { clIdle: 0, clActive: 0, clWaiting: 0, svActive: 0, svIdle: 0, svTested: 0, svLogin: 0, maxWaitMs: 0, pipelined: 0 };
    // As PgCat: a (database, user) row counts the connections to every
    // server of the pool (shards, primary and replicas).
    for (const { pool } of e.cluster.members) {
      for (const conn of pool.connections) {
        const state = serverState(pool, conn);
        if (state === 'idle') c.svIdle += 1;
        else if (state === 'active') c.svActive += 1;
        else c.svTested += 1;
      }
      const pc = pool.counters;
      c.svLogin += pc.connecting;
      c.pipelined += pool.stats.totals.pipelined;
      // The pools' own queues count too: they also hold logins still learning server parameters.
      c.maxWaitMs = Math.max(c.maxWaitMs, pc.maxWaitMs);
    }
    counts.set(poolKey(e.poolName, e.user.username), c);
  }
  // As PgCat: clients are counted under the (database, user) they logged in
  // with; a client of a pool removed by a reload is not counted anywhere.
  for (const s of ctx.clients()) {
    const c = counts.get(poolKey(s.identity.database, s.identity.user));
    if (!c) continue;
    const state = s.state;
    if (state === 'active') c.clActive += 1;
    else if (state === 'waiting') {
      c.clWaiting += 1;
      c.maxWaitMs = Math.max(c.maxWaitMs, s.waitingMs);
    } else c.clIdle += 1;
  }
  return counts;
}

const POOLS_COLUMNS = [
  text('database'), text('user'), text('pool_mode'),
  int('cl_idle'), int('cl_active'), int('cl_waiting'), int('cl_cancel_req'),
  int('sv_active'), int('sv_idle'), int('sv_used'), int('sv_tested'), int('sv_login'),
  int('maxwait'), int('maxwait_us'),
  // PgLynx's, after PgCat's: units queued behind another client's on a busy server (pipeline_depth).
  int('pipelined'),
];

export function showPools(ctx: AdminContext): AdminReply {
  const counts = countStates(ctx);
  const rows = ctx.pools().map((e) => {
    const c = counts.get(poolKey(e.poolName, e.user.username))!;
    const [maxwait, maxwaitUs] = splitWait(c.maxWaitMs);
    // cl_cancel_req: cancels are forwarded at once, never queued. sv_used:
    // there is no server_check_delay, so no connection awaits a check.
    return [
      e.poolName, e.user.username, e.pool.settings.mode,
      c.clIdle, c.clActive, c.clWaiting, 0,
      c.svActive, c.svIdle, 0, c.svTested, c.svLogin,
      maxwait, maxwaitUs,
      c.pipelined,
    ];
  });
  return table(POOLS_COLUMNS, rows);
}

export function showLists(ctx: AdminContext): AdminReply {
  const entries = ctx.pools();
  let freeClients = 0;
  let usedClients = 0;
  for (const s of ctx.clients()) {
    if (s.state === 'idle') freeClients += 1;
    else usedClients += 1;
  }
  let freeServers = 0;
  let usedServers = 0;
  for (const c of countStates(ctx).values()) {
    freeServers += c.svIdle;
    usedServers += c.svActive + c.svTested;
  }
  // PgBouncer's free_* count recycled memory slots; as PgCat, PgLynx (with
  // nothing to recycle) reports idle clients / servers there instead.
  // Logins and DNS lookups are not tracked: always 0.
  const rows: [string, number][] = [
    ['databases', new Set(entries.map((e) => e.poolName)).size],
    ['users', new Set(entries.map((e) => e.user.username)).size],
    ['pools', entries.length],
    ['free_clients', freeClients],
    ['used_clients', usedClients],
    ['login_clients', 0],
    ['free_servers', freeServers],
    ['used_servers', usedServers],
    ['dns_names', 0],
    ['dns_zones', 0],
    ['dns_queries', 0],
    ['dns_pending', 0],
  ];
  return table([text('list'), int('items')], rows);
}
