// pgml.transform(task, args, inputs) for text generation, computed in the
// pooler's engine: the task names the model (`{"task": "text-generation",
// "model": "gpt"}`; the task alone uses the first text-generation model in
// the config, as PostgresML uses its default model for a task), args are Hugging Face generate() arguments, and the result is
// the jsonb PostgresML returns for text-generation: one list per input
// holding one `{"generated_text": ...}` (the prompt followed by the
// continuation, unless args say "return_full_text": false).

import { PgmlError, type PgmlCall } from './analyze.js';

/** What pgml.transform needs from the engine (the Engine has it). */
export interface GenerationProvider {
  names(): string[];
  task(model: string): string | null;
  /** Aborting `signal` (the client's CancelRequest or disconnect) stops the sequences at the next decode step, with 57014. */
  generate(model: string, prompts: string[], args: unknown, opts?: { signal?: AbortSignal; onText?: (delta: string) => void }): Promise<{ text: string }[]>;
  /** pgml.infer: the top next-token candidates after a prompt, most probable first. */
  infer(model: string, prompt: string, top: number, opts?: { signal?: AbortSignal }): Promise<{ token: string; probability: number }[]>;
}

/** A task argument: the model it names and the task it asks for. */
export interface TaskSpec {
  task: string | null;
  model: string | null;
}

/** Reads the task argument: a JSON object (text or jsonb) or a bare task name. */
export function parseTask(value: string): TaskSpec {
  const text = value.trim();
  if (!text.startsWith('{')) return { task: text, model: null };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new PgmlError('22P02', `pgml.transform: task is not valid JSON: ${JSON.stringify(value)}`);
  }
  const obj = json as { task?: unknown; model?: unknown };
  const str = (v: unknown, key: string): string | null => {
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') throw new PgmlError('22023', `pgml.transform: task "${key}" must be a string`);
    return v;
  };
  return { task: str(obj.task, 'task'), model: str(obj.model, 'model') };
}

/**
 * The engine model a task argument resolves to. Only text generation is
 * served; a task without a model gets the first text-generation model
 * configured. 42704 for an unknown model.
 */
export function resolveModel(spec: TaskSpec, engine: GenerationProvider): string {
  if (spec.task !== null && spec.task !== 'text-generation') {
    throw new PgmlError('0A000', `pgml.transform: task "${spec.task}" is not supported by the pooler (only "text-generation")`);
  }
  if (spec.model !== null) {
    const task = engine.task(spec.model);
    if (task === null) throw new PgmlError('42704', `pgml.transform: model "${spec.model}" does not exist (declare it as [models.${spec.model}] in pgcat.toml)`);
    if (task !== 'text-generation') throw new PgmlError('42809', `pgml.transform: model "${spec.model}" is an embedding model, not a text-generation model`);
    return spec.model;
  }
  const first = engine.names().find((n) => engine.task(n) === 'text-generation');
  if (first !== undefined) return first;
  throw new PgmlError('42704', 'pgml.transform: no text-generation model is configured ([models.<name>] with a decoder)');
}

/** Model name known at Parse (a constant task), for the early 42704; null when it comes from a parameter. */
export function constantTransformModel(call: PgmlCall, engine: GenerationProvider): void {
  if (call.model.kind !== 'const') return;
  resolveModel(parseTask(call.model.value), engine);
}

/** The args jsonb (text) as an object; NULL is no args. */
export function parseArgs(argsText: string | null): Record<string, unknown> {
  if (argsText === null) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(argsText);
  } catch {
    throw new PgmlError('22P02', `pgml.transform: args is not valid JSON: ${JSON.stringify(argsText)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new PgmlError('22023', 'pgml.transform: args must be a JSON object');
  return parsed as Record<string, unknown>;
}

/** The jsonb text of one call: one `[{"generated_text": ...}]` per input (null stays null). */
export async function computeTransform(
  task: string | null,
  argsText: string | null,
  inputs: (string | null)[],
  engine: GenerationProvider,
  signal?: AbortSignal,
): Promise<string | null> {
  if (task === null) return null; // a strict function: NULL in, NULL out
  const model = resolveModel(parseTask(task), engine);
  const args = parseArgs(argsText);
  const fullText = args['return_full_text'] !== false;
  const prompts = inputs.filter((x): x is string => x !== null);
  const results = prompts.length > 0 ? await engine.generate(model, prompts, args, { signal }) : [];
  let k = 0;
  const out = inputs.map((prompt) => {
    if (prompt === null) return null;
    const r = results[k++]!;
    return [{ generated_text: fullText ? prompt + r.text : r.text }];
  });
  return JSON.stringify(out);
}
