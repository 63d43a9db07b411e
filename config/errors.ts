// The one error a config load fails with.

/** A config that could not be loaded; `message` is the one line printed to the operator. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly key: string | null,
    readonly reason: string,
  ) {
    super(`${file}: ${key ? `${key}: ` : ''}${reason}`);
    this.name = 'ConfigError';
  }
}
