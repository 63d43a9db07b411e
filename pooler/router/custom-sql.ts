// PgCat's own SQL, answered by the pooler and never sent to a server:
//   SET SHARDING KEY TO '<key>'      SET SHARD TO '<n>' | 'any'     SHOW SHARD
//   SET SERVER ROLE TO 'primary' | 'replica' | 'any' | 'auto' | 'default'
//   SHOW SERVER ROLE                 SET PRIMARY READS TO 'on' | 'off' | 'default'
//   SHOW PRIMARY READS
// Matched case-insensitively, quotes optional, a trailing semicolon allowed.

export type RoleSetting = 'primary' | 'replica' | 'any' | 'auto' | 'default';

export type CustomCommand =
  | { kind: 'set_sharding_key'; key: string }
  | { kind: 'set_shard'; shard: number | 'any' }
  | { kind: 'show_shard' }
  | { kind: 'set_server_role'; role: RoleSetting }
  | { kind: 'show_server_role' }
  | { kind: 'set_primary_reads'; value: 'on' | 'off' | 'default' }
  | { kind: 'show_primary_reads' };

const VALUE = String.raw`'?([^';\s]*)'?`;
const END = String.raw`\s*;?\s*$`;
const SET_SHARDING_KEY = new RegExp(String.raw`^\s*set\s+sharding\s+key\s+to\s+${VALUE}${END}`, 'i');
const SET_SHARD = new RegExp(String.raw`^\s*set\s+shard\s+to\s+${VALUE}${END}`, 'i');
const SHOW_SHARD = new RegExp(String.raw`^\s*show\s+shard${END}`, 'i');
const SET_ROLE = new RegExp(String.raw`^\s*set\s+server\s+role\s+to\s+${VALUE}${END}`, 'i');
const SHOW_ROLE = new RegExp(String.raw`^\s*show\s+server\s+role${END}`, 'i');
const SET_PRIMARY_READS = new RegExp(String.raw`^\s*set\s+primary\s+reads\s+to\s+${VALUE}${END}`, 'i');
const SHOW_PRIMARY_READS = new RegExp(String.raw`^\s*show\s+primary\s+reads${END}`, 'i');

/** Longer than any PgCat command (a sharding key is a number or a short string). */
const MAX_CUSTOM_LENGTH = 1024;

function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
}

/**
 * Quick reject on raw bytes before decoding: these all start with SET or
 * SHOW followed by a blank and are short, so a SELECT (or a large
 * statement) is never turned into a string here.
 */
export function mayBeCustom(buf: Buffer, start: number, end: number): boolean {
  if (end - start > MAX_CUSTOM_LENGTH) return false;
  let i = start;
  while (i < end && isBlank(buf[i])) i++;
  if ((buf[i] | 0x20) !== 0x73) return false; // 's'
  const e = buf[i + 1] | 0x20;
  const third = buf[i + 2] | 0x20;
  if (e === 0x65 && third === 0x74) return isBlank(buf[i + 3]); // "set "
  return e === 0x68 && third === 0x6f && (buf[i + 3] | 0x20) === 0x77 && isBlank(buf[i + 4]); // "show "
}

/** The command, null when `sql` is not PgCat SQL; throws on a bad value. */
export function parseCustomCommand(sql: string): CustomCommand | null {
  let m: RegExpExecArray | null;
  if ((m = SET_SHARDING_KEY.exec(sql))) return { kind: 'set_sharding_key', key: m[1] };
  if ((m = SET_SHARD.exec(sql))) {
    const v = m[1].toLowerCase();
    if (v === 'any') return { kind: 'set_shard', shard: 'any' };
    if (!/^\d+$/.test(v)) throw new CustomSqlError(`invalid shard "${m[1]}": expected a shard number or 'any'`);
    return { kind: 'set_shard', shard: Number(v) };
  }
  if (SHOW_SHARD.test(sql)) return { kind: 'show_shard' };
  if ((m = SET_ROLE.exec(sql))) {
    const v = m[1].toLowerCase();
    if (!['primary', 'replica', 'any', 'auto', 'default'].includes(v)) {
      throw new CustomSqlError(`invalid server role "${m[1]}": expected primary, replica, any, auto or default`);
    }
    return { kind: 'set_server_role', role: v as RoleSetting };
  }
  if (SHOW_ROLE.test(sql)) return { kind: 'show_server_role' };
  if ((m = SET_PRIMARY_READS.exec(sql))) {
    const v = m[1].toLowerCase();
    if (v !== 'on' && v !== 'off' && v !== 'default') throw new CustomSqlError(`invalid primary reads "${m[1]}": expected on, off or default`);
    return { kind: 'set_primary_reads', value: v };
  }
  if (SHOW_PRIMARY_READS.test(sql)) return { kind: 'show_primary_reads' };
  return null;
}

/** A malformed PgCat command: SQLSTATE 22023 (invalid parameter value). */
export class CustomSqlError extends Error {
  readonly code = '22023';
}
