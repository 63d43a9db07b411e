// Which instance (slot) of a model takes a call, for embedding and
// generation models alike.

import { randomInt } from 'node:crypto';
import type { LoadBalancingMode } from '../config/types.js';
import { EngineCode, EngineError } from './errors.js';

/** What routing reads of an instance. */
export interface RoutableInstance {
  readonly state: string;
  readonly retiring: boolean;
  /** Calls (or sequences) queued and running on it. */
  readonly outstanding: number;
}

/**
 * Among loaded instances (or, while none is, among those loading) by the
 * pool's load-balancing mode. `loc` is least outstanding, ties broken from
 * `turn` on so equal instances share.
 */
export function chooseInstance<I extends RoutableInstance>(instances: readonly I[], mode: LoadBalancingMode, turn: number, model: string): I {
  const live = instances.filter((i) => i.state !== 'closed' && !i.retiring);
  const ready = live.filter((i) => i.state === 'ready');
  const choices = ready.length > 0 ? ready : live;
  if (choices.length === 0) throw new EngineError(EngineCode.Shutdown, `model "${model}" has no instances`);
  if (mode === 'random') return choices[randomInt(choices.length)]!;
  if (mode === 'round_robin') return choices[turn % choices.length]!;
  let best = choices[turn % choices.length]!;
  for (let k = 1; k < choices.length; k++) {
    const inst = choices[(turn + k) % choices.length]!;
    if (inst.outstanding < best.outstanding) best = inst;
  }
  return best;
}
