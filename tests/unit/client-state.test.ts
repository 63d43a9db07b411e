// The client session's state pieces without a socket or a server: the
// janitor's sweep (statement_timeout, idle_client_in_transaction_timeout
// from per-client marks), its tick, the SHOW CLIENTS label of each state,
// SHOW STATS times counted from state changes, and the Checkout guard's
// release-or-discard.
import t from 'tap';
import '../harness/pg-protocol-hook.js';
import { ClientState, clientStateLabel } from '../../pooler/client/client-state.js';
import { ClientClocks, Janitor, type SweptClient } from '../../pooler/client/janitor.js';
import { SessionTimes } from '../../pooler/client/session-times.js';
import { ClientCounters } from '../../pooler/stats/client-counters.js';
import { TrafficStats } from '../../pooler/stats/traffic.js';
import { PipelineQueue } from '../../pooler/server/pipeline.js';
import { Checkout } from '../../pooler/pool/checkout.js';
import type { Pool } from '../../pooler/pool/pool.js';
import type { ServerConnection, ServerOwner } from '../../pooler/server/connection.js';

function client(statementTimeout: number, idleInTransactionTimeout: number): SweptClient & { fired: string[]; lastRequestAt: number } {
  return {
    clocks: new ClientClocks(),
    settings: { statementTimeout, idleInTransactionTimeout },
    lastRequestAt: 0,
    fired: [],
    statementTimedOut() {
      this.fired.push('statement');
    },
    idleInTransactionTimedOut() {
      this.fired.push('idle');
    },
  };
}

t.test('janitor: a timeout fires once its mark is older than the setting, not before', async (t) => {
  const j = new Janitor();
  const a = client(500, 0);
  const b = client(0, 300);
  j.add(a);
  j.add(b);
  t.teardown(() => [a, b].forEach((c) => j.delete(c)));
  a.clocks.statementSince = 1000;
  b.clocks.idleInTransactionSince = 1000;
  j.sweep(1299);
  t.same([a.fired, b.fired], [[], []], 'nothing is due yet');
  j.sweep(1300);
  t.same(b.fired, ['idle'], 'idle in transaction for 300 ms');
  t.same(a.fired, [], 'the statement has run 300 ms of its 500');
  j.sweep(1500);
  t.same(a.fired, ['statement'], 'statement_timeout at 500 ms');
});

t.test('janitor: a message from the client restarts its idle clock; stopped clocks and 0 settings never fire', async (t) => {
  const j = new Janitor();
  const c = client(0, 300);
  j.add(c);
  t.teardown(() => j.delete(c));
  c.clocks.idleInTransactionSince = 1000;
  c.lastRequestAt = 1200;
  j.sweep(1400);
  t.same(c.fired, [], 'idle since its last message, 200 ms ago');
  j.sweep(1500);
  t.same(c.fired, ['idle'], 'then 300 ms after it');
  const off = client(0, 0);
  j.add(off);
  off.clocks.statementSince = 1;
  off.clocks.idleInTransactionSince = 1;
  j.sweep(1e9);
  t.same(off.fired, [], 'timeouts of 0 are off');
  c.fired.length = 0;
  c.clocks.stop();
  j.sweep(1e9);
  t.same(c.fired, [], 'a stopped clock never fires');
  j.delete(off);
});

t.test('janitor: ticks while clients with timeouts exist, then stops', async (t) => {
  const j = new Janitor();
  const c = client(50, 0);
  j.add(c);
  c.clocks.statementSince = Date.now();
  await new Promise((r) => setTimeout(r, 200));
  t.same(c.fired.slice(0, 1), ['statement'], 'a 50 ms statement_timeout fired within 200 ms (tick 10 ms)');
  j.delete(c);
  t.equal((j as unknown as { timer: unknown }).timer, null, 'no timer left once no client is registered');
});

t.test('SHOW CLIENTS labels', async (t) => {
  t.equal(clientStateLabel(ClientState.Idle, false), 'idle');
  t.equal(clientStateLabel(ClientState.Idle, true), 'active', 'a session-mode client holding its server');
  t.equal(clientStateLabel(ClientState.Waiting, false), 'waiting');
  t.equal(clientStateLabel(ClientState.Active, false), 'active', 'a sharded client running a unit holds no direct server');
  t.equal(clientStateLabel(ClientState.InTransaction, false), 'active');
});

t.test('SHOW STATS times from state changes', async (t) => {
  const times = new SessionTimes();
  const stats = new TrafficStats();
  const counters = new ClientCounters();
  times.change(ClientState.Idle, ClientState.Waiting, 100, stats, counters);
  t.equal(times.waitingMs(130), 30);
  times.change(ClientState.Waiting, ClientState.Active, 150, stats, counters);
  t.equal(stats.totals.waitTimeUs, 50_000, 'the wait is counted when it ends');
  t.equal(counters.maxWaitUs, 50_000);
  times.change(ClientState.Active, ClientState.InTransaction, 160, stats, counters);
  t.equal(stats.totals.xactCount, 0, 'a transaction still open is not counted');
  times.change(ClientState.InTransaction, ClientState.Active, 200, stats, counters);
  times.change(ClientState.Active, ClientState.Idle, 210, stats, counters);
  t.equal(stats.totals.xactCount, 1);
  t.equal(counters.transactions, 1);
  t.equal(stats.totals.xactTimeUs, 60_000, 'from its first statement to its end');
  t.equal(stats.totals.queryTimeUs, 20_000, 'only while statements ran');
  times.change(ClientState.Idle, ClientState.Active, 300, stats, counters);
  times.forget();
  times.change(ClientState.Active, ClientState.Idle, 400, stats, counters);
  t.equal(stats.totals.xactCount, 1, 'a forgotten transaction (server lost) is not counted');
});

