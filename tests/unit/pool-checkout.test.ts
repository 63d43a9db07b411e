// The pool's checkout rules (pooler/pool/pool.ts) without a server: clients
// wait FIFO, a wait ends at the checkout timeout (PgCat's connect_timeout)
// with 53300 unless the pool is paused, pool_size bounds what is opened,
// min_pool_size is kept warm, and a connection goes back only clean (the
// rest is closed, and the next waiter gets a new one).
//
// The pool opens connections through its openServer seam; here they are
// small stand-ins that record what the pool asks of them. Everything the
// pool decides is real.
import t, { type Test } from 'tap';
import '../harness/pg-protocol-hook.js';
import type { PoolSettings } from '../../pooler/pool/pool-settings.js';
import type { ServerConnection } from '../../pooler/server/connection.js';
import type { ServerOptions } from '../../pooler/server/options.js';
import { Dirty } from '../../pooler/server/reset.js';
import { sleep } from '../harness/wait.js';

// After the hook: pool.ts reaches pg-protocol through server/connection.ts.
const { Pool, PoolError } = await import('../../pooler/pool/pool.js');
type PoolError = InstanceType<typeof PoolError>;

/** What the pool reads and calls on a server connection. */
class StandIn {
  static opened = 0;
  readonly id = ++StandIn.opened;
  readonly createdAt = Date.now();
  idleSince = Date.now();
  readonly params = new Map([['server_version', '15.0']]);
  readonly address = `stand-in-${this.id}`;
  txStatus = 0x49; // 'I'
  pending = 0;
  unsynced = false;
  dirty = 0;
  closed = false;
  closeReason: string | null = null;
  owner: unknown = null;
  replies = null;
  /** Parameters clients SET and the pool keeps on it (client/session-sets.ts); cleared by a RESET ALL. */
  readonly sessionSets = new Map<string, string>();
  unitTimings: unknown = null;
  /** Statements the pool ran on it (ROLLBACK, resets, prewarm). */
  readonly queries: string[] = [];
  /** A statement that fails when run. */
  failOn: string | null = null;
  private listeners: ((e: Error) => void)[] = [];

  get isQuiet(): boolean {
    return !this.closed && this.pending === 0 && !this.unsynced;
  }
  get isIdle(): boolean {
    return this.isQuiet && this.txStatus === 0x49;
  }
  async query(sql: string): Promise<void> {
    this.queries.push(sql);
    if ((this.failOn !== null && sql.includes(this.failOn)) || sql.includes('missing()')) throw new Error(`${sql} failed`);
    if (sql === 'ROLLBACK') this.txStatus = 0x49;
  }
  onClose(listener: (e: Error) => void): void {
    this.listeners.push(listener);
  }
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    for (const l of this.listeners) l(new Error(reason));
  }
}

const asServer = (s: StandIn): ServerConnection => s as unknown as ServerConnection;
const standIn = (c: ServerConnection): StandIn => c as unknown as StandIn;

/** A pool whose connections are stand-ins; `fail` makes the next opens fail. */
class TestPool extends Pool {
  opens = 0;
  failNext: string[] = [];
  /** Resolve opens by hand (null: at once). */
  gate: Promise<void> | null = null;
  /** Every stand-in opened, in order. */
  readonly opened: StandIn[] = [];
  protected override async openServer(_options: ServerOptions): Promise<ServerConnection> {
    this.opens += 1;
    if (this.gate) await this.gate;
    const failure = this.failNext.shift();
    if (failure) throw new Error(failure);
    const s = new StandIn();
    this.opened.push(s);
    return asServer(s);
  }
}

function settings(over: Partial<PoolSettings> = {}): PoolSettings {
  return {
    name: 'app',
    user: 'app',
    mode: 'transaction',
    size: 2,
    minSize: 0,
    checkoutTimeout: 0,
    idleTimeout: 0,
    serverLifetime: 0,
    cleanupConnections: true,
    resetAlways: false,
    roundRobin: false,
    prewarm: [],
    preparedCacheSize: 0,
    server: { host: '127.0.0.1', port: 1, database: 'app', user: 'app', password: null, connectTimeout: 1000, keepAliveIdleMs: 0 },
    ...over,
  };
}

