/**
 * A raw scan's rows handed to the fast path one at a time, as they are parsed (redis/resp-scan.ts):
 * for a whole-key read whose output isn't the reply as it stands (a WHERE the proxy evaluates, a
 * count, some columns, typed ones). Each row's values are copied into one small scratch buffer, which
 * is all the read holds: no column arrays for a million rows, and no second walk over them.
 *
 * A row is handed on when the next one begins (or at flush()), not when its last value arrives: the
 * scan checks each value as text and may drop a member a rehashing HSCAN repeated, after writing it.
 */
import type { RowView } from './fast-filter.js';
import { ValueWriter } from '../protocol/value-writer.js';

export interface RowColumns {
  /** The view column each reply element of a row goes to (slot 0, slot 1), or -1 for none. */
  slots: readonly number[];
  /** Columns that hold the key itself. */
  key: readonly number[];
  /** Columns that hold the element's 0-based position (a list's index). */
  position: readonly number[];
}

export class RowViewTarget extends ValueWriter {
  private filled = 0;
  private rows = 0;
  /** A row is written and not yet handed on. */
  private pending = false;
  private readonly perRow: number;
  private readonly starts: Int32Array;
  private readonly ends: Int32Array;

  constructor(
    private readonly view: RowView,
    private readonly cols: RowColumns,
    key: Buffer,
    private readonly onRow: (view: RowView) => void,
  ) {
    super(Buffer.allocUnsafe(4096));
    this.perRow = cols.slots.length;
    this.starts = new Int32Array(this.perRow);
    this.ends = new Int32Array(this.perRow);
    for (let c = 0; c < view.ends.length; c++) view.ends[c] = -1;
    for (const c of cols.key) {
      view.bufs[c] = key;
      view.starts[c] = 0;
      view.ends[c] = key.length;
    }
  }

  /** Rows begun (a row's first value counts it), as a builder's value count. */
  get length(): number {
    return this.rows;
  }

  /** Drops the row being written (a member a rehashing scan repeated). */
  dropLast(): void {
    this.pending = false;
    this.filled = 0;
    this.off = 0;
    this.rows--;
  }

  /** Hands on the last row. */
  flush(): void {
    if (!this.pending) return;
    this.pending = false;
    const { view, cols } = this;
    const buf = this.buf;
    for (let s = 0; s < this.perRow; s++) {
      const c = cols.slots[s]!;
      if (c < 0) continue;
      view.bufs[c] = buf;
      view.starts[c] = this.starts[s]!;
      view.ends[c] = this.ends[s]!;
    }
    if (cols.position.length > 0) {
      // The position's digits go after the row's values, in the same scratch buffer.
      const at = this.off;
      const text = String(this.rows - 1);
      this.ensure(at, text.length);
      this.buf.write(text, at, 'latin1');
      for (const c of cols.position) {
        view.bufs[c] = this.buf;
        view.starts[c] = at;
        view.ends[c] = at + text.length;
      }
    }
    this.onRow(view);
  }

  protected open(n: number): number {
    if (this.filled === 0) {
      this.flush();
      this.off = 0;
      this.rows++;
    }
    const at = this.off;
    this.ensure(at, n);
    this.starts[this.filled] = at;
    this.ends[this.filled] = at + n;
    this.filled++;
    return at;
  }

  protected close(): void {
    if (this.filled < this.perRow) return;
    this.filled = 0;
    this.pending = true;
  }

  private ensure(at: number, n: number): void {
    if (at + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, at + n + 64));
    this.buf.copy(next, 0, 0, at);
    this.buf = next;
  }
}
