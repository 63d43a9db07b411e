// Traffic mirroring (PgCat's `mirrors = [[host, port, server_index]]`): every
// byte a server connection is sent is also sent to a connection of its own
// to the mirror, whose replies are read and thrown away.
//
// One mirror connection per server connection, as in PgCat: a server
// connection carries one client transaction at a time, so its mirror sees
// whole transactions in the same order.
//
// The client must never notice the mirror, so the copy is best effort:
// - while the mirror connects (or reconnects after a failure) traffic is
//   not copied; copying starts at the next statement that begins with the
//   server connection idle, so the mirror never sees half a transaction;
// - a mirror that falls behind (too many unanswered statements or too many
//   unsent bytes) is dropped; closing it makes its server roll back the
//   transaction it was in, and it reconnects after a pause.

import type { Logger } from 'pino';

/**
 * What a mirror needs of its server connection. The link is handed a way to
 * open one (ServerConnection.connect) rather than importing connection.ts,
 * which creates the links: one-way imports.
 */
export interface MirrorConnection {
  readonly closed: boolean;
  /** Statements sent and not yet answered. */
  readonly pending: number;
  readonly bufferedBytes: number;
  send(bytes: Buffer, syncs: number, unsynced: boolean): unknown;
  close(reason: string): void;
  onClose(listener: (reason: Error) => void): void;
}

/** Where the mirror is, and how to open a connection to it. */
export interface MirrorTarget<Options extends { host: string; port: number }> {
  options: Options;
  connect(options: Options): Promise<MirrorConnection>;
}

/** Unanswered statements after which a mirror counts as too slow. */
const MAX_PENDING = 1000;
/** Bytes buffered for the mirror's socket after which it counts as too slow. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/** Pause before connecting again to a mirror that failed or fell behind. */
const RECONNECT_DELAY_MS = 1000;

type State = 'connecting' | 'waiting' | 'copying' | 'closed';

export class MirrorLink<Options extends { host: string; port: number }> {
  private conn: MirrorConnection | null = null;
  private state: State = 'connecting';
  private retry: NodeJS.Timeout | null = null;

  constructor(
    private readonly target: MirrorTarget<Options>,
    private readonly log: Logger | null,
  ) {
    this.connect();
  }

  get address(): string {
    return `${this.target.options.host}:${this.target.options.port}`;
  }

  /**
   * Copy bytes about to be sent to the mirrored server. `atBoundary`: the
   * mirrored connection is idle, so these bytes start a new statement
   * outside any transaction (a safe place to start copying).
   */
  copy(bytes: Buffer, syncs: number, unsynced: boolean, atBoundary: boolean): void {
    if (this.state === 'waiting' && atBoundary) this.state = 'copying';
    if (this.state !== 'copying' || !this.conn) return;
    const conn = this.conn;
    if (conn.closed || conn.pending > MAX_PENDING || conn.bufferedBytes > MAX_BUFFERED_BYTES) {
      this.drop(conn.closed ? 'mirror connection closed' : 'mirror fell behind');
      return;
    }
    conn.send(bytes, syncs, unsynced);
  }

  close(): void {
    this.state = 'closed';
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.conn?.close('mirrored connection closed');
    this.conn = null;
  }

  private connect(): void {
    this.target.connect(this.target.options).then(
      (conn) => {
        if (this.state === 'closed') {
          conn.close('mirrored connection closed');
          return;
        }
        this.conn = conn;
        this.state = 'waiting';
        conn.onClose((reason) => {
          if (this.conn === conn && this.state !== 'closed') this.drop(reason.message);
        });
      },
      (err: Error) => {
        if (this.state === 'closed') return;
        this.log?.debug({ mirror: this.address, err: err.message }, 'mirror connection failed');
        this.scheduleReconnect();
      },
    );
  }

  private drop(reason: string): void {
    this.log?.warn({ mirror: this.address, reason }, 'mirror dropped; reconnecting');
    const conn = this.conn;
    this.conn = null;
    conn?.close(`mirror dropped: ${reason}`);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    this.state = 'connecting';
    this.retry ??= setTimeout(() => {
      this.retry = null;
      if (this.state !== 'closed') this.connect();
    }, RECONNECT_DELAY_MS);
    this.retry.unref();
  }
}
