/**
 * Rows to Redis commands. Upstream has already evaluated every value (casts, defaults, expressions,
 * which rows an UPDATE or DELETE matches); what is left is the meaning of each column for the table's
 * Redis type (its module's `rows`, through typeOf) and, here, what every type shares: the key a row of
 * a multi-key table names, a multi_* row's whole-key contents, a row that moves to another key.
 */
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { globMatch } from './glob.js';
import { jsonOf, RowWriter, type Row, type RowOpsContext, type SnapshotRow, type TypeRows } from './types/row-writer.js';
import { typeOf, type RedisTypeRecord } from './types/type.js';
import type { RedisOp } from './write.js';

export type { Row, RowOpsContext, SnapshotRow } from './types/row-writer.js';

/** Collects one statement's commands. */
export class StatementOps {
  private readonly w: RowWriter;
  private readonly type: RedisTypeRecord;
  private readonly rows: TypeRows;

  constructor(private readonly cx: RowOpsContext) {
    this.w = new RowWriter(cx);
    this.type = typeOf(cx.spec);
    this.rows = this.type.rows(this.w);
  }

  get ops(): readonly RedisOp[] {
    return this.w.ops;
  }

  /** The commands, then what the type held until the end (a list's edits, in position order per key). */
  finish(): RedisOp[] {
    // Appended in place: a copy of a 100,000-row statement's commands would be one more long stretch.
    const out = this.w.ops;
    for (const op of this.rows.finish?.() ?? []) out.push(op);
    return out;
  }

  /** `nx`: leave an entry that exists as it is (ON CONFLICT DO NOTHING). */
  insert(row: Row, nx = false): void {
    const key = this.keyOf(row);
    if (this.cx.spec.multi === 'aggregate') return this.writeAggregate(key, this.w.required(row, this.w.col.items!));
    this.rows.insert(key, row, nx);
  }

  delete(old: SnapshotRow): void {
    if (this.cx.spec.multi === 'aggregate') return this.w.push({ op: 'del', key: old.key });
    this.rows.delete(old);
  }

  update(old: SnapshotRow, row: Row): void {
    const { spec } = this.cx;
    const c = this.w.col;
    const refuse = this.type.refuseUpdate;
    if (refuse) throw refuse(spec.table);
    const newKey = this.keyOf(row);
    if (spec.multi === 'aggregate') {
      this.w.push({ op: 'del', key: old.key });
      return this.writeAggregate(newKey, this.w.required(row, c.items!));
    }
    this.rows.checkUpdate?.(old, row);
    if (newKey !== old.key) {
      // A row that moves to another key of a multi-key table: out of the old key, into the new one.
      this.delete(old);
      return this.insert(row.map((x, i) => (i === c.index ? null : x)));
    }
    this.rows.update(old, row);
  }

  private keyOf(row: Row): string {
    const { spec } = this.cx;
    if (spec.multi === 'none') return spec.key;
    const key = this.w.required(row, this.w.col.key!);
    if (!globMatch(spec.key, key)) {
      throw new PgError(SqlState.CheckViolation, `new row for relation "${this.cx.relname}" has key "${key}", which does not match the table's key pattern "${spec.key}"`, {
        detail: 'A key outside the pattern would be written where this table cannot read it.',
      });
    }
    return key;
  }

  /** Writes one multi_* row: the whole key's contents from its JSON `items`. */
  private writeAggregate(key: string, itemsText: string): void {
    const name = this.cx.spec.columns[this.w.col.items!]!.name;
    this.type.aggregate!.write(this.w, key, jsonOf(itemsText, name), name);
  }
}
