// Tests for loading pgcat.toml: the shipped file, PgCat's own example shape,
// PgCat's defaults, one-line errors naming file + key + reason, and the
// report of keys PgLynx ignores.

import t, { type Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GENERAL_DEFAULTS, POOL_DEFAULTS, USER_DEFAULTS } from '../config/defaults.js';
import { IMPLEMENTED, logUnsupported, unknownKeys } from '../config/keys.js';
import { loadConfig, parseConfig } from '../config/load.js';
import { ConfigError, type Config } from '../config/types.js';

const FILE = '/tmp/pglynx-config-test/pgcat.toml';
const SHIPPED = fileURLToPath(new URL('../pgcat.toml', import.meta.url));

const GENERAL = `[general]
admin_username = "admin"
admin_password = "secret"
`;
const USER = `[pools.app.users.0]
username = "app"
password = "app"
pool_size = 5
`;
const SHARD = `[pools.app.shards.0]
database = "app"
servers = [["127.0.0.1", 5432, "primary"]]
`;

/** A minimal valid file; each part can be replaced to break one thing. */
function minimal(parts: { general?: string; pool?: string; user?: string; shard?: string; tail?: string } = {}): string {
  return [
    parts.general ?? GENERAL,
    `[pools.app]\n${parts.pool ?? ''}`,
    parts.user ?? USER,
    parts.shard ?? SHARD,
    parts.tail ?? '',
  ].join('\n');
}

/** Asserts that `text` fails with a one-line ConfigError naming the file, `key` and `reason`. */
function rejects(tt: Test, text: string, key: string | null, reason: string | RegExp): void {
  let err: unknown;
  try {
    parseConfig(text, FILE);
  } catch (e) {
    err = e;
  }
  tt.ok(err instanceof ConfigError, 'throws ConfigError');
  if (!(err instanceof ConfigError)) return;
  tt.notMatch(err.message, /\n/, 'one line');
  tt.ok(err.message.startsWith(`${FILE}: `), `names the file: ${err.message}`);
  tt.equal(err.key, key, 'names the key');
  if (key !== null) tt.ok(err.message.includes(`: ${key}: `), 'message contains the key');
  tt.match(err.reason, reason, 'gives the reason');
  tt.ok(err.message.endsWith(err.reason), 'message ends with the reason');
}

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

t.test('auth_query: inherited from [general]; replaces user passwords', async (tt) => {
  const general = GENERAL + 'auth_query = "SELECT usename, passwd FROM pg_shadow WHERE usename=\'$1\'"\nauth_query_user = "postgres"\nauth_query_password = "pw"\n';
  const c = parseConfig(minimal({ general, user: '[pools.app.users.0]\nusername = "app"\npool_size = 5\n' }), FILE);
  tt.equal(c.pools['app']!.auth_query_user, 'postgres');
  tt.equal(c.pools['app']!.users['0']!.password, null);
  rejects(tt, minimal({ general: GENERAL + 'auth_query = "SELECT 1"\n' }), 'general.auth_query_user', /required when auth_query is set/);
});

t.test('unreadable files', async (tt) => {
  const missing = '/nonexistent/pglynx/pgcat.toml';
  await tt.rejects(loadConfig(missing), { name: 'ConfigError', message: `${missing}: cannot read config file: file not found` });
  const dir = mkdtempSync(join(tmpdir(), 'pglynx-config-'));
  tt.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await tt.rejects(loadConfig(dir), { name: 'ConfigError', message: `${dir}: cannot read config file: is a directory` });
});

t.test('TOML syntax errors give the line and column', async (tt) => {
  const broken = minimal({ tail: '\n[broken\nx = 1\n' });
  const line = broken.split('\n').indexOf('[broken') + 1;
  rejects(tt, broken, null, new RegExp(`^TOML syntax error at line ${line}, column 8: unexpected end of line$`));
  rejects(tt, `${GENERAL}port = 1\nport = 2\n`, null, /^TOML syntax error at line 5, column \d+: .*port/);
  rejects(tt, `${GENERAL}host = "unterminated\n`, null, /^TOML syntax error at line 4, column \d+:/);
  rejects(tt, 'x =', null, /^TOML syntax error at line 1, column 4: unexpected end of file$/);
});

