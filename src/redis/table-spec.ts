/**
 * What a Redis foreign table is, once its options are validated: which Redis type it reads, which
 * key (or glob pattern of keys), and what each declared column holds. Both FDW dialects end up here.
 */
import type { TextArrayBuilder } from '../protocol/text-array.js';
import type { XaddOp } from './write.js';
import type { ScanTargets, WholeCheck } from './resp-scan.js';

export type RedisType = 'list' | 'set' | 'hash' | 'zset' | 'stream' | 'string';

/**
 * The meaning of one declared column, by position.
 * - key: the Redis key (multi-key tables only)
 * - field/value: a hash field and its value
 * - element: a list, set or zset element; member is the redis_fdw_rs name for the same
 * - score: a zset score; index: a list index (0-based)
 * - id: a stream entry id; items: the whole entry/object as JSON (stream fields, or multi_* contents)
 * - streamField: one stream entry field, by name (redis_fdw_rs streams)
 */
export type ColumnRole =
  | { kind: 'key' }
  | { kind: 'field' }
  | { kind: 'value' }
  | { kind: 'element' }
  | { kind: 'score' }
  | { kind: 'index' }
  | { kind: 'id' }
  | { kind: 'items' }
  | { kind: 'streamField'; name: string };

export interface ColumnDef {
  name: string;
  /** As format_type() prints it, e.g. `text`, `double precision`, `jsonb`. */
  type: string;
  typeOid: number;
  notNull: boolean;
  /** The column's DEFAULT expression as pg_get_expr prints it, when it has one. */
  default?: string;
}

export interface TableSpec {
  /** Qualified name for messages, e.g. `redis.hash`. */
  table: string;
  type: RedisType;
  /**
   * true: `key` is a glob and each row comes from one of the matching keys.
   * Supabase multi_* tables aggregate each key into one row (key, items); redis_fdw_rs glob tables
   * give one row per element with the key first.
   */
  multi: 'none' | 'aggregate' | 'rows';
  key: string;
  columns: ColumnDef[];
  roles: ColumnRole[];
}

/** What the WHERE clause lets us narrow the Redis read to. Upstream re-applies the WHERE anyway. */
export interface Pushdown {
  /** Hash fields (the `field` role): read only these, with HMGET. */
  fields?: string[];
  /** Exact keys for multi-key tables: read only these that match the pattern. */
  keys?: string[];
  /** Zset score range, inclusive bounds as Redis writes them ('-inf', '(5', '10'). */
  scoreMin?: string;
  scoreMax?: string;
  /** Stream id range for XRANGE ('-', '+', or ids). */
  idMin?: string;
  idMax?: string;
  /** At most this many rows are needed (LIMIT with no other predicate or join). */
  limit?: number;
}

/**
 * Receives rows in column order. Values are raw bytes from Redis (Buffer), text the proxy made
 * (string: scores, indexes, JSON items), or null. `key` names the Redis key the row came from, for
 * error messages.
 */
export interface RowSink {
  /**
   * `staged`: the staged XADD the row is, for a stream entry an open transaction added and Redis has
   * not numbered yet (its id reads NULL); a DELETE of the row cancels that XADD.
   */
  row(key: string, values: (Buffer | string | null)[], staged?: XaddOp): void;
  /**
   * The binary `text[]` parameters the rows end up in, one per column, still empty: a big single-key scan
   * may fill them in place (redis/resp-scan.ts) instead of calling row(), checking text as the sink would,
   * with `table` in its messages. With `direct`, a whole-key raw scan writes its elements there instead
   * (the fast path's DataRows) and the arrays stay empty; `checkedWhole` asks for the reply to be checked
   * whole first (resp-scan.ts ScanRequest).
   */
  columns?: { arrays: TextArrayBuilder[]; table: string; direct?: ScanTargets | undefined; checkedWhole?: WholeCheck | undefined } | undefined;
}
