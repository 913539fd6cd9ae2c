/**
 * An LRU of parse results keyed by SQL text, bounded by entries and by an estimate of the bytes it
 * holds, reporting its own hit, miss, size and parse-time stats. Texts above `maxTextBytes` are
 * parsed but never kept: they are rarely repeated, re-parsing one costs little next to receiving
 * it, and a stream of distinct big texts must not be able to fill the process's memory.
 */
import type { ParseResult } from './parser.js';
import { parseSql } from './parser.js';

export interface ParseCacheStats {
  hits: number;
  misses: number;
  /** Entries held. */
  entries: number;
  /** Estimated bytes held (text and parse tree). */
  bytes: number;
  /** Misses whose text was too big to keep. */
  uncached: number;
  /** Total time spent in the parser on misses, in microseconds. */
  parseMicros: number;
}

export interface ParseCacheLimits {
  maxEntries?: number;
  maxBytes?: number;
  maxTextBytes?: number;
}

export const PARSE_CACHE_DEFAULTS = { maxEntries: 1000, maxBytes: 32 * 1024 * 1024, maxTextBytes: 64 * 1024 } as const;

type Cached = { value: ParseResult | { error: unknown }; bytes: number };

/**
 * What an entry costs: the key (two bytes a character at worst) and a tree, which in libpg_query's
 * JSON holds every literal again and runs to a few times the text; plus fixed overhead.
 */
const entryBytes = (text: string): number => text.length * 8 + 512;

export class ParseCache {
  private readonly map = new Map<string, Cached>();
  private readonly stats = { hits: 0, misses: 0, uncached: 0, parseMicros: 0 };
  private bytes = 0;
  private readonly limits: Required<ParseCacheLimits>;

  constructor(
    limits: ParseCacheLimits = {},
    private readonly parse: (text: string) => ParseResult = parseSql,
  ) {
    this.limits = { ...PARSE_CACHE_DEFAULTS, ...limits };
  }

  /** Returns the parse tree, or rethrows the (cached) syntax error. */
  get(text: string): ParseResult {
    let v = this.map.get(text)?.value;
    if (v !== undefined) {
      this.stats.hits++;
      // Re-insert to mark as most recently used: Map iterates in insertion order.
      const e = this.map.get(text)!;
      this.map.delete(text);
      this.map.set(text, e);
    } else {
      this.stats.misses++;
      const t0 = process.hrtime.bigint();
      try {
        v = this.parse(text);
      } catch (error) {
        v = { error };
      }
      this.stats.parseMicros += Number(process.hrtime.bigint() - t0) / 1000;
      this.store(text, v);
    }
    if ('error' in v) throw v.error;
    return v;
  }

  private store(text: string, value: Cached['value']): void {
    // Characters are at least a byte each: a text this long in characters is too long in bytes.
    if (text.length > this.limits.maxTextBytes || Buffer.byteLength(text, 'utf8') > this.limits.maxTextBytes) {
      this.stats.uncached++;
      return;
    }
    const bytes = entryBytes(text);
    this.map.set(text, { value, bytes });
    this.bytes += bytes;
    while (this.map.size > this.limits.maxEntries || this.bytes > this.limits.maxBytes) {
      const oldest = this.map.keys().next().value as string;
      this.bytes -= this.map.get(oldest)!.bytes;
      this.map.delete(oldest);
    }
  }

  /** Drops every entry (a reload); the counters go on. */
  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }

  snapshot(): ParseCacheStats {
    return { ...this.stats, entries: this.map.size, bytes: this.bytes };
  }
}
