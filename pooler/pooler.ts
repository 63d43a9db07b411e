// The pooler process: owns the listening socket, the pools, the embedded
// backends and every client session, and ties their lifecycles together.
// It is also what the admin console acts on (AdminContext).

import net from 'node:net';
import type { SecureContext } from 'node:tls';
import { randomInt } from 'node:crypto';
import { unwatchFile, watchFile } from 'node:fs';
import type { Config } from '../config/types.js';
import { logUnsupported } from '../config/keys.js';
import { loadConfig } from '../config/load.js';
import type { Logger } from './logger.js';
import { SqlState } from './protocol/codes.js';
import { errorResponse } from './protocol/messages/error.js';
import { clientLogin, greeting, LoginRefused, type LoggedIn, type LoginDirectory, type LoginEntry } from './client/login.js';
import { ClientSession } from './client/session.js';
import { authQueryTarget, passthroughEntry, poolKey, reconcilePools, usesAuthQuery, type PoolEntry } from './pools.js';
import { authQueryEntry, fetchSecret } from './auth/auth-query.js';
import { AuthQueryCache } from './auth/auth-query-cache.js';
import { trackedName } from './server/params.js';
import type { Pool } from './pool/pool.js';
import type { EmbeddingProvider } from './pgml/rewrite.js';
import { STATS_PERIOD_MS } from './stats/traffic.js';
import { RoleProber, ROLE_PROBE_INTERVAL_MS } from './pool/role-probe.js';
import { startPrometheusExporter, type PrometheusExporter } from './stats/prometheus.js';
import { EmbeddedBackends } from './embedded/backends.js';
import { Engine } from '../engine/engine.js';
import { engineBalancing } from '../engine/config.js';
import { AdminSession } from './admin/session.js';
import { ADMIN_DATABASES, type AdminClient, type AdminContext } from './admin/context.js';
import { scramSecretFromPassword } from './auth/scram-server.js';
import { clientTlsContext } from './tls/client.js';
import { ClientSlots } from './client/admission.js';

const MAINTENANCE_INTERVAL_MS = 1000;

/** What the admin console reports as server parameters (as PgCat does). */
const ADMIN_PARAMETERS = new Map([
  ['server_version', '15.0 (PgLynx)'],
  ['server_encoding', 'UTF8'],
  ['client_encoding', 'UTF8'],
  ['DateStyle', 'ISO, MDY'],
  ['TimeZone', 'Etc/UTC'],
  ['standard_conforming_strings', 'on'],
  ['integer_datetimes', 'on'],
  ['application_name', ''],
]);

export class Pooler implements AdminContext {
  readonly startedAt = Date.now();
  private server: net.Server | null = null;
  private poolMap = new Map<string, PoolEntry>();
  private readonly sessions = new Map<number, ClientSession>();
  readonly adminClients = new Set<AdminClient>();
  private readonly embedded: EmbeddedBackends;
  private timers: NodeJS.Timeout[] = [];
  private readonly roleProber: RoleProber;
  private shuttingDown = false;
  /** What serves pgml.embed (the model engine), null when no models are configured. */
  embeddingProvider: EmbeddingProvider | null = null;
  /** The model engine (worker threads owning the [models.*]); started with the pooler, null before. */
  private engineRef: Engine | null = null;
  private adminScram: { password: string; secret: ReturnType<typeof scramSecretFromPassword> } | null = null;
  /** Secrets fetched by auth_query, kept briefly. */
  private readonly authQuery: AuthQueryCache;
  /** TLS identity for clients; rebuilt (files re-read) on every reload. */
  private clientTls: SecureContext | null = null;
  /** The Prometheus exporter and the port it was configured with (0 may have become another). */
  private exporter: { running: PrometheusExporter; configuredPort: number } | null = null;
  private exporterChange: Promise<void> = Promise.resolve();
  /** max_client_conn: client connections held, from accept to close. */
  private readonly clientSlots = new ClientSlots();

  constructor(
    private currentConfig: Config,
    private readonly log: Logger,
    readonly version: string,
    private readonly onShutdown: (graceful: boolean) => void = () => {},
  ) {
    this.embedded = new EmbeddedBackends(log);
    this.roleProber = new RoleProber(log);
    this.authQuery = new AuthQueryCache(log, fetchSecret);
  }

