// The body of one generation slot: a piscina worker thread that owns one
// loaded decoder and tokenizer, and runs the continuous-batching loop.
//
// Iteration-level scheduling (as vLLM and TGI): each turn of the loop
// 1. drops cancelled sequences, 2. prefills the sequences that arrived since
// the last turn (one batch, their first token comes out of it), 3. runs one
// decode step for every sequence that was already running, as one batch.
// Finished sequences leave at once; the main thread decides admission
// (max_batch_size, kv_cache_mb), so whatever arrives joins at the next turn.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MessagePort } from 'node:worker_threads';
import { setImmediate as yieldLoop } from 'node:timers/promises';
import { workerData } from 'piscina';
import { Tokenizer } from '@huggingface/tokenizers';
import { Decoder, emptyCache, kvBytesPerToken, type KvCache } from './decoder.js';
import type { ModelInfo, WorkerData, WorkerHooks } from './worker-protocol.js';
import type { FinishReason, FromWorker, GenTask, ToWorker } from './gen-protocol.js';
import { chooseToken, samplerFor, stopAt, topCandidates, type GenerateParams } from './sampling.js';
import { modelFiles, sessionOptions } from './runtime.js';

const data = workerData as WorkerData;
// Tests only (WorkerData.hooks); production workers import nothing here.
const hooks: Promise<WorkerHooks> | null = data.hooks === null ? null : import(data.hooks);

interface GenRuntime {
  info: ModelInfo;
  decoder: Decoder;
  tokenizer: Tokenizer;
}

let loading: Promise<GenRuntime> | null = null;

async function load(): Promise<GenRuntime> {
  const { onnx, dir } = await modelFiles(data.config.path!);
  const json = async (file: string): Promise<Record<string, unknown> | null> => {
    try {
      return JSON.parse(await readFile(join(dir, file), 'utf8')) as Record<string, unknown>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new Error(`cannot read ${join(dir, file)}: ${(err as Error).message}`);
    }
  };
  const tokenizerJson = await json('tokenizer.json');
  if (!tokenizerJson) throw new Error(`tokenizer ${join(dir, 'tokenizer.json')} not found`);
  const tokenizer = new Tokenizer(tokenizerJson, (await json('tokenizer_config.json')) ?? {});
  let decoder: Decoder;
  try {
    decoder = await Decoder.load(onnx, dir, sessionOptions(data.config));
  } catch (err) {
    throw new Error(`cannot load decoder ${onnx}: ${(err as Error).message}`);
  }
  const { shape } = decoder;
  // A probe step: the graph runs, and its logits are as wide as the vocabulary.
  const logits = await decoder.forward([{ cache: emptyCache(shape), tokens: [shape.bosTokenId ?? 0] }]);
  if (logits[0]!.length !== shape.vocabSize) throw new Error(`logits have ${logits[0]!.length} columns but config.json vocab_size is ${shape.vocabSize}`);
  const info: ModelInfo = {
    dims: 0,
    maxTokens: shape.maxPositions,
    inputs: [...decoder.session.inputNames],
    vocabSize: shape.vocabSize,
    generation: { kvBytesPerToken: kvBytesPerToken(shape), maxPositions: shape.maxPositions, layers: shape.layers },
  };
  return { info, decoder, tokenizer };
}

function runtime(): Promise<GenRuntime> {
  if (!loading) {
    loading = load();
    loading.catch(() => {
      loading = null;
    });
  }
  return loading;
}

