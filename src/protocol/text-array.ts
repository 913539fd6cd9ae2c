/**
 * Builds a `text[]` parameter in Postgres's binary array format, value by value, so Redis rows go
 * to upstream as bound parameters without string escaping and without an intermediate row list.
 */
const TEXT_OID = 25;
export const TEXT_ARRAY_OID = 1009;
/** bytea[]: the same binary layout with element type bytea, for rows sent as their UTF-8 bytes. */
export const BYTEA_ARRAY_OID = 1001;

export class TextArrayBuilder {
  private buf = Buffer.allocUnsafe(256);
  private off = 20; // header: ndim, flags, elemtype, dim length, lower bound
  private count = 0;
  private hasNull = false;
  private fill = 0;

  get length(): number {
    return this.count;
  }

  /** Bytes held so far, for memory accounting. */
  get bytes(): number {
    return this.off;
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }

  push(v: Buffer | string | null): void {
    this.count++;
    if (v === null) {
      this.hasNull = true;
      this.ensure(4);
      this.buf.writeInt32BE(-1, this.off);
      this.off += 4;
      return;
    }
    const n = typeof v === 'string' ? Buffer.byteLength(v) : v.length;
    this.ensure(4 + n);
    this.buf.writeInt32BE(n, this.off);
    if (typeof v === 'string') this.buf.write(v, this.off + 4, 'utf8');
    else copyInto(v, this.buf, this.off + 4);
    this.off += 4 + n;
  }

  // ---- in-place filling, for resp-scan.ts: values copied from reply bytes, never made into Buffers ----

  /** The bytes so far; values sit at the offsets begin()/pushRange() return, up to `bytes`. */
  get buffer(): Buffer {
    return this.buf;
  }

  /** push() of src[start, end); returns the offset of the value's bytes. */
  pushRange(src: Buffer, start: number, end: number): number {
    const n = end - start;
    this.count++;
    this.ensure(4 + n);
    const buf = this.buf;
    const at = this.off + 4;
    const o = this.off;
    buf[o] = n >>> 24;
    buf[o + 1] = (n >>> 16) & 0xff;
    buf[o + 2] = (n >>> 8) & 0xff;
    buf[o + 3] = n & 0xff;
    // Buffer#copy's call costs ~0.3 µs, as much as copying a few hundred bytes by hand (measured: most of
    // a 1M-field scan's CPU with the 32-byte cut-off copyInto uses).
    if (n > 256) src.copy(buf, at, start, end);
    else for (let k = 0; k < n; k++) buf[at + k] = src[start + k]!;
    this.off = at + n;
    return at;
  }

  /** Reserves a value of `n` bytes that append() then fills; returns the offset of its bytes. */
  begin(n: number): number {
    this.count++;
    this.ensure(4 + n);
    this.buf.writeInt32BE(n, this.off);
    this.fill = this.off + 4;
    this.off += 4 + n;
    return this.fill;
  }

  append(src: Buffer, start: number, end: number): void {
    src.copy(this.buf, this.fill, start, end);
    this.fill += end - start;
  }

  /** Removes the last value, whose bytes start at `at` (a duplicate a rehashing scan returned twice). */
  dropLast(at: number): void {
    this.count--;
    this.off = at - 4;
  }

  /** `n` copies of the same value (a constant column of a scan filled in place). */
  pushRepeated(v: Buffer | string | null, n: number): void {
    for (let i = 0; i < n; i++) this.push(v);
  }

  finish(): Buffer {
    if (this.count === 0) {
      const empty = Buffer.alloc(12);
      empty.writeUInt32BE(TEXT_OID, 8);
      return empty;
    }
    this.buf.writeInt32BE(1, 0);
    this.buf.writeInt32BE(this.hasNull ? 1 : 0, 4);
    this.buf.writeUInt32BE(TEXT_OID, 8);
    this.buf.writeInt32BE(this.count, 12);
    this.buf.writeInt32BE(1, 16);
    return this.buf.subarray(0, this.off);
  }
}

/**
 * `src.copy(dst, at)`, by hand for short values: Buffer#copy costs a few hundred ns of argument checks,
 * several times what copying a typical field name or short value byte by byte does.
 */
export function copyInto(src: Buffer, dst: Buffer, at: number): void {
  const n = src.length;
  if (n > 32) {
    src.copy(dst, at);
    return;
  }
  for (let k = 0; k < n; k++) dst[at + k] = src[k]!;
}

/** A text[] literal in text format, for the proxy's own catalog queries. */
export function textArrayLiteral(items: readonly string[]): string {
  const b = new TextArrayLiteralBuilder();
  for (const s of items) b.push(s);
  return b.finish().toString('utf8');
}

/** The same array as a text-format literal, for the one place a parameter can't carry it (COPY). */
export class TextArrayLiteralBuilder {
  private readonly parts: string[] = [];

  get length(): number {
    return this.parts.length;
  }

  push(v: Buffer | string | null): void {
    if (v === null) this.parts.push('NULL');
    else {
      const s = typeof v === 'string' ? v : v.toString('utf8');
      this.parts.push(`"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`);
    }
  }

  finish(): Buffer {
    return Buffer.from(`{${this.parts.join(',')}}`, 'utf8');
  }
}
