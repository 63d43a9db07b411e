// Messages between a generation slot's main-thread side (gen-instance.ts)
// and its worker thread's decode loop (gen-worker.ts), over a MessagePort.
//
// A generation slot is not one task per call: the worker runs one long
// piscina task ("serve") that keeps a running batch and decodes it step
// by step, while the main thread adds sequences and cancels them between
// steps. piscina still owns the thread (start, replacement after a crash,
// termination of a hung one through the task's AbortSignal).

import type { MessagePort } from 'node:worker_threads';
import type { GenerateParams } from './sampling.js';

export type ToWorker =
  /** top > 0: no generation, the prompt's top next-token candidates from its one forward pass (pgml.infer). */
  | { t: 'add'; id: number; prompt: string; params: GenerateParams; stream: boolean; top: number }
  | { t: 'cancel'; id: number }
  | { t: 'close' };

export type FinishReason = 'eos' | 'length' | 'stop';

/** A candidate next token: its text and softmax probability over the whole vocabulary. */
export interface TokenCandidate {
  token: string;
  probability: number;
}

export type FromWorker =
  /** New text of a streaming sequence (complete characters only). */
  | { t: 'text'; id: number; delta: string }
  | { t: 'done'; id: number; text: string; promptTokens: number; tokens: number; reason: FinishReason; top?: TokenCandidate[] }
  | { t: 'error'; id: number; message: string }
  /** The loop has nothing left to run (cancels included) and waits. */
  | { t: 'idle' }
  /**
   * One forward pass: how many sequences it ran, how many were prefills, how
   * long it took; the sequences it gave their first token (a prefill) or
   * their next one (a decode step), for time to first token and inter-token latency.
   */
  | { t: 'step'; size: number; prefill: number; ms: number; firstTokenIds: number[]; decodedIds: number[] };

/** The piscina tasks of a generation worker. */
export type GenTask = { op: 'load' } | { op: 'serve'; port: MessagePort };
