// PoolRegistry without Postgres: entries are frozen and rebuilt by apply();
// what must outlive a reload (a member's connection pool, the cluster, the
// SCRAM secret, an auth_query credential) is carried over, and the pools no
// entry uses any more are handed back to be closed. No server connection is
// opened: Pool objects connect only when asked for a connection.

import t from 'tap';
import '../harness/pg-protocol-hook.js';
import { parseConfig } from '../../config/load.js';
import type { Config } from '../../config/types.js';
import { createLogger } from '../../pooler/logger.js';

// Imported after the hook: the registry reaches pg-protocol through the pool's server connections.
const { PoolRegistry } = await import('../../pooler/pool/registry.js');
type PoolRegistry = InstanceType<typeof PoolRegistry>;

const FILE = '/tmp/pglynx-registry-test/pgcat.toml';

function config(parts: { name?: string; port?: number; password?: string; pool?: string; extraUser?: boolean; replica?: boolean } = {}): Config {
  const port = parts.port ?? 5432;
  const name = parts.name ?? 'app';
  return parseConfig(
    `[general]
admin_username = "admin"
admin_password = "secret"
idle_client_in_transaction_timeout = 1500

[pools.${name}]
${parts.pool ?? ''}

[pools.${name}.users.0]
username = "app"
password = "${parts.password ?? 'app'}"
pool_size = 5
statement_timeout = 700

${parts.extraUser ? `[pools.${name}.users.1]\nusername = "ghost"\npool_size = 1\n` : ''}

[pools.${name}.shards.0]
database = "app"
servers = [["127.0.0.1", ${port}, "primary"]${parts.replica ? ', ["127.0.0.2", 5432, "replica"]' : ''}]
`,
    FILE,
  );
}

const AUTH_QUERY = 'auth_query = "SELECT usename, passwd FROM pg_shadow WHERE usename = $1"\nauth_query_user = "checker"\nauth_query_password = "checker"';
const registry = (): PoolRegistry => new PoolRegistry({ resolve: (host, port) => ({ host, port }), log: createLogger('silent') });

t.test('apply builds one frozen entry per (database, user) with cluster, auth and settings', async (t) => {
  const r = registry();
  const pgml = { embed: async () => [] } as never;
  t.same(r.apply(config(), pgml).removed, []);
  const e = r.get('app', 'app')!;
  t.ok(e, 'entry for app/app');
  t.equal(r.size, 1);
  t.ok(Object.isFrozen(e) && Object.isFrozen(e.settings) && Object.isFrozen(e.auth), 'entry, settings and auth are frozen');
  t.equal(e.settings.pgml, pgml, 'pgml is set when the entry is built, not patched in afterwards');
  t.equal(e.settings.statementTimeout, 700);
  t.equal(e.settings.idleInTransactionTimeout, 1500);
  t.equal(e.auth.password, 'app');
  t.ok(e.auth.scram, 'SCRAM secret derived');
  t.equal(e.auth.passthrough, null);
  t.equal(e.pool, e.cluster.primary(0)!.pool, 'the login pool is shard 0 primary');
  t.equal(e.pool.settings.server.port, 5432);
  t.equal(r.get('app', 'nobody'), undefined);
  t.equal(r.get('constructor', 'app'), undefined, 'no prototype member for a client-chosen name');
});

t.test('reload: new entries; unchanged servers keep their pool, moved ones are handed back', async (t) => {
  const r = registry();
  r.apply(config({ replica: true }), null);
  const first = r.get('app', 'app')!;
  const [primary, replica] = first.cluster.members;

  // Same servers, another load balancing mode: a new entry over the same cluster and pools.
  t.same(r.apply(config({ replica: true, pool: 'load_balancing_mode = "loc"' }), null).removed, []);
  const second = r.get('app', 'app')!;
  t.not(second, first, 'a new entry');
  t.equal(second.cluster, first.cluster, 'the cluster keeps its identity');
  t.equal(second.cluster.options.loadBalancing, 'loc', 'with the new options');
  t.equal(second.cluster.members[0], primary, 'unchanged member kept');
  t.equal(second.auth.scram, first.auth.scram, 'same password: SCRAM secret not derived again');
  t.equal(first.settings.statementTimeout, 700, 'the old entry is untouched');

  // The primary moves, the replica goes: both pools are handed back.
  const { removed } = r.apply(config({ port: 6543 }), null);
  t.same(new Set(removed), new Set([primary!.pool, replica!.pool]), 'moved and removed servers');
  const third = r.get('app', 'app')!;
  t.equal(third.pool.settings.server.port, 6543);
  t.equal(third.cluster.members.length, 1);

  // Another password: a new SCRAM secret, and a new pool (its server login changed).
  t.same(r.apply(config({ port: 6543, password: 'other' }), null).removed, [third.pool]);
  const fourth = r.get('app', 'app')!;
  t.not(fourth.auth.scram, third.auth.scram);

  // The pool disappears: every member pool is handed back.
  const gone = r.apply(config({ name: 'other' }), null).removed;
  t.same(gone, [fourth.pool]);
  t.equal(r.get('app', 'app'), undefined);
  t.equal(r.size, 1, 'only the other pool');
});

t.test('auth_query: learnt credentials make entries that outlive reloads while the pool has auth_query', async (t) => {
  const r = registry();
  r.apply(config({ pool: AUTH_QUERY, extraUser: true }), null);
  t.equal(r.usesAuthQuery('app', 'app'), false, 'a user with a password logs in with it');
  t.equal(r.usesAuthQuery('app', 'ghost'), true, 'a listed user without a password uses auth_query');
  t.equal(r.usesAuthQuery('app', 'unlisted'), true, 'so does an unlisted user');
  const target = r.authQueryTarget('app')!;
  t.equal(target.server.user, 'checker');
  t.equal(target.server.port, 5432);

  r.learnCredential('app', 'unlisted', 'md5abc');
  const dyn = r.get('app', 'unlisted')!;
  t.same(dyn.auth.passthrough, { credential: 'md5abc', listed: false }, 'created on demand');
  t.equal(dyn.pool.settings.server.password, 'md5abc', 'the server login uses the credential');
  t.equal(dyn.pool.settings.minSize, 0, 'no idle connections kept for on-demand users');
  r.learnCredential('app', 'unlisted', 'md5abc');
  t.equal(r.get('app', 'unlisted'), dyn, 'the same credential keeps the entry');

  r.learnCredential('app', 'ghost', 'md5def');
  t.same(r.get('app', 'ghost')!.auth.passthrough, { credential: 'md5def', listed: true });
  r.learnCredential('app', 'app', 'md5xyz');
  t.equal(r.get('app', 'app')!.auth.passthrough, null, 'a user with a password is not taught one');

  // Reload with auth_query: both keep what they learnt.
  r.apply(config({ pool: AUTH_QUERY, extraUser: true }), null);
  t.same(r.get('app', 'unlisted')?.auth.passthrough, { credential: 'md5abc', listed: false });
  t.same(r.get('app', 'ghost')?.auth.passthrough, { credential: 'md5def', listed: true });

  // Reload without auth_query (and without the user listed without a password): the unlisted user's pool goes.
  const { removed } = r.apply(config(), null);
  t.equal(r.get('app', 'unlisted'), undefined);
  t.ok(removed.includes(dyn.pool), "the on-demand user's pool is handed back");
  t.equal(r.authQueryTarget('app'), null);
  r.learnCredential('app', 'unlisted', 'md5abc');
  t.equal(r.get('app', 'unlisted'), undefined, 'nothing learnt once the pool lost auth_query');
});
