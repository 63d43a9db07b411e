// Tests for pgcat.toml errors: every failure is a one-line ConfigError
// naming the file, the dotted key and the reason (unreadable files, TOML
// syntax, wrong types, unknown enum values, missing or invalid sections and
// PgCat's other validations). Loading and defaults are in config.test.ts.

import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, parseConfig } from '../../config/load.js';
import { ConfigError } from '../../config/errors.js';
import { FILE, GENERAL, minimal, SHARD, USER } from '../harness/config-fixtures.js';


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
