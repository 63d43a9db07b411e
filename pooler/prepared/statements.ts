// Prepared statements shared across server connections (transaction mode,
// PgCat's `prepared_statements`): a client's named statement is renamed to a
// global name derived from its text and parameter types, so every client
// preparing the same statement shares one server-side statement per server.

import { createHash } from 'node:crypto';
import { changesSessionState } from '../client/session-state.js';

/** A client statement: its server-side name and the Parse body after the name. */
export interface StatementDef {
  globalName: string;
  /** query\0 int16 n int32[n] — the Parse body without the statement name. */
  parseTail: Buffer;
  /**
   * Session state running it leaves (Dirty bits, server/reset.ts): given to
   * whichever server a Bind runs it on, since the Parse may have been
   * answered by the pooler or run on another server.
   */
  dirt: number;
}

/** Global name for a Parse tail: same text and types, same name, on every server. */
export function globalName(parseTail: Buffer): string {
  return `pglynx_${createHash('sha1').update(parseTail).digest('hex').slice(0, 20)}`;
}

/** The statements a client has prepared, by the names it chose. */
export class ClientStatements {
  private readonly byName = new Map<string, StatementDef>();

  constructor(private readonly limit: number) {}

  define(name: string, parseTail: Buffer): StatementDef {
    const def = { globalName: globalName(parseTail), parseTail: Buffer.from(parseTail), dirt: changesSessionState(parseTail, 0, parseTail.length) };
    this.byName.delete(name);
    this.byName.set(name, def);
    // A client that prepares without ever closing is bounded, oldest first.
    if (this.byName.size > this.limit) this.byName.delete(this.byName.keys().next().value!);
    return def;
  }

  get(name: string): StatementDef | undefined {
    return this.byName.get(name);
  }

  delete(name: string): void {
    this.byName.delete(name);
  }

  clear(): void {
    this.byName.clear();
  }
}

/**
 * Which global statements one server connection holds, LRU-bounded by
 * `prepared_statements_cache_size`. `pending` ones were sent and not yet
 * confirmed by ParseComplete; later messages may rely on them.
 */
export class ServerStatements {
  private readonly prepared = new Map<string, true>();
  private readonly pending = new Set<string>();
  /** PgCat's prepare_cache_hit / _miss / _eviction of this server (SHOW SERVERS). */
  hits = 0;
  misses = 0;
  evicted = 0;

  /** Mutable: a reload may resize the cache of live connections. */
  constructor(public capacity: number) {}

  /** Whether the server has `name` (asked once per use: counted as a cache hit or miss). */
  has(name: string): boolean {
    if (this.prepared.has(name)) {
      this.prepared.delete(name);
      this.prepared.set(name, true); // most recently used last
      this.hits += 1;
      return true;
    }
    const pending = this.pending.has(name);
    if (pending) this.hits += 1;
    else this.misses += 1;
    return pending;
  }

  /** Parse(name) was sent. */
  sent(name: string): void {
    this.pending.add(name);
  }

  /** ParseComplete for name arrived. */
  confirmed(name: string): void {
    this.pending.delete(name);
    this.prepared.set(name, true);
  }

  /** The Parse failed or was skipped after an error. */
  failed(name: string): void {
    this.pending.delete(name);
  }

  /** The server said the statement does not exist (dropped behind the pooler's back). */
  lost(name: string): void {
    this.pending.delete(name);
    this.prepared.delete(name);
  }

  /** Names to Close so the cache stays within capacity (oldest first). */
  evictions(): string[] {
    const out: string[] = [];
    const over = this.prepared.size + this.pending.size - this.capacity;
    if (over <= 0) return out;
    for (const name of this.prepared.keys()) {
      if (out.length >= over) break;
      out.push(name);
    }
    for (const name of out) this.prepared.delete(name);
    this.evicted += out.length;
    return out;
  }

  /** DISCARD ALL / DEALLOCATE ALL ran. */
  clear(): void {
    this.prepared.clear();
    this.pending.clear();
  }

  get size(): number {
    return this.prepared.size;
  }
}
