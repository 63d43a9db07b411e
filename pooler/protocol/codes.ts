// Protocol constants the pooler needs by name. Message type bytes are kept
// as char codes so the hot path compares numbers, never strings.

/** Frontend (client → server) message types. */
export const Frontend = {
  Query: 0x51, // 'Q'
  Parse: 0x50, // 'P'
  Bind: 0x42, // 'B'
  Describe: 0x44, // 'D'
  Execute: 0x45, // 'E'
  Close: 0x43, // 'C'
  Flush: 0x48, // 'H'
  Sync: 0x53, // 'S'
  FunctionCall: 0x46, // 'F'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyFail: 0x66, // 'f'
  Terminate: 0x58, // 'X'
  Password: 0x70, // 'p' (also SASLInitialResponse / SASLResponse)
} as const;

/** Backend (server → client) message types. */
export const Backend = {
  Authentication: 0x52, // 'R'
  BackendKeyData: 0x4b, // 'K'
  ParameterStatus: 0x53, // 'S'
  ReadyForQuery: 0x5a, // 'Z'
  ErrorResponse: 0x45, // 'E'
  NoticeResponse: 0x4e, // 'N'
  NotificationResponse: 0x41, // 'A'
  RowDescription: 0x54, // 'T'
  DataRow: 0x44, // 'D'
  CommandComplete: 0x43, // 'C'
  EmptyQueryResponse: 0x49, // 'I'
  PortalSuspended: 0x73, // 's'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  CopyBothResponse: 0x57, // 'W'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  ParseComplete: 0x31, // '1'
  BindComplete: 0x32, // '2'
  CloseComplete: 0x33, // '3'
  ParameterDescription: 0x74, // 't'
  NoData: 0x6e, // 'n'
} as const;

/** Type OIDs the pooler names (pg_type.oid), by type name; arrays as `<element>Array`. */
export const Oid = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  float4: 700,
  float8: 701,
  textArray: 1009,
  float4Array: 1021,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  numeric: 1700,
  jsonb: 3802,
} as const;

export const TEXT_OID = Oid.text;

/** Request codes carried in the length-prefixed, untyped first packet. */
export const StartupCode = {
  ProtocolV3: 196608, // 3 << 16
  CancelRequest: 80877102,
  SSLRequest: 80877103,
  GSSENCRequest: 80877104,
} as const;

/** Transaction status byte of ReadyForQuery. */
export const TxStatus = {
  Idle: 0x49, // 'I'
  InTransaction: 0x54, // 'T'
  Failed: 0x45, // 'E'
} as const;

/** SQLSTATEs of errors the pooler raises itself. */
export const SqlState = {
  ProtocolViolation: '08P01',
  ConnectionFailure: '08006',
  ConnectionException: '08000',
  InvalidPassword: '28P01',
  InvalidAuthorization: '28000',
  InvalidCatalogName: '3D000',
  TooManyConnections: '53300',
  QueryCanceled: '57014',
  AdminShutdown: '57P01',
  IdleInTransactionTimeout: '25P03',
  FeatureNotSupported: '0A000',
  InFailedTransaction: '25P02',
  SystemError: '58000',
  InternalError: 'XX000',
} as const;

/** Postgres's own limit on the startup packet (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_PACKET = 10_000;
/** Postgres refuses any message over 1 GiB (MaxAllocSize); so do we. */
export const MAX_MESSAGE_LENGTH = 0x3fffffff;
