// Fleet membership: every pooler process is a member with its own id and a
// heartbeat key in Redis that expires after fleet_lease_ttl_ms, renewed
// every third of that. The key carries what SHOW FLEET and the fleet's
// Prometheus gauges show (host, start time, clients, server connections).
//
// Each beat also reads every member's key, so SHOW FLEET answers from
// memory and never waits on Redis. A member whose key expired has left
// (crashed, cut off); its id is dropped from the member set then.

import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { RedisLink } from './redis-link.js';

export const KEY_PREFIX = 'pglynx:fleet:';
const MEMBERS_SET = `${KEY_PREFIX}members`;
const memberKey = (id: string): string => `${KEY_PREFIX}member:${id}`;

/** What a member says about itself at each heartbeat. */
export interface MemberState {
  id: string;
  host: string;
  /** The pooler's listening port (several members may share a host). */
  port: number;
  pid: number;
  /** Epoch ms the process started. */
  startedAt: number;
  clients: number;
  serverConnections: number;
  /** Embeddings this member found in the fleet cache instead of computing them. */
  remoteCacheHits: number;
  /** Epoch ms of this heartbeat, by the member's clock. */
  seenAt: number;
}

/** What the member reports at each beat, read from the pooler. */
export type LocalState = Pick<MemberState, 'clients' | 'serverConnections' | 'remoteCacheHits'>;

/** One id per process: host and pid for people, random bytes so a restarted pid never reuses an id. */
export function newMemberId(): string {
  return `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

function parseMember(raw: string | null): MemberState | null {
  if (raw === null) return null;
  try {
    const v = JSON.parse(raw) as Partial<MemberState>;
    return typeof v.id === 'string' && typeof v.seenAt === 'number' ? (v as MemberState) : null;
  } catch {
    return null;
  }
}

export class Membership {
  /** Other members as of the last successful beat (never includes this one). */
  private known = new Map<string, MemberState>();
  private timer: NodeJS.Timeout | null = null;
  private beating = false;
  /** Date.now() of the last reconnection after an outage (0: none yet). */
  private rejoinedAt = 0;
  private everConnected = false;
  readonly startedAt = Date.now();

  constructor(
    readonly id: string,
    private readonly link: RedisLink,
    private readonly ttlMs: number,
    private readonly port: () => number,
    private readonly local: () => LocalState,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.beat(), Math.max(50, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
    // Announce at once on every (re)connection, not a third of a TTL later.
    this.link.onReady(() => {
      if (this.everConnected) this.rejoinedAt = Date.now();
      this.everConnected = true;
      void this.beat();
    });
  }

  /** This member now, as it would write it. */
  self(): MemberState {
    return {
      id: this.id,
      host: os.hostname(),
      port: this.port(),
      pid: process.pid,
      startedAt: this.startedAt,
      ...this.local(),
      seenAt: Date.now(),
    };
  }

  /** Every member: this one (live) first, then the others as last read. */
  members(): MemberState[] {
    return [this.self(), ...[...this.known.values()].sort((a, b) => a.id.localeCompare(b.id))];
  }

  /** Writes this member's key and reads the others'. Failures keep the last view (Redis may be down). */
  async beat(): Promise<void> {
    if (this.beating || !this.link.connected) return;
    this.beating = true;
    try {
      const redis = this.link.commands;
      const me = this.self();
      await redis.multi().set(memberKey(this.id), JSON.stringify(me), 'PX', this.ttlMs).sadd(MEMBERS_SET, this.id).exec();
      const ids = (await redis.smembers(MEMBERS_SET)).filter((id) => id !== this.id);
      const raws = ids.length > 0 ? await redis.mget(ids.map(memberKey)) : [];
      const next = new Map<string, MemberState>();
      const gone: string[] = [];
      ids.forEach((id, i) => {
        const m = parseMember(raws[i] ?? null);
        if (m) next.set(id, m);
        else gone.push(id);
      });
      // Back from an outage, Redis may have restarted empty: members not
      // written back yet are kept for a TTL (budget shares count them).
      if (Date.now() - this.rejoinedAt < this.ttlMs) {
        for (const [id, m] of this.known) if (!next.has(id)) next.set(id, m);
      }
      if (gone.length > 0) await redis.srem(MEMBERS_SET, ...gone);
      this.known = next;
    } catch {
      // The link logs the outage once; the last view stays until Redis returns.
    } finally {
      this.beating = false;
    }
  }

  /** Leaves the fleet at once (graceful shutdown) rather than after the TTL. */
  async leave(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (!this.link.connected) return;
    try {
      await this.link.commands.multi().del(memberKey(this.id)).srem(MEMBERS_SET, this.id).exec();
    } catch {
      // Expires by itself.
    }
  }
}
