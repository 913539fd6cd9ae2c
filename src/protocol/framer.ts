import { MAX_MESSAGE } from './codes.js';

/**
 * Cuts a byte stream of typed messages (1 type byte + int32 length) into whole frames without
 * copying: frames are reported as offsets into one Buffer, so a caller that only forwards them can
 * write whole runs at once. Only a frame that straddles chunks is copied, once, when it completes.
 */
export class Framer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Total size of the frame that `pending` starts, once its header has arrived. */
  private pendingFrame = -1;

  constructor(private readonly maxMessage = MAX_MESSAGE) {}

  /**
   * Returns a buffer and the offset where its whole frames end, or a FrameError for a length no
   * Postgres peer would send. Bytes after `end` are kept for the next call.
   */
  push(chunk: Buffer): { buf: Buffer; end: number } | FrameError {
    let buf = chunk;
    if (this.pendingBytes > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingFrame < 0 && this.pendingBytes >= 5) {
        const head = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, Math.min(this.pendingBytes, 64));
        const len = head.readInt32BE(1);
        if (len < 4 || len > this.maxMessage) return new FrameError(head[0]!, len);
        this.pendingFrame = len + 1;
      }
      if (this.pendingFrame < 0 || this.pendingBytes < this.pendingFrame) return { buf: chunk, end: 0 };
      buf = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
      this.pendingFrame = -1;
    }
    let off = 0;
    const n = buf.length;
    while (n - off >= 5) {
      const len = buf.readInt32BE(off + 1);
      if (len < 4 || len > this.maxMessage) return new FrameError(buf[off]!, len);
      if (off + 1 + len > n) break;
      off += 1 + len;
    }
    if (off < n) {
      this.pending.push(buf.subarray(off));
      this.pendingBytes = n - off;
      if (this.pendingBytes >= 5) this.pendingFrame = buf.readInt32BE(off + 1) + 1;
    }
    return { buf, end: off };
  }

  /** Bytes of an incomplete frame still held. */
  get buffered(): number {
    return this.pendingBytes;
  }
}

export class FrameError {
  constructor(
    readonly code: number,
    readonly length: number,
  ) {}
  get message(): string {
    return `invalid message length ${this.length} for message type ${JSON.stringify(String.fromCharCode(this.code))}`;
  }
}

/** Calls `fn` for each whole frame in buf[0, end). `start` is the type byte, `next` the following frame. */
export function forEachFrame(buf: Buffer, end: number, fn: (code: number, start: number, next: number) => boolean | void): void {
  let off = 0;
  while (off < end) {
    const next = off + 1 + buf.readInt32BE(off + 1);
    if (fn(buf[off]!, off, next) === false) return;
    off = next;
  }
}
