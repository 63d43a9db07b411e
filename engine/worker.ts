// The body of one engine slot: a piscina worker thread that owns one loaded
// model (ONNX session + tokenizer) and embeds one batch per task.
//
// The model is loaded lazily by the first task, so a worker that piscina
// starts to replace a crashed or terminated one loads itself again without
// the main thread having to know. Every failure is returned as a value: a
// rejected task then always means the thread itself died.

import { move, transferableSymbol, valueSymbol, workerData } from 'piscina';
import type { ModelInfo, WorkerData, WorkerHooks, WorkerReply, WorkerTask } from './worker-protocol.js';
import { loadRuntime, type Runtime } from './runtime.js';

const data = workerData as WorkerData;
let loading: Promise<Runtime> | null = null;
// Tests only (WorkerData.hooks); production workers import nothing here.
const hooks: Promise<WorkerHooks> | null = data.hooks === null ? null : import(data.hooks);

function runtime(): Promise<Runtime> {
  if (!loading) {
    loading = loadRuntime(data.config);
    // A failed load is tried again by the next task (files may be fixed by then).
    loading.catch(() => {
      loading = null;
    });
  }
  return loading;
}

function failure(err: unknown): WorkerReply {
  return { ok: false, message: err instanceof Error ? err.message : String(err) };
}

export default async function handler(task: WorkerTask): Promise<unknown> {
  let rt: Runtime;
  try {
    rt = await runtime();
  } catch (err) {
    return failure(err);
  }
  if (task.op === 'load') {
    const info: ModelInfo = rt.info;
    return { ok: true, info } satisfies WorkerReply;
  }
  try {
    if (hooks) await (await hooks).beforeInputs(task.texts);
    const vectors = await rt.embed(task.texts);
    // Transferred, not copied: the batch's vectors move to the main thread.
    return move(transferable({ ok: true, dims: rt.info.dims, vectors }, vectors.buffer));
  } catch (err) {
    return failure(err);
  }
}

/**
 * piscina's Transferable interface: it sends the object under the value
 * symbol and transfers what is listed under the transferable symbol, so the
 * reply keeps its shape and its buffer is not copied.
 */
function transferable(reply: WorkerReply, buffer: ArrayBufferLike): Parameters<typeof move>[0] {
  return { [transferableSymbol]: [buffer], [valueSymbol]: reply } as unknown as Parameters<typeof move>[0];
}
