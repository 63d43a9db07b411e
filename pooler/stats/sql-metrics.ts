// Prometheus metrics of the pooler's SQL parser (router/parse.ts): how many
// texts it parsed and scanned. With the statement cache warm, the parse
// count stays flat however often the same texts run, whatever features
// read them (one parse per statement text). PgLynx's own names: PgCat has
// no such metrics, and SHOW STATS keeps PgCat's columns.

import { Counter, Gauge, type Registry } from 'prom-client';
import { cachedStatements, parseCount, scanCount } from '../router/parse.js';

export function registerSqlMetrics(registry: Registry): void {
  new Counter({
    name: 'pglynx_sql_parses_total',
    help: 'SQL texts parsed with libpg-query (once per distinct text while it is cached)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(parseCount());
    },
  });
  new Counter({
    name: 'pglynx_sql_scans_total',
    help: 'SQL texts tokenised with the libpg-query scanner (once per distinct text that needs tokens)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(scanCount());
    },
  });
  new Gauge({
    name: 'pglynx_sql_statements_cached',
    help: 'Statement texts held in the parse cache',
    registers: [registry],
    collect() {
      this.set(cachedStatements());
    },
  });
}
