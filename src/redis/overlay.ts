/**
 * Read-your-writes inside a transaction: a table with writes still waiting for COMMIT is read whole
 * from Redis into memory, the waiting commands are applied to that copy in order, and the copy is
 * emitted as rows exactly as a plain read would emit them. Only tables with pending writes take this
 * path; it trades the paged read for correctness, for as long as the transaction lasts. Each type's
 * module holds its model (`typeOf(spec).model`); this file holds what they share.
 */
import type { RedisClient } from './pool.js';
import { mapRedisErrorWithType, serverOf } from './errors.js';
import { globMatch } from './glob.js';
import type { ColumnRole, RowSink, TableSpec } from './table-spec.js';
import type { KeyModel, ModelItem } from './types/model.js';
import { pairsText } from './types/model.js';
import { typeOf } from './types/type.js';
import { scanKeys } from './types/multi.js';
import type { RedisOp } from './write.js';

export async function readWithPending(client: RedisClient, spec: TableSpec, pending: readonly RedisOp[], sink: RowSink): Promise<void> {
  const keys = spec.multi === 'none' ? [spec.key] : await scanKeys(client, spec.key, spec.type);
  const known = new Set(keys);
  for (const op of pending) {
    if (op.op === 'delPattern' || known.has(op.key) || !globMatch(spec.key, op.key)) continue;
    known.add(op.key);
    keys.push(op.key);
  }
  const models = new Map<string, KeyModel>();
  for (const key of keys) models.set(key, await load(client, spec, key));
  for (const op of pending) apply(models, spec, op);
  const roles = spec.roles;
  for (const [key, model] of models) {
    if (spec.multi === 'aggregate') {
      const items = model.json();
      if (items !== undefined) sink.row(key, roles.map((r) => (r.kind === 'key' ? key : r.kind === 'items' ? items : null)));
      continue;
    }
    for (const item of model.items()) sink.row(key, roles.map((r) => valueFor(r, key, item)), item.staged);
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

async function load(client: RedisClient, spec: TableSpec, key: string): Promise<KeyModel> {
  try {
    return await typeOf(spec).model.load(client, key);
  } catch (e) {
    throw await mapRedisErrorWithType(e, { key, table: spec.table, expected: spec.type, server: serverOf(client) }, client);
  }
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
