/**
 * Read-your-writes inside a transaction: a table with writes still waiting for COMMIT is read whole
 * from Redis into memory, the waiting commands are applied to that copy in order, and the copy is
 * emitted as rows exactly as a plain read would emit them. Only tables with pending writes take this
 * path; it trades the paged read for correctness, for as long as the transaction lasts.
 */
import type { Redis } from 'ioredis';
import type { RedisClient } from './pool.js';
import { mapRedisErrorWithType, serverOf } from './errors.js';
import { globMatch } from './glob.js';
import type { ColumnRole, RowSink, TableSpec } from './table-spec.js';
import { scanKeys, type RedisOp } from './write.js';

type Model =
  | { type: 'hash'; m: Map<string, string> }
  | { type: 'list'; a: string[] }
  | { type: 'set'; s: Set<string> }
  | { type: 'zset'; m: Map<string, string> }
  /** `from`: the staged XADD an unnumbered entry came from, so a later cancel can find it. */
  | { type: 'stream'; e: { id: string | null; pairs: string[]; from?: RedisOp }[] }
  | { type: 'string'; v: string | null };

const commands = (c: RedisClient): Redis => c as unknown as Redis;

/** Whether `op` touches a key of `spec`. */
export function touches(spec: TableSpec, op: RedisOp): boolean {
  if (op.op === 'delPattern') return op.type === spec.type && (spec.multi === 'none' ? globMatch(op.pattern, spec.key) : op.pattern === spec.key);
  return spec.multi === 'none' ? op.key === spec.key : globMatch(spec.key, op.key);
}

export async function readWithPending(client: RedisClient, spec: TableSpec, pending: readonly RedisOp[], sink: RowSink): Promise<void> {
  const keys = spec.multi === 'none' ? [spec.key] : await scanKeys(client, spec.key, spec.type);
  const known = new Set(keys);
  for (const op of pending) {
    if (op.op === 'delPattern' || known.has(op.key) || !globMatch(spec.key, op.key)) continue;
    known.add(op.key);
    keys.push(op.key);
  }
  const models = new Map<string, Model>();
  for (const key of keys) models.set(key, await load(client, spec, key));
  for (const op of pending) apply(models, spec, op);
  const roles = spec.roles;
  for (const [key, model] of models) {
    if (spec.multi === 'aggregate') {
      const items = aggregateJson(model);
      if (items !== undefined) sink.row(key, roles.map((r) => (r.kind === 'key' ? key : r.kind === 'items' ? items : null)));
      continue;
    }
    for (const item of itemsOf(model)) sink.row(key, roles.map((r) => valueFor(r, key, item)));
  }
}

interface ModelItem {
  field?: string;
  value?: string;
  element?: string;
  score?: string;
  index?: string;
  id?: string | null;
  pairs?: string[];
}

function valueFor(r: ColumnRole, key: string, it: ModelItem): string | null {
  switch (r.kind) {
    case 'key':
      return key;
    case 'items':
      return it.pairs ? pairsJson(it.pairs) : null;
    case 'streamField': {
      const p = it.pairs ?? [];
      for (let i = p.length - 2; i >= 0; i -= 2) if (p[i] === r.name) return p[i + 1]!;
      return null;
    }
    default:
      return (it[r.kind] as string | null | undefined) ?? null;
  }
}

function* itemsOf(m: Model): Generator<ModelItem> {
  switch (m.type) {
    case 'hash':
      for (const [field, value] of m.m) yield { field, value };
      return;
    case 'list':
      for (let i = 0; i < m.a.length; i++) yield { element: m.a[i]!, index: String(i) };
      return;
    case 'set':
      for (const element of m.s) yield { element };
      return;
    case 'zset':
      for (const [element, score] of sortedZset(m.m)) yield { element, score };
      return;
    case 'stream':
      for (const e of m.e) yield { id: e.id, pairs: e.pairs };
      return;
    case 'string':
      if (m.v !== null) yield { value: m.v };
      return;
  }
}

