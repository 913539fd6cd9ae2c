/** List: LRANGE windows of `batch` elements, head to tail, with each element's 0-based index. */
import type { RedisKey } from 'ioredis';
import { asArray, asBuffer, elementsJson, type CursorParams, type Item, type KeyCursor } from './cursor.js';
import { lengthCount } from './length.js';
import type { KeyModel, ModelItem } from './model.js';
import type { RedisOp } from '../write.js';
import { writeArrayItems, type RowWriter } from './row-writer.js';
import type { ListEdit } from '../write.js';
import { PgError } from '../../protocol/pg-error.js';
import { SqlState } from '../../protocol/sqlstate.js';
import { withExtra } from './shape.js';
import { ChunkedSet } from './chunked-map.js';
import type { RedisTypeRecord } from './type.js';

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

class ListModel implements KeyModel {
  private a: string[] = [];

  add(it: ModelItem): void {
    this.a.push(it.element!);
  }

  apply(op: RedisOp): void {
    if (op.op === 'rpush') this.a.push(op.value);
    else if (op.op === 'ledit') {
      const gone = new ChunkedSet<number>();
      for (const e of op.edits) {
        if (e.value === null) gone.add(e.index);
        else this.a[e.index] = e.value;
      }
      if (gone.size) this.a = this.a.filter((_, i) => !gone.has(i));
    }
  }

  *items(): Generator<ModelItem> {
    for (let i = 0; i < this.a.length; i++) yield { element: this.a[i]!, index: String(i) };
  }

  json(): string | undefined {
    return this.a.length ? JSON.stringify(this.a) : undefined;
  }
}

function positionDetail(w: RowWriter, index: number): string {
  return `Column "${w.cx.spec.columns[index]!.name}" is the element's position in the list, which Redis assigns.`;
}

export const list: RedisTypeRecord = {
  name: 'list',
  open: openList,
  paged: true,
  count: lengthCount('llen'),
  fastScan: { kind: 'list', first: 'element', dedupe: false, position: 'index' },
  aggregate: {
    json: elementsJson,
    write: (w, key, items, name) => writeArrayItems(w, key, items, name, (value) => ({ op: 'rpush', key, value })),
  },
  model: { empty: () => new ListModel() },
  rows(w) {
    const c = w.col;
    /**
     * Position edits per key: all read from one snapshot, so they are sent as one checked edit (write.ts).
     * The first edit of a position stands; a set of positions finds it (a scan of the list made a
     * 100,000-element UPDATE quadratic: seconds of one session's CPU holding every other).
     */
    const edits = new Map<string, { list: ListEdit[]; at: ChunkedSet<number> }>();
    const edit = (key: string, e: ListEdit): void => {
      let k = edits.get(key);
      if (!k) edits.set(key, (k = { list: [], at: new ChunkedSet() }));
      if (k.at.has(e.index)) return;
      k.at.add(e.index);
      k.list.push(e);
    };
    return {
      insert(key, row) {
        if (c.index !== undefined && row[c.index] !== null) {
          throw new PgError(SqlState.GeneratedAlways, `cannot insert a non-DEFAULT value into column "${w.cx.spec.columns[c.index]!.name}"`, { detail: positionDetail(w, c.index) });
        }
        w.push({ op: 'rpush', key, value: w.required(row, c.element!) });
      },
      delete: (old) => edit(old.key, { index: old.index!, expected: old.values[c.element!]!, value: null }),
      checkUpdate(old, row) {
        if (c.index !== undefined && row[c.index] !== old.values[c.index]) {
          throw new PgError(SqlState.GeneratedAlways, `column "${w.cx.spec.columns[c.index]!.name}" can only be updated to DEFAULT`, { detail: positionDetail(w, c.index) });
        }
      },
      update: (old, row) => edit(old.key, { index: old.index!, expected: old.values[c.element!]!, value: w.required(row, c.element!) }),
      // Snapshot rows come in position order: the sort is a check of sortedness (linear) as a rule.
      finish: () => [...edits].map(([key, { list: es }]) => ({ op: 'ledit', key, edits: es.sort((a, b) => a.index - b.index) })),
    };
  },
  identityRoles: ['index'],
  supabaseColumns: (table, cols) => withExtra(table, "'list'", cols, 'index'),
  rsColumns: (table, rest) => withExtra(table, "'list'", rest, 'index'),
};
