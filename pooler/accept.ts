// From an accepted socket to a running session: the login (password,
// auth_query, max_client_conn, TLS), then an admin console session or a
// client session bound to its pool entry. Keeps the sessions by process id,
// for cancel requests and for the admin console.

import type net from 'node:net';
import type { SecureContext } from 'node:tls';
import { randomInt } from 'node:crypto';
import type { Config } from '../config/types.js';
import type { Logger } from './logger.js';
import { SqlState } from './protocol/codes.js';
import { errorResponse } from './protocol/messages/error.js';
import { clientLogin, LoginRefused, type LoggedIn, type LoginDirectory } from './client/login.js';
import { greeting, greetingFrom, sharedGreeting } from './client/greeting.js';
import type { LoginEntry } from './auth/login-entry.js';
import { ClientSession } from './client/session.js';
import { ClientSlots } from './client/admission.js';
import type { PoolEntry, PoolRegistry } from './pool/registry.js';
import { authQueryEntry, fetchSecret } from './auth/auth-query.js';
import { AuthQueryCache } from './auth/auth-query-cache.js';
import { scramSecretFromPassword, type ScramSecret } from './auth/scram-server.js';
import { AdminSession } from './admin/session.js';
import { ADMIN_DATABASES, type AdminContext } from './admin/context.js';

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

/** What accepting clients reads from the pooler. */
export interface AcceptorHost {
  config(): Config;
  readonly registry: PoolRegistry;
  /** What an admin console session acts on. */
  readonly admin: AdminContext;
  /** TLS identity for clients (null: no TLS); rebuilt on reload. */
  clientTls(): SecureContext | null;
  /** True once shutdown began: only the admin console may still log in. */
  shuttingDown(): boolean;
}

type Peer = { address: string; port: number };

/** The libuv handle of a listening socket, as far as keepalive goes (Node's internal `_handle`). */
interface KeepAliveHandle {
  setKeepAlive?(enable: boolean, delaySeconds: number): number;
}

/** How long after the listener's keepalive setting changed sockets still in its accept queue may come (they have the old one). */
const KEEPALIVE_SETTLE_MS = 5000;

/** A socket's 'error' listener (shared: no closure per connection); 'close' follows. */
function destroyOnError(this: net.Socket): void {
  this.destroy();
}

export class ClientAcceptor {
  /** Logged-in client sessions by process id (not admin ones). */
  readonly sessions = new Map<number, ClientSession>();
  /** max_client_conn: client connections held, from accept to close. */
  private readonly slots = new ClientSlots();
  /** Secrets fetched by auth_query, kept briefly. */
  private readonly authQuery: AuthQueryCache;
  private adminScram: { password: string; secret: ScramSecret } | null = null;
  /** What every login reads (built once: nothing in it is per connection). */
  private readonly directory: LoginDirectory;
  /** The listening socket, when its accepted sockets inherit its keepalive settings (Linux). */
  private listener: KeepAliveHandle | null = null;
  /** tcp_keepalives_idle (s) set on the listener, so accepted sockets start with it (null: set per socket). */
  private listenerKeepAlive: number | null = null;
  /** Until this Date.now() (0: not), after the listener's keepalive changed, accepted sockets are set on their own. */
  private keepAliveSettling = 0;
  /** The listener's setting before that change, which those sockets may have inherited. */
  private keepAliveBefore: number | null = null;

  constructor(
    private readonly host: AcceptorHost,
    private readonly log: Logger,
  ) {
    this.authQuery = new AuthQueryCache(log, fetchSecret);
    this.directory = this.loginDirectory();
  }

  /**
   * Clients connect to `listener`. On Linux a TCP socket accepted from a
   * listening one inherits its keepalive settings (SO_KEEPALIVE and the
   * TCP_KEEP* options, timer armed), so tcp_keepalives_idle is set there
   * once rather than with four setsockopt calls per connection.
   */
  listening(listener: net.Server): void {
    const handle = (listener as unknown as { _handle?: KeepAliveHandle })._handle;
    this.listener = process.platform === 'linux' && typeof handle?.setKeepAlive === 'function' ? handle : null;
    this.listenerKeepAlive = null;
  }

  /** tcp_keepalives_idle (s; 0: off) on `socket`: inherited from the listener, or set on it. */
  private keepAlive(socket: net.Socket, idle: number): void {
    if (this.listenerKeepAlive === idle) {
      if (this.keepAliveSettling === 0) return; // the usual case: no system call
      if (Date.now() > this.keepAliveSettling) {
        this.keepAliveSettling = 0;
        return;
      }
    } else if (this.listener) {
      this.keepAliveBefore = this.listenerKeepAlive;
      // The listener gets it for the sockets whose handshake completes from now on (libuv: 0 on success).
      if (this.listener.setKeepAlive!(idle > 0, idle) === 0) this.listenerKeepAlive = idle;
      else this.listener = this.listenerKeepAlive = null; // per socket from now on
      // Those already in the accept queue kept the old setting, and libuv accepts one connection
      // per turn of the event loop: for a while, every accepted socket is set on its own.
      this.keepAliveSettling = Date.now() + KEEPALIVE_SETTLE_MS;
    }
    if (idle > 0) socket.setKeepAlive(true, idle * 1000);
    // Node skips a bare `false` on a socket it never set; this one may have inherited keepalive.
    else if (this.keepAliveBefore !== null && this.keepAliveBefore > 0) socket.setKeepAlive(true, 1000).setKeepAlive(false);
  }