  get port(): number {
    const addr = this.server?.address();
    return addr && typeof addr === 'object' ? addr.port : this.currentConfig.general.port;
  }

  async start(): Promise<void> {
    const config = this.currentConfig;
    logUnsupported(config, this.log);
    this.clientTls = clientTlsContext(config.general);
    await this.embedded.ensure(config);
    // Before listening: a model that cannot be loaded stops start-up.
    this.engineRef = await Engine.start(config.models, { log: this.log, loadBalancing: engineBalancing(Object.values(config.pools)) });
    this.embeddingProvider = Object.keys(config.models).length > 0 ? this.engineRef : null;
    this.applyPools(config);
    this.every(MAINTENANCE_INTERVAL_MS, () => {
      for (const pool of this.memberPools()) pool.maintain();
    });
    this.every(ROLE_PROBE_INTERVAL_MS, () => this.probeRoles());
    this.probeRoles(); // now: role-auto servers are unknown (writes wait) until their first answer
    this.every(STATS_PERIOD_MS, () => {
      for (const pool of this.memberPools()) pool.stats.roll();
    });
    this.watchConfig(config);
    const { host, port } = config.general;
    this.server = net.createServer({ noDelay: true }, (socket) => void this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    this.log.info({ host, port: this.port }, 'PgLynx is listening');
    await this.syncExporter(config);
  }

  // AdminContext.

  config(): Config {
    return this.currentConfig;
  }

  pools(): PoolEntry[] {
    return [...this.poolMap.values()];
  }

  engine(): Engine | null {
    return this.engineRef;
  }

  clients(): ClientSession[] {
    return [...this.sessions.values()];
  }

  /** Re-read the config file; the old config keeps serving when the new one is invalid. */
  async reload(): Promise<string | null> {
    let next: Config;
    let clientTls: SecureContext | null;
    try {
      next = await loadConfig(this.currentConfig.path);
      // Before anything changes: bad certificate files reject the reload.
      clientTls = clientTlsContext(next.general);
      await this.embedded.ensure(next);
      // Last, as it commits: a model that cannot be loaded rejects the reload and the old ones keep serving.
      await this.engineRef?.reload(next.models, { loadBalancing: engineBalancing(Object.values(next.pools)) });
    } catch (err) {
      const message = (err as Error).message;
      this.log.error({ err: message }, 'config reload rejected; the previous config keeps serving');
      return message;
    }
    const old = this.currentConfig.general;
    if (next.general.host !== old.host || next.general.port !== old.port) {
      this.log.warn('general.host / general.port changes take effect after a restart');
    }
    logUnsupported(next, this.log);
    this.currentConfig = next;
    this.clientTls = clientTls;
    this.embeddingProvider = Object.keys(next.models).length > 0 ? this.engineRef : null;
    this.applyPools(next);
    this.probeRoles(); // new role-auto servers
    this.watchConfig(next);
    await this.syncExporter(next);
    this.log.info({ pools: this.poolMap.size }, 'config reloaded');
    return null;
  }

  async pause(database?: string, user?: string): Promise<void> {
    await Promise.all(this.matching(database, user).flatMap((e) => e.cluster.members.map((m) => m.pool.pause())));
  }

  resume(database?: string, user?: string): void {
    for (const e of this.matching(database, user)) for (const m of e.cluster.members) m.pool.resume();
  }

  shutdown(): void {
    this.onShutdown(true);
  }

  /** Stop accepting; finish in-flight transactions up to shutdown_timeout when graceful. */
  async stop(graceful: boolean): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const t of this.timers) clearInterval(t);
    this.roleProber.close();
    unwatchFile(this.currentConfig.path);
    if (graceful) {
      // Idle clients leave now; the others right after their transaction.
      for (const s of this.clients()) s.drain();
      const deadline = Date.now() + this.currentConfig.general.shutdown_timeout;
      while (Date.now() < deadline && this.sessions.size > 0) {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    // Listening until here, as PgCat: the admin console stays reachable
    // while transactions finish; other logins are refused (accept()).
    this.server?.close();
    for (const s of this.clients()) s.terminate(SqlState.AdminShutdown, 'terminating connection due to administrator command');
    for (const pool of this.memberPools()) pool.close();
    await this.syncExporter(null);
    await this.engineRef?.close();
    await this.embedded.stopAll();
    this.log.info('PgLynx stopped');
  }

  /** Every server's pool of every (pool, user): primaries and replicas. */
  private memberPools(): Set<Pool> {
    return new Set(this.pools().flatMap((e) => e.cluster.members.map((m) => m.pool)));
  }

  private matching(database?: string, user?: string): PoolEntry[] {
    return this.pools().filter((e) => (!database || e.poolName === database) && (!user || e.user.username === user));
  }

  /**
   * Start, stop or move the Prometheus exporter to match `config` (null:
   * stop it). Changes run one after another, since reloads may overlap. A
   * port that cannot be bound is logged and the pooler carries on, as PgCat
   * does; the next reload tries again.
   */
  private syncExporter(config: Config | null): Promise<void> {
    const change = async (): Promise<void> => {
      const g = config && !this.shuttingDown ? config.general : null;
      const wanted = g?.enable_prometheus_exporter ? g.prometheus_exporter_port : null;
      if (this.exporter && this.exporter.configuredPort === wanted) return;
      if (this.exporter) {
        const { running } = this.exporter;
        this.exporter = null;
        await running.close();
        this.log.info('Prometheus exporter stopped');
      }
      if (!g || wanted === null) return;
      try {
        const running = await startPrometheusExporter(this, { host: g.host, port: wanted, log: this.log });
        this.exporter = { running, configuredPort: wanted };
      } catch (err) {
        this.log.error({ host: g.host, port: wanted, err: (err as Error).message }, 'could not start the Prometheus exporter');
      }
    };
    this.exporterChange = this.exporterChange.then(change);
    return this.exporterChange;
  }

  private probeRoles(): void {
    this.roleProber.tick(this.pools().map((e) => e.cluster), this.currentConfig.general.healthcheck_timeout);
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.timers.push(t);
  }

  /** PgCat's `autoreload`: poll the config file every N ms and reload on change. */
  private watchConfig(config: Config): void {
    unwatchFile(config.path);
    const interval = config.general.autoreload;
    if (!interval) return;
    watchFile(config.path, { interval, persistent: false }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs) void this.reload();
    });
  }

  private applyPools(config: Config): void {
    const { pools, removed } = reconcilePools(config, this.poolMap, (host, port) => this.embedded.resolve(host, port), this.log);
    for (const e of pools.values()) e.session.pgml = this.embeddingProvider;
    this.poolMap = pools;
    // Clients follow their pool to its new incarnation (or keep the old one,
    // closed, until they leave, when their pool was removed).
    for (const s of this.sessions.values()) {
      const e = pools.get(poolKey(s.identity.database, s.identity.user));
      if (e) {
        s.cluster = e.cluster;
        // A client holding a server keeps its pool until it gives the server back.
        if (!s.server) s.pool = e.pool;
        s.settings = e.session;
      }
    }
    for (const pool of removed) pool.close();
  }

  /** What one accepted client's login needs; `release` gives back its max_client_conn slot. */
  private directory(release: () => void): LoginDirectory {
    return {
      lookup: (database, user) => {
        const g = this.currentConfig.general;
        if (ADMIN_DATABASES.has(database) && user === g.admin_username) {
          if (this.adminScram?.password !== g.admin_password) {
            this.adminScram = { password: g.admin_password, secret: scramSecretFromPassword(g.admin_password) };
          }
          return { password: g.admin_password, scram: this.adminScram.secret, authMethod: g.admin_auth_type };
        }
        const e = this.poolMap.get(poolKey(database, user));
        if (usesAuthQuery(this.currentConfig, database, e)) return this.authQueryLogin(database, user);
        return e ? { password: e.user.password, scram: e.scram, authMethod: e.authMethod } : null;
      },
      cancel: (pid, secret) => this.cancel(pid, secret),
      tls: () => this.clientTls,
      authType: () => this.currentConfig.general.auth_type,
      loginTimeout: () => this.currentConfig.general.client_login_timeout,
      admit: (database, user) => {
        const g = this.currentConfig.general;
        if (this.clientSlots.allows(g.max_client_conn, ADMIN_DATABASES.has(database) && user === g.admin_username)) return true;
        this.log.warn({ max_client_conn: g.max_client_conn }, 'max_client_conn reached: a new client is refused');
        // A refused client no longer counts, even before it closes.
        release();
        return false;
      },
    };
  }

  /**
   * auth_query: authenticate against the secret the server stores for the
   * user; once the client is in, its pool (created on demand) logs into the
   * server as that user with what the login revealed.
   */
  private async authQueryLogin(database: string, user: string): Promise<LoginEntry> {
    const resolve = (host: string, port: number): { host: string; port: number } => this.embedded.resolve(host, port);
    const target = authQueryTarget(this.currentConfig, database, resolve);
    return authQueryEntry(this.authQuery, target, database, user, (credential) => {
      const entry = passthroughEntry(this.currentConfig, database, user, credential, this.poolMap, resolve, this.log);
      if (entry) this.poolMap.set(poolKey(database, user), entry);
    });
  }

  private async accept(socket: net.Socket): Promise<void> {
    const g = this.currentConfig.general;
    socket.setNoDelay(true);
    if (g.tcp_keepalives_idle > 0) socket.setKeepAlive(true, g.tcp_keepalives_idle * 1000);
    socket.on('error', () => socket.destroy());
    const release = this.clientSlots.take();
    socket.once('close', release);
    const peer = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    let who: LoggedIn | null;
    try {
      who = await clientLogin(socket, this.directory(release));
    } catch (err) {
      // The client only learnt that its password was wrong; the log says why.
      if (err instanceof LoginRefused && err.detail) this.log.info({ peer, ...err.detail }, 'client authentication failed');
      else if (err instanceof LoginRefused) this.log.debug({ peer, reason: err.message }, 'client login refused');
      else this.log.error({ peer, err }, 'client login failed');
      return;
    }
    if (!who) return; // a CancelRequest
    socket = who.socket; // the TLS socket when the client negotiated TLS
    const isAdmin = ADMIN_DATABASES.has(who.database) && who.user === g.admin_username;
    if (this.shuttingDown && !isAdmin) {
      socket.end(errorResponse(SqlState.AdminShutdown, 'the pooler is shutting down', 'FATAL'));
      return;
    }
    if (isAdmin) {
      // A process id as a client gets, so SHOW CLIENTS can name the session (cancelling it does nothing).
      const processId = this.newProcessId();
      socket.write(greeting(ADMIN_PARAMETERS, processId, randomInt(-0x80000000, 0x7fffffff)));
      const applicationName = who.startupParams.get('application_name') ?? '';
      new AdminSession(socket, this, { processId, database: who.database, user: who.user, applicationName, connectedAt: Date.now() }).start(who.leftover);
      return;
    }
    const entry = this.poolMap.get(poolKey(who.database, who.user));
    if (!entry) {
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
    this.startSession(socket, who, entry, serverParams, peer);
  }

  private startSession(socket: net.Socket, who: LoggedIn, entry: PoolEntry, serverParams: Map<string, string>, peer: { address: string; port: number }): void {
    const g = this.currentConfig.general;
    const processId = this.newProcessId();
    const secretKey = randomInt(-0x80000000, 0x7fffffff);
    const params = new Map(serverParams);
    for (const [k, v] of who.trackedParams) params.set(k, v);
    // What the client was told is what every server it borrows must match.
    const tracked = new Map<string, string>();
    for (const [k, v] of params) if (trackedName(k) === k) tracked.set(k, v);
    const identity = {
      database: who.database,
      user: who.user,
      applicationName: who.trackedParams.get('application_name') ?? '',
      remoteAddress: peer.address,
      remotePort: peer.port,
    };
    const session = new ClientSession(socket, entry.cluster, entry.pool, identity, tracked, processId, secretKey, entry.session, this.log, (s) => {
      this.sessions.delete(s.processId);
      if (this.currentConfig.general.log_client_disconnections) this.log.info({ peer, user: who.user, database: who.database }, 'client disconnected');
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
