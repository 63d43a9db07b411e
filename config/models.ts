// `[models.<name>]` sections of pgcat.toml: one entry per model the engine
// loads, global to the pooler (every pool can call every model).
//
// The schema lives in config/ with the rest of the file's shape, so config/
// depends on nothing; the engine reads ModelConfig and keeps only what it
// derives from one (engine/config.ts). config/load.ts calls parseModels()
// and stores the result in Config.models. Every failure is a ConfigError
// naming the dotted key (`models.minilm.instances`), like the rest of the config.

import { dirname, resolve } from 'node:path';
import { formatPath, isTable } from './toml-values.js';
import { ConfigError } from './errors.js';

export type Pooling = 'mean' | 'cls';

/** What a model serves: pgml.embed (encoders) or pgml.transform text generation (decoders). */
export const MODEL_TASKS = ['embedding', 'text-generation'] as const;
export type ModelTask = (typeof MODEL_TASKS)[number];

/** Models that need no files: their ONNX graph is built in code (engine/onnx/). */
export const BUILTIN_MODELS = ['hash-384'] as const;
export type BuiltinModel = (typeof BUILTIN_MODELS)[number];

export interface ModelConfig {
  /** Absolute directory in Hugging Face layout (onnx/model.onnx or model.onnx, tokenizer.json, config.json). */
  path: string | null;
  /** A built-in model instead of `path`. */
  builtin: BuiltinModel | null;
  /** Engine slots: worker threads, each owning one loaded copy of the model. */
  instances: number;
  max_batch_size: number;
  /** How long an idle instance waits for a batch to fill before running it. */
  max_batch_delay_ms: number;
  /** How token vectors become one vector (ignored by models that output one already). */
  pooling: Pooling;
  normalize: boolean;
  /** ONNX Runtime intra-op threads per instance. */
  intra_op_threads: number;
  /** Inputs waiting for an instance, per model; past it calls fail at once (53300). */
  max_queue: number;
  /** Longest a call may wait for its result (queue + run), and the longest a batch may run. */
  model_timeout_ms: number;
  /** Embedding cache size per model in MB; 0 disables it. */
  cache_mb: number;
  /** Inputs are truncated to this many tokens (special tokens included). */
  max_tokens: number;
  /** Set, or null to read it from config.json's `architectures` (…ForCausalLM / …LMHeadModel: text-generation). */
  task: ModelTask | null;
  /** Generation: default and ceiling of a call's max_new_tokens. */
  max_new_tokens: number;
  /** Generation: KV cache each instance may hold for its running sequences, in MB (admission bound). */
  kv_cache_mb: number;
}

export const MODEL_DEFAULTS: Readonly<Omit<ModelConfig, 'path' | 'builtin'>> = {
  instances: 1,
  max_batch_size: 32,
  max_batch_delay_ms: 2,
  pooling: 'mean',
  normalize: true,
  intra_op_threads: 1,
  max_queue: 1024,
  model_timeout_ms: 30_000,
  cache_mb: 64,
  max_tokens: 512,
  max_new_tokens: 256,
  kv_cache_mb: 512,
  task: null,
};

/** Every key of a model section (config/keys.ts reports others as typos). */
export const MODEL_KEYS: readonly (keyof ModelConfig)[] = ['path', 'builtin', ...(Object.keys(MODEL_DEFAULTS) as (keyof ModelConfig)[])];

// Upper bounds catch unit mistakes (a delay in µs, a cache in bytes) at load time.
const INT_BOUNDS: Record<string, [number, number]> = {
  instances: [1, 256],
  max_batch_size: [1, 4096],
  max_batch_delay_ms: [0, 10_000],
  intra_op_threads: [1, 1024],
  max_queue: [1, 10_000_000],
  model_timeout_ms: [1, 86_400_000],
  cache_mb: [0, 1_048_576],
  max_tokens: [2, 1_000_000],
  max_new_tokens: [1, 1_000_000],
  kv_cache_mb: [1, 1_048_576],
};

function describe(v: unknown): string {
  if (typeof v === 'bigint') return 'integer';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'float';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Date) return 'datetime';
  return v !== null && typeof v === 'object' ? 'table' : typeof v;
}

