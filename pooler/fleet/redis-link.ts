// The fleet's connections to Redis (ioredis): one for commands, one for
// pub/sub (a subscribed connection can run nothing else).
//
// Redis is a helper, never a dependency of a query: commands are refused at
// once while the link is down (no offline queue, no retries per command)
// and time out quickly when Redis hangs, so every caller falls back to
// what it knows locally. Reconnection runs in the background forever; the
// loss is logged once and the return once, not every retry.

import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../logger.js';

/** Longest a fleet command (heartbeat, publish) may take before it counts as failed. */
export const COMMAND_TIMEOUT_MS = 500;
/** Reconnect backoff: 50 ms, growing to this. */
const MAX_RECONNECT_DELAY_MS = 1000;

/** Resolves with `promise`'s value, or with `fallback` after `ms` (the promise's later outcome is ignored). */
export function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)));
  return Promise.race([promise.catch(() => fallback), late]).finally(() => clearTimeout(timer));
}

/** Credentials are not logged. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

function options(): RedisOptions {
  return {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
    commandTimeout: COMMAND_TIMEOUT_MS,
    // Subscriptions are renewed by RedisLink on every 'ready' instead.
    autoResubscribe: false,
    retryStrategy: (times) => Math.min(50 * times, MAX_RECONNECT_DELAY_MS),
    // A closed link must not hold the process open.
    lazyConnect: false,
  };
}

export class RedisLink {
  readonly commands: Redis;
  readonly subscriber: Redis;
  private up = false;
  /** True once the first outage (or failure to connect at start) was logged; reset when Redis returns. */
  private lossLogged = false;
  private closed = false;
  private readonly readyHandlers: (() => void)[] = [];

  constructor(
    readonly url: string,
    private readonly log: Logger,
  ) {
    this.commands = new Redis(url, options());
    this.subscriber = new Redis(url, options());
    for (const client of [this.commands, this.subscriber]) {
      // ioredis emits 'error' on every failed reconnect; without a listener it would throw.
      client.on('error', (err: Error) => this.lost(err.message));
      client.on('end', () => this.lost('connection closed'));
      client.on('close', () => this.lost('connection closed'));
      client.on('ready', () => this.ready());
    }
  }

  /** Both connections are up: what the fleet says and reads is current. */
  get connected(): boolean {
    return this.commands.status === 'ready' && this.subscriber.status === 'ready';
  }

  /** `fn` runs each time the link (re)connects: subscribe again, announce the member at once. */
  onReady(fn: () => void): void {
    this.readyHandlers.push(fn);
    if (this.connected) fn();
  }

  private ready(): void {
    if (!this.connected || this.closed) return;
    if (!this.up) {
      this.up = true;
      if (this.lossLogged) this.log.info({ redis: redactUrl(this.url) }, 'fleet: Redis is back; this pooler rejoins the fleet');
      else this.log.info({ redis: redactUrl(this.url) }, 'fleet: connected to Redis');
      this.lossLogged = false;
    }
    for (const fn of this.readyHandlers) fn();
  }

  private lost(reason: string): void {
    if (this.closed) return;
    this.up = false;
    if (this.lossLogged) return;
    this.lossLogged = true;
    this.log.warn(
      { redis: redactUrl(this.url), reason },
      'fleet: Redis unreachable; serving on local state (bans, cache) and retrying in the background',
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    this.commands.disconnect();
    this.subscriber.disconnect();
  }
}
