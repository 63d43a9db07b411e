// Bans, unbans and role changes shared by the fleet through Redis pub/sub:
// a replica banned by one pooler (BAN, a failed health check or
// connection) is banned by every member within a round trip, and unbanned
// likewise; a promotion one member's probe saw is applied by all.
//
// Servers are matched by address (host:port as the pooler connects to it),
// so members must name a server the same way. A member ignores its own
// messages, and applies others' without reporting them again (Cluster's
// `shared = false`): nothing echoes. Active bans are also kept in a hash,
// so a member that joins (or rejoins after an outage) takes them up.
// Redis down: every member keeps banning on its own, as without a fleet.

import type { Logger } from '../logger.js';
import { setClusterEvents, type Cluster, type ClusterMember } from '../pool/cluster.js';
import { KEY_PREFIX } from './membership.js';
import type { RedisLink } from './redis-link.js';

export const BANS_CHANNEL = `${KEY_PREFIX}bans`;
const BANS_HASH = `${KEY_PREFIX}bans:active`;

type BanMessage =
  | { from: string; kind: 'ban'; address: string; ms: number; reason: string }
  | { from: string; kind: 'unban'; address: string }
  | { from: string; kind: 'role'; address: string; role: 'primary' | 'replica' };

/** A ban as stored in the hash: `until` is epoch ms (members' clocks are assumed in sync, as NTP keeps them). */
interface StoredBan {
  until: number;
  reason: string;
  from: string;
}

function parse(raw: string): BanMessage | null {
  try {
    const m = JSON.parse(raw) as Partial<BanMessage>;
    if (typeof m.from !== 'string' || typeof m.address !== 'string') return null;
    if (m.kind === 'ban' && typeof m.ms === 'number' && typeof m.reason === 'string') return m as BanMessage;
    if (m.kind === 'unban') return m as BanMessage;
    if (m.kind === 'role' && (m.role === 'primary' || m.role === 'replica')) return m as BanMessage;
    return null;
  } catch {
    return null;
  }
}

export class SharedBans {
  /** Messages applied from other members, for tests and SHOW FLEET readers. */
  received = 0;
  published = 0;

  constructor(
    private readonly memberId: string,
    private readonly link: RedisLink,
    private readonly clusters: () => Cluster[],
    private readonly log: Logger,
  ) {}

  start(): void {
    setClusterEvents({
      banned: (m, ms, reason) => this.publishBan(m, ms, reason),
      unbanned: (m) => this.publish({ from: this.memberId, kind: 'unban', address: m.address }, (r) => r.hdel(BANS_HASH, m.address)),
      roleChanged: (m, role) => this.publish({ from: this.memberId, kind: 'role', address: m.address, role }),
    });
    this.link.subscriber.on('message', (channel: string, raw: string) => {
      if (channel !== BANS_CHANNEL) return;
      const msg = parse(raw);
      if (msg && msg.from !== this.memberId) this.apply(msg);
    });
    this.link.onReady(() => {
      this.link.subscriber.subscribe(BANS_CHANNEL).catch(() => {});
      void this.catchUp();
    });
  }

  stop(): void {
    setClusterEvents(null);
  }

  private publishBan(m: ClusterMember, ms: number, reason: string): void {
    const stored: StoredBan = { until: Date.now() + ms, reason, from: this.memberId };
    this.publish({ from: this.memberId, kind: 'ban', address: m.address, ms, reason }, (r) => r.hset(BANS_HASH, m.address, JSON.stringify(stored)));
  }

  /** Fire and forget: a ban must never wait on Redis. Down: the ban stays local. */
  private publish(msg: BanMessage, store?: (r: RedisLink['commands']) => Promise<unknown>): void {
    if (!this.link.connected) return;
    const redis = this.link.commands;
    this.published++;
    redis.publish(BANS_CHANNEL, JSON.stringify(msg)).catch(() => {});
    store?.(redis).catch(() => {});
  }

  /** Every server at `address`, in every (pool, user) cluster of this pooler. */
  private at(address: string): [Cluster, ClusterMember][] {
    const out: [Cluster, ClusterMember][] = [];
    for (const c of this.clusters()) for (const m of c.members) if (m.address === address) out.push([c, m]);
    return out;
  }

  private apply(msg: BanMessage): void {
    const targets = this.at(msg.address);
    if (targets.length === 0) return;
    this.received++;
    for (const [cluster, member] of targets) {
      if (msg.kind === 'ban') {
        // Already banned for at least as long: keep it (and its reason).
        if (member.bannedUntil >= Date.now() + msg.ms) continue;
        cluster.ban(member, `fleet: ${msg.reason} (member ${msg.from})`, msg.ms, false);
      } else if (msg.kind === 'unban') {
        cluster.unban(member, false);
      } else if (member.configuredRole === 'auto') {
        // A role written in this member's config is the operator's word: only `auto` servers follow others' probes.
        cluster.roleDetected(member, msg.role, false);
      }
    }
    this.log.info({ from: msg.from, kind: msg.kind, server: msg.address }, 'fleet: applied a change from another member');
  }

  /** On (re)joining: take up the bans other members hold now. */
  private async catchUp(): Promise<void> {
    let all: Record<string, string>;
    try {
      all = await this.link.commands.hgetall(BANS_HASH);
    } catch {
      return;
    }
    const now = Date.now();
    for (const [address, raw] of Object.entries(all)) {
      let ban: StoredBan;
      try {
        ban = JSON.parse(raw) as StoredBan;
      } catch {
        continue;
      }
      if (ban.from === this.memberId || ban.until <= now) continue;
      this.apply({ from: ban.from, kind: 'ban', address, ms: ban.until - now, reason: ban.reason });
    }
  }
}
