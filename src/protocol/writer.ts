/** Builds one typed message. Growable; the length is patched in at the end. */
export class MessageWriter {
  private buf: Buffer;
  private off = 5;

  constructor(private readonly code: number, size = 64) {
    this.buf = Buffer.allocUnsafe(Math.max(size, 16));
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }

  int8(v: number): this {
    this.ensure(1);
    this.buf[this.off++] = v;
    return this;
  }

  int16(v: number): this {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.off);
    this.off += 2;
    return this;
  }

  uint16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.off);
    this.off += 2;
    return this;
  }

  int32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32BE(v, this.off);
    this.off += 4;
    return this;
  }

  uint32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.off);
    this.off += 4;
    return this;
  }

  cstring(s: string): this {
    const n = Buffer.byteLength(s);
    this.ensure(n + 1);
    this.buf.write(s, this.off, 'utf8');
    this.off += n;
    this.buf[this.off++] = 0;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.off);
    this.off += b.length;
    return this;
  }

  /** int32 length followed by the bytes; null is length -1 (SQL NULL). */
  lengthPrefixed(b: Uint8Array | null): this {
    if (b === null) return this.int32(-1);
    return this.int32(b.length).bytes(b);
  }

  finish(): Buffer {
    this.buf[0] = this.code;
    this.buf.writeInt32BE(this.off - 1, 1);
    return this.buf.subarray(0, this.off);
  }
}

/** Reads fields of one message payload. Throws RangeError past the end, which callers map to 08P01. */
export class MessageReader {
  constructor(
    readonly buf: Buffer,
    public off: number,
    readonly end: number,
  ) {}

  private need(n: number): void {
    if (this.off + n > this.end) throw new RangeError('message too short');
  }

  int8(): number {
    this.need(1);
    return this.buf[this.off++]!;
  }

  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.off);
    this.off += 2;
    return v;
  }

  /** Message counts (parameters, formats, fields) are unsigned 16-bit on the wire. */
  uint16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }

  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.off);
    this.off += 4;
    return v;
  }

  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }

  cstring(): string {
    const z = this.buf.indexOf(0, this.off);
    if (z < 0 || z >= this.end) throw new RangeError('unterminated string');
    const s = this.buf.toString('utf8', this.off, z);
    this.off = z + 1;
    return s;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }

  /** int32 length then bytes; -1 is null. */
  lengthPrefixed(): Buffer | null {
    const n = this.int32();
    if (n === -1) return null;
    if (n < 0) throw new RangeError('negative length');
    return this.bytes(n);
  }

  get remaining(): number {
    return this.end - this.off;
  }
}
