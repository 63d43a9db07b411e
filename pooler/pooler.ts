// The pooler process: owns the listening socket, the pools, the embedded
// backends and every client session, and ties their lifecycles together.

import net from 'node:net';
import { dirname } from 'node:path';
import { randomInt } from 'node:crypto';
import type { Config } from '../config/types.js';
import { logUnsupported } from '../config/keys.js';
import type { Logger } from './logger.js';
import { SqlState } from './protocol/codes.js';
import { errorResponse } from './protocol/messages/error.js';
import { clientLogin, greeting, LoginRefused, type LoggedIn } from './client/login.js';
import { ClientSession } from './client/session.js';
import { poolKey, reconcilePools, type PoolEntry } from './pools.js';
import { trackedName } from './server/params.js';
import { STATS_PERIOD_MS } from './stats/traffic.js';
import { parseEmbeddedHost, startEmbeddedBackend, type EmbeddedBackend } from './embedded/pglite-backend.js';

const MAINTENANCE_INTERVAL_MS = 1000;

export class Pooler {
  private server: net.Server | null = null;
  private pools = new Map<string, PoolEntry>();
  private readonly sessions = new Map<number, ClientSession>();
  private readonly embedded = new Map<string, EmbeddedBackend>();
  private maintenance: NodeJS.Timeout | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  private shuttingDown = false;

  constructor(
    private config: Config,
    private readonly log: Logger,
  ) {}

  get port(): number {
    const addr = this.server?.address();
    return addr && typeof addr === 'object' ? addr.port : this.config.general.port;
  }

  async start(): Promise<void> {
    logUnsupported(this.config, this.log);
    await this.startEmbeddedBackends(this.config);
    this.applyPools(this.config);
    this.maintenance = setInterval(() => {
      for (const e of this.pools.values()) e.pool.maintain();
    }, MAINTENANCE_INTERVAL_MS);
    this.maintenance.unref();
    this.statsTimer = setInterval(() => {
      for (const e of this.pools.values()) e.pool.stats.roll();
    }, STATS_PERIOD_MS);
    this.statsTimer.unref();
    const { host, port } = this.config.general;
    this.server = net.createServer({ noDelay: true }, (socket) => void this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    this.log.info({ host, port: this.port }, 'PgLynx is listening');
  }

  /** Stop accepting; finish in-flight transactions up to shutdown_timeout when graceful. */
  async shutdown(graceful: boolean): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.server?.close();
    if (this.maintenance) clearInterval(this.maintenance);
    if (this.statsTimer) clearInterval(this.statsTimer);
    if (graceful) {
      const deadline = Date.now() + this.config.general.shutdown_timeout;
      while (Date.now() < deadline && [...this.sessions.values()].some((s) => s.server !== null)) {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    for (const s of [...this.sessions.values()]) s.terminate(SqlState.AdminShutdown, 'terminating connection due to administrator command');
    for (const e of this.pools.values()) e.pool.close();
    await Promise.all([...this.embedded.values()].map((b) => b.stop()));
    this.log.info('PgLynx stopped');
  }

  private async startEmbeddedBackends(config: Config): Promise<void> {
    const baseDir = dirname(config.path);
    for (const pc of Object.values(config.pools)) {
      for (const shard of Object.values(pc.shards)) {
        for (const s of shard.servers) {
          const dir = parseEmbeddedHost(s.host, baseDir);
          if (!dir || this.embedded.has(s.host)) continue;
          const backend = await startEmbeddedBackend(dir, { log: this.log });
          this.embedded.set(s.host, backend);
          this.log.info({ dataDir: backend.dataDir, port: backend.port }, 'embedded PGlite backend started');
        }
      }
    }
  }

  private applyPools(config: Config): void {
    const resolve = (host: string, port: number): { host: string; port: number } => {
      const b = this.embedded.get(host);
      return b ? { host: b.host, port: b.port } : { host, port };
    };
    const { pools, removed } = reconcilePools(config, this.pools, resolve);
    this.pools = pools;
    for (const e of removed) e.pool.close();
  }

  private async accept(socket: net.Socket): Promise<void> {
    socket.setNoDelay(true);
    if (this.config.general.tcp_keepalives_idle > 0) socket.setKeepAlive(true, this.config.general.tcp_keepalives_idle * 1000);
    socket.on('error', () => socket.destroy());
    const g = this.config.general;
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    let who: LoggedIn | null;
    try {
      who = await clientLogin(socket, {
        lookup: (database, user) => {
          const e = this.pools.get(poolKey(database, user));
          return e ? { password: e.user.password, scram: e.scram, authMethod: e.authMethod } : null;
        },
        cancel: (pid, secret) => this.cancel(pid, secret),
      });
    } catch (err) {
      if (err instanceof LoginRefused) this.log.info({ peer, reason: err.message }, 'client login refused');
      else this.log.error({ peer, err }, 'client login failed');
      return;
    }
    if (!who) return; // a CancelRequest
    const entry = this.pools.get(poolKey(who.database, who.user));
    if (!entry || this.shuttingDown) {
      socket.end();
      return;
    }
    let serverParams: Map<string, string>;
    try {
      serverParams = await entry.pool.ensureServerParams();
    } catch (err) {
      socket.end(errorResponse(SqlState.ConnectionFailure, `could not connect to server: ${(err as Error).message}`, 'FATAL'));
      return;
    }
    const processId = this.newProcessId();
    const secretKey = randomInt(-0x80000000, 0x7fffffff);
    const params = new Map(serverParams);
    for (const [k, v] of who.trackedParams) params.set(k, v);
    // What the client was told is what every server it borrows must match.
    const tracked = new Map<string, string>();
    for (const [k, v] of params) if (trackedName(k) === k) tracked.set(k, v);
    const session = new ClientSession(socket, entry.pool, tracked, processId, secretKey, entry.session, this.log, (s) => {
      this.sessions.delete(s.processId);
      if (g.log_client_disconnections) this.log.info({ peer, user: who!.user, database: who!.database }, 'client disconnected');
    });
    this.sessions.set(processId, session);
    if (g.log_client_connections) this.log.info({ peer, user: who.user, database: who.database }, 'client connected');
    socket.write(greeting(params, processId, secretKey));
    session.start(who.leftover);
  }

  private newProcessId(): number {
    for (;;) {
      const id = randomInt(1, 0x7fffffff);
      if (!this.sessions.has(id)) return id;
    }
  }

  /** CancelRequest: only the holder of a session's secret key may cancel its query. */
  private cancel(processId: number, secretKey: number): void {
    const s = this.sessions.get(processId);
    if (!s || s.secretKey !== secretKey) {
      this.log.debug({ processId }, 'cancel request for unknown key ignored');
      return;
    }
    void s.cancel();
  }
}
