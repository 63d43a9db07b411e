// Server connection budgets held across the fleet: a (pool, user, server)
// may have at most `pool_size` connections open over every member, not per
// member. Each connection holds a lease in Redis (a sorted set of lease ids
// scored by expiry, by Redis's own clock); leases are renewed every third
// of fleet_lease_ttl_ms and expire when their member dies, so a dead
// member's share returns to the others within the TTL.
//
// Taking a lease is one Lua script (atomic): expired leases are dropped;
// a lease is granted under the budget, and only up to a fair share
// (budget / members, rounded up) while another member is waiting for one;
// a member refused says it is waiting. A member over its fair share while
// others wait closes idle connections at each renewal, so a busy member's
// connections move to a starved one at transaction boundaries.
//
// Redis down: leases are granted locally up to the budget divided by the
// members last known (at least 1), and written back when Redis returns.

import type { PoolSettings } from '../pool/pool-settings.js';
import type { Pool } from '../pool/pool.js';
import { KEY_PREFIX } from './membership.js';
import type { RedisLink } from './redis-link.js';

/** How often a member refused a lease asks again while its clients wait. */
const RETRY_MS = 25;
/** A member's "waiting" mark lasts this long unless renewed by another refusal. */
const WANT_TTL_MS = 300;
/** Longest a member takes to reconnect after Redis returns (redis-link.ts's reconnect backoff cap). */
const RESTORE_GRACE_MS = 1000;
/**
 * A closed connection's lease is returned this much later: Postgres ends
 * the backend shortly after the socket closes, and until then it still
 * counts against the server's connections.
 */
const RELEASE_DELAY_MS = 100;

const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local budget = tonumber(ARGV[1])
local fair = tonumber(ARGV[2])
local member = ARGV[3]
local prefix = member .. '|'
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local mine = 0
for _, id in ipairs(ids) do
  if string.sub(id, 1, #prefix) == prefix then mine = mine + 1 end
end
local others = redis.call('ZCARD', KEYS[2])
if redis.call('ZSCORE', KEYS[2], member) then others = others - 1 end
if #ids >= budget or (mine >= fair and others > 0) then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[6]), member)
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[4])
redis.call('ZREM', KEYS[2], member)
return 1
`;

/** Renews this member's leases of one key; answers how many other members are waiting there. */
const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local others = redis.call('ZCARD', KEYS[2])
if redis.call('ZSCORE', KEYS[2], ARGV[2]) then others = others - 1 end
return {others, redis.call('ZCARD', KEYS[1])}
`;

export interface Lease {
  release(): void;
}