t.test('Checkout: owner pointer, release when quiet, discard otherwise', async (t) => {
  const calls: string[] = [];
  const pool = {
    release: (_s: unknown, opts?: { sessionReset?: boolean }) => {
      calls.push(`release${opts?.sessionReset ? ' reset' : ''}`);
      return Promise.resolve();
    },
    discard: (_s: unknown, reason: string) => calls.push(`discard: ${reason}`),
  } as unknown as Pool;
  const owner = {} as ServerOwner;
  const server = { owner: null, isQuiet: true, pipeline: null, hasUnitsBehind: false } as unknown as ServerConnection & { isQuiet: boolean };
  const c = new Checkout(owner);
  c.hold(pool, server);
  t.equal(server.owner, owner, 'held: replies go to the owner');
  c.release('in flight', true);
  t.equal(server.owner, null);
  t.equal(c.server, null);
  t.same(calls, ['release reset'], 'quiet: back to the pool, with the session reset asked for');
  c.release('twice');
  t.same(calls, ['release reset'], 'a second release does nothing');
  c.hold(pool, server);
  server.isQuiet = false;
  c.release('client left with a query in flight');
  t.same(calls.slice(1), ['discard: client left with a query in flight'], 'a reply still owed: closed');
  c.hold(pool, server);
  c.lost();
  c.release('after lost');
  t.equal(calls.length, 2, 'a lost server is forgotten, not released');
});

t.test('Checkout with pipelining: a unit queued behind another, and owners leaving mid-pipeline', async (t) => {
  const calls: string[] = [];
  const pool = {
    release: () => {
      calls.push('release');
      return Promise.resolve();
    },
    discard: (_s: unknown, reason: string) => calls.push(`discard: ${reason}`),
    offerBehind: () => calls.push('offer'),
  } as unknown as Pool;
  const head = {} as ServerOwner;
  const queued = {} as ServerOwner;
  const server = {
    owner: null,
    isQuiet: false,
    pipeline: null,
    get hasUnitsBehind(): boolean {
      return this.pipeline !== null && (this.pipeline as PipelineQueue<ServerOwner>).behind.length > 0;
    },
  } as unknown as ServerConnection;
  server.queueBehind = (o: ServerOwner, owed: number) => {
    (server.pipeline ??= new PipelineQueue<ServerOwner>()).push(o, owed);
  };
  const a = new Checkout(head);
  const b = new Checkout(queued);
  a.hold(pool, server);
  b.follow(pool, server, 1, null);
  t.equal(server.owner, head, 'the head owns the replies arriving now');
  t.equal(a.direct, null, 'the head may not send more directly: a unit is queued behind its own');
  t.equal(server.pipeline?.waiting(queued)?.owed, 1, 'the queued unit is owed one ReadyForQuery');
  // The head leaves mid-unit: the queued unit carries on, nothing is closed.
  a.release('client left with a query in flight');
  t.not(server.owner, head, 'a stand-in takes the leaving head\'s replies');
  t.not(server.owner, null);
  t.same(calls, [], 'not released, not discarded: the queued unit still runs on it');
  // The stand-in's unit ends: the queued unit runs; its end gives the server back.
  const standIn = server.owner!;
  server.owner = server.pipeline!.advance(0).owner;
  standIn.onServerIdle(server);
  t.same(calls, ['offer'], 'the stand-in lets the pool offer the room behind the next unit');
  t.equal(server.owner, queued);
  (server as { isQuiet: boolean }).isQuiet = true;
  b.release('released with a query in flight');
  t.same(calls, ['offer', 'release'], 'the last unit done: back to the pool');
  // A unit still queued whose owner leaves: its replies go to a stand-in that gives the server back when last.
  const c = new Checkout(head);
  const d = new Checkout(queued);
  server.owner = null;
  server.pipeline = null;
  c.hold(pool, server);
  d.follow(pool, server, 2, null);
  d.release('client left');
  t.not(server.pipeline!.behind[0].owner, queued, 'the queued unit now belongs to a stand-in');
  t.equal(server.owner, head, 'the head keeps its replies');
});

t.test('PipelineQueue: where each unit ends, counted by ReadyForQuery', async (t) => {
  const q = new PipelineQueue<string>();
  // The head owes 2 (a Query of two... or two Syncs); b owes 1, c owes 2: pending starts at 5.
  q.push('b', 1);
  q.push('c', 2);
  let pending = 5;
  const ready = (at: number): void => {
    pending -= 1;
    if (pending > 0) q.onReady(pending, at);
  };
  ready(10);
  t.same(q.ends, [], 'the head still owes one');
  ready(20);
  t.same(q.ends, [20], "the head's reply ends at its second ReadyForQuery");
  ready(30);
  t.same(q.ends, [20, 30], "b's ends at its one");
  ready(40);
  t.same(q.ends, [20, 30], 'c is the head now: it still owes one');
  t.equal(pending, 1);
  t.equal(q.advance(1).owner, 'b');
  t.equal(q.advance(2).owner, 'c');
  t.equal(q.behind.length, 0, 'nothing behind the last unit');
  t.equal(q.owedBehind, 0);
});
