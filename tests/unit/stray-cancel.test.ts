// The held reply of a pipelined unit a cancel may hit instead of the unit
// ahead (pooler/client/stray-cancel-guard.ts): held only when exposed, run
// again only for a read whose client asked for no cancel, once, and let
// through when it grows past what is worth holding.
import t from 'tap';
import '../harness/pg-protocol-hook.js';
import { StrayCancelGuard, cancelledIn } from '../../pooler/client/stray-cancel-guard.js';
import { errorResponse } from '../../pooler/protocol/messages/error.js';
import { readyForQuery } from '../../pooler/protocol/messages/status.js';
import { query } from '../../pooler/protocol/messages/query.js';
import { TxStatus } from '../../pooler/protocol/codes.js';

const cancelled = Buffer.concat([errorResponse('57014', 'canceling statement due to user request'), readyForQuery(TxStatus.Idle)]);
const failed = Buffer.concat([errorResponse('22012', 'division by zero'), readyForQuery(TxStatus.Idle)]);
const read = (): boolean => true;
const write = (): boolean => false;

t.test('cancelledIn finds a 57014 among whole messages', async (t) => {
  t.ok(cancelledIn(cancelled), 'ErrorResponse 57014');
  t.notOk(cancelledIn(failed), 'another error');
  t.notOk(cancelledIn(readyForQuery(TxStatus.Idle)), 'no error');
});

t.test('StrayCancelGuard', async (t) => {
  const g = new StrayCancelGuard();
  const unit = query('SELECT 1');
  g.exposed();
  t.notOk(g.holding, 'nothing sent behind others: nothing held');
  g.sentBehind(unit, 1);
  g.exposed();
  t.ok(g.holding, 'exposed: its reply is held');
  t.equal(g.hold(cancelled.subarray(0, 7)), null, 'a partial chunk is kept');
  t.equal(g.hold(cancelled.subarray(7)), null, 'and the rest');
  const v = g.settle(read);
  t.ok(v !== null && 'retry' in v && v.retry.bytes === unit, 'a read hit by a 57014 it did not ask for runs again');
  t.notOk(g.holding, 'nothing held after');

  g.sentBehind(unit, 1); // the retry: the same bytes
  g.exposed();
  g.hold(cancelled);
  const again = g.settle(read);
  t.ok(again !== null && 'forward' in again && again.forward.equals(cancelled), 'once only: the second 57014 goes to the client');

  g.sentBehind(query('SELECT 2'), 1);
  g.exposed();
  g.cancelAsked();
  g.hold(cancelled);
  const asked = g.settle(read);
  t.ok(asked !== null && 'forward' in asked, 'the client asked for a cancel: its 57014 is its own');

  g.sentBehind(query('UPDATE t SET x = 1'), 1);
  g.exposed();
  g.hold(cancelled);
  const w = g.settle(write);
  t.ok(w !== null && 'forward' in w, 'a write is not run again');

  g.sentBehind(query('SELECT 3'), 1);
  g.exposed();
  g.hold(failed);
  const other = g.settle(read);
  t.ok(other !== null && 'forward' in other && other.forward.equals(failed), 'another error goes through as it was');

  g.sentBehind(query('SELECT big'), 1);
  g.exposed();
  t.equal(g.hold(Buffer.alloc(512 * 1024)), null, 'half a MiB is held');
  const big = g.hold(Buffer.alloc(600 * 1024));
  t.equal(big?.length, 1112 * 1024, 'past 1 MiB everything held goes to the client');
  t.notOk(g.holding, 'and holding stops');
  t.equal(g.settle(read), null, 'nothing left to settle');
});
