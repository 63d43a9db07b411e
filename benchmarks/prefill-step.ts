// Diagnostic: one prefill alone (a single prompt of N tokens, empty cache)
// with engine/decoder.ts's Decoder, repeated; median and fastest ms.
//
//   node --import tsx benchmarks/prefill-step.ts <model dir> [tokens, default 32]
//   THREADS (default 2), RUNS (default 15)

import { Decoder, emptyCache } from '../engine/decoder.js';
import { modelFiles } from '../engine/runtime.js';

const dir = process.argv[2] ?? process.env['MODEL'];
if (!dir) throw new Error('usage: prefill-step.ts <model dir> [tokens]');
const tokens = Number(process.argv[3] ?? 32);
const runs = Number(process.env['RUNS'] ?? 15);
const { onnx, dir: modelDir } = await modelFiles(dir);
const decoder = await Decoder.load(onnx, modelDir, {
  intraOpNumThreads: Number(process.env['THREADS'] ?? 2),
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  logSeverityLevel: 3,
});
const prompt = Array.from({ length: tokens }, (_, i) => (i * 7919) % 50000);
const ms: number[] = [];
for (let k = 0; k < runs + 1; k++) {
  const t = performance.now();
  await decoder.forward([{ cache: emptyCache(decoder.shape), tokens: prompt }]);
  if (k > 0) ms.push(performance.now() - t); // the first run warms up
}
ms.sort((a, b) => a - b);
console.log(`prefill of ${tokens} tokens alone: median ${ms[Math.floor(ms.length / 2)]!.toFixed(1)} ms, fastest ${ms[0]!.toFixed(1)} ms (${runs} runs)`);
await decoder.release();
