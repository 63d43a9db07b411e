// Errors the engine hands to callers, each with the SQLSTATE the SQL surface
// sends to the client, and the shapes passed between the main thread and
// the worker threads.

import type { ModelConfig } from './config.js';

/** SQLSTATEs of engine failures. */
export const EngineCode = {
  /** undefined_object: no model of that name. */
  UnknownModel: '42704',
  /** too_many_connections class: the model's admission queue is full. */
  TooBusy: '53300',
  /** program_limit_exceeded: one call with more inputs than the queue can ever hold. */
  TooManyInputs: '54000',
  /** query_canceled: no result within model_timeout_ms. */
  Timeout: '57014',
  /** admin_shutdown: the engine is closing. */
  Shutdown: '57P01',
  /** system_error: a model could not be loaded. */
  LoadFailed: '58000',
  /** internal_error: a worker crashed (or the model failed on this input). */
  Internal: 'XX000',
  /** invalid_parameter_value: bad generation args. */
  InvalidArgument: '22023',
  /** feature_not_supported: generation args PgLynx does not implement. */
  NotSupported: '0A000',
  /** wrong_object_type: an embedding model asked to generate, or the reverse. */
  WrongTask: '42809',
} as const;

export type EngineCodeValue = (typeof EngineCode)[keyof typeof EngineCode];

export class EngineError extends Error {
  constructor(
    readonly code: EngineCodeValue,
    message: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

// Main thread <-> worker messages (structured-cloned by piscina).

/** What every worker of one instance is started with (piscina's workerData). */
export interface WorkerData {
  model: string;
  config: ModelConfig;
  /** Enables the crash/hang/sleep inputs of engine/test-hooks.ts. */
  testHooks: boolean;
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
