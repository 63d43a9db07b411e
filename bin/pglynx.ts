#!/usr/bin/env node
// PgLynx command line, invoked as PgCat is: `pglynx [CONFIG_PATH] [--log-level LEVEL]`.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config/load.js';
import { ConfigError } from '../config/errors.js';
import { createLogger, LOG_LEVELS } from '../pooler/logger.js';
import { Pooler } from '../pooler/pooler.js';

const USAGE = `Usage: pglynx [CONFIG_PATH] [--log-level LEVEL]
       pglynx models synth SRC_DIR OUT_DIR [--seed N]
       pglynx models pull REPO_ID DIR [--revision REV] [--endpoint URL]

A PostgreSQL connection pooler, drop-in for PgCat.

Arguments:
  CONFIG_PATH            path to pgcat.toml (default: ./pgcat.toml)

Options:
  -l, --log-level LEVEL  one of ${LOG_LEVELS.join(', ')} (default: info, or $PGLYNX_LOG_LEVEL)
  -h, --help             print this help
  -V, --version          print the version

Models: "pglynx models --help" for the model commands (a graph with seeded
weights from a Hugging Face config.json, or a download of an ONNX export).

Signals: SIGINT shuts down gracefully (in-flight transactions finish, up to
shutdown_timeout); SIGTERM shuts down at once.`;

interface Args {
  configPath: string;
  logLevel: string;
}

function version(): string {
  const pkgPath = fileURLToPath(new URL('../../package.json', import.meta.url));
  try {
    return (JSON.parse(readFileSync(pkgPath, 'utf8')) as { version: string }).version;
  } catch {
    // Running from source (tsx): package.json is one level up.
    const src = fileURLToPath(new URL('../package.json', import.meta.url));
    return (JSON.parse(readFileSync(src, 'utf8')) as { version: string }).version;
  }
}

function parseArgs(argv: string[]): Args {
  let configPath: string | null = null;
  let logLevel = process.env.PGLYNX_LOG_LEVEL ?? 'info';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    } else if (a === '-V' || a === '--version') {
      process.stdout.write(`pglynx ${version()}\n`);
      process.exit(0);
    } else if (a === '-l' || a === '--log-level' || a.startsWith('--log-level=')) {
      const value = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (!value || !(LOG_LEVELS as readonly string[]).includes(value.toLowerCase())) {
        fail(`invalid --log-level ${JSON.stringify(value ?? '')}: expected one of ${LOG_LEVELS.join(', ')}`);
      }
      logLevel = value.toLowerCase();
    } else if (a.startsWith('-')) {
      fail(`unknown option ${a}\n\n${USAGE}`);
    } else if (configPath === null) {
      configPath = a;
    } else {
      fail(`unexpected argument ${a}\n\n${USAGE}`);
    }
  }
  return { configPath: configPath ?? 'pgcat.toml', logLevel };
}

function fail(message: string): never {
  process.stderr.write(`pglynx: ${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  // `pglynx models ...` prepares model directories; it needs no config file.
  if (process.argv[2] === 'models') {
    const { modelsMain } = await import('./models.js');
    process.exit(await modelsMain(process.argv.slice(3)));
  }
  const args = parseArgs(process.argv.slice(2));
  let config;
  try {
    config = await loadConfig(args.configPath);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  const log = createLogger(args.logLevel);
  let stopping = false;
  const stop = (graceful: boolean): void => {
    if (stopping) return;
    stopping = true;
    log.info({ graceful }, 'shutting down');
    void pooler.stop(graceful).then(() => process.exit(0));
  };
  const pooler = new Pooler(config, log, version(), stop);
  try {
    await pooler.start();
  } catch (err) {
    log.fatal({ err }, 'could not start');
    process.exit(1);
  }
  process.on('SIGINT', () => stop(true));
  process.on('SIGTERM', () => stop(false));
  process.on('SIGHUP', () => void pooler.reload());
}

void main();