t.test('wrong types name the key and both types', async (tt) => {
  rejects(tt, minimal({ general: GENERAL + 'port = "6432"\n' }), 'general.port', 'expected integer, got string');
  rejects(tt, minimal({ general: GENERAL + 'connect_timeout = 1.5\n' }), 'general.connect_timeout', 'expected integer, got float');
  rejects(tt, minimal({ general: GENERAL + 'log_client_connections = "yes"\n' }), 'general.log_client_connections', 'expected boolean, got string');
  rejects(tt, minimal({ general: GENERAL + 'healthcheck_delay = true\n' }), 'general.healthcheck_delay', 'expected integer, got boolean');
  rejects(tt, minimal({ general: GENERAL + 'tls_certificate = 1\n' }), 'general.tls_certificate', 'expected string, got integer');
  rejects(tt, minimal({ general: GENERAL + 'port = -1\n' }), 'general.port', 'must be between 0 and 65535, got -1');
  rejects(tt, minimal({ general: GENERAL + 'port = 70000\n' }), 'general.port', 'must be between 0 and 65535, got 70000');
  rejects(tt, minimal({ pool: 'idle_timeout = "1s"\n' }), 'pools.app.idle_timeout', 'expected integer, got string');
  rejects(tt, minimal({ pool: 'query_parser_enabled = 1\n' }), 'pools.app.query_parser_enabled', 'expected boolean, got integer');
  rejects(tt, minimal({ user: USER.replace('pool_size = 5', 'pool_size = "5"') }), 'pools.app.users.0.pool_size', 'expected integer, got string');
  rejects(tt, minimal({ shard: SHARD + 'mirrors = "x"\n' }), 'pools.app.shards.0.mirrors', /expected array/);
  rejects(tt, minimal({ shard: SHARD.replace('database = "app"', 'database = 5') }), 'pools.app.shards.0.database', 'expected string, got integer');
  rejects(tt, 'general = 5\n', 'general', 'expected table, got integer');
  rejects(tt, minimal({ tail: '[plugins.query_logger]\nenabled = "no"\n' }), 'plugins.query_logger.enabled', 'expected boolean, got string');
});

t.test('unknown enum values', async (tt) => {
  rejects(tt, minimal({ pool: 'pool_mode = "statement"\n' }), 'pools.app.pool_mode', 'unknown pool_mode "statement"; expected one of: transaction, session');
  rejects(tt, minimal({ pool: 'load_balancing_mode = "fastest"\n' }), 'pools.app.load_balancing_mode', /^unknown load_balancing_mode "fastest"; expected one of: random, loc, round_robin$/);
  rejects(tt, minimal({ pool: 'default_role = "mirror"\n' }), 'pools.app.default_role', /^unknown default_role "mirror"/);
  rejects(tt, minimal({ pool: 'sharding_function = "md5"\n' }), 'pools.app.sharding_function', /^unknown sharding_function "md5"/);
  rejects(tt, minimal({ pool: 'default_shard = "first"\n' }), 'pools.app.default_shard', /^unknown default_shard "first"/);
  rejects(tt, minimal({ user: USER + 'pool_mode = "statement"\n' }), 'pools.app.users.0.pool_mode', /^unknown pool_mode/);
  rejects(tt, minimal({ general: GENERAL + 'admin_auth_type = "plain"\n' }), 'general.admin_auth_type', /^unknown admin_auth_type "plain"/);
  rejects(
    tt,
    minimal({ shard: SHARD.replace('"primary"', '"leader"') }),
    'pools.app.shards.0.servers.0',
    'unknown role "leader"; expected one of: primary, replica, auto',
  );
  rejects(tt, minimal({ shard: SHARD.replace('"primary"', '"mirror"') }), 'pools.app.shards.0.servers.0', /role "mirror" is not supported in servers/);
});

t.test('pools need users and shards with servers', async (tt) => {
  const noShards = [GENERAL, '[pools.app]', USER].join('\n');
  rejects(tt, noShards, 'pools.app.shards', 'required section is missing');
  rejects(tt, minimal({ shard: '[pools.app.shards]\n' }), 'pools.app.shards', 'pool has no shards');
  rejects(tt, minimal({ shard: SHARD.replace(/servers = .*/, 'servers = []') }), 'pools.app.shards.0.servers', 'shard has no servers');
  rejects(tt, minimal({ shard: SHARD.replace(/servers = .*\n/, '') }), 'pools.app.shards.0.servers', 'required key is missing');
  rejects(tt, minimal({ shard: SHARD.replace(/database = .*\n/, '') }), 'pools.app.shards.0.database', 'required key is missing');
  const noUsers = [GENERAL, '[pools.app]', SHARD].join('\n');
  rejects(tt, noUsers, 'pools.app.users', 'required section is missing');
  rejects(tt, minimal({ user: '[pools.app.users]\n' }), 'pools.app.users', 'pool has no users');
  rejects(tt, 'pools = 1\n' + GENERAL, 'pools', 'expected table, got integer');
  rejects(tt, GENERAL, 'pools', 'required section is missing');
  rejects(tt, minimal({ shard: SHARD + SHARD.replace('shards.0', 'shards.2') }), 'pools.app.shards', /shards must be numbered 0 to 1 without gaps; 1 is missing/);
  rejects(tt, minimal({ shard: SHARD.replace('shards.0', 'shards.first') }), 'pools.app.shards.first', /numbered 0, 1, 2/);
});

