// dns_cache_enabled / dns_max_ttl: lookups are cached for at most the TTL,
// and a pool using the cache connects to a real server by host name.
import t from 'tap';
import { DnsCache } from '../pooler/server/dns-cache.js';
import { pgClient } from './harness/clients.js';
import { configToml, startPglynx } from './harness/pglynx.js';
import { startPostgres } from './harness/postgres.js';
import { freePort } from './harness/ports.js';

function lookup(cache: DnsCache, host: string, all: boolean): Promise<unknown> {
  return new Promise((resolve, reject) =>
    cache.lookup(host, { all }, (err, address, family) => (err ? reject(err) : resolve(all ? address : { address, family }))),
  );
}

t.test('DnsCache answers from the cache within the TTL', async (t) => {
  const cache = new DnsCache(30);
  t.same(await lookup(cache, '127.0.0.1', false), { address: '127.0.0.1', family: 4 }, 'IPs pass through');
  t.equal(cache.size, 0, 'IPs are not cached');
  const first = (await lookup(cache, 'localhost', false)) as { address: string };
  t.match(first.address, /^(127\.0\.0\.1|::1)$/);
  t.equal(cache.size, 1, 'the name is cached');
  t.same(await lookup(cache, 'localhost', true), [{ address: first.address, family: first.address.includes(':') ? 6 : 4 }], 'all: true gets an array');
  await t.rejects(lookup(cache, 'no-such-host.invalid', false), 'unknown names fail');
});

t.test('a pool with dns_cache_enabled connects by host name', async (t) => {
  const pg = await startPostgres({ auth: 'md5', users: [{ name: 'app', password: 'pw' }], t });
  const port = await freePort();
  const pooler = await startPglynx(
    configToml({
      port,
      general: { dns_cache_enabled: true, dns_max_ttl: 5 },
      pools: {
        app: {
          users: [{ username: 'app', password: 'pw', pool_size: 2 }],
          shards: [{ database: 'postgres', servers: [['localhost', pg.port, 'primary']] }],
        },
      },
    }),
    { t, logLevel: 'warn' },
  );
  const c = await pgClient({ port: pooler.port, user: 'app', password: 'pw', database: 'app' });
  const r = await c.query('SELECT inet_server_addr()::text AS addr');
  t.match(r.rows[0].addr, /127\.0\.0\.1|::1/, 'connected through the resolved address');
  await c.end();
  t.notMatch(pooler.output(), /dns_cache_enabled: not implemented/, 'the key is implemented');
});
