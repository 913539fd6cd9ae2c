/**
 * Rows to Redis commands. Upstream has already evaluated every value (casts, defaults, expressions,
 * which rows an UPDATE or DELETE matches); what is left is the meaning of each column for the table's
 * Redis type, and the checks Redis can't make for us: NULLs, numbers, JSON shapes, key patterns, sizes.
 */
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { globMatch } from './glob.js';
import type { ColumnRole, TableSpec } from './table-spec.js';
import type { ListEdit, RedisOp, XaddOp } from './write.js';

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

const FLOAT = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** Collects one statement's commands; list edits of one key are merged into one checked edit. */
export class StatementOps {
  readonly ops: RedisOp[] = [];
  private readonly listEdits = new Map<string, ListEdit[]>();
  private readonly col: Partial<Record<ColumnRole['kind'], number>> = {};

  constructor(private readonly cx: RowOpsContext) {
    cx.spec.roles.forEach((r, i) => (this.col[r.kind] ??= i));
  }

  /** The commands, list edits last in position order of each key (they were all read from one snapshot). */
  finish(): RedisOp[] {
    const out = [...this.ops];
    for (const [key, edits] of this.listEdits) out.push({ op: 'ledit', key, edits: edits.sort((a, b) => a.index - b.index) });
    return out;
  }

  /** `nx`: leave an entry that exists as it is (ON CONFLICT DO NOTHING). */
  insert(row: Row, nx = false): void {
    const { spec } = this.cx;
    const key = this.keyOf(row);
    if (spec.multi === 'aggregate') return this.writeAggregate(key, this.required(row, this.col.items!));
    const c = this.col;
    switch (spec.type) {
      case 'hash':
        return this.push({ op: 'hset', key, field: this.required(row, c.field!), value: this.required(row, c.value!), ...(nx ? { nx } : {}) });
      case 'list':
        if (c.index !== undefined && row[c.index] !== null) {
          throw new PgError(SqlState.GeneratedAlways, `cannot insert a non-DEFAULT value into column "${spec.columns[c.index]!.name}"`, {
            detail: `Column "${spec.columns[c.index]!.name}" is the element's position in the list, which Redis assigns.`,
          });
        }
        return this.push({ op: 'rpush', key, value: this.required(row, c.element!) });
      case 'set':
        return this.push({ op: 'sadd', key, member: this.required(row, c.element!) });
      case 'zset':
        return this.push({ op: 'zadd', key, member: this.required(row, c.element!), score: c.score === undefined ? '0' : this.score(this.required(row, c.score)), ...(nx ? { nx } : {}) });
      case 'stream':
        return this.push({ op: 'xadd', key, id: this.streamId(row[c.id!] ?? null), pairs: this.streamPairs(row) });
      case 'string':
        return this.push({ op: 'set', key, value: this.required(row, c.value!), ...(nx ? { nx } : {}) });
    }
  }

  delete(old: SnapshotRow): void {
    const { spec } = this.cx;
    const key = old.key;
    if (spec.multi === 'aggregate') return this.push({ op: 'del', key });
    const c = this.col;
    const v = old.values;
    switch (spec.type) {
      case 'hash':
        return this.push({ op: 'hdel', key, field: v[c.field!]! });
      case 'list':
        return this.edit(key, { index: old.index!, expected: v[c.element!]!, value: null });
      case 'set':
        return this.push({ op: 'srem', key, member: v[c.element!]! });
      case 'zset':
        return this.push({ op: 'zrem', key, member: v[c.element!]! });
      case 'stream':
        // An entry added earlier in this transaction has no id yet: dropping its XADD is the delete.
        if (old.staged) return this.push({ op: 'xcancel', key, cancels: old.staged });
        return this.push({ op: 'xdel', key, id: streamEntryId(v[c.id!] ?? null) });
      case 'string':
        return this.push({ op: 'del', key });
    }
  }

