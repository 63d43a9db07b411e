// The pooler process: owns the listening socket, the pool registry, the
// embedded backends, the model engine and the periodic tasks, and ties
// their lifecycles together (start, reload, shutdown). It is also what the
// admin console acts on (AdminContext). Logins and sessions are accept.ts's.

import net from 'node:net';
import type { SecureContext } from 'node:tls';
import { unwatchFile, watchFile } from 'node:fs';
import type { Config } from '../config/types.js';
import { logUnsupported } from '../config/keys.js';
import { loadConfig } from '../config/load.js';
import type { Logger } from './logger.js';
import { SqlState } from './protocol/codes.js';
import type { ClientSession } from './client/session.js';
import { PoolRegistry, type PoolEntry } from './pool/registry.js';
import { Pool } from './pool/pool.js';
import type { EmbeddingProvider } from './pgml/rewrite.js';
import { STATS_PERIOD_MS } from './stats/traffic.js';
import { RoleProber, ROLE_PROBE_INTERVAL_MS } from './pool/role-probe.js';
import { ExporterControl } from './stats/exporter-control.js';
import { EmbeddedBackends } from './embedded/backends.js';
import { Engine } from '../engine/engine.js';
import { engineBalancing } from '../engine/config.js';
import type { AdminClient, AdminContext } from './admin/context.js';
import { clientTlsContext } from './tls/client.js';
import { ClientAcceptor } from './accept.js';
import { Fleet, type FleetView } from './fleet/fleet.js';

const MAINTENANCE_INTERVAL_MS = 1000;

export class Pooler implements AdminContext {
  readonly startedAt = Date.now();
  /** The socket clients connect to (general.host:port). */
  private listener: net.Server | null = null;
  private readonly registry: PoolRegistry;
  readonly adminClients = new Set<AdminClient>();
  private readonly acceptor: ClientAcceptor;
  private readonly embedded: EmbeddedBackends;
  private timers: NodeJS.Timeout[] = [];
  private readonly roleProber: RoleProber;
  private readonly exporter: ExporterControl;
  private shuttingDown = false;
  /** The model engine (worker threads owning the [models.*]); started with the pooler, null before. */
  private engineRef: Engine | null = null;
  /** TLS identity for clients; rebuilt (files re-read) on every reload. */
  private clientTls: SecureContext | null = null;
  /** Poolers sharing state through Redis (general.redis_url); null without one. */
  private fleetRef: Fleet | null = null;

  constructor(
    private currentConfig: Config,
    private readonly log: Logger,
    readonly version: string,
    private readonly onShutdown: (graceful: boolean) => void = () => {},
  ) {
    this.embedded = new EmbeddedBackends(log);
    this.roleProber = new RoleProber(log);
    this.exporter = new ExporterControl(this, log);
    this.registry = new PoolRegistry({
      resolve: (host, port) => this.embedded.resolve(host, port),
      log,
      // Pools are made once the fleet (if any) has started: start() applies pools after Fleet.start.
      createPool: (settings) => this.fleetRef?.createPool(settings) ?? new Pool(settings),
    });
    this.acceptor = new ClientAcceptor(
      {
        config: () => this.currentConfig,
        registry: this.registry,
        admin: this,
        clientTls: () => this.clientTls,
        shuttingDown: () => this.shuttingDown,
      },
      log,
    );
  }

  get port(): number {
    const addr = this.listener?.address();
    return addr && typeof addr === 'object' ? addr.port : this.currentConfig.general.port;
  }

  async start(): Promise<void> {
    const config = this.currentConfig;
    logUnsupported(config, this.log);
    this.clientTls = clientTlsContext(config.general);
    await this.embedded.ensure(config);
    // Before listening: a model that cannot be loaded stops start-up.
    this.engineRef = await Engine.start(config.models, { log: this.log, loadBalancing: engineBalancing(Object.values(config.pools)) });
    this.fleetRef = Fleet.start(config.general, {
      port: () => this.port,
      clients: () => this.acceptor.sessions.size,
      serverConnections: () => [...this.registry.memberPools()].reduce((n, p) => n + p.counters.total, 0),
      clusters: () => this.pools().map((e) => e.cluster),
    }, this.log);
    this.applyPools(config);
    this.every(MAINTENANCE_INTERVAL_MS, () => {
      for (const pool of this.registry.memberPools()) pool.maintain();
    });
    this.every(ROLE_PROBE_INTERVAL_MS, () => this.probeRoles());
    this.probeRoles(); // now: role-auto servers are unknown (writes wait) until their first answer
    this.every(STATS_PERIOD_MS, () => {
      for (const pool of this.registry.memberPools()) pool.stats.roll();
    });
    this.watchConfig(config);
    const { host, port } = config.general;
    const listener = net.createServer({ noDelay: true }, (socket) => void this.acceptor.accept(socket));
    this.listener = listener;
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(port, host, () => resolve());
    });
    this.acceptor.listening(listener);
    this.log.info({ host, port: this.port }, 'PgLynx is listening');
    await this.exporter.sync(config);
  }

  // AdminContext.

  config(): Config {
    return this.currentConfig;
  }

  pools(): PoolEntry[] {
    return this.registry.all();
  }

  engine(): Engine | null {
    return this.engineRef;
  }

  fleet(): FleetView | null {
    return this.fleetRef;
  }

  clients(): ClientSession[] {
    return [...this.acceptor.sessions.values()];
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
    if (next.general.redis_url !== old.redis_url || next.general.fleet_lease_ttl_ms !== old.fleet_lease_ttl_ms) {
      this.log.warn('general.redis_url / fleet_* changes take effect after a restart');
    }
    logUnsupported(next, this.log);
    this.currentConfig = next;
    this.clientTls = clientTls;
    this.applyPools(next);
    this.probeRoles(); // new role-auto servers
    this.watchConfig(next);
    await this.exporter.sync(next);
    this.log.info({ pools: this.registry.size }, 'config reloaded');
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
      while (Date.now() < deadline && this.acceptor.sessions.size > 0) {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    // Listening until here, as PgCat: the admin console stays reachable
    // while transactions finish; other logins are refused (accept()).
    this.listener?.close();
    for (const s of this.clients()) s.terminate(SqlState.AdminShutdown, 'terminating connection due to administrator command');
    for (const pool of this.registry.memberPools()) pool.close();
    await this.exporter.close();
    await this.fleetRef?.close();
    await this.engineRef?.close();
    await this.embedded.stopAll();
    this.log.info('PgLynx stopped');
  }

  private matching(database?: string, user?: string): PoolEntry[] {
    return this.pools().filter((e) => (!database || e.poolName === database) && (!user || e.user.username === user));
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

  /** Entries for `config`; sessions follow their (database, user) to its new entry. */
  private applyPools(config: Config): void {
    const engine = this.engineRef;
    const pgml: EmbeddingProvider | null =
      Object.keys(config.models).length > 0 && engine ? (this.fleetRef?.embeddingProvider(engine) ?? engine) : null;
    const { removed } = this.registry.apply(config, pgml);
    // A client whose pool was removed keeps the old one, closed, until it leaves.
    for (const s of this.acceptor.sessions.values()) {
      const e = this.registry.get(s.identity.database, s.identity.user);
      if (e) s.rebind(e);
    }
    for (const pool of removed) pool.close();
  }
}
