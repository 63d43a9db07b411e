// Tests for loading pgcat.toml: the shipped file, PgCat's own example shape,
// PgCat's defaults, accepted spellings, and the report of keys PgLynx
// ignores. The one-line errors (file + key + reason) are tested in
// config-errors.test.ts.

import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GENERAL_DEFAULTS, POOL_DEFAULTS, USER_DEFAULTS } from '../../config/defaults.js';
import { IMPLEMENTED, logUnsupported, unknownKeys } from '../../config/keys.js';
import { loadConfig, parseConfig } from '../../config/load.js';
import type { Config } from '../../config/types.js';
import { FILE, GENERAL, minimal, SHARD, USER } from '../harness/config-fixtures.js';

const SHIPPED = fileURLToPath(new URL('../../pgcat.toml', import.meta.url));
/** Runs `fn` with `patterns` temporarily removed from IMPLEMENTED. */
function withoutImplemented<T>(patterns: string[], fn: () => T): T {
  const removed = patterns.filter((p) => IMPLEMENTED.delete(p));
  try {
    return fn();
  } finally {
    for (const p of removed) IMPLEMENTED.add(p);
  }
}

// Shaped like PgCat's own example pgcat.toml (3 shards with replicas, a
// session pool, server_username, plugins), written for this test.
const PGCAT_EXAMPLE = `
[general]
host = "0.0.0.0"
port = 6432
enable_prometheus_exporter = true
prometheus_exporter_port = 9930
connect_timeout = 5000
idle_timeout = 30000
server_lifetime = 86400000
idle_client_in_transaction_timeout = 0
healthcheck_timeout = 1000
healthcheck_delay = 30000
shutdown_timeout = 60000
ban_time = 60
log_client_connections = false
log_client_disconnections = false
autoreload = 15000
worker_threads = 5
tcp_keepalives_idle = 5
tcp_keepalives_count = 5
tcp_keepalives_interval = 5
admin_username = "admin_user"
admin_password = "admin_pass"

[plugins]

[plugins.prewarmer]
enabled = false
queries = ["SELECT pg_prewarm('pgbench_accounts')"]

[plugins.query_logger]
enabled = false

[plugins.table_access]
enabled = false
tables = ["pg_user", "pg_roles", "pg_database"]

[plugins.intercept]
enabled = true

[plugins.intercept.queries.0]
query = "select current_database() as a, current_schemas(false) as b"
schema = [["a", "text"], ["b", "text"]]
result = [["\${DATABASE}", "{public}"]]

[pools.sharded_db]
pool_mode = "transaction"
load_balancing_mode = "random"
default_role = "any"
prepared_statements_cache_size = 500
query_parser_enabled = true
query_parser_max_length = 5000
query_parser_read_write_splitting = true
primary_reads_enabled = true
sharding_function = "pg_bigint_hash"
# sharding_key_regex = '/\\* sharding_key: (\\d+) \\*/'
idle_timeout = 40000
connect_timeout = 3000

[pools.sharded_db.users.0]
username = "sharding_user"
password = "sharding_user"
pool_size = 9
statement_timeout = 0

[pools.sharded_db.users.1]
username = "other_user"
password = "other_user"
pool_size = 21
statement_timeout = 15000
connect_timeout = 1000
idle_timeout = 1000

[pools.sharded_db.shards.0]
servers = [["127.0.0.1", 5432, "primary"], ["localhost", 5432, "replica"]]
mirrors = [["1.2.3.4", 5432, 0], ["1.2.3.4", 5432, 1]]
database = "shard0"

[pools.sharded_db.shards.1]
servers = [["127.0.0.1", 5432, "primary"], ["localhost", 5432, "replica"]]
database = "shard1"

[pools.sharded_db.shards.2]
servers = [["127.0.0.1", 5432, "primary" ], ["localhost", 5432, "replica" ]]
database = "shard2"

[pools.simple_db]
pool_mode = "session"
default_role = "primary"
query_parser_enabled = true
primary_reads_enabled = true
sharding_function = "pg_bigint_hash"

[pools.simple_db.users.0]
username = "simple_user"
password = "simple_user"
pool_size = 5
min_pool_size = 3
server_lifetime = 60000
statement_timeout = 0
server_username = "real_user"
server_password = "real_password"

[pools.simple_db.shards.0]
servers = [
    [ "127.0.0.1", 5432, "primary" ],
    [ "localhost", 5432, "replica" ]
]
database = "some_db"
`;

