/** Message type bytes, named by direction. Frontend = sent by the client, backend = sent by Postgres. */

export const enum Frontend {
  Bind = 0x42, // 'B'
  Close = 0x43, // 'C'
  Describe = 0x44, // 'D'
  Execute = 0x45, // 'E'
  FunctionCall = 0x46, // 'F'
  Flush = 0x48, // 'H'
  Parse = 0x50, // 'P'
  Query = 0x51, // 'Q'
  Sync = 0x53, // 'S'
  Terminate = 0x58, // 'X'
  CopyDone = 0x63, // 'c'
  CopyData = 0x64, // 'd'
  CopyFail = 0x66, // 'f'
  Password = 0x70, // 'p' (also SASLInitialResponse, SASLResponse, GSSResponse)
}

export const enum Backend {
  ParseComplete = 0x31, // '1'
  BindComplete = 0x32, // '2'
  CloseComplete = 0x33, // '3'
  NotificationResponse = 0x41, // 'A'
  CommandComplete = 0x43, // 'C'
  DataRow = 0x44, // 'D'
  ErrorResponse = 0x45, // 'E'
  CopyInResponse = 0x47, // 'G'
  CopyOutResponse = 0x48, // 'H'
  EmptyQueryResponse = 0x49, // 'I'
  BackendKeyData = 0x4b, // 'K'
  NoticeResponse = 0x4e, // 'N'
  Authentication = 0x52, // 'R'
  ParameterStatus = 0x53, // 'S'
  RowDescription = 0x54, // 'T'
  FunctionCallResponse = 0x56, // 'V'
  CopyBothResponse = 0x57, // 'W'
  ReadyForQuery = 0x5a, // 'Z'
  CopyDone = 0x63, // 'c'
  CopyData = 0x64, // 'd'
  NoData = 0x6e, // 'n'
  PortalSuspended = 0x73, // 's'
  ParameterDescription = 0x74, // 't'
  NegotiateProtocolVersion = 0x76, // 'v'
}

/** Codes of untyped startup-phase packets (the int32 after the length). */
export const enum StartupCode {
  Protocol3 = 196608, // 3.0
  Cancel = 80877102,
  SSL = 80877103,
  GSSENC = 80877104,
}

/** Postgres's own limits: a startup packet over 10000 bytes is rejected, other messages over 1 GB. */
export const MAX_STARTUP_PACKET = 10000;
export const MAX_MESSAGE = 0x3fffffff;
