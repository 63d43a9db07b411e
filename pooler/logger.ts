// One pino logger for the process; level from the CLI or PGLYNX_LOG_LEVEL.

import { pino, type Logger } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export function createLogger(level: string): Logger {
  return pino({ name: 'pglynx', level, base: { pid: process.pid } });
}