export default async function handler(task: GenTask): Promise<unknown> {
  let rt: GenRuntime;
  try {
    rt = await runtime();
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
  if (task.op === 'load') return { ok: true, info: rt.info };
  await serve(task.port, rt);
  return { ok: true };
}

interface Sequence {
  id: number;
  params: GenerateParams;
  stream: boolean;
  /** > 0: pgml.infer, done after its prefill with this many candidates. */
  top: number;
  rand: () => number;
  cache: KvCache;
  /** Prompt then generated tokens (what repetition_penalty looks at). */
  history: number[];
  promptTokens: number;
  generated: number[];
  /** Text of `generated` so far, and how much of it a stream has been sent. */
  text: string;
  sent: number;
  /** The token to feed at the next decode step. */
  next: number;
}

async function serve(port: MessagePort, rt: GenRuntime): Promise<void> {
  const { decoder, tokenizer } = rt;
  const { shape } = decoder;
  const arrivals: Extract<ToWorker, { t: 'add' }>[] = [];
  const cancelled = new Set<number>();
  let running: Sequence[] = [];
  let closed = false;
  let wake: (() => void) | null = null;
  const post = (m: FromWorker): void => port.postMessage(m);
  port.on('message', (m: ToWorker) => {
    if (m.t === 'add') arrivals.push(m);
    else if (m.t === 'cancel') cancelled.add(m.id);
    else closed = true;
    wake?.();
    wake = null;
  });

  /** Appends a chosen token; returns why the sequence ends, or null. */
  const accept = (s: Sequence, token: number): FinishReason | null => {
    if (shape.eosTokenIds.includes(token)) return 'eos';
    s.generated.push(token);
    s.history.push(token);
    s.next = token;
    const before = s.text.length;
    // The whole list is decoded each time: byte-level BPE splits multi-byte
    // characters across tokens, so only the joined bytes decode correctly.
    s.text = tokenizer.decode(s.generated, { skip_special_tokens: true });
    const cut = s.params.stop.length > 0 ? stopAt(s.text, s.params.stop, before) : -1;
    if (cut >= 0) {
      s.text = s.text.slice(0, cut);
      return 'stop';
    }
    if (s.stream) {
      // Hold back a trailing partial character (U+FFFD until its last byte comes).
      let stable = s.text.length;
      while (stable > s.sent && s.text.charCodeAt(stable - 1) === 0xfffd) stable--;
      if (stable > s.sent) {
        post({ t: 'text', id: s.id, delta: s.text.slice(s.sent, stable) });
        s.sent = stable;
      }
    }
    if (s.generated.length >= s.params.maxNewTokens || s.cache.length + 1 >= shape.maxPositions) return 'length';
    return null;
  };
  const finish = (s: Sequence, reason: FinishReason): void => {
    if (s.stream && s.text.length > s.sent) post({ t: 'text', id: s.id, delta: s.text.slice(s.sent) });
    post({ t: 'done', id: s.id, text: s.text, promptTokens: s.promptTokens, tokens: s.generated.length, reason });
  };
  /** One forward pass over `seqs`; each gets its next token. Returns the ones still running. */
  const advance = async (seqs: Sequence[], tokens: (s: Sequence) => number[], prefill: boolean): Promise<Sequence[]> => {
    const started = performance.now();
    let logits: Float32Array[];
    try {
      logits = await decoder.forward(seqs.map((s) => ({ cache: s.cache, tokens: tokens(s) })));
    } catch (err) {
      for (const s of seqs) {
        decoder.free(s.cache);
        post({ t: 'error', id: s.id, message: `the model failed on a batch of ${seqs.length}: ${(err as Error).message}` });
      }
      return [];
    }
    const ids = seqs.map((s) => s.id);
    post({ t: 'step', size: seqs.length, prefill: prefill ? seqs.length : 0, ms: performance.now() - started, firstTokenIds: prefill ? ids : [], decodedIds: prefill ? [] : ids });
    const still: Sequence[] = [];
    seqs.forEach((s, i) => {
      if (cancelled.has(s.id)) return decoder.free(s.cache);
      // A sequence that ends here gives its KV row back for one that joins.
      if (s.top > 0) {
        decoder.free(s.cache);
        const top = topCandidates(logits[i]!, s.top).map(({ id, probability }) => ({ token: tokenizer.decode([id], { skip_special_tokens: false }), probability }));
        post({ t: 'done', id: s.id, text: '', promptTokens: s.promptTokens, tokens: 0, reason: 'length', top });
        return;
      }
      const reason = accept(s, chooseToken(logits[i]!, s.history, s.params, s.rand));
      if (reason) {
        decoder.free(s.cache);
        finish(s, reason);
      } else still.push(s);
    });
    return still;
  };

  while (!closed) {
    if (arrivals.length === 0 && running.length === 0) {
      post({ t: 'idle' });
      await new Promise<void>((resolve) => (wake = resolve));
      continue;
    }
    if (cancelled.size > 0) {
      running = running.filter((s) => {
        if (!cancelled.has(s.id)) return true;
        decoder.free(s.cache);
        return false;
      });
      for (let i = arrivals.length - 1; i >= 0; i--) if (cancelled.has(arrivals[i]!.id)) arrivals.splice(i, 1);
      cancelled.clear();
    }
    const joining: Sequence[] = [];
    for (const a of arrivals.splice(0)) {
      try {
        if (hooks) await (await hooks).beforeInputs([a.prompt]);
        joining.push(start(a, rt));
      } catch (err) {
        post({ t: 'error', id: a.id, message: (err as Error).message });
      }
    }
    const decoding = running;
    running = [];
    if (joining.length > 0) running.push(...(await advance(joining, (s) => s.history, true)));
    if (decoding.length > 0) running.push(...(await advance(decoding, (s) => [s.next], false)));
    // Let the main thread's adds and cancels in before the next step.
    await yieldLoop();
  }
  port.close();
}

function start(a: Extract<ToWorker, { t: 'add' }>, rt: GenRuntime): Sequence {
  const { shape } = rt.decoder;
  let ids = rt.tokenizer.encode(a.prompt).ids;
  if (ids.length === 0) {
    if (shape.bosTokenId === null) throw new Error('the prompt is empty and the model has no bos_token_id to start from');
    ids = [shape.bosTokenId];
  }
  // Keep the end of a prompt too long for the position table (with room for one new token at least).
  const room = Math.max(1, shape.maxPositions - Math.min(a.params.maxNewTokens, shape.maxPositions - 1));
  if (ids.length > room) ids = ids.slice(ids.length - room);
  return {
    id: a.id,
    params: a.params,
    stream: a.stream,
    top: a.top,
    rand: samplerFor(a.params),
    cache: emptyCache(shape),
    history: [...ids],
    promptTokens: ids.length,
    generated: [],
    text: '',
    sent: 0,
    next: -1,
  };
}
