import type { SqlStateCode } from './sqlstate.js';

export type Severity = 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG';

export interface PgErrorFields {
  severity?: Severity;
  detail?: string;
  hint?: string;
  /** 1-based character position in the client's statement text. */
  position?: number;
  /** Context lines (Postgres's `W` field), e.g. which Bind parameter was being read. */
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
}

/**
 * An error meant for the client. It becomes an ErrorResponse (or NoticeResponse) in exactly one place,
 * `encodeError` in backend.ts; everything else just throws it.
 */
export class PgError extends Error {
  readonly severity: Severity;
  readonly detail: string | undefined;
  readonly hint: string | undefined;
  readonly position: number | undefined;
  readonly where: string | undefined;
  readonly schema: string | undefined;
  readonly table: string | undefined;
  readonly column: string | undefined;

  constructor(
    readonly code: SqlStateCode,
    message: string,
    fields: PgErrorFields = {},
  ) {
    super(message);
    this.name = 'PgError';
    this.severity = fields.severity ?? 'ERROR';
    this.detail = fields.detail;
    this.hint = fields.hint;
    this.position = fields.position;
    this.where = fields.where;
    this.schema = fields.schema;
    this.table = fields.table;
    this.column = fields.column;
  }
}

export const isPgError = (e: unknown): e is PgError => e instanceof PgError;
