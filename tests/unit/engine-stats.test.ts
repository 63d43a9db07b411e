// The figures behind SHOW MODELS' generation columns: tokens per second over
// a sliding window (bursts, decay, a fresh start) and the latency window's
// percentiles.
import t from 'tap';
import { LatencyWindow, LATENCY_WINDOW, RATE_WINDOW_MS, RateWindow } from '../../engine/stats.js';

t.test('RateWindow: per second over the last window', async (t) => {
  const r = new RateWindow();
  t.equal(r.perSecond(1_000_000), 0, 'nothing yet');
  // 50 tokens every 100 ms for 20 s: 500/s once the window is full.
  const start = 1_000_000;
  for (let ms = 0; ms < 20_000; ms += 100) r.add(50, start + ms);
  t.ok(Math.abs(r.perSecond(start + 19_999) - 500) < 10, `steady rate (${r.perSecond(start + 19_999)})`);
  t.equal(r.perSecond(start + 20_000 + RATE_WINDOW_MS), 0, 'a window after the last token: 0');
  const half = r.perSecond(start + 20_000 + RATE_WINDOW_MS / 2);
  t.ok(half > 200 && half < 300, `half a window later, half the rate (${half})`);
});

t.test('RateWindow: a burst younger than the window is divided by its own age', async (t) => {
  const r = new RateWindow();
  r.add(100, 5_000_000);
  r.add(100, 5_000_500);
  t.ok(Math.abs(r.perSecond(5_001_000) - 200) < 1, `200 tokens in 1 s (${r.perSecond(5_001_000)})`);
  t.equal(r.perSecond(5_000_000), 1000, 'at the first token: over one 100 ms bucket, not infinite');
});

t.test('LatencyWindow percentiles over the last LATENCY_WINDOW samples', async (t) => {
  const w = new LatencyWindow();
  t.equal(w.percentileUs(50), 0);
  for (let i = 1; i <= 100; i++) w.record(i);
  t.equal(w.percentileUs(50), 50);
  t.equal(w.percentileUs(99), 99);
  for (let i = 0; i < LATENCY_WINDOW; i++) w.record(1000);
  t.equal(w.percentileUs(50), 1000, 'old samples have left the window');
  t.equal(w.count, 100 + LATENCY_WINDOW);
});