t.test('the shipped pgcat.toml loads and runs on the embedded backend', async (tt) => {
  const c = await loadConfig(SHIPPED);
  tt.equal(c.path, SHIPPED);
  tt.equal(c.general.host, '127.0.0.1');
  tt.equal(c.general.port, 6432);
  tt.equal(c.general.admin_username, 'admin');
  tt.equal(c.general.admin_password, 'admin');
  tt.same(Object.keys(c.pools), ['postgres']);
  const pool = c.pools['postgres']!;
  tt.equal(pool.pool_mode, 'transaction');
  tt.same(Object.values(pool.users).map((u) => [u.username, u.password, u.pool_size]), [['postgres', 'postgres', 1]]);
  tt.same(pool.shards['0'], {
    database: 'postgres',
    servers: [{ host: 'pglite:./.pglynx-data', port: 0, role: 'primary' }],
    mirrors: [],
  });
  tt.same(unknownKeys(c), [], 'no typos in the shipped file');
});

t.test("PgCat's example config shape loads", async (tt) => {
  const c = parseConfig(PGCAT_EXAMPLE, FILE);
  tt.equal(c.general.autoreload, 15000);
  tt.equal(c.general.worker_threads, 5);
  const sharded = c.pools['sharded_db']!;
  tt.same(Object.keys(sharded.shards), ['0', '1', '2']);
  tt.same(sharded.shards['2']!.servers, [
    { host: '127.0.0.1', port: 5432, role: 'primary' },
    { host: 'localhost', port: 5432, role: 'replica' },
  ]);
  tt.same(sharded.shards['0']!.mirrors, [
    { host: '1.2.3.4', port: 5432, mirroring_target_index: 0 },
    { host: '1.2.3.4', port: 5432, mirroring_target_index: 1 },
  ]);
  tt.same(sharded.shards['1']!.mirrors, []);
  tt.equal(sharded.prepared_statements_cache_size, 500);
  tt.equal(sharded.query_parser_max_length, 5000);
  tt.equal(sharded.users['1']!.connect_timeout, 1000);
  tt.equal(sharded.users['0']!.connect_timeout, null, 'per-user fallback stays null');
  const simple = c.pools['simple_db']!;
  tt.equal(simple.pool_mode, 'session');
  tt.equal(simple.default_role, 'primary');
  tt.equal(simple.connect_timeout, null, 'per-pool fallback stays null');
  tt.match(simple.users['0'], { server_username: 'real_user', server_password: 'real_password', min_pool_size: 3 });
  tt.same(c.plugins?.intercept?.queries['0'], {
    query: 'select current_database() as a, current_schemas(false) as b',
    schema: [['a', 'text'], ['b', 'text']],
    result: [['${DATABASE}', '{public}']],
  });
  tt.same(c.plugins?.table_access, { enabled: false, tables: ['pg_user', 'pg_roles', 'pg_database'] });
  tt.same(c.plugins?.prewarmer?.queries, ["SELECT pg_prewarm('pgbench_accounts')"]);
  tt.same(c.plugins?.query_logger, { enabled: false });
  tt.same(unknownKeys(c), [], 'every key of the example is a PgCat key');
});

t.test('a file written to disk loads through loadConfig', async (tt) => {
  const dir = mkdtempSync(join(tmpdir(), 'pglynx-config-'));
  tt.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'pgcat.toml'), PGCAT_EXAMPLE);
  const c = await loadConfig(join(dir, 'pgcat.toml'));
  tt.same(Object.keys(c.pools), ['sharded_db', 'simple_db']);
});

t.test("PgCat's defaults are applied", async (tt) => {
  const c = parseConfig(minimal(), FILE);
  tt.same(c.general, { ...GENERAL_DEFAULTS, admin_username: 'admin', admin_password: 'secret' });
  tt.equal(c.general.host, '0.0.0.0');
  tt.equal(c.general.port, 5432);
  tt.equal(c.general.connect_timeout, 1000);
  tt.equal(c.general.idle_timeout, 600000);
  tt.equal(c.general.server_lifetime, 3600000);
  tt.equal(c.general.healthcheck_timeout, 1000);
  tt.equal(c.general.healthcheck_delay, 30000);
  tt.equal(c.general.ban_time, 60);
  tt.equal(c.general.shutdown_timeout, 60000);
  tt.same(
    [c.general.tcp_keepalives_idle, c.general.tcp_keepalives_count, c.general.tcp_keepalives_interval],
    [5, 5, 5],
  );
  tt.equal(c.general.worker_threads, 4);
  tt.equal(c.general.admin_auth_type, 'md5');
  const { users, shards, ...pool } = c.pools['app']!;
  tt.same(pool, POOL_DEFAULTS);
  tt.equal(pool.regex_search_limit, 1000);
  tt.equal(pool.default_shard, 'shard_0');
  tt.equal(pool.cleanup_server_connections, true);
  tt.same(users['0'], { ...USER_DEFAULTS, username: 'app', password: 'app', pool_size: 5 });
  tt.same(shards['0']!.mirrors, []);
  tt.equal(c.plugins, null);
  tt.same(c.extra, {});
});

