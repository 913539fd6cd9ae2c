/**
 * A string-keyed Map for models of big keys (overlay.ts), and a Set for a big statement's rows, that
 * grow without holding the event loop.
 * V8 grows a Map by rehashing it whole in one step: going past 131,072 entries took ~38 ms of CPU at
 * once on the loaded test machine, which no slicing of the loop around it can break up. Past a few
 * thousand entries this spreads them over many small Maps by a hash of the key, so each step of
 * growth is small. Iteration is in insertion order, as a Map's is (a key deleted and set again moves
 * to the end).
 */

/** Entries kept in one Map until then; splitting a Map of this size is quick. */
const SPLIT_AT = 8192;
/** Maps once split: a 1,000,000-entry model is then ~4,000 entries per Map. */
const SHARDS = 256;

interface Entry<V> {
  readonly key: string;
  value: V;
  live: boolean;
}

export class ChunkedMap<V> {
  private one: Map<string, Entry<V>> | undefined = new Map();
  private shards: Map<string, Entry<V>>[] | undefined;
  /** Every entry ever set, in order; deleted ones are marked, not removed (no O(n) splice). */
  private readonly order: Entry<V>[] = [];
  private live = 0;

  get size(): number {
    return this.live;
  }

  has(key: string): boolean {
    return this.mapOf(key).has(key);
  }

  get(key: string): V | undefined {
    return this.mapOf(key).get(key)?.value;
  }

  set(key: string, value: V): void {
    const map = this.mapOf(key);
    const e = map.get(key);
    if (e) {
      e.value = value;
      return;
    }
    const entry: Entry<V> = { key, value, live: true };
    map.set(key, entry);
    this.order.push(entry);
    this.live++;
    if (this.one && this.one.size >= SPLIT_AT) this.split();
  }

  delete(key: string): boolean {
    const map = this.mapOf(key);
    const e = map.get(key);
    if (!e) return false;
    map.delete(key);
    e.live = false;
    this.live--;
    return true;
  }

  *entries(): Generator<[string, V]> {
    for (const e of this.order) if (e.live) yield [e.key, e.value];
  }

  *keys(): Generator<string> {
    for (const e of this.order) if (e.live) yield e.key;
  }

  private mapOf(key: string): Map<string, Entry<V>> {
    return this.one ?? this.shards![shardOf(key)]!;
  }

  private split(): void {
    const shards = Array.from({ length: SHARDS }, () => new Map<string, Entry<V>>());
    for (const [k, e] of this.one!) shards[shardOf(k)]!.set(k, e);
    this.shards = shards;
    this.one = undefined;
  }
}

/**
 * ChunkedMap's growth for a Set of strings or numbers, with no order kept: a Set of a 150,000-row
 * statement's identities held the loop for ~26 ms where it grew past 131,072 (upsert.ts, dml.ts).
 * Numbers go to a shard by their low bits.
 */
export class ChunkedSet<T extends string | number> {
  private one: Set<T> | undefined = new Set();
  private shards: Set<T>[] | undefined;
  private count = 0;

  get size(): number {
    return this.count;
  }

  has(v: T): boolean {
    return this.setOf(v).has(v);
  }

  add(v: T): void {
    const set = this.setOf(v);
    if (set.has(v)) return;
    set.add(v);
    this.count++;
    if (this.one && this.one.size >= SPLIT_AT) {
      const shards = Array.from({ length: SHARDS }, () => new Set<T>());
      for (const x of this.one) shards[shardOfValue(x)]!.add(x);
      this.shards = shards;
      this.one = undefined;
    }
  }

  private setOf(v: T): Set<T> {
    return this.one ?? this.shards![shardOfValue(v)]!;
  }
}

const shardOfValue = (v: string | number): number => (typeof v === 'number' ? v & (SHARDS - 1) : shardOf(v));

/** FNV-1a over the key's last 64 UTF-16 units (keys like f1, f2, … differ at the end), folded to a shard. */
function shardOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = Math.max(0, key.length - 64); i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h ^ (h >>> 15) ^ (h >>> 24)) & (SHARDS - 1);
}
