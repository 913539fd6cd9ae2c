/**
 * The RESP bulk strings a hot loop can take without an incremental reader's call per element: those a
 * socket chunk holds whole. Used by the raw scan's handlers and DataRowTarget (redis/resp-scan.ts).
 */
const CR = 13;
const LF = 10;

/**
 * Finds whole bulk strings (`$<len>\r\n<bytes>\r\n`, all of it in the chunk) for the hot loops that take
 * them without a reader call per element: at() says whether one starts at src[i]; its bytes are then
 * src[start, end) and the next element starts at end + 2.
 */
export class WholeBulk {
  start = 0;
  end = 0;

  at(src: Buffer, i: number, n: number): boolean {
    if (src[i] !== 0x24) return false;
    let p = i + 1;
    let len = 0;
    for (; p < n; p++) {
      const d = src[p]! - 0x30;
      if (d < 0 || d > 9) break;
      len = len * 10 + d;
    }
    // No digits (a nil's -1), a header or value the chunk cuts, or a header not ended by CRLF: the
    // reader's own parse takes it from here, and reports what is malformed.
    if (p === i + 1 || p + 1 >= n || src[p] !== CR || src[p + 1] !== LF || p + 4 + len > n) return false;
    this.start = p + 2;
    this.end = p + 2 + len;
    return true;
  }
}
