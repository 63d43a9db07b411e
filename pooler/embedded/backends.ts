// The embedded backends a config names (`pglite:<dir>` server hosts),
// started on first use and kept across reloads.

import { dirname } from 'node:path';
import type { Config } from '../../config/types.js';
import type { Logger } from '../logger.js';
import { parseEmbeddedHost, startEmbeddedBackend, type EmbeddedBackend } from './pglite-backend.js';

export class EmbeddedBackends {
  /** Keyed by the host string as written in the config. */
  private readonly byHost = new Map<string, EmbeddedBackend>();

  constructor(private readonly log: Logger) {}

  /** Start every embedded backend `config` names that is not running yet. */
  async ensure(config: Config): Promise<void> {
    const baseDir = dirname(config.path);
    for (const pc of Object.values(config.pools)) {
      for (const shard of Object.values(pc.shards)) {
        for (const s of shard.servers) {
          if (this.byHost.has(s.host)) continue;
          const dir = parseEmbeddedHost(s.host, baseDir);
          if (!dir) continue;
          const backend = await startEmbeddedBackend(dir, { log: this.log });
          this.byHost.set(s.host, backend);
          this.log.info({ dataDir: backend.dataDir, socketDir: backend.host }, 'embedded PGlite backend started');
        }
      }
    }
  }

  /** Where to connect for a configured server: the embedded backend's socket, or as written. */
  resolve(host: string, port: number): { host: string; port: number } {
    const b = this.byHost.get(host);
    return b ? { host: b.host, port: b.port } : { host, port };
  }

  async stopAll(): Promise<void> {
    const all = [...this.byHost.values()];
    this.byHost.clear();
    await Promise.all(all.map((b) => b.stop()));
  }
}