  async accept(socket: net.Socket): Promise<void> {
    const g = this.host.config().general;
    socket.setNoDelay(true); // no system call: the listener's noDelay set it already
    this.keepAlive(socket, g.tcp_keepalives_idle);
    socket.on('error', destroyOnError);
    const release = this.slots.take();
    socket.on('close', release);
    const peer = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    let who: LoggedIn | null;
    try {
      who = await clientLogin(socket, this.directory, release);
    } catch (err) {
      // The client only learnt that its password was wrong; the log says why.
      if (err instanceof LoginRefused && err.detail) this.log.info({ peer, ...err.detail }, 'client authentication failed');
      else if (err instanceof LoginRefused) this.log.debug({ peer, reason: err.message }, 'client login refused');
      else this.log.error({ peer, err }, 'client login failed');
      return;
    }
    if (!who) return; // a CancelRequest
    socket = who.socket; // the TLS socket when the client negotiated TLS
    const isAdmin = this.isAdmin(who.database, who.user);
    if (this.host.shuttingDown() && !isAdmin) {
      socket.end(errorResponse(SqlState.AdminShutdown, 'the pooler is shutting down', 'FATAL'));
      return;
    }
    if (isAdmin) {
      // A process id as a client gets, so SHOW CLIENTS can name the session (cancelling it does nothing).
      const processId = this.newProcessId();
      socket.write(greeting(ADMIN_PARAMETERS, processId, randomInt(-0x80000000, 0x7fffffff)));
      const applicationName = who.startupParams.get('application_name') ?? '';
      new AdminSession(socket, this.host.admin, { processId, database: who.database, user: who.user, applicationName, connectedAt: Date.now() }).start(who.leftover);
      return;
    }
    const entry = this.host.registry.get(who.database, who.user);
    if (!entry) {
      socket.end();
      return;
    }
    // Known once the pool's first server connected: no promise to wait on.
    let serverParams = entry.pool.serverParams;
    if (!serverParams) {
      try {
        serverParams = await entry.pool.ensureServerParams();
      } catch (err) {
        socket.end(errorResponse(SqlState.ConnectionFailure, `could not connect to server: ${(err as Error).message}`, 'FATAL'));
        return;
      }
    }
    this.startSession(socket, who, entry, serverParams, peer);
  }

  private isAdmin(database: string, user: string): boolean {
    return ADMIN_DATABASES.has(database) && user === this.host.config().general.admin_username;
  }

  /** What a client's login needs from the pooler (the same for every login). */
  private loginDirectory(): LoginDirectory {
    return {
      lookup: (database, user) => {
        const g = this.host.config().general;
        if (this.isAdmin(database, user)) {
          if (this.adminScram?.password !== g.admin_password) {
            this.adminScram = { password: g.admin_password, secret: scramSecretFromPassword(g.admin_password) };
          }
          return { password: g.admin_password, scram: this.adminScram.secret, authMethod: g.admin_auth_type };
        }
        const registry = this.host.registry;
        if (registry.usesAuthQuery(database, user)) return this.authQueryLogin(database, user);
        const e = registry.get(database, user);
        return e ? { password: e.auth.password, scram: e.auth.scram, authMethod: e.auth.method } : null;
      },
      cancel: (pid, secret) => this.cancel(pid, secret),
      tls: () => this.host.clientTls(),
      authType: () => this.host.config().general.auth_type,
      loginTimeout: () => this.host.config().general.client_login_timeout,
      admit: (database, user) => {
        const g = this.host.config().general;
        if (this.slots.allows(g.max_client_conn, this.isAdmin(database, user))) return true;
        this.log.warn({ max_client_conn: g.max_client_conn }, 'max_client_conn reached: a new client is refused');
        return false;
      },
    };
  }

  /**
   * auth_query: authenticate against the secret the server stores for the
   * user; once the client is in, its pool (created on demand) logs into the
   * server as that user with what the login revealed.
   */
  private authQueryLogin(database: string, user: string): Promise<LoginEntry> {
    const registry = this.host.registry;
    return authQueryEntry(this.authQuery, registry.authQueryTarget(database), database, user, (credential) =>
      registry.learnCredential(database, user, credential),
    );
  }

  private startSession(socket: net.Socket, who: LoggedIn, entry: PoolEntry, serverParams: Map<string, string>, peer: Peer): void {
    const g = this.host.config().general;
    const processId = this.newProcessId();
    const secretKey = randomInt(-0x80000000, 0x7fffffff);
    // The server parameters with the client's tracked ones over them, as
    // every client of the pool with the same startup parameters is told.
    const told = sharedGreeting(serverParams, who.trackedParams);
    // The client waits for nothing else (pgbench -C and libpq block until ReadyForQuery): it goes
    // first, and the session is built while it travels. Nothing the client sends can be read before
    // this function returns, nor can a CancelRequest with these keys.
    socket.write(greetingFrom(told.prefix, processId, secretKey));
    // What the client was told is what every server it borrows must match (its own copy: SET changes it).
    const tracked = new Map(told.tracked);
    const identity = {
      database: who.database,
      user: who.user,
      applicationName: who.trackedParams.get('application_name') ?? '',
      remoteAddress: peer.address,
      remotePort: peer.port,
    };
    const session = new ClientSession(socket, entry.cluster, entry.pool, identity, tracked, processId, secretKey, entry.settings, this.log, this.sessionEnded);
    this.sessions.set(processId, session);
    if (g.log_client_connections) this.log.info({ peer, user: who.user, database: who.database }, 'client connected');
    session.start(who.leftover);
  }

  /** A client session ended (one function for all: no closure per session). */
  private readonly sessionEnded = (s: ClientSession): void => {
    this.sessions.delete(s.processId);
    if (this.host.config().general.log_client_disconnections) {
      const { remoteAddress: address, remotePort: port, user, database } = s.identity;
      this.log.info({ peer: { address, port }, user, database }, 'client disconnected');
    }
  };

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
