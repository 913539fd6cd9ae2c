/** Counting one key's rows with the Redis command that gives its length, without reading it. */
import type { RedisClient } from '../pool.js';

/** How Redis counts one key's rows (executor/count.ts maps a failure as the reader would). */
export interface KeyCount {
  run(client: RedisClient, key: string): Promise<number>;
  /** The command as EXPLAIN shows it. */
  explain(key: string): string;
  /** The one command that answers, when there is one (the callback path's estimate sends it alone). */
  readonly length?: string;
}

/** A count answered by one length command (HLEN, LLEN, SCARD, ZCARD, XLEN). */
export function lengthCount(length: string): KeyCount {
  return {
    length,
    run: async (client, key) => Number(await client.call(length, key)),
    explain: (key) => `${length.toUpperCase()} ${key}`,
  };
}
