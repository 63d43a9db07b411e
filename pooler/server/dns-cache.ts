// PgCat's dns_cache_enabled / dns_max_ttl: server host names are resolved
// once and reused for at most dns_max_ttl seconds (less when the record's
// own TTL is shorter), so a pool opening many connections does not query
// DNS for each, and a moved host (DNS failover) is picked up within the TTL.

import dns from 'node:dns';
import net from 'node:net';

export type LookupFunction = net.LookupFunction;

interface Entry {
  address: string;
  family: number;
  expiresAt: number;
}

export class DnsCache {
  private readonly entries = new Map<string, Entry>();

  constructor(readonly maxTtlSeconds: number) {}

  /** A `lookup` for net.connect that answers from the cache when it can. */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    // Node asks for every address (`all`) when it may race IPv4 and IPv6.
    const answer = (e: { address: string; family: number }): void => {
      if (options.all) callback(null, [{ address: e.address, family: e.family }]);
      else callback(null, e.address, e.family);
    };
    if (net.isIP(hostname)) {
      answer({ address: hostname, family: net.isIP(hostname) });
      return;
    }
    const hit = this.entries.get(hostname);
    if (hit && hit.expiresAt > Date.now()) {
      answer(hit);
      return;
    }
    void this.resolve(hostname).then(answer, (err: NodeJS.ErrnoException) => callback(err, '', 0));
  };

  private async resolve(hostname: string): Promise<Entry> {
    let ttl = this.maxTtlSeconds;
    let address: string;
    let family: number;
    try {
      // resolve4 gives the record's TTL; names only in /etc/hosts fall back to lookup.
      const records = await dns.promises.resolve4(hostname, { ttl: true });
      address = records[0].address;
      family = 4;
      ttl = Math.min(ttl, records[0].ttl);
    } catch {
      const r = await dns.promises.lookup(hostname);
      address = r.address;
      family = r.family;
    }
    const entry = { address, family, expiresAt: Date.now() + ttl * 1000 };
    this.entries.set(hostname, entry);
    return entry;
  }

  /** Cached addresses (SHOW-style introspection and tests). */
  get size(): number {
    return this.entries.size;
  }
}

let shared: DnsCache | null = null;

/** The process-wide cache (one per TTL setting; a reload with a new TTL starts afresh). */
export function sharedDnsCache(maxTtlSeconds: number): DnsCache {
  if (!shared || shared.maxTtlSeconds !== maxTtlSeconds) shared = new DnsCache(maxTtlSeconds);
  return shared;
}