function pool(t: Test, over: Partial<PoolSettings> = {}): TestPool {
  const p = new TestPool(settings(over));
  t.teardown(() => p.close());
  return p;
}

/** Settles pending promise callbacks (a few turns of the microtask queue and one macrotask). */
const settle = (): Promise<void> => sleep(0);

t.test('waiters are served first come, first served', async (t) => {
  const p = pool(t, { size: 1 });
  const first = await p.acquire();
  const order: string[] = [];
  const waits = ['b', 'c', 'd'].map((name) => p.acquire().then((conn) => (order.push(name), conn)));
  await settle();
  t.equal(p.counters.waiting, 3);
  t.equal(p.tryAcquire(), null, 'nobody jumps the queue while clients wait');
  let conn = first;
  for (const name of ['b', 'c', 'd']) {
    await p.release(conn);
    conn = await waits[['b', 'c', 'd'].indexOf(name)]!;
    t.equal(conn, first, `${name} gets the one connection`);
  }
  t.same(order, ['b', 'c', 'd']);
  t.equal(p.opens, 1, 'size 1: one connection opened in all');
  await p.release(conn);
  t.equal(p.tryAcquire(), first, 'with nobody waiting, an idle connection is taken at once');
});

t.test('the checkout timeout fails a waiter with 53300; the queue moves on without it', async (t) => {
  const p = pool(t, { size: 1, checkoutTimeout: 60 });
  const held = await p.acquire();
  const started = Date.now();
  const late = p.acquire();
  const err = await late.then(() => null, (e: unknown) => e);
  const waited = Date.now() - started;
  t.ok(err instanceof PoolError, 'a PoolError');
  t.equal((err as PoolError).code, '53300');
  t.match((err as PoolError).message, /timed out after 60 ms/);
  t.ok(waited >= 55, `waited the timeout (${waited} ms)`);
  t.equal(p.counters.waiting, 0, 'no longer waiting');
  t.equal(p.stats.totals.errors, 1, 'counted as an error');
  const next = p.acquire();
  await p.release(held);
  t.equal(await next, held, 'the next waiter, not the timed-out one, gets the connection');
});

t.test('a waiter that is served in time is not failed later', async (t) => {
  const p = pool(t, { size: 1, checkoutTimeout: 300 });
  const held = await p.acquire();
  const waiting = p.acquire();
  await settle();
  await p.release(held);
  const conn = await waiting;
  await sleep(400);
  t.equal(p.stats.totals.errors, 0, 'its timer was cleared');
  t.equal(conn, held);
});

t.test('a paused pool holds waiters past the timeout; resume serves them', async (t) => {
  const p = pool(t, { size: 1, checkoutTimeout: 30 });
  const held = await p.acquire();
  let paused = false;
  const pausing = p.pause().then(() => (paused = true));
  const waiting = p.acquire();
  await sleep(10);
  t.notOk(paused, 'pause waits for the checked-out connection');
  await p.release(held);
  await pausing;
  t.ok(paused, 'paused once nothing is checked out');
  await sleep(80);
  t.equal(p.counters.waiting, 1, 'still waiting after more than twice the timeout');
  t.equal(p.tryAcquire(), null, 'nothing is handed out while paused');
  p.resume();
  t.equal(await waiting, held, 'served after resume');
});

t.test('checkoutTimeout 0: a waiter waits as long as it takes', async (t) => {
  const p = pool(t, { size: 1, checkoutTimeout: 0 });
  const held = await p.acquire();
  const waiting = p.acquire();
  await sleep(50);
  t.equal(p.counters.waiting, 1);
  await p.release(held);
  t.equal(await waiting, held);
});

