// SHOW STATS: each server's traffic since start (total_*) and over the last
// 15-second window (avg_*), from the counters the client sessions keep.
// Times in PgCat's units: query and transaction times in milliseconds,
// wait times in microseconds (PgCat's avg_wait_time: µs waited per second).

import type { AdminContext, AdminReply } from './context.js';
import { msOf } from '../stats/traffic.js';
import { int, table, text } from './format.js';
import { memberAddresses } from '../pool/member-addresses.js';

const COLUMNS = [
  // As PgCat: one row per server address (every shard, primary and
  // replicas), named first; each server's connection pool keeps its own.
  text('instance'), text('database'), text('user'),
  int('total_xact_count'), int('total_query_count'), int('total_received'), int('total_sent'),
  int('total_xact_time'), int('total_query_time'), int('total_wait_time'), int('total_errors'),
  int('avg_xact_count'), int('avg_query_count'), int('avg_recv'), int('avg_sent'), int('avg_errors'),
  int('avg_xact_time'), int('avg_query_time'), int('avg_wait_time'),
];

export function showStats(ctx: AdminContext): AdminReply {
  const config = ctx.config();
  const rows = ctx.pools().flatMap((e) =>
    memberAddresses(config, e).map((a) => {
      const t = a.member.pool.stats.totals;
      const avg = a.member.pool.stats.averages;
      return [
        a.name, e.poolName, e.user.username,
        // PgCat counts bytes from the server's side: received = from Postgres
        // (what clients were sent), sent = to Postgres (what clients sent).
        t.xactCount, t.queryCount, t.sent, t.received,
        msOf(t.xactTimeUs), msOf(t.queryTimeUs), t.waitTimeUs, t.errors,
        avg.xactCount, avg.queryCount, avg.sent, avg.recv, avg.errors,
        msOf(avg.xactTimeUs), msOf(avg.queryTimeUs), avg.waitTimeUs,
      ];
    }),
  );
  return table(COLUMNS, rows);
}
