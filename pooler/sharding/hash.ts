// PgCat's sharding functions: which shard a sharding key belongs to.
//
// pg_bigint_hash is bit-identical to Postgres's `PARTITION BY HASH (col)` on
// a bigint column with `MODULUS shards`, so shards can be checked (or built)
// with ordinary hash partitions and satisfies_hash_partition(). Postgres:
//   h   = hashint8extended(key, HASH_PARTITION_SEED)   (utils/adt/hashfunc.c)
//   row = hash_combine64(0, h)                          (common/hashfn.h)
//   partition remainder = row % modulus                 (partitioning/partbounds.c)
// hashint8extended folds the int64 into a uint32 and hashes that with Bob
// Jenkins' lookup3 (hash_uint32_extended, common/hashfn.c).
//
// Everything is uint32 arithmetic on plain numbers: this runs per statement.

import { createHash } from 'node:crypto';
import type { ShardingFunction } from '../../config/types.js';

const TWO32 = 4294967296;

/** HASH_PARTITION_SEED (catalog/partition.h), as two uint32 halves. */
const SEED_HI = 0x7a5b2236;
const SEED_LO = 0x7996dcfd;

/** hash_combine64's constant 0x49a0f4dd15e5a8e3, as two uint32 halves. */
const COMBINE_HI = 0x49a0f4dd;
const COMBINE_LO = 0x15e5a8e3;

const rot = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

// The seed is fixed, so lookup3's seeded prologue (init + one mix) is too:
// computed once here, then each key only runs `final`.
const [MIXED_A, MIXED_B, MIXED_C] = (() => {
  const init = (0x9e3779b9 + 4 + 3923095) >>> 0; // 0x9e3779b9 + sizeof(uint32) + 3923095
  let a = (init + SEED_HI) >>> 0;
  let b = (init + SEED_LO) >>> 0;
  let c = init;
  a = (a - c) >>> 0; a = (a ^ rot(c, 4)) >>> 0; c = (c + b) >>> 0;
  b = (b - a) >>> 0; b = (b ^ rot(a, 6)) >>> 0; a = (a + c) >>> 0;
  c = (c - b) >>> 0; c = (c ^ rot(b, 8)) >>> 0; b = (b + a) >>> 0;
  a = (a - c) >>> 0; a = (a ^ rot(c, 16)) >>> 0; c = (c + b) >>> 0;
  b = (b - a) >>> 0; b = (b ^ rot(a, 19)) >>> 0; a = (a + c) >>> 0;
  c = (c - b) >>> 0; c = (c ^ rot(b, 4)) >>> 0; b = (b + a) >>> 0;
  return [a, b, c];
})();

/**
 * The partition remainder Postgres picks for the int64 whose two's-complement
 * halves are `hi` and `lo` (both uint32).
 */
export function pgBigintHashHalves(hi: number, lo: number, shards: number): number {
  // hashint8extended: fold the high half into the low one (sign-aware, so
  // int4 and int8 values hash alike).
  const k = (lo ^ (hi & 0x80000000 ? ~hi : hi)) >>> 0;
  // hash_uint32_extended: a += k; final(a, b, c); result = b << 32 | c.
  let a = (MIXED_A + k) >>> 0;
  let b = MIXED_B;
  let c = MIXED_C;
  c = (c ^ b) >>> 0; c = (c - rot(b, 14)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rot(c, 11)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rot(a, 25)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rot(b, 16)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rot(c, 4)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rot(a, 14)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rot(b, 24)) >>> 0;
  // hash_combine64(0, h) = h + 0x49a0f4dd15e5a8e3 (mod 2^64).
  let rlo = c + COMBINE_LO;
  const carry = rlo >= TWO32 ? 1 : 0;
  rlo -= carry * TWO32;
  const rhi = (b + COMBINE_HI + carry) % TWO32;
  return mod64(rhi, rlo, shards);
}

/** (hi * 2^32 + lo) % m without BigInt while every product stays below 2^53. */
function mod64(hi: number, lo: number, m: number): number {
  if (m <= 0x4000000) return (((hi % m) * (TWO32 % m)) + (lo % m)) % m; // m < 2^26: < 2^53
  return Number(((BigInt(hi) << 32n) | BigInt(lo)) % BigInt(m));
}

/** Postgres's hash partition remainder of a bigint key for `MODULUS shards`. */
export function pgBigintHash(key: bigint, shards: number): number {
  const u = BigInt.asUintN(64, key);
  return pgBigintHashHalves(Number(u >> 32n), Number(u & 0xffffffffn), shards);
}

/**
 * PgCat's `sha1` function: SHA-1 of the key's text, last 4 bytes of the
 * digest read big-endian (PgCat parses the last 8 hex digits), modulo shards.
 */
export function sha1Shard(key: string, shards: number): number {
  return createHash('sha1').update(key, 'utf8').digest().readUInt32BE(16) % shards;
}

/** An int64 as its two's-complement uint32 halves. */
interface ParsedInt64 {
  hi: number;
  lo: number;
}

// int8in skips C isspace() around the number.
const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13);

/**
 * Parses decimal int64 text as Postgres's int8in does (surrounding
 * whitespace, optional sign, digits). Null if not an integer or out of range.
 */
export function parseInt64(text: string): ParsedInt64 | null {
  let i = 0;
  let end = text.length;
  while (i < end && isSpace(text.charCodeAt(i))) i++;
  while (end > i && isSpace(text.charCodeAt(end - 1))) end--;
  let negative = false;
  const sign = text.charCodeAt(i);
  if (sign === 45 /* - */ || sign === 43 /* + */) {
    negative = sign === 45;
    i++;
  }
  if (i >= end) return null;
  // Magnitude as two uint32 halves: (hi, lo) = (hi, lo) * 10 + digit.
  let hi = 0;
  let lo = 0;
  for (; i < end; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return null;
    const l = lo * 10 + d;
    const carry = Math.floor(l / TWO32);
    lo = l - carry * TWO32;
    hi = hi * 10 + carry;
    if (hi > 0x80000000) return null; // beyond 2^63 already
  }
  // |value| <= 2^63, and == 2^63 only for the negative minimum.
  if (hi === 0x80000000 && (lo !== 0 || !negative)) return null;
  if (negative && (hi !== 0 || lo !== 0)) {
    // Two's complement: ~x + 1.
    lo = (~lo >>> 0) + 1;
    hi = ~hi >>> 0;
    if (lo === TWO32) {
      lo = 0;
      hi = (hi + 1) >>> 0;
    }
  }
  return { hi, lo };
}

/**
 * Shard of a sharding key given as text (a SQL literal, a Bind parameter,
 * SET SHARDING KEY, a sharding_key comment), or null when the key cannot be
 * hashed: pg_bigint_hash needs a decimal int64. sha1 hashes the canonical
 * decimal text of an int64 key (PgCat parses the key as i64 first, so '007'
 * and '7' agree); a non-integer key is hashed as given.
 */
export function shardForKey(fn: ShardingFunction, key: string, shards: number): number | null {
  const n = parseInt64(key);
  if (fn === 'pg_bigint_hash') return n === null ? null : pgBigintHashHalves(n.hi, n.lo, shards);
  return sha1Shard(n === null ? key : canonicalInt64(key), shards);
}

/** Decimal text without spaces, '+' or leading zeros (the text must be a valid int64). */
function canonicalInt64(text: string): string {
  const t = text.trim();
  const negative = t.startsWith('-');
  const digits = t.replace(/^[+-]/, '').replace(/^0+(?=\d)/, '');
  return negative && digits !== '0' ? `-${digits}` : digits;
}
