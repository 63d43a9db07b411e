// client_login_timeout swept by the janitor (LoginSweeper) rather than a
// timer per connection: a login times out once its deadline has passed, not
// before, once; a login that ended is never swept; the interval runs while
// logins are pending and stops at the first sweep that finds none.
import t from 'tap';
import { LoginSweeper, type PendingLogin } from '../../pooler/client/janitor.js';

function login(deadline: number): PendingLogin & { fired: number } {
  return {
    loginDeadline: deadline,
    fired: 0,
    loginTimedOut() {
      this.fired += 1;
    },
  };
}

t.test('a login times out at its deadline, once; an ended login never does', async (t) => {
  const s = new LoginSweeper();
  const a = login(1000);
  const b = login(1500);
  const gone = login(900);
  s.add(a, 60_000);
  s.add(b, 60_000);
  s.add(gone, 60_000);
  s.delete(gone);
  s.sweep(999);
  t.same([a.fired, b.fired], [0, 0], 'nothing is due yet');
  s.sweep(1000);
  t.same([a.fired, b.fired], [1, 0], 'the first deadline passed');
  s.sweep(2000);
  t.same([a.fired, b.fired, gone.fired], [1, 1, 0], 'each fires once; the ended login never');
  t.equal(s.size, 0, 'timed-out logins are no longer swept');
  s.sweep(2001); // stops the interval
});

t.test('the interval fires timeouts on its own while logins are pending, then stops', async (t) => {
  const s = new LoginSweeper();
  const a = login(Date.now() + 50);
  s.add(a, 50); // tick 10 ms
  await new Promise((r) => setTimeout(r, 200));
  t.equal(a.fired, 1, 'a 50 ms client_login_timeout fired within 200 ms');
  t.equal(s.size, 0);
  // The interval is unref'd and stops itself at the next empty sweep: the test process exits without a delete.
});
