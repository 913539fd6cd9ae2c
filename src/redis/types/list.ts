/** List: LRANGE windows of `batch` elements, head to tail, with each element's 0-based index. */
import type { RedisKey } from 'ioredis';
import { asArray, asBuffer, type CursorParams, type Item, type KeyCursor } from './cursor.js';

export function openList(key: RedisKey, params: CursorParams): KeyCursor {
  let start: number | undefined = 0;
  let asked = 0;
  return {
    command(want) {
      if (start === undefined) return undefined;
      asked = Math.max(1, Math.min(start === 0 ? params.firstBatch : params.batch, want));
      return ['lrange', key, start, start + asked - 1];
    },
    accept(reply) {
      const els = asArray(reply, 'LRANGE');
      const base = start ?? 0;
      const items: Item[] = els.map((e, i) => ({ element: asBuffer(e), index: base + i }));
      start = els.length < asked ? undefined : base + els.length;
      return items;
    },
  };
}