t.test('pool_size bounds the connections opened, however many clients wait', async (t) => {
  const p = pool(t, { size: 3 });
  let open!: () => void;
  p.gate = new Promise((r) => (open = r));
  const waits = Array.from({ length: 10 }, () => p.acquire());
  await settle();
  t.equal(p.opens, 3, 'three opens started for ten clients');
  t.same({ connecting: p.counters.connecting, waiting: p.counters.waiting }, { connecting: 3, waiting: 10 });
  open();
  const firstThree = await Promise.all(waits.slice(0, 3));
  t.equal(new Set(firstThree).size, 3, 'three distinct connections');
  t.same({ total: p.counters.total, active: p.counters.active, idle: p.counters.idle, waiting: p.counters.waiting }, { total: 3, active: 3, idle: 0, waiting: 7 });
  for (const conn of firstThree) await p.release(conn);
  const next = await Promise.all(waits.slice(3, 6));
  t.same(new Set(next), new Set(firstThree), 'the next three reuse them');
  t.equal(p.opens, 3, 'never more than pool_size');
  for (const conn of next) await p.release(conn);
  await Promise.all(waits.slice(6, 9)).then((c) => Promise.all(c.map((x) => p.release(x))));
  await p.release(await waits[9]!);
  t.equal(p.opens, 3);
});

t.test('min_pool_size: kept open with no client, and not closed by idle_timeout', async (t) => {
  const p = pool(t, { size: 5, minSize: 2, idleTimeout: 20 });
  p.maintain();
  await settle();
  t.equal(p.opens, 2, 'two opened by upkeep alone');
  t.same({ total: p.counters.total, idle: p.counters.idle }, { total: 2, idle: 2 });
  p.maintain();
  await settle();
  t.equal(p.opens, 2, 'no more once the minimum is there');
  // Two more in use, then back: four idle, two over the minimum.
  const conns = await Promise.all([p.acquire(), p.acquire(), p.acquire(), p.acquire()]);
  for (const c of conns) await p.release(c);
  t.equal(p.counters.idle, 4);
  await sleep(40);
  p.maintain();
  t.equal(p.counters.total, 2, 'idle ones past idle_timeout closed down to min_pool_size');
  t.equal(conns.filter((c) => standIn(c).closed).length, 2);
  const min = settings({ size: 1, minSize: 3 });
  const small = new TestPool(min);
  t.teardown(() => small.close());
  small.maintain();
  await settle();
  t.equal(small.opens, 1, 'min_pool_size is capped by pool_size');
});

t.test('release: rolled back, reset by what the client changed, or closed', async (t) => {
  const p = pool(t, { size: 1 });
  const conn = await p.acquire();
  const s = standIn(conn);
  s.txStatus = 0x54; // 'T': left in a transaction
  s.dirty = Dirty.Params;
  await p.release(conn);
  t.same(s.queries, ['ROLLBACK', 'RESET ROLE; RESET ALL;'], 'ROLLBACK, then the reset of SET');
  t.equal(s.dirty, 0);
  t.equal(s.closed, false, 'kept');
  t.equal(p.tryAcquire(), conn, 'and reused');

  s.queries.length = 0;
  await p.release(conn, { sessionReset: true });
  t.same(s.queries, ['DISCARD ALL'], 'a session-mode client: DISCARD ALL');
  t.equal(p.tryAcquire(), conn);

  s.pending = 1; // a reply still owed: it would reach the next client
  await p.release(conn);
  t.ok(s.closed, 'a connection with a query in flight is closed');
  t.match(s.closeReason, /in flight/);
  t.equal(p.counters.total, 0, 'and forgotten');
  const fresh = await p.acquire();
  t.not(fresh, conn, 'the next client gets a new connection');
  t.equal(p.opens, 2);
});

t.test('release: a failed reset closes the connection', async (t) => {
  const p = pool(t, { size: 1 });
  const conn = await p.acquire();
  const s = standIn(conn);
  s.dirty = Dirty.Statements;
  s.failOn = 'DEALLOCATE';
  await p.release(conn);
  t.ok(s.closed);
  t.match(s.closeReason, /reset failed/);
  t.equal(p.counters.total, 0);
});

t.test('release without cleanup: nothing run; server_reset_query_always: the full reset', async (t) => {
  const off = pool(t, { size: 1, cleanupConnections: false });
  const a = await off.acquire();
  standIn(a).dirty = Dirty.Params;
  await off.release(a);
  t.same(standIn(a).queries, [], 'cleanup off: nothing run');
  const always = pool(t, { size: 1, resetAlways: true });
  const b = await always.acquire();
  await always.release(b);
  t.same(standIn(b).queries, ['RESET ROLE; DISCARD ALL'], 'clean or not: the full reset');
});

