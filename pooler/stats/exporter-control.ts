// Starts, stops or moves the Prometheus exporter to match the config, at
// start-up, on every reload and at shutdown.

import type { Config } from '../../config/types.js';
import type { AdminContext } from '../admin/context.js';
import type { Logger } from '../logger.js';
import { startPrometheusExporter, type PrometheusExporter } from './prometheus.js';

export class ExporterControl {
  /** The running exporter and the port it was configured with (0 may have become another). */
  private exporter: { running: PrometheusExporter; configuredPort: number } | null = null;
  /** Changes run one after another, since reloads may overlap. */
  private change: Promise<void> = Promise.resolve();
  /** Shutdown began: a reload's change still queued starts nothing. */
  private closed = false;

  constructor(
    private readonly ctx: AdminContext,
    private readonly log: Logger,
  ) {}

  /** Stop the exporter for good (shutdown). */
  close(): Promise<void> {
    this.closed = true;
    return this.sync(null);
  }

  /**
   * Match `config` (null: stop). A port that cannot be bound is logged and
   * the pooler carries on, as PgCat does; the next reload tries again.
   */
  sync(config: Config | null): Promise<void> {
    this.change = this.change.then(() => this.apply(config));
    return this.change;
  }

  private async apply(config: Config | null): Promise<void> {
    const g = config && !this.closed ? config.general : null;
    const wanted = g?.enable_prometheus_exporter ? g.prometheus_exporter_port : null;
    if (this.exporter && this.exporter.configuredPort === wanted) return;
    if (this.exporter) {
      const { running } = this.exporter;
      this.exporter = null;
      await running.close();
      this.log.info('Prometheus exporter stopped');
    }
    if (!g || wanted === null) return;
    try {
      const running = await startPrometheusExporter(this.ctx, { host: g.host, port: wanted, log: this.log });
      this.exporter = { running, configuredPort: wanted };
    } catch (err) {
      this.log.error({ host: g.host, port: wanted, err: (err as Error).message }, 'could not start the Prometheus exporter');
    }
  }
}
