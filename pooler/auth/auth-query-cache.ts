// The auth_query secret cache: one query per user for many logins at once,
// and PgCat's refetch when a password does not match, rate-limited.

import type { Logger } from '../logger.js';
import type { AuthQueryTarget, StoredSecret } from './auth-query-types.js';

/**
 * How long a fetched secret is reused. Short on purpose: it only spares the
 * server one query per connection when many clients log in at once (a
 * pgbench -c 100 start), while a role dropped or re-passworded on the
 * server takes effect for logins a moment later.
 */
export const AUTH_QUERY_CACHE_MS = 1000;

type Fetch = (target: AuthQueryTarget, user: string) => Promise<StoredSecret | null>;

interface CacheEntry {
  expires: number;
  secret: Promise<StoredSecret | null>;
  /** Fetched again because a password did not match: not fetched again until it expires. */
  refreshed: boolean;
}

/**
 * Fetches secrets with a short cache; concurrent logins of one user share
 * one query. A password that does not match may fetch once more, at most
 * once per user per cache lifetime, so wrong guesses cannot flood the
 * server with auth queries.
 */
export class AuthQueryCache {
  private readonly cache = new Map<string, CacheEntry>();
  /** Per pool, the kind of the last secret fetched: what users it does not know are challenged with. */
  private readonly kinds = new Map<string, StoredSecret['kind']>();

  constructor(
    private readonly log: Pick<Logger, 'warn' | 'error'>,
    /** fetchSecret (auth-query.ts), passed in so this file needs no server code. */
    private readonly fetch: Fetch,
    private readonly ttlMs: number = AUTH_QUERY_CACHE_MS,
  ) {}

  /**
   * The stored secret of `user` for pool `database`, or null when there is
   * none or the auth_query failed (logged: clients only learn that the
   * login failed, as with a wrong password).
   */
  async lookup(target: AuthQueryTarget, database: string, user: string): Promise<StoredSecret | null> {
    const key = `${database}\u0000${user}`;
    const now = Date.now();
    for (const [k, v] of this.cache) if (v.expires <= now) this.cache.delete(k);
    return this.settle(this.cache.get(key) ?? this.start(target, key, user, false), database, user);
  }

  /**
   * The secret fetched anew after a password did not match it; the secret
   * already refetched (or being refetched) when that happened recently.
   */
  refresh(target: AuthQueryTarget, database: string, user: string): Promise<StoredSecret | null> {
    const key = `${database}\u0000${user}`;
    const hit = this.cache.get(key);
    return this.settle(hit?.refreshed && hit.expires > Date.now() ? hit : this.start(target, key, user, true), database, user);
  }

  /**
   * How pool `database` challenges a user its server does not know: as the
   * server's other users, which Postgres stores all one way
   * (password_encryption); SCRAM, Postgres's default since 14, until one is seen.
   */
  decoyKind(database: string): StoredSecret['kind'] {
    return this.kinds.get(database) ?? 'scram';
  }

  private start(target: AuthQueryTarget, key: string, user: string, refreshed: boolean): CacheEntry {
    // Expiry counts from the answer; until then the entry is the query in flight.
    const entry: CacheEntry = { expires: Number.POSITIVE_INFINITY, secret: this.fetch(target, user), refreshed };
    this.cache.set(key, entry);
    entry.secret.then(
      () => (entry.expires = Date.now() + this.ttlMs),
      () => {
        if (this.cache.get(key) === entry) this.cache.delete(key);
      },
    );
    return entry;
  }

  private async settle(hit: CacheEntry, database: string, user: string): Promise<StoredSecret | null> {
    try {
      const secret = await hit.secret;
      if (secret) this.kinds.set(database, secret.kind);
      if (!secret) this.log.warn({ database, user }, 'auth_query found no md5 or SCRAM secret for the user');
      return secret;
    } catch (err) {
      this.log.error({ database, user, err: (err as Error).message }, 'auth_query failed');
      return null;
    }
  }
}
