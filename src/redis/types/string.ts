/** String: one GET; a missing key gives no row. The value fills both the value and element roles. */
import type { RedisKey } from 'ioredis';
import { asBuffer, type CursorParams, type KeyCursor } from './cursor.js';
import type { KeyModel, ModelItem } from './model.js';
import type { RedisOp } from '../write.js';
import { shapeError } from './shape.js';
import type { RedisTypeRecord } from './type.js';

export function openString(key: RedisKey, _params: CursorParams): KeyCursor {
  let done = false;
  return {
    command: () => (done ? undefined : ['get', key]),
    accept(reply) {
      done = true;
      if (reply === null || reply === undefined) return [];
      const value = asBuffer(reply);
      return [{ value, element: value }];
    },
  };
}

class StringModel implements KeyModel {
  private v: string | null = null;

  add(it: ModelItem): void {
    this.v = it.value!;
  }

  apply(op: RedisOp): void {
    if (op.op === 'set' && !(op.nx && this.v !== null)) this.v = op.value;
  }

  *items(): Generator<ModelItem> {
    if (this.v !== null) yield { value: this.v };
  }

  json(): undefined {
    return undefined;
  }
}

export const string: RedisTypeRecord = {
  name: 'string',
  open: openString,
  paged: false,
  count: {
    async run(client, key) {
      // STRLEN fails on another type as the reader's GET does; an empty string is still a row.
      const [, exists] = await Promise.all([client.call('strlen', key), client.call('exists', key)]);
      return Number(exists);
    },
    explain: (key) => `EXISTS ${key}`,
  },
  singleRow: true,
  model: { empty: () => new StringModel() },
  rows(w) {
    const c = w.col;
    return {
      insert: (key, row, nx) => w.push({ op: 'set', key, value: w.required(row, c.value!), ...(nx ? { nx } : {}) }),
      delete: (old) => w.push({ op: 'del', key: old.key }),
      update: (old, row) => w.push({ op: 'set', key: old.key, value: w.required(row, c.value!) }),
    };
  },
  conflict: {
    existing: async (c, key) => ((await c.exists(key)) ? [key] : []),
  },
  rsColumns(table, rest, prefix, cols) {
    if (rest.length !== 1) throw shapeError(table, "'string'", `${prefix}value text)`, cols);
    return [{ kind: 'value' }];
  },
};
