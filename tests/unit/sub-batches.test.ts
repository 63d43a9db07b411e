// Length-aware sub-batching: every input runs exactly once, runs hold
// inputs of similar lengths, and the plan never costs more than one padded run.
import t from 'tap';
import { planSubBatches } from '../../engine/sub-batches.js';

const cost = (lengths: number[], groups: number[][], overhead: number): number =>
  groups.reduce((s, g) => s + overhead + g.length * Math.max(...g.map((i) => lengths[i]!)), 0);

t.test('covers every input once', async (t) => {
  const lengths = [30, 12, 12, 31, 5, 18, 12, 33, 11, 29];
  const groups = planSubBatches(lengths, 16);
  t.same(groups.flat().sort((a, b) => a - b), lengths.map((_, i) => i));
  t.ok(cost(lengths, groups, 16) <= cost(lengths, [lengths.map((_, i) => i)], 16), 'no worse than one padded run');
});

t.test('groups short and long apart, keeps equal lengths together', async (t) => {
  const lengths = [10, 40, 10, 40, 10, 40, 10, 40];
  t.same(planSubBatches(lengths, 16), [[0, 2, 4, 6], [1, 3, 5, 7]]);
  t.same(planSubBatches([20, 20, 20, 20], 16), [[0, 1, 2, 3]], 'same lengths: one run');
});

t.test('a high fixed cost keeps one run', async (t) => {
  t.same(planSubBatches([10, 40, 12], 1000), [[0, 2, 1]]);
  t.same(planSubBatches([], 16), []);
  t.same(planSubBatches([7], 16), [[0]]);
});

t.test('optimal against brute force on small inputs', async (t) => {
  let seed = 7;
  const rand = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) % 1000) / 1000;
  for (let trial = 0; trial < 50; trial++) {
    const lengths = Array.from({ length: 6 }, () => 3 + Math.floor(rand() * 40));
    const sorted = lengths.map((_, i) => i).sort((a, b) => lengths[a]! - lengths[b]!);
    let best = Infinity;
    for (let mask = 0; mask < 1 << 5; mask++) {
      const groups: number[][] = [[sorted[0]!]];
      for (let k = 1; k < 6; k++) (mask & (1 << (k - 1)) ? groups.push([sorted[k]!]) : groups[groups.length - 1]!.push(sorted[k]!));
      best = Math.min(best, cost(lengths, groups, 16));
    }
    t.equal(cost(lengths, planSubBatches(lengths, 16), 16), best, `lengths ${lengths.join(',')}`);
  }
});
