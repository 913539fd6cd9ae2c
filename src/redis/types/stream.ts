/**
 * Stream: XRANGE pages of `batch` entries in id order, between pushdown.idMin and idMax ('-' and '+' when
 * absent). The next page starts just after the last id seen (computed here, so no Redis 6.2 '(' syntax).
 */
import type { RedisKey } from 'ioredis';
import { asArray, asBuffer, asText, flatPairs, type CursorParams, type Item, type KeyCursor } from './cursor.js';
import { lengthCount } from './length.js';
import type { KeyModel, ModelItem } from './model.js';
import type { RedisOp, XaddOp } from '../write.js';
import { describeJson, jsonOf, type Row, type RowWriter } from './row-writer.js';
import { PgError } from '../../protocol/pg-error.js';
import { SqlState } from '../../protocol/sqlstate.js';
import { shapeError } from './shape.js';
import type { RedisTypeRecord } from './type.js';
import type { ColumnRole } from '../table-spec.js';

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
  private e: { id: StreamEntryId; pairs: string[] }[] = [];

  add(it: ModelItem): void {
    this.e.push({ id: { redis: it.id! }, pairs: it.pairs! });
  }

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

export function streamUpdate(table: string): PgError {
  return new PgError(SqlState.FeatureNotSupported, `cannot update foreign table ${table}: Redis streams are append-only`, { hint: 'DELETE the entry and INSERT a new one.' });
}

function streamId(id: string | null): string {
  if (id === null || id === '*') return '*';
  if (!/^\d+(-(\d+|\*))?$/.test(id)) {
    throw new PgError(SqlState.InvalidTextRepresentation, `invalid Redis stream entry id: "${id}"`, { hint: 'Give <milliseconds>-<sequence>, <milliseconds>-*, or * (or NULL) to let Redis choose.' });
  }
  return id;
}

/** An entry's field/value pairs: the `items` JSON object (Supabase), or one column per field (redis_fdw_rs). */
function streamPairs(w: RowWriter, row: Row): string[] {
  const { spec } = w.cx;
  const pairs: string[] = [];
  const items = w.col.items;
  if (items !== undefined) {
    const obj = jsonOf(w.required(row, items), spec.columns[items]!.name);
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      throw new PgError(SqlState.InvalidParameterValue, `column "${spec.columns[items]!.name}" of a stream row must be a JSON object of field/value pairs`, { detail: `Got ${describeJson(obj)}.` });
    }
    for (const [f, v] of Object.entries(obj as Record<string, unknown>)) pairs.push(f, w.jsonScalar(v, `${spec.columns[items]!.name}.${f}`));
  } else {
    spec.roles.forEach((r, i) => {
      if (r.kind !== 'streamField' || row[i] === null) return;
      w.checkSize(row[i]!, spec.columns[i]!.name);
      pairs.push(r.name, row[i]!);
    });
  }
  if (pairs.length === 0) {
    throw new PgError(SqlState.InvalidParameterValue, `a stream entry of relation "${w.cx.relname}" needs at least one field`, { detail: 'Redis streams cannot hold empty entries.' });
  }
  return pairs;
}

export const stream: RedisTypeRecord = {
  name: 'stream',
  open: openStream,
  paged: true,
  count: lengthCount('xlen'),
  model: { empty: () => new StreamModel() },
  rows(w) {
    const c = w.col;
    return {
      insert: (key, row) => w.push({ op: 'xadd', key, id: streamId(row[c.id!] ?? null), pairs: streamPairs(w, row) }),
      delete(old) {
        // An entry added earlier in this transaction has no id yet: dropping its XADD is the delete.
        if (old.staged) return w.push({ op: 'xcancel', key: old.key, cancels: old.staged });
        const id = old.values[c.id!] ?? null;
        if (id === null) throw new Error('a stream row without an id that is not a staged entry');
        w.push({ op: 'xdel', key: old.key, id });
      },
      update() {
        throw streamUpdate(w.cx.spec.table);
      },
    };
  },
  refuseUpdate: streamUpdate,
  supabaseColumns(table, cols) {
    if (cols.length !== 2) throw shapeError(table, "'stream'", '(id text, items jsonb)', cols);
    return [{ kind: 'id' }, { kind: 'items' }];
  },
  rsColumns(table, rest, prefix, cols) {
    if (rest.length < 1) throw shapeError(table, "'stream'", `${prefix}id text, <one column per field>...)`, cols);
    return [{ kind: 'id' }, ...rest.slice(1).map((c): ColumnRole => ({ kind: 'streamField', name: c.name }))];
  },
};
