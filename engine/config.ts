// What the engine derives from a model's config (config/models.ts holds
// the schema and its parsing): whether a change needs the model loaded
// again, where it comes from, which task it serves, and the engine's default
// routing from the pools' load_balancing_mode.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { LoadBalancingMode } from '../config/types.js';
import type { ModelConfig, ModelTask } from '../config/models.js';

/** Keys whose change needs the model loaded again (new worker threads). */
const LOAD_KEYS = ['path', 'builtin', 'pooling', 'normalize', 'intra_op_threads', 'max_tokens', 'task'] as const;

/** True when `a` and `b` load the same model the same way (instances and limits may differ). */
export function sameLoad(a: ModelConfig, b: ModelConfig): boolean {
  return LOAD_KEYS.every((k) => a[k] === b[k]);
}

/** Where a model comes from, for messages. */
export function modelSource(c: ModelConfig): string {
  return c.builtin !== null ? `builtin ${c.builtin}` : `path ${c.path}`;
}

/** The engine's routing when a call does not name one: the pools' load_balancing_mode when they all agree, else random (PgCat's default). */
export function engineBalancing(pools: readonly { load_balancing_mode: LoadBalancingMode }[]): LoadBalancingMode {
  const modes = new Set(pools.map((p) => p.load_balancing_mode));
  return modes.size === 1 ? [...modes][0]! : 'random';
}

/**
 * The task a model serves: `task` when set; else text-generation when its
 * config.json names a causal LM (GPT2LMHeadModel, LlamaForCausalLM, ...),
 * embedding otherwise (and for builtins).
 */
export function modelTask(c: ModelConfig): ModelTask {
  if (c.task !== null) return c.task;
  if (c.path === null) return 'embedding';
  const dir = c.path.endsWith('.onnx') ? dirname(c.path) : c.path;
  let architectures: unknown;
  try {
    architectures = (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { architectures?: unknown }).architectures;
  } catch {
    return 'embedding'; // the loader reports a missing or broken config.json where it matters
  }
  const causal = Array.isArray(architectures) && architectures.some((a) => typeof a === 'string' && /(ForCausalLM|LMHeadModel)$/.test(a));
  return causal ? 'text-generation' : 'embedding';
}
