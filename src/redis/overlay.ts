/**
 * Read-your-writes inside a transaction: a table with writes still waiting for COMMIT is read whole
 * from Redis into memory, the waiting commands are applied to that copy in order, and the copy is
 * emitted as rows exactly as a plain read would emit them. Only tables with pending writes take this
 * path; it trades the reader's bounded memory for correctness, for as long as the transaction lasts.
 * Each type's module holds its model (`typeOf(spec).model`); this file holds what they share.
 *
 * A key is loaded page by page with the type's own read cursor (HSCAN, SSCAN, LRANGE, ZRANGE, XRANGE
 * pages, as a plain read takes them), and every loop (loading, applying, emitting) gives way to other
 * sessions every few ms and stops with 57014 when the statement's signal fires: a 200,000-field hash
 * once held the event loop for ~0.4 s here, and a cancel waited for it.
 */
import type { Redis } from 'ioredis';
import type { RedisClient } from './pool.js';
import { mapRedisErrorWithType, serverOf } from './errors.js';
import { globMatch } from './glob.js';
import type { ColumnRole, RowSink, TableSpec } from './table-spec.js';
import type { KeyModel, ModelItem } from './types/model.js';
import { pairsText } from './types/model.js';
import { typeOf } from './types/type.js';
import { scanKeys } from './types/multi.js';
import type { Cmd, CursorParams, Item } from './types/cursor.js';
import type { RedisOp } from './write.js';
import { toText } from './text.js';
import { GiveWay } from '../executor/give-way.js';
import { throwIfCanceled } from '../session/cancel.js';

export interface OverlayOptions {
  /** The statement's cancel: every loop stops with its 57014 within a slice of it firing. */
  signal?: AbortSignal | undefined;
  /** Page size of a key's load (default PAGE). */
  batchSize?: number;
}

/**
 * Items per page of a key's load. ioredis decodes a reply in the turn it arrives, in one piece:
 * measured over a 200,000-field hash on the loaded 2-core test machine, 10,000-field pages held the
 * loop for up to ~30 ms of CPU, 5,000-field ones 10-25 ms, for the same total time.
 */
const PAGE = 5000;

/** Loop iterations between looks at the clock (one look costs about as much as a cheap iteration). */
const STRIDE = 128;

const commands = (c: RedisClient): Redis => c as unknown as Redis;

export async function readWithPending(client: RedisClient, spec: TableSpec, pending: readonly RedisOp[], sink: RowSink, opts: OverlayOptions = {}): Promise<void> {
  const signal = opts.signal;
  const giveWay = new GiveWay(signal);
  const pause = async (i: number): Promise<void> => {
    if (i % STRIDE !== STRIDE - 1) return;
    const p = giveWay.maybe();
    if (p) await p;
  };
  const keys =
    spec.multi === 'none'
      ? [spec.key]
      : await scanKeys(client, spec.key, spec.type, {
          call: (node, cmd) => {
            throwIfCanceled(signal);
            return commands(node).callBuffer(...cmd);
          },
          table: spec.table,
        });
  const known = new Set(keys);
  for (const op of pending) {
    if (op.op === 'delPattern' || known.has(op.key) || !globMatch(spec.key, op.key)) continue;
    known.add(op.key);
    keys.push(op.key);
  }
  const models = new Map<string, KeyModel>();
  for (const key of keys) models.set(key, await load(client, spec, key, pause, opts));
  for (let i = 0; i < pending.length; i++) {
    apply(models, spec, pending[i]!);
    await pause(i);
  }
  const roles = spec.roles;
  let n = 0;
  for (const [key, model] of models) {
    if (spec.multi === 'aggregate') {
      const items = model.json();
      if (items !== undefined) sink.row(key, roles.map((r) => (r.kind === 'key' ? key : r.kind === 'items' ? items : null)));
      await pause(n++);
      continue;
    }
    for (const item of model.items()) {
      sink.row(key, roles.map((r) => valueFor(r, key, item)), item.staged);
      await pause(n++);
    }
  }
}

function valueFor(r: ColumnRole, key: string, it: ModelItem): string | null {
  switch (r.kind) {
    case 'key':
      return key;
    case 'items':
      return it.pairs ? pairsText(it.pairs) : null;
    case 'streamField': {
      const p = it.pairs ?? [];
      for (let i = p.length - 2; i >= 0; i -= 2) if (p[i] === r.name) return p[i + 1]!;
      return null;
    }
    default:
      return (it[r.kind] as string | null | undefined) ?? null;
  }
}

/** The key as Redis holds it now, read page by page with the type's cursor (a missing key is an empty model). */
async function load(client: RedisClient, spec: TableSpec, key: string, pause: (i: number) => Promise<void>, opts: OverlayOptions): Promise<KeyModel> {
  const type = typeOf(spec);
  const model = type.model.empty();
  const page = Math.max(1, Math.floor(opts.batchSize ?? PAGE));
  const params: CursorParams = { pushdown: {}, useFields: false, batch: page, firstBatch: page };
  const cur = type.open(key, params);
  for (let cmd = cur.command(Infinity); cmd; cmd = cur.command(Infinity)) {
    throwIfCanceled(opts.signal);
    // The reply was decoded in the turn it arrived in: the first pause after it gives way at once.
    const items = cur.accept(await call(client, spec, key, cmd));
    throwIfCanceled(opts.signal);
    for (let i = 0; i < items.length; i++) {
      model.add(textItem(items[i]!, key, spec.table));
      await pause(i);
    }
  }
  return model;
}

async function call(client: RedisClient, spec: TableSpec, key: string, cmd: Cmd): Promise<unknown> {
  try {
    return await commands(client).callBuffer(...cmd);
  } catch (e) {
    throw await mapRedisErrorWithType(e, { key, table: spec.table, expected: spec.type, server: serverOf(client) }, client);
  }
}

/** A cursor's item as the model's text, checked as a plain read checks it (22021 for bytes that aren't UTF-8 text). */
function textItem(it: Item, key: string, table: string): ModelItem {
  const text = (b: Buffer): string => toText(b, key, table);
  const m: ModelItem = {};
  if (it.field) m.field = text(it.field);
  if (it.value) m.value = text(it.value);
  if (it.element) m.element = text(it.element);
  if (it.score !== undefined) m.score = it.score;
  if (it.index !== undefined) m.index = String(it.index);
  if (it.id) m.id = text(it.id);
  if (it.pairs) m.pairs = it.pairs.map(text);
  return m;
}

function apply(models: Map<string, KeyModel>, spec: TableSpec, op: RedisOp): void {
  if (op.op === 'delPattern') {
    for (const k of models.keys()) if (globMatch(op.pattern, k)) models.set(k, typeOf(spec).model.empty());
    return;
  }
  const m = models.get(op.key);
  if (!m) return;
  if (op.op === 'del') models.set(op.key, typeOf(spec).model.empty());
  else m.apply(op);
}
