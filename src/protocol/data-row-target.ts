/**
 * DataRow messages written straight from a raw scan's reply bytes (redis/resp-scan.ts): the fast path's
 * `SELECT *` of a whole hash, list, set or zset, whose rows are the reply's elements as they are, one
 * column (set/list element) or two (hash field and value, zset member and score). The same object is
 * the scan's `first` and `second` target, so values arrive in row order; each is copied once, from the
 * socket's chunk into the message the client gets.
 */
import { Backend } from './codes.js';

const HEADER = 7; // type byte, length, column count

export class DataRowTarget {
  private buf: Buffer;
  private off = 0;
  private rows = 0;
  /** Where the row being written starts, and how many of its columns are written. */
  private rowStart = 0;
  private filled = 0;
  private fill = 0;

  constructor(
    private readonly ncols: 1 | 2,
    initial = 64 * 1024,
  ) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  /** Rows begun (a row's first value counts it), as a builder's value count. */
  get length(): number {
    return this.rows;
  }

  get buffer(): Buffer {
    return this.buf;
  }

  /** The end of the last value written. */
  get bytes(): number {
    return this.off;
  }

  /** The DataRow messages, back to back. */
  finish(): Buffer {
    return this.buf.subarray(0, this.off);
  }

  pushRange(src: Buffer, start: number, end: number): number {
    const n = end - start;
    const at = this.open(n);
    const buf = this.buf;
    if (n > 64) src.copy(buf, at, start, end);
    else for (let k = 0; k < n; k++) buf[at + k] = src[start + k]!;
    this.off = at + n;
    this.close();
    return at;
  }

  /** A value of `n` bytes that append() fills; the row is complete once they all came. */
  begin(n: number): number {
    const at = this.open(n);
    this.fill = at;
    this.off = at + n;
    if (n === 0) this.close();
    return at;
  }

  append(src: Buffer, start: number, end: number): void {
    src.copy(this.buf, this.fill, start, end);
    this.fill += end - start;
    if (this.fill === this.off) this.close();
  }

  /** Drops the row whose first value starts at `at` (a member a rehashing scan repeated). */
  dropLast(at: number): void {
    void at;
    this.off = this.rowStart;
    this.rows--;
    this.filled = 0;
  }

  /** The first `count` rows' first values as byte ranges. */
  forEachValue(count: number, f: (buf: Buffer, start: number, end: number) => void): void {
    const buf = this.buf;
    let p = 0;
    for (let i = 0; i < count; i++) {
      const len = buf.readInt32BE(p + 1);
      const n = buf.readInt32BE(p + HEADER);
      f(buf, p + HEADER + 4, p + HEADER + 4 + n);
      p += 1 + len;
    }
  }

  /** Room for a value of n bytes (and the row's header before a first value); returns where it goes. */
  private open(n: number): number {
    const first = this.filled === 0;
    this.ensure((first ? HEADER : 0) + 4 + n);
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
  private close(): void {
    if (this.filled < this.ncols) return;
    this.filled = 0;
    const o = this.rowStart;
    const len = this.off - o - 1;
    const buf = this.buf;
    buf[o + 1] = len >>> 24;
    buf[o + 2] = (len >>> 16) & 0xff;
    buf[o + 3] = (len >>> 8) & 0xff;
    buf[o + 4] = len & 0xff;
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }
}
