/** Set: SSCAN pages (COUNT = batch), in Redis's scan order (sets have no order of their own). */
import type { RedisKey } from 'ioredis';
import { asBuffer, elementsJson, scanReply, SeenSet, type CursorParams, type Item, type KeyCursor } from './cursor.js';
import { lengthCount } from './length.js';
import type { KeyModel, ModelItem } from './model.js';
import { ChunkedMap } from './chunked-map.js';
import type { RedisOp } from '../write.js';
import { writeArrayItems } from './row-writer.js';
import { shapeError } from './shape.js';
import type { RedisTypeRecord } from './type.js';

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

class SetModel implements KeyModel {
  private readonly s = new ChunkedMap<true>();

  add(it: ModelItem): void {
    this.s.set(it.element!, true);
  }

  apply(op: RedisOp): void {
    if (op.op === 'sadd') this.s.set(op.member, true);
    else if (op.op === 'srem') this.s.delete(op.member);
  }

  *items(): Generator<ModelItem> {
    for (const element of this.s.keys()) yield { element };
  }

  json(): string | undefined {
    return this.s.size ? JSON.stringify([...this.s.keys()]) : undefined;
  }
}

export const set: RedisTypeRecord = {
  name: 'set',
  open: openSet,
  paged: true,
  count: lengthCount('scard'),
  fastScan: { kind: 'set', first: 'element', dedupe: true },
  aggregate: {
    json: elementsJson,
    write: (w, key, items, name) => writeArrayItems(w, key, items, name, (member) => ({ op: 'sadd', key, member })),
  },
  model: { empty: () => new SetModel() },
  rows(w) {
    const c = w.col;
    return {
      insert: (key, row) => w.push({ op: 'sadd', key, member: w.required(row, c.element!) }),
      delete: (old) => w.push({ op: 'srem', key: old.key, member: old.values[c.element!]! }),
      update(old, row) {
        const member = w.required(row, c.element!);
        if (member === old.values[c.element!]) return;
        w.push({ op: 'srem', key: old.key, member: old.values[c.element!]! });
        w.push({ op: 'sadd', key: old.key, member });
      },
    };
  },
  conflict: {
    role: 'element',
    async existing(c, key, members) {
      const v = (await c.call('SMISMEMBER', key, ...members)) as number[];
      return members.filter((_, i) => v[i] === 1);
    },
  },
  supabaseColumns(table, cols) {
    if (cols.length !== 1) throw shapeError(table, "'set'", '(element text)', cols);
    return [{ kind: 'element' }];
  },
  rsColumns(table, rest, prefix, cols) {
    if (rest.length !== 1) throw shapeError(table, "'set'", `${prefix}member text)`, cols);
    return [{ kind: 'element' }];
  },
};
