// Errors the engine hands to callers, each with the SQLSTATE the SQL surface
// sends to the client.

/** SQLSTATEs of engine failures. */
export const EngineCode = {
  /** undefined_object: no model of that name. */
  UnknownModel: '42704',
  /** too_many_connections class: the model's admission queue is full. */
  TooBusy: '53300',
  /** program_limit_exceeded: one call with more inputs than the queue can ever hold. */
  TooManyInputs: '54000',
  /** query_canceled: no result within model_timeout_ms. */
  Timeout: '57014',
  /** admin_shutdown: the engine is closing. */
  Shutdown: '57P01',
  /** system_error: a model could not be loaded. */
  LoadFailed: '58000',
  /** internal_error: a worker crashed (or the model failed on this input). */
  Internal: 'XX000',
  /** invalid_parameter_value: bad generation args. */
  InvalidArgument: '22023',
  /** feature_not_supported: generation args PgLynx does not implement. */
  NotSupported: '0A000',
  /** wrong_object_type: an embedding model asked to generate, or the reverse. */
  WrongTask: '42809',
} as const;

export type EngineCodeValue = (typeof EngineCode)[keyof typeof EngineCode];

export class EngineError extends Error {
  constructor(
    readonly code: EngineCodeValue,
    message: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}