t.test('discard: closed, forgotten, and a waiter gets a new connection', async (t) => {
  const p = pool(t, { size: 1 });
  const conn = await p.acquire();
  const waiting = p.acquire();
  await settle();
  t.equal(p.opens, 1, 'at pool_size: the waiter waits');
  p.discard(conn, 'broken');
  t.ok(standIn(conn).closed);
  t.equal(standIn(conn).closeReason, 'broken');
  const next = await waiting;
  t.not(next, conn);
  t.equal(p.opens, 2, 'a new one opened for the waiter');
});

t.test('a connection that dies idle is never handed out', async (t) => {
  const p = pool(t, { size: 2 });
  const [a, b] = await Promise.all([p.acquire(), p.acquire()]);
  await p.release(a);
  await p.release(b);
  standIn(b).close('server went away');
  t.equal(p.counters.total, 1, 'forgotten when it closed');
  t.equal(p.tryAcquire(), a);
});

t.test('reuse order: most recent first, or least recent with round robin', async (t) => {
  for (const roundRobin of [false, true]) {
    const p = pool(t, { size: 2, roundRobin });
    const [a, b] = await Promise.all([p.acquire(), p.acquire()]);
    await p.release(a);
    await p.release(b);
    t.equal(p.tryAcquire(), roundRobin ? a : b, roundRobin ? 'round robin: a (released first)' : 'LIFO: b (released last)');
  }
});

t.test('server_lifetime is enforced at checkout', async (t) => {
  const p = pool(t, { size: 1, serverLifetime: 30 });
  const old = await p.acquire();
  await p.release(old);
  await sleep(45);
  const conn = await p.acquire();
  t.not(conn, old, 'an expired idle connection is not handed out');
  t.ok(standIn(old).closed);
});

t.test('a failed open fails the longest-waiting client with 08006, not by timeout', async (t) => {
  const p = pool(t, { size: 1, checkoutTimeout: 5000 });
  p.failNext.push('connection refused');
  const started = Date.now();
  const err = await p.acquire().then(() => null, (e: unknown) => e);
  t.ok(err instanceof PoolError);
  t.equal((err as PoolError).code, '08006');
  t.match((err as PoolError).message, /connection refused/);
  t.ok(Date.now() - started < 4000, 'at once, not at the 5 s timeout');
  t.ok(await p.acquire(), 'the next client gets a connection from a new open');
});

t.test('prewarm statements run on each new connection; a failing one closes it', async (t) => {
  const p = pool(t, { size: 1, prewarm: ['SET jit = off', 'SELECT 1'] });
  const conn = await p.acquire();
  t.same(standIn(conn).queries, ['SET jit = off', 'SELECT 1']);
  await p.release(conn);
  t.same(standIn(conn).queries, ['SET jit = off', 'SELECT 1'], 'not again at reuse');

  const failing = pool(t, { size: 1, prewarm: ['SELECT missing()'] });
  const err = await failing.acquire().then(() => null, (e: unknown) => e);
  t.equal((err as PoolError).code, '08006');
  t.match((err as PoolError).message, /prewarm query failed on stand-in-\d+: SELECT missing\(\) failed/);
  t.equal(failing.opened[0]?.closeReason, 'prewarm failed', 'the connection is closed');
  t.equal(failing.counters.total, 0, 'and never joins the pool');
});

t.test('close: waiters fail with 57P01, idle connections close', async (t) => {
  const p = pool(t, { size: 1 });
  const held = await p.acquire();
  const other = await new TestPool(settings({ size: 1 })).acquire();
  const waiting = p.acquire().then(() => null, (e: unknown) => e);
  await settle();
  p.close();
  const err = await waiting;
  t.equal((err as PoolError).code, '57P01');
  await p.release(held);
  t.ok(standIn(held).closed, 'a connection coming back to a closed pool is closed');
  await p.release(other);
  t.ok(standIn(other).closed, 'a connection from another pool (replaced by reload) is closed, not adopted');
  await t.rejects(p.acquire(), { code: '57P01' });
});
