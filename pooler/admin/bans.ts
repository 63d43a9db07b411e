// PgCat's ban commands: BAN and UNBAN take a server out of (and back into)
// read load balancing in every pool that lists it, for drills and
// maintenance; SHOW BANS lists what is banned now, whoever banned it (BAN,
// a failed health check or role probe, a refused connection).
//
// PgCat's BAN wants `host seconds` and matches the host alone; PgLynx also
// takes `host:port` (test rigs run every server on one host), and the
// seconds are optional (default: general.ban_time). A primary is never
// banned (writes have nowhere else to go): BAN refuses it instead of
// reporting a ban that does not happen.

import type { ClusterMember } from '../pool/cluster.js';
import type { PoolEntry } from '../pool/registry.js';
import { ADMIN_REFUSED, AdminError, type AdminContext, type AdminReply, type AdminValue } from './context.js';
import { int, table, text, timestamp } from './format.js';
import { memberAddresses, type MemberAddress } from '../pool/member-addresses.js';

// Refusals carry PgCat's SQLSTATE (ADMIN_REFUSED), but one PgCat does not
// make: PgCat lists a primary as banned while leaving it in use.
/** object_not_in_prerequisite_state: the server is a primary. */
const NOT_IN_PREREQUISITE_STATE = '55000';

/** Longest BAN accepted: a year (more is surely a typo). */
const MAX_BAN_SECONDS = 365 * 24 * 3600;

// PgCat's columns first; `port` is PgLynx's, last so PgCat's positions hold.
const BAN_COLUMNS = [text('db'), text('user'), text('role'), text('host'), int('port')];
const SHOW_BANS_COLUMNS = [
  text('db'), text('user'), text('role'), text('host'), text('reason'),
  text('ban_time'), int('ban_duration_seconds'), int('ban_remaining_seconds'), int('port'),
];

/**
 * Bans set by BAN, for SHOW BANS: their length is the admin's, not
 * ban_time. A record is stale once the member was banned again since
 * (its bannedUntil moved).
 */
const adminBans = new WeakMap<ClusterMember, { at: number; ms: number; until: number }>();

interface Target {
  host: string;
  port: number | undefined;
  /** As typed, for messages. */
  text: string;
}