/** One model section; `file` is the config file, for messages and relative paths. */
function parseModel(name: string, raw: unknown, file: string): ModelConfig {
  const fail = (key: string | null, reason: string): never => {
    throw new ConfigError(file, key === null ? formatPath(['models', name]) : formatPath(['models', name, key]), reason);
  };
  if (!isTable(raw)) return fail(null, `expected table, got ${describe(raw)}`);
  const get = (key: string): unknown => (Object.hasOwn(raw, key) ? raw[key] : undefined);
  const str = (key: string): string | null => {
    const v = get(key);
    if (v === undefined) return null;
    return typeof v === 'string' ? v : fail(key, `expected string, got ${describe(v)}`);
  };
  // TOML integers arrive as bigint from config/load.ts; tests pass numbers.
  const int = (key: Exclude<keyof typeof MODEL_DEFAULTS, 'task'>): number => {
    const v = get(key);
    if (v === undefined) return MODEL_DEFAULTS[key] as number;
    const n = typeof v === 'bigint' ? Number(v) : typeof v === 'number' && Number.isInteger(v) ? v : fail(key, `expected integer, got ${describe(v)}`);
    const [min, max] = INT_BOUNDS[key]!;
    return n >= min && n <= max ? n : fail(key, `must be between ${min} and ${max}, got ${String(v)}`);
  };
  const bool = (key: 'normalize'): boolean => {
    const v = get(key);
    if (v === undefined) return MODEL_DEFAULTS[key];
    return typeof v === 'boolean' ? v : fail(key, `expected boolean, got ${describe(v)}`);
  };

  const path = str('path');
  const builtin = str('builtin');
  if (path === null && builtin === null) fail(null, 'set either path (a Hugging Face model directory) or builtin (e.g. "hash-384")');
  if (path !== null && builtin !== null) fail('builtin', 'set either path or builtin, not both');
  if (path === '') fail('path', 'must not be empty');
  if (builtin !== null && !(BUILTIN_MODELS as readonly string[]).includes(builtin)) {
    fail('builtin', `unknown builtin ${JSON.stringify(builtin)}; expected one of: ${BUILTIN_MODELS.join(', ')}`);
  }
  const task = str('task');
  if (task !== null && !(MODEL_TASKS as readonly string[]).includes(task)) fail('task', `unknown task ${JSON.stringify(task)}; expected one of: ${MODEL_TASKS.join(', ')}`);
  if (task === 'text-generation' && builtin !== null) fail('task', `builtin ${builtin} is an embedding model`);
  const pooling = str('pooling') ?? MODEL_DEFAULTS.pooling;
  if (pooling !== 'mean' && pooling !== 'cls') fail('pooling', `unknown pooling ${JSON.stringify(pooling)}; expected one of: mean, cls`);
  return {
    // Relative paths are relative to the config file, so a config moves with its models.
    path: path === null ? null : resolve(dirname(file), path),
    builtin: builtin as BuiltinModel | null,
    instances: int('instances'),
    max_batch_size: int('max_batch_size'),
    max_batch_delay_ms: int('max_batch_delay_ms'),
    pooling: pooling as Pooling,
    normalize: bool('normalize'),
    intra_op_threads: int('intra_op_threads'),
    max_queue: int('max_queue'),
    model_timeout_ms: int('model_timeout_ms'),
    cache_mb: int('cache_mb'),
    max_tokens: int('max_tokens'),
    task: task as ModelTask | null,
    max_new_tokens: int('max_new_tokens'),
    kv_cache_mb: int('kv_cache_mb'),
  };
}

/**
 * The `models` table of a parsed pgcat.toml (undefined when absent).
 * Throws ConfigError naming the key, e.g. `models.minilm.instances`.
 */
export function parseModels(raw: unknown, file: string): Record<string, ModelConfig> {
  if (raw === undefined) return {};
  if (!isTable(raw)) throw new ConfigError(file, 'models', `expected table of [models.<name>] sections, got ${describe(raw)}`);
  const out: Record<string, ModelConfig> = {};
  for (const [name, section] of Object.entries(raw)) {
    if (name.trim() === '') throw new ConfigError(file, formatPath(['models', name]), 'model name must not be empty');
    out[name] = parseModel(name, section, file);
  }
  return out;
}

/** Dotted keys inside `[models.<name>]` sections that are not model keys (likely typos; reported, not fatal). */
export function unknownModelKeys(raw: unknown): string[] {
  if (!isTable(raw)) return [];
  const known = new Set<string>(MODEL_KEYS);
  return Object.entries(raw).flatMap(([name, section]) =>
    isTable(section) ? Object.keys(section).filter((k) => !known.has(k)).map((k) => formatPath(['models', name, k])) : [],
  );
}
