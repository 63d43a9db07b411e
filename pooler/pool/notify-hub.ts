// LISTEN / NOTIFY in transaction mode (PgDog's way): a client's LISTEN is
// not sent on whichever server it borrows (the channel would go with that
// server, and a check-in UNLISTEN * would drop it); the pool keeps one
// connection of its own to the primary that LISTENs on every channel some
// client listens on, and hands each notification to those clients (each
// delivers it at its next idle point, as Postgres does). The connection is
// opened at the first LISTEN, outside pool_size, and opened again (every
// channel listened again) if it is lost.

import type { Logger } from 'pino';
import { Backend } from '../protocol/codes.js';
import { ServerConnection } from '../server/connection.js';
import type { ServerOptions } from '../server/options.js';
import { quoteIdent } from '../router/sql-quote.js';

/** A client that hears notifications. */
export interface NotificationListener {
  /** A whole NotificationResponse message for the client. */
  deliverNotification(message: Buffer): void;
}

/** Pause before opening a lost listener connection again. */
const RECONNECT_DELAY_MS = 1000;

export class NotifyHub {
  private conn: ServerConnection | null = null;
  private connecting: Promise<ServerConnection> | null = null;
  private readonly channels = new Map<string, Set<NotificationListener>>();
  /** LISTEN / UNLISTEN statements run one at a time on the connection. */
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  private retry: NodeJS.Timeout | null = null;

  constructor(
    private readonly options: () => ServerOptions,
    private readonly log: Logger | null,
  ) {}

  /** Channels someone listens on (SHOW, tests). */
  get channelCount(): number {
    return this.channels.size;
  }

  /** `who` listens on `channel`; resolves once the server listens too (a NOTIFY after that reaches it). */
  listen(channel: string, who: NotificationListener): Promise<void> {
    let set = this.channels.get(channel);
    if (!set) this.channels.set(channel, (set = new Set()));
    const first = set.size === 0;
    set.add(who);
    // Already listened by the server: still wait for what is in flight (an earlier LISTEN of the same channel).
    return this.run(first ? `LISTEN ${quoteIdent(channel)}` : null);
  }

  /** `who` stops listening on `channel` (null: on every channel). */
  unlisten(channel: string | null, who: NotificationListener): Promise<void> {
    const names = channel === null ? [...this.channels.keys()] : [channel];
    let sql = '';
    for (const name of names) {
      const set = this.channels.get(name);
      if (!set || !set.delete(who) || set.size > 0) continue;
      this.channels.delete(name);
      sql += `UNLISTEN ${quoteIdent(name)};`;
    }
    return this.run(sql || null);
  }

  close(): void {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.conn?.close('pool closed');
    this.conn = null;
  }

  private run(sql: string | null): Promise<void> {
    const next = this.chain.then(async () => {
      const conn = await this.connection();
      if (sql) await conn.query(sql);
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  private connection(): Promise<ServerConnection> {
    if (this.conn && !this.conn.closed) return Promise.resolve(this.conn);
    return (this.connecting ??= this.open().finally(() => (this.connecting = null)));
  }

  private async open(): Promise<ServerConnection> {
    if (this.closed) throw new Error('pool closed');
    const conn = await ServerConnection.connect(this.options());
    conn.notificationSink = (message) => this.dispatch(message);
    conn.onClose((reason) => this.lost(conn, reason));
    // Channels listened before a lost connection came back.
    if (this.channels.size > 0) await conn.query([...this.channels.keys()].map((c) => `LISTEN ${quoteIdent(c)}`).join(';'));
    this.conn = conn;
    return conn;
  }

  private lost(conn: ServerConnection, reason: Error): void {
    if (this.conn !== conn || this.closed) return;
    this.conn = null;
    this.log?.warn({ reason: reason.message }, 'LISTEN connection lost; notifications until it is back are missed');
    this.reconnectLater();
  }

  /** Open the connection again (listening on every channel) while someone listens, until it works. */
  private reconnectLater(): void {
    if (this.channels.size === 0 || this.retry || this.closed) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      if (!this.closed && this.channels.size > 0) void this.run(null).catch(() => this.reconnectLater());
    }, RECONNECT_DELAY_MS);
    this.retry.unref();
  }

  /** A NotificationResponse from the server: to every client on its channel. */
  private dispatch(message: Buffer): void {
    // Body: process id (int32), channel (cstring), payload (cstring).
    if (message[0] !== Backend.NotificationResponse) return;
    const end = message.indexOf(0, 9);
    if (end < 0) return;
    const set = this.channels.get(message.toString('utf8', 9, end));
    if (set) for (const who of set) who.deliverNotification(message);
  }
}
