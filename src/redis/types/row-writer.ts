/**
 * What every type's rows → commands code shares: the statement's list of commands, the columns by
 * role, and the checks Redis can't make for us (NULLs, sizes, JSON shapes). Upstream has already
 * evaluated every value; each type's module (`typeOf(spec).rows`) says what a row means for its type.
 */
import { PgError } from '../../protocol/pg-error.js';
import { SqlState } from '../../protocol/sqlstate.js';
import type { ColumnRole, TableSpec } from '../table-spec.js';
import type { RedisOp, XaddOp } from '../write.js';

/** A row as the statement read it, with what identifies it in Redis. */
export interface SnapshotRow {
  key: string;
  /** Declared columns, as text. */
  values: (string | null)[];
  /** Position in its list (list tables only). */
  index?: number;
  /** Its zset score, kept for zset tables without a score column (a renamed member keeps it). */
  score?: string;
  /** The staged XADD this row is (a stream entry the transaction added; its id reads NULL). */
  staged?: XaddOp;
}

export type Row = readonly (string | null)[];

export interface RowOpsContext {
  spec: TableSpec;
  /** The relation name as Postgres prints it in constraint messages. */
  relname: string;
  maxValueBytes: number;
}

/** One type's rows → commands, for one statement (it may keep state until `finish`). */
export interface TypeRows {
  /** `nx`: leave an entry that exists as it is (ON CONFLICT DO NOTHING). */
  insert(key: string, row: Row, nx: boolean): void;
  delete(old: SnapshotRow): void;
  /** Refuses an update before anything else is written (a list's position column can't change). */
  checkUpdate?(old: SnapshotRow, row: Row): void;
  /** An update that keeps the row on its key. */
  update(old: SnapshotRow, row: Row): void;
  /** Commands held until every row was seen (a list's position edits, one checked edit per key). */
  finish?(): RedisOp[];
}

export class RowWriter {
  readonly ops: RedisOp[] = [];
  /** The first column of each role. */
  readonly col: Partial<Record<ColumnRole['kind'], number>> = {};

  constructor(readonly cx: RowOpsContext) {
    cx.spec.roles.forEach((r, i) => (this.col[r.kind] ??= i));
  }

  push(op: RedisOp): void {
    this.ops.push(op);
  }

  required(row: Row, i: number): string {
    const v = row[i];
    const col = this.cx.spec.columns[i]!;
    if (v === null || v === undefined) {
      throw new PgError(SqlState.NotNullViolation, `null value in column "${col.name}" of relation "${this.cx.relname}" violates not-null constraint`, {
        detail: `Redis cannot store NULL; a ${this.cx.spec.type} ${roleWords(this.cx.spec.roles[i]!)} needs a value.`,
      });
    }
    this.checkSize(v, col.name);
    return v;
  }

  checkSize(v: string, column: string): void {
    const max = this.cx.maxValueBytes;
    // Cheap first: a JS string of n UTF-16 units is at most 3n bytes.
    if (v.length * 3 <= max) return;
    const bytes = Buffer.byteLength(v, 'utf8');
    if (bytes > max) {
      throw new PgError(SqlState.ProgramLimitExceeded, `value for column "${column}" of relation "${this.cx.relname}" is ${bytes} bytes, over the limit of ${max} bytes`, {
        hint: 'The limit is the proxy setting --max-value-bytes (Redis itself refuses values over its proto-max-bulk-len).',
      });
    }
  }

  /** A JSON value stored as one Redis string: strings as they are, anything else as its JSON text. */
  jsonScalar(v: unknown, what: string): string {
    if (v === null) {
      throw new PgError(SqlState.NotNullViolation, `null value in ${what} of relation "${this.cx.relname}"`, { detail: 'Redis cannot store NULL.' });
    }
    const s = typeof v === 'string' ? v : JSON.stringify(v);
    this.checkSize(s, what);
    return s;
  }
}

export function jsonOf(text: string, column: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new PgError(SqlState.InvalidTextRepresentation, `invalid input syntax for type json in column "${column}"`);
  }
}

export function describeJson(v: unknown): string {
  if (Array.isArray(v)) return v.length ? 'a JSON array' : 'an empty JSON array';
  if (v === null) return 'JSON null';
  if (typeof v === 'object') return 'an empty JSON object';
  return `a JSON ${typeof v}`;
}

/** A multi_list/set/zset row's items: a non-empty JSON array, each element one command. */
export function writeArrayItems(w: RowWriter, key: string, items: unknown, name: string, op: (value: string) => RedisOp): void {
  if (!Array.isArray(items) || items.length === 0) {
    throw new PgError(SqlState.InvalidParameterValue, `column "${name}" of a multi_${w.cx.spec.type} row must be a non-empty JSON array`, { detail: `Got ${describeJson(items)}.` });
  }
  items.forEach((x, i) => w.push(op(w.jsonScalar(x, `${name}[${i}]`))));
}

function roleWords(r: ColumnRole): string {
  switch (r.kind) {
    case 'field':
      return 'field name';
    case 'streamField':
      return `field "${r.name}"`;
    default:
      return r.kind;
  }
}
