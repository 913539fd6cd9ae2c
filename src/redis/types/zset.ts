/**
 * Sorted set, in ascending score order (ties by member, as Redis orders them):
 * - whole set: ZRANGE by index windows WITHSCORES;
 * - score range pushed down: ZRANGEBYSCORE min max WITHSCORES LIMIT offset count, paged by keyset (the next
 *   page starts at the last score seen, skipping the members at that score already returned), so a page
 *   never costs more than the ties it skips, however deep into a large range it is.
 * Scores are the text Redis returns ("10", "1.5", "inf").
 */
import type { RedisKey } from 'ioredis';
import { asArray, asBuffer, elementsJson, asText, flatPairs, type CursorParams, type Item, type KeyCursor } from './cursor.js';
import { lengthCount } from './length.js';
import type { KeyModel, ModelItem } from './model.js';
import { ChunkedMap } from './chunked-map.js';
import type { RedisOp } from '../write.js';
import { writeArrayItems } from './row-writer.js';
import { PgError } from '../../protocol/pg-error.js';
import { SqlState } from '../../protocol/sqlstate.js';
import { shapeError, withExtra } from './shape.js';
import type { RedisTypeRecord } from './type.js';

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

class ZsetModel implements KeyModel {
  /** Members as Redis holds them, in its order (by score, ties by member), as loading read them. */
  private readonly loaded: [member: string, score: string][] = [];
  /** Every member now, with its score. */
  private readonly m = new ChunkedMap<string>();
  /** Members a staged command added, re-scored or removed: only these need sorting into place. */
  private readonly moved = new ChunkedMap<true>();

  add(it: ModelItem): void {
    this.loaded.push([it.element!, it.score!]);
    this.m.set(it.element!, it.score!);
  }

  apply(op: RedisOp): void {
    if (op.op === 'zadd' && !(op.nx && this.m.has(op.member))) {
      this.m.set(op.member, normalScore(op.score));
      this.moved.set(op.member, true);
    } else if (op.op === 'zrem') {
      this.m.delete(op.member);
      this.moved.set(op.member, true);
    }
  }

  /**
   * In Redis's order. The loaded members already are; the few a transaction moved are sorted alone and
   * merged in, so a big key costs no sort, and the rows come lazily (the overlay reader gives way between them).
   */
  *items(): Generator<ModelItem> {
    const moved: [string, string][] = [];
    for (const e of this.moved.keys()) {
      const score = this.m.get(e);
      if (score !== undefined) moved.push([e, score]);
    }
    moved.sort(byScore);
    let j = 0;
    for (const entry of this.loaded) {
      if (this.moved.has(entry[0])) continue;
      while (j < moved.length && byScore(moved[j]!, entry) < 0) {
        const [element, score] = moved[j++]!;
        yield { element, score };
      }
      yield { element: entry[0], score: entry[1] };
    }
    for (; j < moved.length; j++) yield { element: moved[j]![0], score: moved[j]![1] };
  }

  json(): string | undefined {
    if (this.m.size === 0) return undefined;
    const members: string[] = [];
    for (const it of this.items()) members.push(it.element!);
    return JSON.stringify(members);
  }
}

/** Redis's order: by score, ties by member. */
function byScore(a: readonly [string, string], b: readonly [string, string]): number {
  return scoreValue(a[1]) - scoreValue(b[1]) || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
}

/** A score as Redis prints it ("1.5", "inf", "-inf") as a number. */
function scoreValue(s: string): number {
  return s === 'inf' || s === '+inf' ? Infinity : s === '-inf' ? -Infinity : Number(s);
}

/** A score as Redis would print it back (ZSCORE): shortest round-trip form, inf spelled Redis's way. */
function normalScore(s: string): string {
  const n = Number(s.replace(/^\+?inf$/i, 'Infinity').replace(/^-inf$/i, '-Infinity'));
  if (n === Infinity) return 'inf';
  if (n === -Infinity) return '-inf';
  return String(n);
}

const FLOAT = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** A score as ZADD takes it; 22P02 for what isn't a number. */
function score(s: string): string {
  const t = s.trim();
  if (FLOAT.test(t)) return t;
  if (/^[+-]?(inf|infinity)$/i.test(t)) return t.startsWith('-') ? '-inf' : '+inf';
  throw new PgError(SqlState.InvalidTextRepresentation, `invalid input syntax for type double precision: "${s}"`, { detail: 'A zset score must be a number.' });
}

export const zset: RedisTypeRecord = {
  name: 'zset',
  open: openZset,
  paged: true,
  count: lengthCount('zcard'),
  fastScan: {
    kind: 'zset',
    first: 'element',
    second: 'score',
    dedupe: false,
    // A score range reads by ZRANGEBYSCORE, which the raw scan doesn't speak.
    whole: (p) => p.scoreMin === undefined && p.scoreMax === undefined,
  },
  aggregate: {
    json: elementsJson,
    // A multi_zset row has no score column: every member gets 0, as for a zset table without one.
    write: (w, key, items, name) => writeArrayItems(w, key, items, name, (member) => ({ op: 'zadd', key, member, score: '0' })),
  },
  model: { empty: () => new ZsetModel() },
  rows(w) {
    const c = w.col;
    return {
      insert: (key, row, nx) => w.push({ op: 'zadd', key, member: w.required(row, c.element!), score: c.score === undefined ? '0' : score(w.required(row, c.score)), ...(nx ? { nx } : {}) }),
      delete: (old) => w.push({ op: 'zrem', key: old.key, member: old.values[c.element!]! }),
      update(old, row) {
        const member = w.required(row, c.element!);
        const s = c.score === undefined ? undefined : score(w.required(row, c.score));
        if (member !== old.values[c.element!]) w.push({ op: 'zrem', key: old.key, member: old.values[c.element!]! });
        // Without a score column a renamed member keeps its score; ZADD needs one, so it is the old one.
        w.push({ op: 'zadd', key: old.key, member, score: s ?? old.score ?? '0' });
      },
    };
  },
  identityRoles: ['score'],
  conflict: {
    role: 'element',
    async existing(c, key, members) {
      const v = (await c.call('ZMSCORE', key, ...members)) as (string | null)[];
      return members.filter((_, i) => v[i] !== null);
    },
  },
  supabaseColumns: (table, cols) => withExtra(table, "'zset'", cols, 'score'),
  rsColumns(table, rest, prefix, cols) {
    if (rest.length < 1 || rest.length > 2) throw shapeError(table, "'zset'", `${prefix}member text[, score float8])`, cols);
    return rest.length === 2 ? [{ kind: 'element' }, { kind: 'score' }] : [{ kind: 'element' }];
  },
};
