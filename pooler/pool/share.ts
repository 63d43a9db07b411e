// Which busy server connection of a pool a waiting client's unit may be
// queued on (pipelining, server/pipeline.ts): one that takes units behind
// what it runs, below the pool's pipeline_depth, whose running unit has not
// run longer than pipeline_max_wait_ms (nobody queues behind a slow
// statement), the least deep first.

import type { ServerConnection } from '../server/connection.js';
import type { PipelineSettings } from './pool-settings.js';

/** A waiter that may also be queued behind a busy connection's unit. */
export interface Sharer {
  /** Whether its unit may go on `conn` (its session parameters match...). */
  accepts(conn: ServerConnection): boolean;
  /** It was given a place on `conn` behind the units there: send now. */
  onBehind(conn: ServerConnection): void;
}

/** `conn` can take one more unit now. */
export function hasRoomBehind(conn: ServerConnection, settings: PipelineSettings, now: number): boolean {
  const q = conn.pipeline;
  return q !== null && q.depth < settings.depth && conn.takesUnitsBehind && now - q.headSince <= settings.maxWaitMs;
}

/** The connection among `conns` to queue `sharer`'s unit on, or null. */
export function shareTarget(conns: Iterable<ServerConnection>, settings: PipelineSettings, sharer: Sharer): ServerConnection | null {
  const now = performance.now();
  let best: ServerConnection | null = null;
  let bestDepth = settings.depth;
  for (const conn of conns) {
    const depth = conn.pipeline?.depth ?? 0;
    if (depth < bestDepth && hasRoomBehind(conn, settings, now) && sharer.accepts(conn)) {
      best = conn;
      bestDepth = depth;
      if (depth === 1) break; // nothing is shallower
    }
  }
  return best;
}
