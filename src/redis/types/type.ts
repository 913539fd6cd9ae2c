/**
 * One record per Redis type. Everything the proxy knows about a table of one type (how a key is read
 * page by page, what a pushdown narrows, how Redis counts it, how rows become commands, how staged
 * writes are modelled for read-your-writes) lives in that type's module (hash.ts, list.ts, ...), and
 * callers reach it through `typeOf(spec)` rather than switching on the type's name. What every type
 * shares (several keys under one glob pattern) is in multi.ts.
 */
import type { ColumnDef, ColumnRole, Pushdown, RedisType } from '../table-spec.js';
import type { ScanKind } from '../resp-scan.js';
import type { Item, OpenCursor } from './cursor.js';
import type { KeyCount } from './length.js';
import type { ModelOf } from './model.js';
import type { RowWriter, TypeRows } from './row-writer.js';
import type { PgError } from '../../protocol/pg-error.js';
import type { Redis } from 'ioredis';
import { hash } from './hash.js';
import { list } from './list.js';
import { set } from './set.js';
import { stream } from './stream.js';
import { string } from './string.js';
import { zset } from './zset.js';

export interface RedisTypeRecord {
  readonly name: RedisType;

  // ---- declaring (catalog/options.ts) ----

  /** The column roles of a Supabase Wrappers table (src_type '<name>'); absent: not one of its types. */
  supabaseColumns?(table: string, cols: ColumnDef[]): ColumnRole[];
  /**
   * The column roles of a redis_fdw_rs table: `rest` are the columns after the key column of a pattern
   * table (all of them otherwise), `prefix` how messages show the columns before them.
   */
  rsColumns(table: string, rest: ColumnDef[], prefix: string, cols: ColumnDef[]): ColumnRole[];

  // ---- reading ----

  /** The read cursor over one key: the pages of a whole-key walk, or the pushed-down lookups. */
  readonly open: OpenCursor;
  /** Whether the cursor may take more than one command (GET is one), for EXPLAIN. */
  readonly paged: boolean;
  /**
   * The column role whose `=`/`IN` constants the cursor looks up exactly (a hash's fields: HMGET), so
   * a WHERE made only of pins on it is applied whole by the read. Undefined: nothing narrows a key.
   */
  readonly pinnedRole?: 'field';
  /** The raw scan (resp-scan.ts) for a whole-key read straight into `text[]` parameters, if any. */
  readonly fastScan?: FastScan;
  /** A multi_* table's one row per key; undefined for types whose keys can't be aggregated (stream, string). */
  readonly aggregate?: Aggregate;

  // ---- counting ----

  /** `count(*)` of a one-key table, answered by Redis without reading the key (executor/count.ts). */
  readonly count: KeyCount;
  /** A key is exactly one row (a string): a multi-key table of this type counts its keys. */
  readonly singleRow?: boolean;

  // ---- read-your-writes ----

  /** One key in memory, with the transaction's staged commands applied to it (overlay.ts). */
  readonly model: ModelOf;

  // ---- writing ----

  /** A statement's rows → commands for this type (row-ops.ts adds what every type shares). */
  rows(w: RowWriter): TypeRows;
  /** Refuses UPDATE of this type's tables, saying why (streams are append-only). */
  refuseUpdate?(table: string): PgError;
  /**
   * Roles a write's snapshot reads besides the declared columns to find a row again in Redis: a
   * list's position, a zset's score (ZADD of a renamed member needs it).
   */
  readonly identityRoles?: readonly ('index' | 'score')[];
  /** What identifies an entry inside a key, for INSERT ... ON CONFLICT; undefined: entries have none. */
  readonly conflict?: Conflict;
}

/** A multi_* row: one key's whole contents as JSON `items`, read and written. */
export interface Aggregate {
  json(items: Item[], key: string, table: string): string;
  /** The commands that write a row's parsed `items` (column `name`) into `key`. */
  write(w: RowWriter, key: string, items: unknown, name: string): void;
}

export interface Conflict {
  /** The role naming the entry inside the key (hash field, set/zset member); absent: the key is the entry. */
  readonly role?: 'field' | 'element';
  /** Which of `members` the key holds now (for a type without `role`: the key itself when it exists). */
  existing(c: Redis, key: string, members: string[]): Promise<string[]>;
}

/** How a type's whole-key reply maps onto the table's columns in a raw scan. */
export interface FastScan {
  readonly kind: ScanKind;
  /** The role of the column a reply's member (field, element) goes to. */
  readonly first: ColumnRole['kind'];
  /** The role of the column a reply pair's second half (value, score) goes to. */
  readonly second?: ColumnRole['kind'];
  /** HSCAN/SSCAN may return a member twice: the dedupe needs the members' column. */
  readonly dedupe: boolean;
  /** The role filled with each element's 0-based position (a list's index). */
  readonly position?: ColumnRole['kind'];
  /** Whether this pushdown still reads the whole key (a zset score range does not). */
  whole?(p: Pushdown): boolean;
}

const TYPES: Record<RedisType, RedisTypeRecord> = { hash, list, set, zset, stream, string };

/** The record of a table's (or a type name's) Redis type. */
export function typeOf(spec: { type: RedisType } | RedisType): RedisTypeRecord {
  return TYPES[typeof spec === 'string' ? spec : spec.type];
}
