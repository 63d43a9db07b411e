// Length-aware splitting of one batch into the ONNX runs that cost least.
//
// A transformer batch is padded to its longest input, so a batch of short
// and long texts pays for the long one in every row (32% of the tokens run
// were padding on the benchmark corpus). Each run also has a fixed cost
// (graph dispatch, thread hand-offs), so one run per text is no answer
// either. Sorted by length, the best grouping into consecutive runs is a
// small dynamic programme: minimise the sum over runs of
// (overhead + rows x longest row), both in token-rows.

/** Fixed cost of one session.run in token-rows (measured: ~1.8 ms, ~13 token-rows, on MiniLM-L6 at 2 vCPUs). */
export const RUN_OVERHEAD_TOKENS = 16;

/**
 * Groups of input indices, each to run as one padded batch, together
 * covering every index once. `lengths[i]` is input i's token count.
 */
export function planSubBatches(lengths: readonly number[], overheadTokens = RUN_OVERHEAD_TOKENS): number[][] {
  const n = lengths.length;
  if (n <= 1) return n === 0 ? [] : [[0]];
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[a]! - lengths[b]!);
  // best[j]: least cost of running the j shortest inputs; cut[j]: where its last run starts.
  const best = new Float64Array(n + 1);
  const cut = new Int32Array(n + 1);
  for (let j = 1; j <= n; j++) {
    const longest = lengths[order[j - 1]!]!;
    best[j] = Infinity;
    for (let i = 0; i < j; i++) {
      const cost = best[i]! + overheadTokens + (j - i) * longest;
      if (cost < best[j]!) {
        best[j] = cost;
        cut[j] = i;
      }
    }
  }
  const groups: number[][] = [];
  for (let j = n; j > 0; j = cut[j]!) groups.unshift(order.slice(cut[j]!, j));
  return groups;
}
