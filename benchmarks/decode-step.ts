// Diagnostic: one in-process decode step of engine/decoder.ts's Decoder over
// B sequences at once, split into the time onnxruntime's run takes and the
// rest (the JS side of Decoder.forward: feeds, caches, logits).
//
//   node --import tsx benchmarks/decode-step.ts [model dir] [batches...]
//   (model dir defaults to $MODEL; build one with
//    `pglynx models synth tests/fixtures/gpt2-tokenizer <dir> --layers 12`)
//   THREADS (default 2) intra-op threads; STEPS (default 9) steps per size, median and fastest shown (the fastest is the steadier figure on a shared machine); PROFILE=1 writes onnxruntime's
//   profile of the steps (a JSON file named in the output).

import { InferenceSession } from 'onnxruntime-node';
import { Decoder, emptyCache } from '../engine/decoder.js';
import { modelFiles } from '../engine/runtime.js';

const dir = process.argv[2] ?? process.env['MODEL'];
if (!dir) throw new Error('usage: decode-step.ts <model dir> [batch sizes...]');
const sizes = process.argv.length > 3 ? process.argv.slice(3).map(Number) : [1, 4, 16, 64];
const threads = Number(process.env['THREADS'] ?? 2);
const steps = Number(process.env['STEPS'] ?? 9);
const profile = process.env['PROFILE'] === '1';

const { onnx, dir: modelDir } = await modelFiles(dir);
const options: InferenceSession.SessionOptions = {
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  logSeverityLevel: 3,
  enableProfiling: profile,
  profileFilePrefix: '/tmp/decode-step-profile',
};
const decoder = await Decoder.load(onnx, modelDir, options);
// Time spent inside session.run (the rest of forward is JS).
let runMs = 0;
const run = decoder.session.run.bind(decoder.session);
(decoder.session as { run: typeof run }).run = (async (...args: Parameters<typeof run>) => {
  const t = performance.now();
  try {
    return await run(...args);
  } finally {
    runMs += performance.now() - t;
  }
}) as typeof run;

let seed = 7;
const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const argmax = (a: Float32Array): number => a.reduce((best, v, i) => (v > a[best]! ? i : best), 0);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`| sequences per step | step ms (median) | step ms (fastest) | onnxruntime run ms | JS ms | tokens/s | vs batch 1 |`);
console.log(`| ---: | ---: | ---: | ---: | ---: | ---: | ---: |`);
let base = 0;
const prefills: number[] = [];
for (const b of sizes) {
  // Prompts of 8-48 tokens, each prefilled alone (so the step sees real, ragged caches).
  const rows = [];
  for (let i = 0; i < b; i++) {
    const cache = emptyCache(decoder.shape);
    const prompt = Array.from({ length: 8 + Math.floor(rand() * 41) }, () => Math.floor(rand() * 50000));
    const t = performance.now();
    const logits = (await decoder.forward([{ cache, tokens: prompt }]))[0]!;
    prefills.push(performance.now() - t);
    rows.push({ cache, tokens: [argmax(logits)] });
  }
  const total: number[] = [];
  const inRun: number[] = [];
  for (let k = 0; k < steps; k++) {
    runMs = 0;
    const t = performance.now();
    const logits = await decoder.forward(rows);
    total.push(performance.now() - t);
    inRun.push(runMs);
    rows.forEach((r, i) => (r.tokens = [argmax(logits[i]!)]));
  }
  const ms = median(total);
  const tps = (1000 * b) / ms;
  if (b === sizes[0]) base = tps;
  console.log(`| ${b} | ${ms.toFixed(1)} | ${Math.min(...total).toFixed(1)} | ${median(inRun).toFixed(1)} | ${(ms - median(inRun)).toFixed(1)} | ${tps.toFixed(1)} | ${(tps / base).toFixed(2)}x |`);
}
console.log(`\nprefill of one 8-48-token prompt alone: median ${median(prefills).toFixed(1)} ms, fastest ${Math.min(...prefills).toFixed(1)} ms, over ${prefills.length}`);
if (profile) console.log(`profile: ${decoder.session.endProfiling()}`);
await decoder.release();