/** `host`, `host:port`, `[v6]` or `[v6]:port`, optionally quoted; a bare IPv6 address is a host. */
function parseTarget(token: string): Target {
  const t = token.replace(/^(['"])(.*)\1$/, '$2');
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  const plain = /^([^:]+):(\d+)$/.exec(t);
  const m = bracketed ?? plain;
  if (!m) return { host: t, port: undefined, text: t };
  const port = m[2] === undefined ? undefined : Number(m[2]);
  if (port !== undefined && (port < 1 || port > 65535)) throw new AdminError(ADMIN_REFUSED, `invalid port in "${t}"`);
  return { host: m[1], port, text: t };
}

interface Match {
  entry: PoolEntry;
  address: MemberAddress;
}

/** Every server of every pool at `target`, by configured or resolved address (embedded backends). */
function matches(ctx: AdminContext, target: Target): Match[] {
  const config = ctx.config();
  const out: Match[] = [];
  for (const entry of ctx.pools()) {
    for (const address of memberAddresses(config, entry)) {
      const resolved = address.member.pool.settings.server;
      const hostOk = target.host === address.host || target.host === resolved.host;
      const portOk = target.port === undefined || target.port === address.port || target.port === resolved.port;
      if (hostOk && portOk) out.push({ entry, address });
    }
  }
  if (out.length === 0) {
    throw new AdminError(ADMIN_REFUSED, `no pool has a server at ${target.text} (give host:port as in the config)`);
  }
  return out;
}

const banRow = ({ entry, address: a }: Match): AdminValue[] => [entry.poolName, entry.user.username, a.member.role, a.host, a.port];

export function ban(ctx: AdminContext, args: string): AdminReply {
  const tokens = args.split(/\s+/).filter((s) => s.length > 0);
  if (tokens.length < 1 || tokens.length > 2) throw new AdminError(ADMIN_REFUSED, 'usage: BAN <host>[:<port>] [<seconds>]');
  const target = parseTarget(tokens[0]);
  let seconds: number | undefined;
  if (tokens[1] !== undefined) {
    seconds = Number(tokens[1]);
    if (!/^\d+$/.test(tokens[1]) || seconds < 1 || seconds > MAX_BAN_SECONDS) {
      throw new AdminError(ADMIN_REFUSED, `BAN seconds must be a whole number from 1 to ${MAX_BAN_SECONDS}, not "${tokens[1]}"`);
    }
  }
  const all = matches(ctx, target);
  const primaries = all.filter((m) => m.address.member.role === 'primary');
  // host:port names one server: if it is a primary, refuse the whole BAN
  // (nothing is banned). A bare host may cover a primary and its replicas:
  // the replicas are banned, the primaries skipped with a notice.
  if (primaries.length > 0 && (target.port !== undefined || primaries.length === all.length)) {
    const where = primaries.map((m) => `${m.address.name} (user ${m.entry.user.username})`).join(', ');
    throw new AdminError(
      NOT_IN_PREREQUISITE_STATE,
      `cannot BAN ${target.text}: it is the primary of ${where}; a primary is never banned, as writes have nowhere else to go`,
    );
  }
  const now = Date.now();
  const rows: AdminValue[][] = [];
  const starved = new Set<string>();
  for (const m of all) {
    // As PgCat: BAN lists only what it newly banned; a server already
    // banned keeps its ban (and its end) and is not listed again.
    if (m.address.member.role === 'primary' || m.address.member.banned) continue;
    const { cluster } = m.entry;
    const ms = seconds !== undefined ? seconds * 1000 : cluster.options.banTimeMs;
    if (!cluster.ban(m.address.member, `admin BAN for ${ms / 1000} s`, ms)) continue;
    adminBans.set(m.address.member, { at: now, ms, until: m.address.member.bannedUntil });
    rows.push(banRow(m));
    // PgCat's rule (cluster.ts choose): with every replica of a shard
    // banned, the next read lifts the bans. Say so rather than surprise.
    const shard = cluster.shards[m.address.member.shard] ?? [];
    const replicas = shard.filter((s) => s.role === 'replica');
    if (replicas.every((s) => s.banned)) starved.add(`${m.entry.poolName} shard ${m.address.shard}`);
  }
  const notices: string[] = [];
  if (primaries.length > 0) notices.push(`not banned (primaries are never banned): ${[...new Set(primaries.map((m) => m.address.name))].join(', ')}`);
  if (starved.size > 0) notices.push(`every replica of ${[...starved].join(', ')} is now banned: the next read there lifts these bans`);
  return { columns: BAN_COLUMNS, rows, tag: 'BAN', notice: notices.length > 0 ? notices.join('\n') : undefined };
}

export function unban(ctx: AdminContext, args: string): AdminReply {
  const tokens = args.split(/\s+/).filter((s) => s.length > 0);
  if (tokens.length !== 1) throw new AdminError(ADMIN_REFUSED, 'usage: UNBAN <host>[:<port>]');
  const rows: AdminValue[][] = [];
  // As PgCat: one row per server that was banned and no longer is.
  for (const m of matches(ctx, parseTarget(tokens[0]))) {
    if (!m.address.member.banned) continue;
    m.entry.cluster.unban(m.address.member);
    adminBans.delete(m.address.member);
    rows.push(banRow(m));
  }
  return { columns: BAN_COLUMNS, rows, tag: 'UNBAN' };
}

export function showBans(ctx: AdminContext): AdminReply {
  const config = ctx.config();
  const now = Date.now();
  const rows: AdminValue[][] = [];
  for (const entry of ctx.pools()) {
    for (const a of memberAddresses(config, entry)) {
      const m = a.member;
      if (!m.banned) continue;
      const own = adminBans.get(m);
      // Bans not set by BAN last ban_time (PgCat reports them the same way).
      const { at, ms } = own && own.until === m.bannedUntil ? own : { at: m.bannedUntil - entry.cluster.options.banTimeMs, ms: entry.cluster.options.banTimeMs };
      rows.push([
        entry.poolName, entry.user.username, m.role, a.host, m.banReason,
        timestamp(at), Math.round(ms / 1000), Math.ceil((m.bannedUntil - now) / 1000), a.port,
      ]);
    }
  }
  // PgCat's tag for this one is `SHOW BANS`, not `SHOW`.
  return { ...table(SHOW_BANS_COLUMNS, rows), tag: 'SHOW BANS' };
}