t.test('users need a username, a pool_size and a password', async (tt) => {
  rejects(tt, minimal({ user: USER.replace(/username = .*\n/, '') }), 'pools.app.users.0.username', 'required key is missing');
  rejects(tt, minimal({ user: USER.replace('"app"', '""') }), 'pools.app.users.0.username', 'must not be empty');
  rejects(tt, minimal({ user: USER.replace(/pool_size = .*\n/, '') }), 'pools.app.users.0.pool_size', 'required key is missing');
  rejects(tt, minimal({ user: USER.replace('pool_size = 5', 'pool_size = 0') }), 'pools.app.users.0.pool_size', 'must be at least 1, got 0');
  rejects(tt, minimal({ user: USER + 'min_pool_size = 6\n' }), 'pools.app.users.0.min_pool_size', '6 is larger than pool_size 5');
  rejects(tt, minimal({ user: USER.replace(/password = .*\n/, '') }), 'pools.app.users.0.password', /required unless the pool sets auth_query/);
  rejects(tt, minimal({ user: USER + USER.replace('users.0', 'users.1') }), 'pools.app.users.1.username', /duplicate username "app"/);
});

t.test('servers entries must be [host, port, role]', async (tt) => {
  const servers = (v: string): string => minimal({ shard: SHARD.replace(/servers = .*/, `servers = ${v}`) });
  const key = 'pools.app.shards.0.servers.0';
  rejects(tt, servers('[["127.0.0.1", 5432]]'), key, 'expected [host, port, role], got an array of 2 item(s)');
  rejects(tt, servers('["127.0.0.1:5432"]'), key, 'expected [host, port, role], got string');
  rejects(tt, servers('[[5432, "127.0.0.1", "primary"]]'), key, /host must be a non-empty string, got integer/);
  rejects(tt, servers('[["127.0.0.1", "5432", "primary"]]'), key, /port must be an integer, got string/);
  rejects(tt, servers('[["127.0.0.1", 5432, 1]]'), key, /role must be a string, got integer/);
  rejects(tt, servers('[["127.0.0.1", 0, "primary"]]'), key, 'port must be between 1 and 65535, got 0');
  rejects(tt, servers('[["pglite:", 0, "primary"]]'), key, /pglite: needs a data directory/);
  rejects(tt, servers('"127.0.0.1"'), 'pools.app.shards.0.servers', /expected array of \[host, port, role\], got string/);
  rejects(tt, servers('[["a", 1, "primary"], ["b", 1, "primary"]]'), 'pools.app.shards.0.servers', 'more than one primary');
  rejects(tt, servers('[["a", 1, "replica"], ["a", 1, "replica"]]'), 'pools.app.shards.0.servers.1', 'duplicate server a:1');
  const mirrors = minimal({ shard: SHARD + 'mirrors = [["1.2.3.4", 5432, 1]]\n' });
  rejects(tt, mirrors, 'pools.app.shards.0.mirrors.0', 'server_index 1 does not exist (the shard has 1 server(s))');
  const badMirror = minimal({ shard: SHARD + 'mirrors = [["1.2.3.4", 5432, "0"]]\n' });
  rejects(tt, badMirror, 'pools.app.shards.0.mirrors.0', /server_index must be an integer, got string/);
});

t.test('admin credentials are required, as in PgCat', async (tt) => {
  rejects(tt, minimal({ general: '[general]\nadmin_password = "x"\n' }), 'general.admin_username', 'required key is missing');
  rejects(tt, minimal({ general: '[general]\nadmin_username = "x"\n' }), 'general.admin_password', 'required key is missing');
  rejects(tt, minimal({ general: '' }), 'general', 'required section is missing');
});

t.test("PgCat's other validations", async (tt) => {
  rejects(tt, minimal({ pool: 'query_parser_read_write_splitting = true\n' }), 'pools.app.query_parser_read_write_splitting', 'requires query_parser_enabled = true');
  rejects(tt, minimal({ tail: '[pools.app.plugins.query_logger]\nenabled = true\n' }), 'pools.app.plugins', /require query_parser_enabled/);
  rejects(tt, minimal({ pool: 'sharding_key_regex = "(unclosed"\n' }), 'pools.app.sharding_key_regex', /^invalid regular expression/);
  rejects(tt, minimal({ pool: 'automatic_sharding_key = "id"\n' }), 'pools.app.automatic_sharding_key', /must be table.column/);
  rejects(tt, minimal({ pool: 'default_shard = "shard_1"\n' }), 'pools.app.default_shard', /shard_1 does not exist/);
  rejects(tt, minimal({ general: GENERAL + 'tls_certificate = "cert.pem"\n' }), 'general.tls_private_key', 'required when tls_certificate is set');
  rejects(tt, minimal({ general: GENERAL + 'worker_threads = 0\n' }), 'general.worker_threads', 'must be at least 1, got 0');
  const c = parseConfig(minimal({ pool: 'automatic_sharding_key = \'"data"."id"\'\ndefault_shard = "random_healthy"\n' }), FILE);
  tt.equal(c.pools['app']!.automatic_sharding_key, 'data.id', 'quotes are dropped as PgCat does');
});

t.test('keys needing quotes are quoted in messages', async (tt) => {
  const text = minimal().replaceAll('pools.app', 'pools."my.db"').replace('[pools."my.db"]\n', '[pools."my.db"]\npool_mode = 1\n');
  rejects(tt, text, 'pools."my.db".pool_mode', 'expected string, got integer');
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
