/** An LRU of parse results keyed by SQL text, reporting its own hit, miss and parse-time stats. */
import type { ParseResult } from './parser.js';
import { parseSql } from './parser.js';

export interface ParseCacheStats {
  hits: number;
  misses: number;
  size: number;
  /** Total time spent in the parser on misses, in microseconds. */
  parseMicros: number;
}

type Cached = ParseResult | { error: unknown };

export class ParseCache {
  private readonly map = new Map<string, Cached>();
  private readonly stats = { hits: 0, misses: 0, parseMicros: 0 };

  constructor(
    private readonly capacity = 1000,
    private readonly parse: (text: string) => ParseResult = parseSql,
  ) {}

  /** Returns the parse tree, or rethrows the (cached) syntax error. */
  get(text: string): ParseResult {
    let v = this.map.get(text);
    if (v !== undefined) {
      this.stats.hits++;
      // Re-insert to mark as most recently used: Map iterates in insertion order.
      this.map.delete(text);
      this.map.set(text, v);
    } else {
      this.stats.misses++;
      const t0 = process.hrtime.bigint();
      try {
        v = this.parse(text);
      } catch (error) {
        v = { error };
      }
      this.stats.parseMicros += Number(process.hrtime.bigint() - t0) / 1000;
      this.map.set(text, v);
      if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as string);
    }
    if ('error' in v) throw v.error;
    return v;
  }

  snapshot(): ParseCacheStats {
    return { ...this.stats, size: this.map.size };
  }
}
