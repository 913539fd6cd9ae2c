/**
 * Hash: HSCAN pages (COUNT = batch), in Redis's scan order; or, with `fields` pushed down, HMGET of just
 * those fields (in the order given, deduplicated; fields that do not exist give no row).
 */
import type { RedisKey } from 'ioredis';
import { asArray, asBuffer, dedupe, pairsJson, scanReply, SeenSet, type CursorParams, type Item, type KeyCursor } from './cursor.js';
import { lengthCount } from './length.js';
import { pairsText, type KeyModel, type ModelItem } from './model.js';
import { ChunkedMap } from './chunked-map.js';
import type { RedisOp } from '../write.js';
import { describeJson } from './row-writer.js';
import { PgError } from '../../protocol/pg-error.js';
import { SqlState } from '../../protocol/sqlstate.js';
import { shapeError } from './shape.js';
import type { RedisTypeRecord } from './type.js';

export function openHash(key: RedisKey, params: CursorParams): KeyCursor {
  const fields = params.useFields ? params.pushdown.fields : undefined;
  return fields ? hmgetCursor(key, dedupe(fields), params.batch) : hscanCursor(key, params.firstBatch, params.batch);
}

function hscanCursor(key: RedisKey, firstBatch: number, batch: number): KeyCursor {
  let cursor: string | undefined = '0';
  let first = true;
  const seen = new SeenSet();
  return {
    command: () => (cursor === undefined ? undefined : ['hscan', key, cursor, 'COUNT', first ? firstBatch : batch]),
    accept(reply) {
      const r = scanReply(reply, 'HSCAN');
      cursor = r.cursor === '0' ? undefined : r.cursor;
      const isFirst = first;
      first = false;
      // A first page is new by definition; if more pages follow, its fields are held for the dedupe.
      const held: Buffer[] | undefined = isFirst && cursor !== undefined ? [] : undefined;
      const items: Item[] = [];
      for (let i = 0; i + 1 < r.elements.length; i += 2) {
        const field = asBuffer(r.elements[i]);
        if (isFirst || seen.add(field)) {
          items.push({ field, value: asBuffer(r.elements[i + 1]) });
          held?.push(field);
        }
      }
      if (held) seen.hold(held);
      return items;
    },
  };
}

function hmgetCursor(key: RedisKey, fields: string[], batch: number): KeyCursor {
  let offset = 0;
  let asked: string[] = [];
  return {
    command() {
      if (offset >= fields.length) return undefined;
      asked = fields.slice(offset, offset + batch);
      return ['hmget', key, ...asked];
    },
    accept(reply) {
      offset += asked.length;
      const values = asArray(reply, 'HMGET');
      const items: Item[] = [];
      asked.forEach((f, i) => {
        const v = values[i];
        if (v !== null && v !== undefined) items.push({ field: Buffer.from(f, 'utf8'), value: asBuffer(v) });
      });
      return items;
    },
  };
}

class HashModel implements KeyModel {
  private readonly m = new ChunkedMap<string>();

  add(it: ModelItem): void {
    this.m.set(it.field!, it.value!);
  }

  apply(op: RedisOp): void {
    if (op.op === 'hset' && !(op.nx && this.m.has(op.field))) this.m.set(op.field, op.value);
    else if (op.op === 'hdel') this.m.delete(op.field);
  }

  *items(): Generator<ModelItem> {
    for (const [field, value] of this.m.entries()) yield { field, value };
  }

  json(): string | undefined {
    return this.m.size ? pairsText([...this.m.entries()].flat()) : undefined;
  }
}

export const hash: RedisTypeRecord = {
  name: 'hash',
  open: openHash,
  paged: true,
  count: lengthCount('hlen'),
  pinnedRole: 'field',
  fastScan: { kind: 'hash', first: 'field', second: 'value', dedupe: true },
  aggregate: {
    json(items, key, table) {
      const pairs: Buffer[] = [];
      for (const it of items) pairs.push(it.field!, it.value!);
      return pairsJson(pairs, key, table);
    },
    write(w, key, items, name) {
      if (items === null || typeof items !== 'object' || Array.isArray(items) || Object.keys(items).length === 0) {
        throw new PgError(SqlState.InvalidParameterValue, `column "${name}" of a multi_hash row must be a non-empty JSON object`, { detail: `Got ${describeJson(items)}.` });
      }
      for (const [f, v] of Object.entries(items as Record<string, unknown>)) w.push({ op: 'hset', key, field: f, value: w.jsonScalar(v, `${name}.${f}`) });
    },
  },
  model: { empty: () => new HashModel() },
  rows(w) {
    const c = w.col;
    return {
      insert: (key, row, nx) => w.push({ op: 'hset', key, field: w.required(row, c.field!), value: w.required(row, c.value!), ...(nx ? { nx } : {}) }),
      delete: (old) => w.push({ op: 'hdel', key: old.key, field: old.values[c.field!]! }),
      update(old, row) {
        const field = w.required(row, c.field!);
        if (field !== old.values[c.field!]) w.push({ op: 'hdel', key: old.key, field: old.values[c.field!]! });
        w.push({ op: 'hset', key: old.key, field, value: w.required(row, c.value!) });
      },
    };
  },
  conflict: {
    role: 'field',
    async existing(c, key, members) {
      const v = (await c.call('HMGET', key, ...members)) as (string | null)[];
      return members.filter((_, i) => v[i] !== null);
    },
  },
  supabaseColumns(table, cols) {
    if (cols.length !== 2) throw shapeError(table, "'hash'", '(key text, value text)', cols);
    return [{ kind: 'field' }, { kind: 'value' }];
  },
  rsColumns(table, rest, prefix, cols) {
    if (rest.length !== 2) throw shapeError(table, "'hash'", `${prefix}field text, value text)`, cols);
    return [{ kind: 'field' }, { kind: 'value' }];
  },
};
