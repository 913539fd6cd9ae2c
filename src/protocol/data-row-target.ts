/**
 * DataRow messages written straight from a raw scan's reply bytes (redis/resp-scan.ts): the fast path's
 * `SELECT *` of a whole hash, list, set or zset, whose rows are the reply's elements, one column
 * (set/list element) or two (hash field and value, zset member and score). The same object is the
 * scan's `first` and `second` target, so values arrive in row order; each is copied once, from the
 * socket's chunk into the message the client gets.
 *
 * Messages go into chunks of their own rather than one buffer that doubles: no copy of what is already
 * written, and a chunk is never bigger than it needs to be. A row never spans chunks (a row the current
 * chunk can't finish is moved to the next whole), so every value's bytes lie in one buffer.
 *
 * A column may have a fix: the declared type's text output when it isn't the bytes read (a zset score
 * of double precision whose form float8out prints differently). A value the fix can't vouch for marks
 * the target `odd`, and the caller lets the upstream path answer.
 */
import { Backend } from './codes.js';
import { copyValue, ValueWriter } from './value-writer.js';
import { WholeBulk } from '../redis/whole-bulk.js';

const HEADER = 7; // type byte, length, column count

/** The type's text output of buf[start, end): `true` when it is those bytes, undefined when unsure. */
export type ValueFix = (buf: Buffer, start: number, end: number) => Buffer | true | undefined;

export class DataRowTarget extends ValueWriter {
  private readonly chunks: Buffer[] = [];
  private rows = 0;
  /** Where the row being written starts, and how many of its columns are written. */
  private rowStart = 0;
  private filled = 0;
  /** A value a column's fix could not vouch for. */
  odd = false;
  /** Where finished chunks go once rows are handed on as they are written (handOn). */
  private emit: ((chunk: Buffer) => void) | undefined;

  constructor(
    private readonly ncols: 1 | 2,
    private readonly fixes: readonly (ValueFix | undefined)[] = [],
    private readonly chunkSize = 128 * 1024,
  ) {
    super(Buffer.allocUnsafe(chunkSize));
  }

  /** Rows begun (a row's first value counts it), as a builder's value count. */
  get length(): number {
    return this.rows;
  }

  /**
   * From now on each chunk is handed to `emit` once no row in it can change, instead of being kept; what
   * finish() returns is then only the rest.
   */
  handOn(emit: (chunk: Buffer) => void): void {
    this.emit = emit;
    for (const c of this.chunks.splice(0)) emit(c);
  }

  /** The DataRow messages, back to back across the chunks. */
  finish(): Buffer[] {
    return this.off > 0 ? [...this.chunks, this.buf.subarray(0, this.off)] : [...this.chunks];
  }

  /**
   * The value of column `slot` just written at `at` (checked as text by the caller) takes its type's
   * output form. Returns where the value now starts.
   */
  settle(at: number, slot: number): number {
    const fix = this.fixes[slot];
    if (!fix) return at;
    const out = fix(this.buf, at, this.off);
    if (out === true) return at;
    if (out === undefined) {
      this.odd = true;
      return at;
    }
    // Only the row's last value is ever replaced: everything after `at` is this value.
    const complete = this.filled === 0;
    const n = out.length;
    let start = at;
    if (start + n > this.buf.length) start += this.moveRow(n - (this.off - at), true);
    const buf = this.buf;
    buf[start - 4] = n >>> 24;
    buf[start - 3] = (n >>> 16) & 0xff;
    buf[start - 2] = (n >>> 8) & 0xff;
    buf[start - 1] = n & 0xff;
    out.copy(buf, start);
    this.off = start + n;
    if (complete) this.patchHeader();
    return start;
  }

  /** Values the last takeBulks() wrote. */
  taken = 0;
  private readonly whole = new WholeBulk();

