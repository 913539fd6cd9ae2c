/**
 * Stream: XRANGE pages of `batch` entries in id order, between pushdown.idMin and idMax ('-' and '+' when
 * absent). The next page starts just after the last id seen (computed here, so no Redis 6.2 '(' syntax).
 */
import type { RedisKey } from 'ioredis';
import { asArray, asBuffer, asText, flatPairs, type CursorParams, type Item, type KeyCursor } from './cursor.js';

const U64_MAX = (1n << 64n) - 1n;

/** The smallest id after `id` ("ms-seq"), or undefined if there is none. */
export function nextStreamId(id: string): string | undefined {
  const m = /^(\d+)-(\d+)$/.exec(id);
  if (!m) return undefined;
  const ms = BigInt(m[1]!);
  const seq = BigInt(m[2]!);
  if (seq < U64_MAX) return `${ms}-${seq + 1n}`;
  if (ms < U64_MAX) return `${ms + 1n}-0`;
  return undefined;
}

export function openStream(key: RedisKey, params: CursorParams): KeyCursor {
  let from: string | undefined = params.pushdown.idMin ?? '-';
  const to = params.pushdown.idMax ?? '+';
  let asked = 0;
  return {
    command(want) {
      if (from === undefined) return undefined;
      asked = Math.max(1, Math.min(params.batch, want));
      return ['xrange', key, from, to, 'COUNT', asked];
    },
    accept(reply) {
      const entries = asArray(reply, 'XRANGE');
      const items: Item[] = [];
      for (const entry of entries) {
        const [id, fields] = asArray(entry, 'XRANGE');
        items.push({ id: asBuffer(id), pairs: flatPairs(asArray(fields, 'XRANGE')).map(asBuffer) });
      }
      const last = items[items.length - 1];
      from = items.length < asked || !last ? undefined : nextStreamId(asText(last.id));
      return items;
    },
  };
}
