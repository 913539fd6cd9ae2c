/**
 * The shape every per-type reader shares. A KeyCursor walks one Redis key page by page: it says which
 * command fetches the next page (so the caller can send it alone, or pipeline the first pages of many keys),
 * and turns that command's reply into items. Nothing here does I/O.
 */
import type { RedisKey } from 'ioredis';
import type { Pushdown } from '../table-spec.js';
import { toText } from '../text.js';

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
  /** 0-based list index (made text only for a table that has the index column). */
  index?: number;
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
  /**
   * Size of the first page of a whole-key walk (HSCAN/SSCAN COUNT, LRANGE/ZRANGE window): a key that fits is
   * read in one round trip and needs no dedupe; later pages use `batch`.
   */
  firstBatch: number;
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
 * collection is resized mid-scan. Costs nothing until the walk spans more than one page. Then each element's
 * bytes are copied once into an arena and found again through an open-addressing table of 32-bit hashes:
 * a 1,000,000-field walk holds ~35 MB here, where a Set of strings held several times that and spent most
 * of its time building the strings.
 */
export class SeenSet {
  /** 1 + the arena offset of the element in each slot; 0 = empty. */
  private slots: Int32Array | undefined;
  private hashes = new Int32Array(0);
  private arena = Buffer.alloc(0);
  private used = 0;
  private count = 0;
  /** Records the held first page; run once a later page brings members. */
  private held: (() => void) | undefined;

  /** Call once the walk is known to span several pages; `expected` members (HLEN, SCARD) size it at once. */
  enable(expected = 0): void {
    if (this.slots) return;
    let size = 1 << 12;
    while (size < expected * 2) size *= 2;
    this.slots = new Int32Array(size);
    this.hashes = new Int32Array(size);
    this.arena = Buffer.allocUnsafe(1 << 16);
  }

  /**
   * The members of a first page that has more pages after it. They are recorded only when a later page
   * brings members: HSCAN COUNT n often returns all n members of an n-member key with a cursor that then
   * yields an empty page, and such a walk needs no set at all.
   */
  hold(members: Buffer[]): void {
    this.held = () => {
      for (const m of members) this.add(m);
    };
  }

  /** true if new (and records it); always true while disabled and holding nothing. */
  add(b: Buffer): boolean {
    return this.addRange(b, 0, b.length);
  }

  /** add() of the bytes b[start, end). */
  addRange(b: Buffer, start: number, end: number): boolean {
    if (!this.slots && this.held) {
      const held = this.held;
      this.held = undefined;
      this.enable();
      held();
    }
    let slots = this.slots;
    if (!slots) return true;
    const h = hash32(b, start, end);
    let hashes = this.hashes;
    let mask = slots.length - 1;
    let i = h & mask;
    for (let s = slots[i]!; s !== 0; s = slots[i]!) {
      if (hashes[i] === h && this.equalsAt(s - 1, b, start, end)) return false;
      i = (i + 1) & mask;
    }
    if ((this.count + 1) * 2 > slots.length) {
      this.grow();
      slots = this.slots!;
      hashes = this.hashes;
      mask = slots.length - 1;
      for (i = h & mask; slots[i] !== 0; i = (i + 1) & mask);
    }
    slots[i] = this.store(b, start, end) + 1;
    hashes[i] = h;
    this.count++;
    return true;
  }

  private equalsAt(off: number, b: Buffer, start: number, end: number): boolean {
    const a = this.arena;
    const n = a[off]! | (a[off + 1]! << 8) | (a[off + 2]! << 16) | (a[off + 3]! << 24);
    if (n !== end - start) return false;
    for (let k = start, p = off + 4; k < end; k++, p++) if (a[p] !== b[k]) return false;
    return true;
  }

  /** Appends [length (LE), bytes] to the arena; returns its offset. */
  private store(b: Buffer, start: number, end: number): number {
    const n = end - start;
    const need = this.used + 4 + n;
    if (need > this.arena.length) {
      const next = Buffer.allocUnsafe(Math.max(this.arena.length * 2, need));
      this.arena.copy(next, 0, 0, this.used);
      this.arena = next;
    }
    const a = this.arena;
    const off = this.used;
    a[off] = n & 0xff;
    a[off + 1] = (n >>> 8) & 0xff;
    a[off + 2] = (n >>> 16) & 0xff;
    a[off + 3] = n >>> 24;
    if (n > 32) b.copy(a, off + 4, start, end);
    else for (let k = 0; k < n; k++) a[off + 4 + k] = b[start + k]!;
    this.used = need;
    return off;
  }

  private grow(): void {
    const old = this.slots!;
    const oldHashes = this.hashes;
    const slots = new Int32Array(old.length * 2);
    const hashes = new Int32Array(old.length * 2);
    const mask = slots.length - 1;
    for (let j = 0; j < old.length; j++) {
      if (old[j] === 0) continue;
      let i = oldHashes[j]! & mask;
      while (slots[i] !== 0) i = (i + 1) & mask;
      slots[i] = old[j]!;
      hashes[i] = oldHashes[j]!;
    }
    this.slots = slots;
    this.hashes = hashes;
  }
}

/** 32-bit FNV-1a of the bytes, then murmur3's finalizer so the low bits (the slot) depend on every byte. */
function hash32(b: Buffer, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let k = start; k < end; k++) h = Math.imul(h ^ b[k]!, 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/** {"f1":"v1",...}: a JSON object of field/value pairs (a repeated field keeps its last value). */
export function pairsJson(pairs: Buffer[], key: string, table: string): string {
  const obj = new Map<string, string>();
  for (let i = 0; i + 1 < pairs.length; i += 2) obj.set(toText(pairs[i]!, key, table), toText(pairs[i + 1]!, key, table));
  let out = '{';
  let first = true;
  for (const [k, v] of obj) {
    out += `${first ? '' : ','}${JSON.stringify(k)}:${JSON.stringify(v)}`;
    first = false;
  }
  return `${out}}`;
}

/** ["e1","e2",...]: a JSON array of the items' elements, in order (a multi_list/set/zset row's items). */
export function elementsJson(items: Item[], key: string, table: string): string {
  let out = '[';
  for (let i = 0; i < items.length; i++) {
    out += `${i ? ',' : ''}${JSON.stringify(toText(items[i]!.element!, key, table))}`;
  }
  return `${out}]`;
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
