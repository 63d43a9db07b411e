// Client timeouts swept by one periodic pass over every client, as
// PgBouncer's janitor does, instead of a timer armed and cleared per client
// per statement: the hot path only writes a timestamp (ClientClocks), and a
// timeout fires at most one tick late.
//
// The tick is 100 ms, shorter when a configured timeout is short (a tenth
// of it, at least 10 ms), so a 500 ms statement_timeout fires within ~550 ms.
//
// client_login_timeout is swept the same way (LoginSweeper): a connection
// still logging in carries its deadline, instead of a timer armed at accept
// and cleared at login, twice per connection.

/** When each of the client's clocks started (Date.now()); 0 while it is stopped. */
export class ClientClocks {
  /** The oldest unanswered Query / Sync went out (statement_timeout). */
  statementSince = 0;
  /** Everything was answered inside an open transaction (idle_client_in_transaction_timeout). */
  idleInTransactionSince = 0;

  stop(): void {
    this.statementSince = 0;
    this.idleInTransactionSince = 0;
  }
}

export interface TimeoutSettings {
  /** ms; 0: off. */
  readonly statementTimeout: number;
  /** ms; 0: off. */
  readonly idleInTransactionTimeout: number;
}

/** What the janitor reads and calls on a client. */
export interface SweptClient {
  readonly clocks: ClientClocks;
  /** Read at every tick: a reload may change them. */
  readonly settings: TimeoutSettings;
  /** Date.now() of the client's last message: it is not idle since then. */
  readonly lastRequestAt: number;
  statementTimedOut(): void;
  idleInTransactionTimedOut(): void;
}

const DEFAULT_TICK_MS = 100;
const MIN_TICK_MS = 10;

/** The tick for the smallest timeout in use (ms; Infinity: none). */
function tickForTimeout(smallest: number): number {
  return smallest === Infinity ? Infinity : Math.max(MIN_TICK_MS, Math.min(DEFAULT_TICK_MS, Math.floor(smallest / 10)));
}

function tickFor(s: TimeoutSettings): number {
  let smallest = Infinity;
  if (s.statementTimeout > 0) smallest = s.statementTimeout;
  if (s.idleInTransactionTimeout > 0 && s.idleInTransactionTimeout < smallest) smallest = s.idleInTransactionTimeout;
  return tickForTimeout(smallest);
}

export class Janitor {
  private readonly clients = new Set<SweptClient>();
  private timer: NodeJS.Timeout | null = null;
  /** The tick in use; Infinity while no client has a timeout configured. */
  private tickMs = Infinity;

  add(client: SweptClient): void {
    this.clients.add(client);
    this.fit(client.settings);
  }

  delete(client: SweptClient): void {
    this.clients.delete(client);
    if (this.clients.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
      this.tickMs = Infinity;
    }
  }

  /** A client's timeouts (at login, after a reload): tick often enough for them. */
  fit(settings: TimeoutSettings): void {
    const ms = tickFor(settings);
    if (ms >= this.tickMs) return;
    this.tickMs = ms;
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => this.sweep(Date.now()), ms);
    this.timer.unref();
  }

  /** One pass: fire the timeouts that are due (a firing client may leave the set meanwhile). */
  sweep(now: number): void {
    for (const c of this.clients) {
      const { statementSince, idleInTransactionSince } = c.clocks;
      if (statementSince > 0) {
        const ms = c.settings.statementTimeout;
        if (ms > 0 && now - statementSince >= ms) c.statementTimedOut();
      } else if (idleInTransactionSince > 0) {
        const ms = c.settings.idleInTransactionTimeout;
        if (ms > 0 && now - Math.max(idleInTransactionSince, c.lastRequestAt) >= ms) c.idleInTransactionTimedOut();
      }
    }
  }
}

/** The pooler's one janitor for client timeouts. */
export const clientJanitor = new Janitor();

/** A connection still logging in (client/login.ts). */
export interface PendingLogin {
  /** Date.now() at which client_login_timeout is up. */
  readonly loginDeadline: number;
  /** Called once, by the sweep that finds the deadline passed (the login is no longer swept). */
  loginTimedOut(): void;
}

/**
 * client_login_timeout for every connection still logging in, by one
 * periodic sweep. The interval runs while logins are pending and stops at
 * the first sweep that finds none, so connections arriving back to back do
 * not start and stop it each time.
 */
export class LoginSweeper {
  private readonly pending = new Set<PendingLogin>();
  private timer: NodeJS.Timeout | null = null;
  /** The tick in use; Infinity while the interval is stopped. */
  private tickMs = Infinity;

  /** Logins being swept now. */
  get size(): number {
    return this.pending.size;
  }

  /** Sweep `login` from now on; `timeoutMs` (> 0) is its client_login_timeout, which sets how fine the tick must be. */
  add(login: PendingLogin, timeoutMs: number): void {
    this.pending.add(login);
    const ms = tickForTimeout(timeoutMs);
    if (ms >= this.tickMs) return;
    this.tickMs = ms;
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => this.sweep(Date.now()), ms);
    this.timer.unref();
  }

  /** The login ended (in, refused or gone): no longer swept. */
  delete(login: PendingLogin): void {
    this.pending.delete(login);
  }

  /** One pass: time out the logins whose deadline has passed; stop the interval when none is left. */
  sweep(now: number): void {
    if (this.pending.size === 0) {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      this.tickMs = Infinity;
      return;
    }
    for (const login of this.pending) {
      if (now < login.loginDeadline) continue;
      this.pending.delete(login);
      login.loginTimedOut();
    }
  }
}

/** The pooler's one sweeper for client_login_timeout. */
export const loginSweeper = new LoginSweeper();
