/** Set: SSCAN pages (COUNT = batch), in Redis's scan order (sets have no order of their own). */
import type { RedisKey } from 'ioredis';
import { asBuffer, scanReply, SeenSet, type CursorParams, type Item, type KeyCursor } from './cursor.js';

export function openSet(key: RedisKey, params: CursorParams): KeyCursor {
  let cursor: string | undefined = '0';
  let first = true;
  const seen = new SeenSet();
  return {
    command: () => (cursor === undefined ? undefined : ['sscan', key, cursor, 'COUNT', first ? params.firstBatch : params.batch]),
    accept(reply) {
      const r = scanReply(reply, 'SSCAN');
      cursor = r.cursor === '0' ? undefined : r.cursor;
      const isFirst = first;
      first = false;
      const held: Buffer[] | undefined = isFirst && cursor !== undefined ? [] : undefined;
      const items: Item[] = [];
      for (const e of r.elements) {
        const element = asBuffer(e);
        if (isFirst || seen.add(element)) {
          items.push({ element });
          held?.push(element);
        }
      }
      if (held) seen.hold(held);
      return items;
    },
  };
}