interface Held {
  /** Lease ids held for this key. */
  ids: Set<string>;
  budget: number;
  /** Pools of this member that use the key (one per (pool, user, server)). */
  pools: Set<Pool>;
  /** Other members waiting for a lease here, as of the last renewal. */
  othersWaiting: number;
  /** Leases other members held here at the last renewal. */
  othersHeld: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class ConnectionBudgets {
  private readonly held = new Map<string, Held>();
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  /** performance.now() before which leases are granted locally (just back from an outage). */
  private localUntil = 0;
  /** performance.now() when Redis was found gone (0: it is not). */
  private lostAt = 0;
  private everConnected = false;
  /** Leases refused (the fleet's budget was spent), for tests and metrics. */
  refusals = 0;

  constructor(
    private readonly memberId: string,
    private readonly link: RedisLink,
    private readonly ttlMs: number,
    /** Ids of the members known now, this one included. */
    private readonly members: () => string[],
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.renew(), Math.max(50, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
    // Back from an outage, Redis may have lost every lease (or hold stale
    // ones): each member writes its own back at its next renewal, and until
    // all can have (a reconnect delay, then a TTL) leases stay local.
    this.link.onReady(() => {
      if (this.everConnected) this.localUntil = performance.now() + RESTORE_GRACE_MS + this.ttlMs;
      this.everConnected = true;
      this.lostAt = 0;
      void this.renew();
    });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private keyOf(s: PoolSettings): string {
    return `${KEY_PREFIX}leases:${s.name}:${s.user}:${s.server.host}:${s.server.port}`;
  }

  /**
   * This member's share of `budget`: an equal part, the remainder going one
   * each to the first members by id, so the shares add up to the budget.
   */
  private fairShare(budget: number): number {
    const ids = [...new Set([this.memberId, ...this.members()])].sort();
    const rank = ids.indexOf(this.memberId);
    return Math.floor(budget / ids.length) + (rank < budget % ids.length ? 1 : 0);
  }

  /** Leases are granted here, not by Redis (it is down, or just back). */
  private get local(): boolean {
    return !this.link.connected || performance.now() < this.localUntil;
  }

  /**
   * This member's pool holds more than its share while another member
   * waits, or while Redis is away (each member keeps to its share then): a
   * connection it checks in should close.
   */
  overShare(pool: Pool): boolean {
    const h = this.held.get(this.keyOf(pool.settings));
    return h !== undefined && (h.othersWaiting > 0 || this.local) && h.ids.size > this.fairShare(h.budget);
  }

  /**
   * A lease for one more connection of `pool`, waiting for one while its
   * clients wait (they give up at their own checkout timeout, as for a
   * pool at its size); throws once nobody waits.
   */
  async acquire(pool: Pool): Promise<Lease> {
    const s = pool.settings;
    const key = this.keyOf(s);
    let h = this.held.get(key);
    if (!h) this.held.set(key, (h = { ids: new Set(), budget: s.size, pools: new Set(), othersWaiting: 0, othersHeld: 0 }));
    h.budget = s.size;
    h.pools.add(pool);
    for (;;) {
      const id = `${this.memberId}|${++this.seq}`;
      if (await this.tryTake(key, h, id)) {
        h.ids.add(id);
        return { release: () => void setTimeout(() => this.release(key, id), RELEASE_DELAY_MS).unref() };
      }
      this.refusals++;
      if (pool.counters.waiting === 0) {
        throw new Error(`the fleet's budget of ${h.budget} server connections for ${s.name}/${s.user} at ${s.server.host}:${s.server.port} is in use`);
      }
      await sleep(RETRY_MS);
    }
  }

  private async tryTake(key: string, h: Held, id: string): Promise<boolean> {
    if (!this.local) {
      try {
        const fair = this.fairShare(h.budget);
        const granted = await this.link.commands.eval(ACQUIRE, 2, key, `${key}:wants`, h.budget, fair, this.memberId, id, this.ttlMs, WANT_TTL_MS);
        return granted === 1;
      } catch {
        // Redis failed mid-call: decide locally, as when it is down.
      }
    }
    // Local share: budget / members last known. Others may still hold more
    // than theirs (they shed at check-in): until a TTL has passed, grow only
    // into what the last renewal saw unused.
    if (this.lostAt === 0) this.lostAt = performance.now();
    const othersSettled = performance.now() - this.lostAt > this.ttlMs;
    return h.ids.size < Math.max(1, this.fairShare(h.budget)) && (othersSettled || h.ids.size + h.othersHeld < h.budget);
  }

  private release(key: string, id: string): void {
    const h = this.held.get(key);
    if (!h?.ids.delete(id)) return;
    if (this.link.connected) this.link.commands.zrem(key, id).catch(() => {});
  }

  /** Keeps this member's leases alive (and writes back those taken while Redis was away); gives idle connections over the fair share back. */
  private async renew(): Promise<void> {
    if (!this.link.connected) return;
    for (const [key, h] of this.held) {
      if (h.ids.size === 0 && h.othersWaiting === 0) continue;
      try {
        const [waiting, total] = (await this.link.commands.eval(RENEW, 2, key, `${key}:wants`, this.ttlMs, this.memberId, ...h.ids)) as [number, number];
        h.othersWaiting = Number(waiting);
        // Just back from an outage Redis holds only the leases written back so far: keep the count from before.
        if (!this.local) h.othersHeld = Math.max(0, Number(total) - h.ids.size);
      } catch {
        continue;
      }
      if (h.othersWaiting > 0) this.shed(h);
    }
  }

  /** Closes idle connections of this member beyond its fair share (their leases go with them). */
  private shed(h: Held): void {
    let excess = h.ids.size - this.fairShare(h.budget);
    for (const pool of h.pools) {
      for (const conn of pool.connections) {
        if (excess <= 0) return;
        if (!pool.isIdle(conn)) continue;
        conn.close('fleet: connection returned to the shared budget for a member that waits');
        excess--;
      }
    }
  }
}
