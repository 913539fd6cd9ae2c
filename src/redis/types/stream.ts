/**
 * Stream: XRANGE pages of `batch` entries in id order, between pushdown.idMin and idMax ('-' and '+' when
 * absent). The next page starts just after the last id seen (computed here, so no Redis 6.2 '(' syntax).
 */
import type { RedisKey } from 'ioredis';
import { asArray, asBuffer, asText, flatPairs, type CursorParams, type Item, type KeyCursor } from './cursor.js';
import { lengthCount } from './length.js';
import { commandsOf, type KeyModel, type ModelItem } from './model.js';
import type { RedisOp, XaddOp } from '../write.js';
import type { RedisTypeRecord } from './type.js';

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

/**
 * Which entry a row of the model is: one Redis numbered (its id), or one this transaction added whose
 * XADD is still staged, named by that XADD itself. A DELETE of the row stages an XDEL of the id or an
 * `xcancel` of the XADD (row-ops.ts), so the model and COMMIT find the entry by the same value.
 */
export type StreamEntryId = { redis: string } | { staged: XaddOp };

/** An XADD whose id Redis picks (`*` or `<ms>-*`): until COMMIT, its row reads with a NULL id. */
export function unnumbered(op: XaddOp): boolean {
  return op.id === '*' || op.id.endsWith('-*');
}

class StreamModel implements KeyModel {
  constructor(private e: { id: StreamEntryId; pairs: string[] }[]) {}

  apply(op: RedisOp): void {
    if (op.op === 'xadd') this.e.push({ id: unnumbered(op) ? { staged: op } : { redis: op.id }, pairs: op.pairs });
    else if (op.op === 'xcancel') this.e = this.e.filter((e) => !('staged' in e.id && e.id.staged === op.cancels));
    else if (op.op === 'xdel') this.e = this.e.filter((e) => !('redis' in e.id && e.id.redis === op.id));
  }

  *items(): Generator<ModelItem> {
    for (const e of this.e) yield 'redis' in e.id ? { id: e.id.redis, pairs: e.pairs } : { id: null, pairs: e.pairs, staged: e.id.staged };
  }

  json(): undefined {
    return undefined;
  }
}

export const stream: RedisTypeRecord = {
  name: 'stream',
  open: openStream,
  paged: true,
  count: lengthCount('xlen'),
  model: {
    async load(client, key) {
      const entries = await commandsOf(client).xrange(key, '-', '+');
      return new StreamModel(entries.map(([id, pairs]) => ({ id: { redis: id }, pairs })));
    },
    empty: () => new StreamModel([]),
  },
};