function sortedZset(m: Map<string, string>): [string, string][] {
  return [...m].sort((a, b) => Number(a[1]) - Number(b[1]) || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function aggregateJson(m: Model): string | undefined {
  switch (m.type) {
    case 'hash':
      return m.m.size ? pairsJson([...m.m].flat()) : undefined;
    case 'list':
      return m.a.length ? JSON.stringify(m.a) : undefined;
    case 'set':
      return m.s.size ? JSON.stringify([...m.s]) : undefined;
    case 'zset':
      return m.m.size ? JSON.stringify(sortedZset(m.m).map(([e]) => e)) : undefined;
    default:
      return undefined;
  }
}

function pairsJson(pairs: string[]): string {
  const obj = new Map<string, string>();
  for (let i = 0; i + 1 < pairs.length; i += 2) obj.set(pairs[i]!, pairs[i + 1]!);
  return `{${[...obj].map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`;
}

async function load(client: RedisClient, spec: TableSpec, key: string): Promise<Model> {
  const c = commands(client);
  try {
    switch (spec.type) {
      case 'hash': {
        const flat = await c.call('HGETALL', key) as string[];
        const m = new Map<string, string>();
        for (let i = 0; i + 1 < flat.length; i += 2) m.set(flat[i]!, flat[i + 1]!);
        return { type: 'hash', m };
      }
      case 'list':
        return { type: 'list', a: await c.lrange(key, '0', '-1') };
      case 'set':
        return { type: 'set', s: new Set(await c.smembers(key)) };
      case 'zset': {
        const flat = await c.zrange(key, '0', '-1', 'WITHSCORES');
        const m = new Map<string, string>();
        for (let i = 0; i + 1 < flat.length; i += 2) m.set(flat[i]!, flat[i + 1]!);
        return { type: 'zset', m };
      }
      case 'stream': {
        const entries = await c.xrange(key, '-', '+');
        return { type: 'stream', e: entries.map(([id, pairs]) => ({ id, pairs })) };
      }
      case 'string':
        return { type: 'string', v: await c.get(key) };
    }
  } catch (e) {
    throw await mapRedisErrorWithType(e, { key, table: spec.table, expected: spec.type, server: serverOf(client) }, client);
  }
}

function empty(spec: TableSpec): Model {
  switch (spec.type) {
    case 'hash':
      return { type: 'hash', m: new Map() };
    case 'list':
      return { type: 'list', a: [] };
    case 'set':
      return { type: 'set', s: new Set() };
    case 'zset':
      return { type: 'zset', m: new Map() };
    case 'stream':
      return { type: 'stream', e: [] };
    case 'string':
      return { type: 'string', v: null };
  }
}

function apply(models: Map<string, Model>, spec: TableSpec, op: RedisOp): void {
  if (op.op === 'delPattern') {
    for (const k of models.keys()) if (globMatch(op.pattern, k)) models.set(k, empty(spec));
    return;
  }
  const m = models.get(op.key);
  if (!m) return;
  switch (op.op) {
    case 'del':
      models.set(op.key, empty(spec));
      return;
    case 'hset':
      if (m.type === 'hash' && !(op.nx && m.m.has(op.field))) m.m.set(op.field, op.value);
      return;
    case 'hdel':
      if (m.type === 'hash') m.m.delete(op.field);
      return;
    case 'rpush':
      if (m.type === 'list') m.a.push(op.value);
      return;
    case 'ledit':
      if (m.type === 'list') {
        const gone = new Set<number>();
        for (const e of op.edits) {
          if (e.value === null) gone.add(e.index);
          else m.a[e.index] = e.value;
        }
        if (gone.size) m.a = m.a.filter((_, i) => !gone.has(i));
      }
      return;
    case 'sadd':
      if (m.type === 'set') m.s.add(op.member);
      return;
    case 'srem':
      if (m.type === 'set') m.s.delete(op.member);
      return;
    case 'zadd':
      if (m.type === 'zset' && !(op.nx && m.m.has(op.member))) m.m.set(op.member, normalScore(op.score));
      return;
    case 'zrem':
      if (m.type === 'zset') m.m.delete(op.member);
      return;
    case 'xadd':
      if (m.type === 'stream') m.e.push(unnumbered(op) ? { id: null, pairs: op.pairs, from: op } : { id: op.id, pairs: op.pairs });
      return;
    case 'xcancel':
      if (m.type === 'stream') m.e = m.e.filter((e) => e.from === undefined || e.from !== op.cancels);
      return;
    case 'xdel':
      if (m.type === 'stream') m.e = m.e.filter((e) => e.id !== op.id);
      return;
    case 'set':
      if (m.type === 'string' && !(op.nx && m.v !== null)) m.v = op.value;
      return;
  }
}

/** An XADD whose id Redis picks (`*` or `<ms>-*`): until COMMIT, its row reads with a NULL id. */
function unnumbered(op: RedisOp & { op: 'xadd' }): boolean {
  return op.id === '*' || op.id.endsWith('-*');
}

/** How an unnumbered entry reads, as the declared columns' text: what a DELETE's snapshot row holds. */
function unnumberedRow(spec: TableSpec, op: RedisOp & { op: 'xadd' }): string {
  return JSON.stringify([op.key, spec.roles.map((r) => valueFor(r, op.key, { id: null, pairs: op.pairs }))]);
}

/**
 * Ties each `xcancel` in `ops` (a statement's, about to be staged) to the staged XADD it deletes:
 * the first not-yet-cancelled unnumbered entry of that key that reads the same. Rows that read the
 * same can't be told apart by any WHERE, so which of them goes doesn't matter. `staged`: the ops
 * already staged on the table, in order.
 */
export function resolveCancels(spec: TableSpec, staged: readonly RedisOp[], ops: readonly RedisOp[]): void {
  if (!ops.some((o) => o.op === 'xcancel')) return;
  const live = new Map<string, (RedisOp & { op: 'xadd' })[]>();
  const gone = new Set<RedisOp>();
  for (const o of staged) if (o.op === 'xcancel' && o.cancels) gone.add(o.cancels);
  for (const o of staged) {
    if (o.op !== 'xadd' || !unnumbered(o) || gone.has(o)) continue;
    const k = unnumberedRow(spec, o);
    const q = live.get(k);
    if (q) q.push(o);
    else live.set(k, [o]);
  }
  for (const o of ops) {
    if (o.op !== 'xcancel') continue;
    o.cancels = live.get(JSON.stringify([o.key, o.row]))?.shift();
  }
}

/** A score as Redis would print it back (ZSCORE): shortest round-trip form, inf spelled Redis's way. */
function normalScore(s: string): string {
  const n = Number(s.replace(/^\+?inf$/i, 'Infinity').replace(/^-inf$/i, '-Infinity'));
  if (n === Infinity) return 'inf';
  if (n === -Infinity) return '-inf';
  return String(n);
}
