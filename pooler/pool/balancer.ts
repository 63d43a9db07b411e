// Load balancing among the servers that may take a query (PgCat's
// load_balancing_mode, plus round_robin): random, loc (least outstanding
// connections: fewest checked out), round_robin.

import type { LoadBalancingMode } from '../../config/types.js';

export interface Candidate {
  /** Connections currently checked out from this server. */
  readonly busy: number;
}

export class Balancer {
  private next = 0;

  constructor(private readonly mode: LoadBalancingMode) {}

  /** Index of the chosen candidate, -1 when there is none. */
  pick(candidates: readonly Candidate[]): number {
    const n = candidates.length;
    if (n === 0) return -1;
    if (n === 1) return 0;
    switch (this.mode) {
      case 'random':
        return Math.floor(Math.random() * n);
      case 'round_robin':
        return this.next++ % n;
      case 'loc': {
        // Least busy; ties broken at random so equal servers share the load.
        let best = Infinity;
        let chosen: number[] = [];
        for (let i = 0; i < n; i++) {
          const b = candidates[i].busy;
          if (b < best) {
            best = b;
            chosen = [i];
          } else if (b === best) chosen.push(i);
        }
        return chosen[Math.floor(Math.random() * chosen.length)];
      }
    }
  }
}