t.test('accepted spellings and forms', async (tt) => {
  const c = parseConfig(
    minimal({
      pool: 'pool_mode = "Session"\nload_balancing_mode = "least_outstanding_connections"\nsharding_function = "Sha1"\n',
      user: USER + 'auth_type = "trust"\npool_mode = "Transaction"\n',
      shard: `[pools.app.shards.0]
database = "app"
servers = [{ host = "10.0.0.1", port = 5432, role = "Primary" }, ["10.0.0.2", 5433, "Replica"], ["10.0.0.3", 5432, "auto"]]
`,
    }),
    FILE,
  );
  const pool = c.pools['app']!;
  tt.equal(pool.pool_mode, 'session');
  tt.equal(pool.load_balancing_mode, 'loc');
  tt.equal(pool.sharding_function, 'sha1');
  tt.equal(pool.users['0']!.auth_type, 'trust');
  tt.equal(pool.users['0']!.pool_mode, 'transaction');
  tt.same(pool.shards['0']!.servers.map((s) => s.role), ['primary', 'replica', 'auto']);
});

t.test('unsupported and unknown keys are listed', async (tt) => {
  const text = minimal({
    general: GENERAL + 'healthcheck_delay = 10\nprot = 6432\n',
    pool: 'pool_mode = "session"\nquery_parser_enabled = true\n',
    user: USER + 'passwrd = "typo"\n',
    shard: SHARD + 'mirrors = [["1.2.3.4", 5432, 0]]\n',
    tail: '[pools.app.plugins.intercept]\nenabled = true\nqueries = {}\n[plugins.nonexistent]\nenabled = true\n[foo]\nbar = 1\n[models.lexical]\nbuiltin = "hash-384"\ninstances = 2\n',
  });
  const patterns = ['general.healthcheck_delay', 'pools.*.query_parser_enabled', 'pools.*.shards.*.mirrors', 'plugins', 'pools.*.plugins', 'models'];
  const c = withoutImplemented(patterns, () => parseConfig(text, FILE));
  tt.same(c.unsupported, [
    'general.healthcheck_delay',
    'unknown:general.prot',
    'pools.app.query_parser_enabled',
    'unknown:pools.app.users.0.passwrd',
    'pools.app.shards.0.mirrors',
    'pools.app.plugins',
    'plugins',
    'unknown:plugins.nonexistent',
    'unknown:foo',
    'models',
  ], 'in file order');
  tt.same(unknownKeys(c), ['general.prot', 'pools.app.users.0.passwrd', 'plugins.nonexistent', 'foo']);
  tt.same(c.extra, { foo: { bar: 1 }, models: { lexical: { builtin: 'hash-384', instances: 2 } } }, 'extra keeps other sections, integers as numbers');
  tt.notOk(c.unsupported.includes('pools.app.pool_mode'), 'implemented keys are not listed');

  const had = IMPLEMENTED.has('general.healthcheck_delay');
  IMPLEMENTED.add('general.healthcheck_delay');
  tt.teardown(() => void (had || IMPLEMENTED.delete('general.healthcheck_delay')));
  tt.notOk(parseConfig(text, FILE).unsupported.includes('general.healthcheck_delay'), 'IMPLEMENTED is honoured');
});

t.test('logUnsupported logs each key once across reloads', async (tt) => {
  const lines: Array<[object, string]> = [];
  const log = { warn: (obj: object, msg: string) => void lines.push([obj, msg]) };
  const config: Config = parseConfig(minimal({ general: GENERAL + 'definitely_not_a_key_1 = 1\n' }), FILE);
  const typos = config.unsupported.filter((k) => k.includes('definitely_not_a_key_1'));
  tt.same(typos, ['unknown:general.definitely_not_a_key_1']);
  logUnsupported(config, log);
  const first = lines.length;
  tt.ok(first >= 1);
  tt.same(lines.find(([, m]) => m.includes('definitely_not_a_key_1')), [
    { file: FILE, key: 'general.definitely_not_a_key_1' },
    'general.definitely_not_a_key_1: not a PgCat config key (typo?); ignored',
  ]);
  logUnsupported(config, log);
  tt.equal(lines.length, first, 'a reload with the same keys logs nothing');
  const missing = withoutImplemented(['general.port'], () => parseConfig(minimal({ general: GENERAL + 'port = 1\n' }), FILE));
  logUnsupported(missing, log);
  tt.same(lines.at(-1), [{ file: FILE, key: 'general.port' }, 'general.port: not implemented by PgLynx yet; ignored']);
});
