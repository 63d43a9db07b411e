// What an embedding slot's main-thread side (instance.ts) and its piscina
// worker (worker.ts) pass each other, structured-cloned by piscina; the
// generation worker (gen-worker.ts) is started with the same WorkerData.

import type { ModelConfig } from '../config/models.js';

/** What every worker of one instance is started with (piscina's workerData). */
export interface WorkerData {
  model: string;
  config: ModelConfig;
  /**
   * URL of a module whose `beforeInputs(texts)` the worker awaits before
   * embedding a batch or starting a sequence: tests pass one that crashes or
   * stalls the worker on marked inputs (tests/harness/engine-worker-hooks.ts).
   * Null in production, which then carries no such code.
   */
  hooks: string | null;
}

export type WorkerTask = { op: 'load' } | { op: 'embed'; texts: string[] };

/** What a loaded instance reports about its model. */
export interface ModelInfo {
  dims: number;
  /** Effective truncation (max_tokens capped by the model's position table). */
  maxTokens: number;
  /** Graph inputs the model was fed. */
  inputs: string[];
  /** The tokenizer's vocabulary size (null for the builtin hash model). */
  vocabSize: number | null;
  /** Decoders only: what admission needs to size the KV cache. */
  generation?: { kvBytesPerToken: number; maxPositions: number; layers: number };
}

/**
 * Worker replies. Failures come back as values, not rejections, so that a
 * rejected task always means the worker itself died (or was terminated).
 */
export type WorkerReply =
  | { ok: true; info: ModelInfo }
  | { ok: true; dims: number; vectors: Float32Array }
  | { ok: false; message: string };

/** What a WorkerData.hooks module exports. */
export interface WorkerHooks {
  beforeInputs(texts: readonly string[]): Promise<void>;
}