  update(old: SnapshotRow, row: Row): void {
    const { spec } = this.cx;
    const c = this.col;
    if (spec.type === 'stream') throw streamUpdate(spec.table);
    const newKey = this.keyOf(row);
    if (spec.multi === 'aggregate') {
      this.push({ op: 'del', key: old.key });
      return this.writeAggregate(newKey, this.required(row, c.items!));
    }
    if (spec.type === 'list' && c.index !== undefined && row[c.index] !== old.values[c.index]) {
      throw new PgError(SqlState.GeneratedAlways, `column "${spec.columns[c.index]!.name}" can only be updated to DEFAULT`, {
        detail: `Column "${spec.columns[c.index]!.name}" is the element's position in the list, which Redis assigns.`,
      });
    }
    if (newKey !== old.key) {
      // A row that moves to another key of a multi-key table: out of the old key, into the new one.
      this.delete(old);
      return this.insert(row.map((x, i) => (i === c.index ? null : x)));
    }
    const v = old.values;
    switch (spec.type) {
      case 'hash': {
        const field = this.required(row, c.field!);
        if (field !== v[c.field!]) this.push({ op: 'hdel', key: old.key, field: v[c.field!]! });
        return this.push({ op: 'hset', key: old.key, field, value: this.required(row, c.value!) });
      }
      case 'list':
        return this.edit(old.key, { index: old.index!, expected: v[c.element!]!, value: this.required(row, c.element!) });
      case 'set': {
        const member = this.required(row, c.element!);
        if (member === v[c.element!]) return;
        this.push({ op: 'srem', key: old.key, member: v[c.element!]! });
        return this.push({ op: 'sadd', key: old.key, member });
      }
      case 'zset': {
        const member = this.required(row, c.element!);
        const score = c.score === undefined ? undefined : this.score(this.required(row, c.score));
        if (member !== v[c.element!]) this.push({ op: 'zrem', key: old.key, member: v[c.element!]! });
        // Without a score column a renamed member keeps its score; ZADD needs one, so it is the old one.
        return this.push({ op: 'zadd', key: old.key, member, score: score ?? old.score ?? '0' });
      }
      case 'string':
        return this.push({ op: 'set', key: old.key, value: this.required(row, c.value!) });
    }
  }

  private push(op: RedisOp): void {
    this.ops.push(op);
  }

  private edit(key: string, e: ListEdit): void {
    const list = this.listEdits.get(key) ?? [];
    if (!list.some((x) => x.index === e.index)) list.push(e);
    this.listEdits.set(key, list);
  }

  private keyOf(row: Row): string {
    const { spec } = this.cx;
    if (spec.multi === 'none') return spec.key;
    const key = this.required(row, this.col.key!);
    if (!globMatch(spec.key, key)) {
      throw new PgError(SqlState.CheckViolation, `new row for relation "${this.cx.relname}" has key "${key}", which does not match the table's key pattern "${spec.key}"`, {
        detail: 'A key outside the pattern would be written where this table cannot read it.',
      });
    }
    return key;
  }