  /**
   * Whole bulk strings back to back from src[i] (a clean chunk of a whole-key reply), at most `max`, each
   * the next value as pushRange() and settle() would write it. This is the loop a 100,000-row read spends
   * its time in, so open() and close() are written out here over locals: through
   * pushRange (a base-class method whose open/close calls V8 sees with several receivers) a value cost
   * ~45 ns more. Returns where it stopped; `taken` says how many it wrote.
   */
  takeBulks(src: Buffer, i: number, n: number, max: number): number {
    const b = this.whole;
    const fixes = this.fixes;
    const ncols = this.ncols;
    const from = this.viewOfSource(src);
    let buf = this.buf;
    let to = this.viewOfBuffer();
    let off = this.off;
    let k = 0;
    for (; k < max && b.at(src, i, n); k++) {
      const start = b.start;
      const len = b.end - start;
      const first = this.filled === 0;
      const need = (first ? HEADER : 0) + 4 + len;
      if (off + need > buf.length) {
        this.off = off;
        this.moveRow(need, !first);
        buf = this.buf;
        to = this.viewOfBuffer();
        off = this.off;
      }
      if (first) {
        this.rowStart = off;
        this.rows++;
        buf[off] = Backend.DataRow;
        to.setUint16(off + 5, ncols);
        off += HEADER;
      }
      to.setInt32(off, len);
      const at = off + 4;
      copyValue(src, from, start, buf, to, at, len);
      off = at + len;
      const col = this.filled++;
      if (col + 1 === ncols) {
        this.filled = 0;
        to.setInt32(this.rowStart + 1, off - this.rowStart - 1);
      }
      if (fixes[col]) {
        this.off = off;
        this.settle(at, col);
        buf = this.buf;
        to = this.viewOfBuffer();
        off = this.off;
      }
      i = b.end + 2;
    }
    this.off = off;
    this.taken = k;
    return i;
  }

  /** Drops the row whose first value starts at `at` (a member a rehashing scan repeated). */
  dropLast(at: number): void {
    void at;
    this.off = this.rowStart;
    this.rows--;
    this.filled = 0;
  }

  /** Room for a value of n bytes (and the row's header before a first value); returns where it goes. */
  protected open(n: number): number {
    const first = this.filled === 0;
    const need = (first ? HEADER : 0) + 4 + n;
    if (this.off + need > this.buf.length) this.moveRow(need, this.filled > 0);
    const buf = this.buf;
    let o = this.off;
    if (first) {
      this.rowStart = o;
      this.rows++;
      buf[o] = Backend.DataRow;
      buf[o + 5] = 0;
      buf[o + 6] = this.ncols;
      o += HEADER;
    }
    buf[o] = n >>> 24;
    buf[o + 1] = (n >>> 16) & 0xff;
    buf[o + 2] = (n >>> 8) & 0xff;
    buf[o + 3] = n & 0xff;
    this.filled++;
    return o + 4;
  }

  /** A value is complete: after the row's last one, its length goes into the header. */
  protected close(): void {
    if (this.filled < this.ncols) return;
    this.filled = 0;
    this.patchHeader();
  }

  private patchHeader(): void {
    const o = this.rowStart;
    const len = this.off - o - 1;
    const buf = this.buf;
    buf[o + 1] = len >>> 24;
    buf[o + 2] = (len >>> 16) & 0xff;
    buf[o + 3] = (len >>> 8) & 0xff;
    buf[o + 4] = len & 0xff;
  }

  /**
   * Starts a new chunk with room for `more` bytes after what moves there: the row being written when
   * `withRow` (it moves whole), else nothing. Returns how far the row's bytes moved.
   */
  private moveRow(more: number, withRow: boolean): number {
    const from = withRow ? this.rowStart : this.off;
    const partial = this.off - from;
    const next = Buffer.allocUnsafe(Math.max(this.chunkSize, partial + more));
    if (partial > 0) this.buf.copy(next, 0, from, this.off);
    if (from > 0) {
      const done = this.buf.subarray(0, from);
      if (this.emit) this.emit(done);
      else this.chunks.push(done);
    }
    this.buf = next;
    this.off = partial;
    this.rowStart = 0;
    return -from;
  }
}
