/**
 * Values copied from a RESP reply into a buffer of the writer's own: whole (pushRange), or split
 * across socket chunks (begin with the announced length, then append). Subclasses say where a value
 * of n bytes goes (open: room, headers) and what completing one means (close).
 */
export abstract class ValueWriter {
  /** The end of the last value written, in `buf`. */
  protected off = 0;
  private fill = 0;

  constructor(protected buf: Buffer) {}

  get buffer(): Buffer {
    return this.buf;
  }

  get bytes(): number {
    return this.off;
  }

  pushRange(src: Buffer, start: number, end: number): number {
    const n = end - start;
    const at = this.open(n);
    const buf = this.buf;
    // A short value by hand: cheaper than a native copy's call.
    if (n > 64) src.copy(buf, at, start, end);
    else for (let k = 0; k < n; k++) buf[at + k] = src[start + k]!;
    this.off = at + n;
    this.close();
    return at;
  }

  /** A value of `n` bytes that append() fills; it is complete once they all came. */
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

  /** Room for a value of n bytes; returns where its bytes go. */
  protected abstract open(n: number): number;

  /** A value is complete. */
  protected abstract close(): void;
}