  private required(row: Row, i: number): string {
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

  private checkSize(v: string, column: string): void {
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

  private score(s: string): string {
    const t = s.trim();
    if (FLOAT.test(t)) return t;
    if (/^[+-]?(inf|infinity)$/i.test(t)) return t.startsWith('-') ? '-inf' : '+inf';
    throw new PgError(SqlState.InvalidTextRepresentation, `invalid input syntax for type double precision: "${s}"`, { detail: 'A zset score must be a number.' });
  }

  private streamId(id: string | null): string {
    if (id === null || id === '*') return '*';
    if (!/^\d+(-(\d+|\*))?$/.test(id)) {
      throw new PgError(SqlState.InvalidTextRepresentation, `invalid Redis stream entry id: "${id}"`, { hint: 'Give <milliseconds>-<sequence>, <milliseconds>-*, or * (or NULL) to let Redis choose.' });
    }
    return id;
  }

  private streamPairs(row: Row): string[] {
    const { spec } = this.cx;
    const pairs: string[] = [];
    const items = this.col.items;
    if (items !== undefined) {
      const obj = jsonOf(this.required(row, items), spec.columns[items]!.name);
      if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
        throw new PgError(SqlState.InvalidParameterValue, `column "${spec.columns[items]!.name}" of a stream row must be a JSON object of field/value pairs`, { detail: `Got ${describeJson(obj)}.` });
      }
      for (const [f, v] of Object.entries(obj as Record<string, unknown>)) pairs.push(f, this.jsonScalar(v, `${spec.columns[items]!.name}.${f}`));
    } else {
      spec.roles.forEach((r, i) => {
        if (r.kind !== 'streamField' || row[i] === null) return;
        this.checkSize(row[i]!, spec.columns[i]!.name);
        pairs.push(r.name, row[i]!);
      });
    }
    if (pairs.length === 0) {
      throw new PgError(SqlState.InvalidParameterValue, `a stream entry of relation "${this.cx.relname}" needs at least one field`, { detail: 'Redis streams cannot hold empty entries.' });
    }
    return pairs;
  }

  /** Writes one multi_* row: the whole key's contents from its JSON `items`. */
  private writeAggregate(key: string, itemsText: string): void {
    const { spec } = this.cx;
    const name = spec.columns[this.col.items!]!.name;
    const items = jsonOf(itemsText, name);
    if (spec.type === 'hash') {
      if (items === null || typeof items !== 'object' || Array.isArray(items) || Object.keys(items).length === 0) {
        throw new PgError(SqlState.InvalidParameterValue, `column "${name}" of a multi_hash row must be a non-empty JSON object`, { detail: `Got ${describeJson(items)}.` });
      }
      for (const [f, v] of Object.entries(items as Record<string, unknown>)) this.push({ op: 'hset', key, field: f, value: this.jsonScalar(v, `${name}.${f}`) });
      return;
    }
    if (!Array.isArray(items) || items.length === 0) {
      throw new PgError(SqlState.InvalidParameterValue, `column "${name}" of a multi_${spec.type} row must be a non-empty JSON array`, { detail: `Got ${describeJson(items)}.` });
    }
    items.forEach((x, i) => {
      const v = this.jsonScalar(x, `${name}[${i}]`);
      if (spec.type === 'list') this.push({ op: 'rpush', key, value: v });
      else if (spec.type === 'set') this.push({ op: 'sadd', key, member: v });
      // A multi_zset row has no score column: every member gets 0, as for a zset table without one.
      else this.push({ op: 'zadd', key, member: v, score: '0' });
    });
  }

  private jsonScalar(v: unknown, what: string): string {
    if (v === null) {
      throw new PgError(SqlState.NotNullViolation, `null value in ${what} of relation "${this.cx.relname}"`, { detail: 'Redis cannot store NULL.' });
    }
    const s = typeof v === 'string' ? v : JSON.stringify(v);
    this.checkSize(s, what);
    return s;
  }
}

function jsonOf(text: string, column: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new PgError(SqlState.InvalidTextRepresentation, `invalid input syntax for type json in column "${column}"`);
  }
}

function describeJson(v: unknown): string {
  if (Array.isArray(v)) return v.length ? 'a JSON array' : 'an empty JSON array';
  if (v === null) return 'JSON null';
  if (typeof v === 'object') return 'an empty JSON object';
  return `a JSON ${typeof v}`;
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

/** A stream row's id for XDEL: only an entry the transaction added (`staged`) reads without one. */
function streamEntryId(id: string | null): string {
  if (id === null) throw new Error('a stream row without an id that is not a staged entry');
  return id;
}

export function streamUpdate(table: string): PgError {
  return new PgError(SqlState.FeatureNotSupported, `cannot update foreign table ${table}: Redis streams are append-only`, { hint: 'DELETE the entry and INSERT a new one.' });
}
