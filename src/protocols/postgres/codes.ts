/**
 * Message type bytes and protocol codes of the PostgreSQL v3 wire protocol.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 */

/** Codes carried instead of a version in the first (untyped) message of a connection. */
export const StartupCode = {
  protocol3: 196608, // 3.0
  sslRequest: 80877103,
  gssEncRequest: 80877104,
  cancelRequest: 80877102,
} as const;

/** Messages a client (frontend) sends after startup. */
export const Frontend = {
  bind: 0x42, // B
  close: 0x43, // C
  copyData: 0x64, // d
  copyDone: 0x63, // c
  copyFail: 0x66, // f
  describe: 0x44, // D
  execute: 0x45, // E
  flush: 0x48, // H
  functionCall: 0x46, // F
  parse: 0x50, // P
  password: 0x70, // p (also SASL responses)
  query: 0x51, // Q
  sync: 0x53, // S
  terminate: 0x58, // X
} as const;

/** Messages a server (backend) sends. */
export const Backend = {
  authentication: 0x52, // R
  backendKeyData: 0x4b, // K
  bindComplete: 0x32, // 2
  closeComplete: 0x33, // 3
  commandComplete: 0x43, // C
  copyData: 0x64, // d
  copyDone: 0x63, // c
  copyInResponse: 0x47, // G
  copyOutResponse: 0x48, // H
  copyBothResponse: 0x57, // W
  dataRow: 0x44, // D
  emptyQueryResponse: 0x49, // I
  errorResponse: 0x45, // E
  functionCallResponse: 0x56, // V
  negotiateProtocolVersion: 0x76, // v
  noData: 0x6e, // n
  noticeResponse: 0x4e, // N
  notificationResponse: 0x41, // A
  parameterDescription: 0x74, // t
  parameterStatus: 0x53, // S
  parseComplete: 0x31, // 1
  portalSuspended: 0x73, // s
  readyForQuery: 0x5a, // Z
  rowDescription: 0x54, // T
} as const;

/** Sub-codes of the Authentication (R) message. */
export const AuthCode = {
  ok: 0,
  kerberosV5: 2,
  cleartextPassword: 3,
  md5Password: 5,
  gss: 7,
  gssContinue: 8,
  sspi: 9,
  sasl: 10,
  saslContinue: 11,
  saslFinal: 12,
} as const;

/** SQLSTATE codes gw itself sends. https://www.postgresql.org/docs/current/errcodes-appendix.html */
export const SqlState = {
  connectionFailure: "08006",
  connectionException: "08000",
  protocolViolation: "08P01",
  invalidAuthorization: "28000",
  invalidPassword: "28P01",
  insufficientPrivilege: "42501",
  featureNotSupported: "0A000",
  programLimitExceeded: "54000",
  invalidCatalogName: "3D000",
  tooManyConnections: "53300",
  adminShutdown: "57P01",
  cannotConnectNow: "57P03",
  internalError: "XX000",
  systemError: "58000",
  queryCanceled: "57014",
} as const;
