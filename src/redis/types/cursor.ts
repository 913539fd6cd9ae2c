/**
 * The shape every per-type reader shares. A KeyCursor walks one Redis key page by page: it says which
 * command fetches the next page (so the caller can send it alone, or pipeline the first pages of many keys),
 * and turns that command's reply into items. Nothing here does I/O.
 */
import type { RedisKey } from 'ioredis';
import type { Pushdown } from '../table-spec.js';

export type Arg = string | Buffer | number;
/** A Redis command as [name, ...args]; sent with callBuffer so values stay raw bytes. */
export type Cmd = [name: string, ...args: Arg[]];

/** One element of a key, in the terms of the column roles. Absent parts are null in the row. */
export interface Item {
  field?: Buffer;
  value?: Buffer;
  element?: Buffer;
  /** zset score exactly as Redis printed it. */
  score?: string;
  /** 0-based list index. */
  index?: string;
  /** stream entry id. */
  id?: Buffer;
  /** stream entry fields and values, flat [f1, v1, f2, v2, ...]. */
  pairs?: Buffer[];
}

export interface KeyCursor {
  /**
   * The command for the next page, asking for at most `want` items where the command can say so exactly
   * (LRANGE, ZRANGE, XRANGE; SCAN's COUNT is only a hint); undefined once the key is exhausted.
   */
  command(want: number): Cmd | undefined;
  /** Consumes the reply to the last command() and returns the page's items. */
  accept(reply: unknown): Item[];
}

export interface CursorParams {
  pushdown: Pushdown;
  /** Page size: COUNT for SCAN-like commands, window for LRANGE/ZRANGE/XRANGE. */
  batch: number;
  /** Apply pushdown.fields (hash tables that have a field column). */
  useFields: boolean;
}

export type OpenCursor = (key: RedisKey, params: CursorParams) => KeyCursor;

// ---- reply helpers (RESP2 shapes; RESP3 nested pairs are flattened for robustness) ----

export function asArray(reply: unknown, what: string): unknown[] {
  if (Array.isArray(reply)) return reply;
  if (reply === null || reply === undefined) return [];
  throw new Error(`unexpected Redis reply to ${what}: ${typeof reply}`);
}

export function asBuffer(v: unknown): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (typeof v === 'number') return Buffer.from(String(v), 'latin1');
  throw new Error(`unexpected Redis reply element: ${v === null ? 'null' : typeof v}`);
}

export function asText(v: unknown): string {
  if (Buffer.isBuffer(v)) return v.toString('latin1');
  return String(v);
}

/** [a, b, c, d] stays; [[a, b], [c, d]] (RESP3 pairs) becomes [a, b, c, d]. */
export function flatPairs(arr: unknown[]): unknown[] {
  if (arr.length > 0 && Array.isArray(arr[0])) return arr.flat(1);
  return arr;
}

/** [cursor, elements] of SCAN/HSCAN/SSCAN/ZSCAN. */
export function scanReply(reply: unknown, what: string): { cursor: string; elements: unknown[] } {
  const arr = asArray(reply, what);
  return { cursor: asText(arr[0] ?? '0'), elements: flatPairs(asArray(arr[1], what)) };
}

/**
 * Remembers what a multi-page SCAN-family walk already returned: Redis may return an element twice when the
 * collection is resized mid-scan. Costs nothing until the walk spans more than one page.
 */
export class SeenSet {
  private seen: Set<string> | undefined;
  /** Call once the walk is known to span several pages. */
  enable(): void {
    this.seen ??= new Set();
  }
  /** true if new (and records it); always true while disabled. */
  add(b: Buffer): boolean {
    if (!this.seen) return true;
    const k = b.toString('latin1');
    if (this.seen.has(k)) return false;
    this.seen.add(k);
    return true;
  }
}

export function dedupe<T>(xs: readonly T[], keyOf: (x: T) => string = String): T[] {
  const seen = new Set<string>();
  const out: T[] = [];
  for (const x of xs) {
    const k = keyOf(x);
    if (!seen.has(k)) {
      seen.add(k);
      out.push(x);
    }
  }
  return out;
}
