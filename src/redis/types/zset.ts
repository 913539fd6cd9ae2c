/**
 * Sorted set, in ascending score order (ties by member, as Redis orders them):
 * - whole set: ZRANGE by index windows WITHSCORES;
 * - score range pushed down: ZRANGEBYSCORE min max WITHSCORES LIMIT offset count, paged by keyset (the next
 *   page starts at the last score seen, skipping the members at that score already returned), so a page
 *   never costs more than the ties it skips, however deep into a large range it is.
 * Scores are the text Redis returns ("10", "1.5", "inf").
 */
import type { RedisKey } from 'ioredis';
import { asArray, asBuffer, asText, flatPairs, type CursorParams, type Item, type KeyCursor } from './cursor.js';

export function openZset(key: RedisKey, params: CursorParams): KeyCursor {
  const { scoreMin, scoreMax } = params.pushdown;
  if (scoreMin !== undefined || scoreMax !== undefined) {
    return byScoreCursor(key, scoreMin ?? '-inf', scoreMax ?? '+inf', params.batch);
  }
  return byIndexCursor(key, params.firstBatch, params.batch);
}

function pairsToItems(reply: unknown, what: string): Item[] {
  const arr = flatPairs(asArray(reply, what));
  const items: Item[] = [];
  for (let i = 0; i + 1 < arr.length; i += 2) items.push({ element: asBuffer(arr[i]), score: asText(arr[i + 1]) });
  return items;
}

function byIndexCursor(key: RedisKey, firstBatch: number, batch: number): KeyCursor {
  let start: number | undefined = 0;
  let asked = 0;
  return {
    command(want) {
      if (start === undefined) return undefined;
      asked = Math.max(1, Math.min(start === 0 ? firstBatch : batch, want));
      return ['zrange', key, start, start + asked - 1, 'WITHSCORES'];
    },
    accept(reply) {
      const items = pairsToItems(reply, 'ZRANGE');
      const base = start ?? 0;
      start = items.length < asked ? undefined : base + items.length;
      return items;
    },
  };
}

function byScoreCursor(key: RedisKey, min: string, max: string, batch: number): KeyCursor {
  let done = false;
  let from = min;
  let skip = 0; // members at score `from` already returned
  let asked = 0;
  return {
    command(want) {
      if (done) return undefined;
      asked = Math.max(1, Math.min(batch, want));
      return ['zrangebyscore', key, from, max, 'WITHSCORES', 'LIMIT', skip, asked];
    },
    accept(reply) {
      const items = pairsToItems(reply, 'ZRANGEBYSCORE');
      if (items.length < asked) {
        done = true;
        return items;
      }
      const last = items[items.length - 1]!.score!;
      let tail = 0;
      for (let i = items.length - 1; i >= 0 && items[i]!.score === last; i--) tail++;
      skip = tail === items.length && last === from ? skip + tail : tail;
      from = last;
      return items;
    },
  };
}
