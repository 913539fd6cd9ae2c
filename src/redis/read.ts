/**
 * Reading a Redis foreign table: rows in declared column order, fetched page by page so memory per key
 * stays bounded, with the pushdown narrowing what is fetched.
 *
 * - Single key: the type's cursor, one page at a time (HSCAN / SSCAN / LRANGE / ZRANGE / ZRANGEBYSCORE /
 *   XRANGE / GET, or HMGET for pushed-down hash fields). A missing key gives no rows.
 * - Multi key (`multi` 'aggregate' or 'rows'): SCAN MATCH <pattern> TYPE <type> COUNT <batch> on every master
 *   (keys of other types are skipped), or, when exact keys are pushed down or the pattern is a literal, just
 *   those keys. The first page of each key is pipelined, `keysPerPipeline` keys at a time; keys with more
 *   pages are then read on, one page per round trip.
 *   - 'aggregate' (Supabase multi_*): one row per key, `items` = JSON of its contents (array for
 *     list/set/zset, object for hash).
 *   - 'rows' (redis_fdw_rs glob prefix): one row per element, the key in the `key` column.
 * - `limit`: stops as soon as that many rows were emitted, without reading further pages.
 * - A whole single-key hash/set/list/zset read into `text[]` parameters (the sink's `columns`) goes through
 *   resp-scan.ts instead of ioredis when the pool gave the client a raw scan pool (--redis-fast-scan).
 */
import type { Cluster, Redis, RedisKey } from 'ioredis';
import type { RedisClient } from './pool.js';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { isWrongTypeError, mapRedisError, mapRedisErrorWithType, serverOf } from './errors.js';
import type { ColumnRole, Pushdown, RedisType, RowSink, TableSpec } from './table-spec.js';
import { DiscardTarget, fastScanFor, scanKey, type CommandNote, type ScanTargets } from './resp-scan.js';
import { asArray, asText, pairsJson, type Cmd, type CursorParams, type Item, type KeyCursor, type OpenCursor } from './types/cursor.js';
import { exactKeys, scanPattern } from './types/multi.js';
import { typeOf, type RedisTypeRecord } from './types/type.js';
import { GiveWay } from '../executor/give-way.js';

export type { RedisClient };

export interface ReadOptions {
  /**
   * Page size: SCAN/HSCAN/SSCAN COUNT, LRANGE/ZRANGE window, XRANGE COUNT, HMGET fields. Default 10000 for
   * the pages of a single-key table, 1000 for multi-key tables (whose first pages are pipelined
   * `keysPerPipeline` at a time) and for HMGET.
   */
  batchSize?: number;
  /** Keys whose first page goes in one pipeline (multi-key tables). Default 100. */
  keysPerPipeline?: number;
  /** `host:port` for error messages; derived from the client when absent. */
  server?: string;
  /** Stops the read between round trips with 57014 (query canceled). */
  signal?: AbortSignal;
  /**
   * Asked before each round trip; a promise holds the read until it settles. A consumer slower than
   * Redis (a cursor fetched page by page) keeps the rows read ahead bounded this way.
   */
  pace?: () => Promise<void> | undefined;
}

export const DEFAULT_BATCH = 1000;
/**
 * Pages of one key: each round trip costs a wakeup of Redis and of the proxy, which on a loaded machine is
 * most of a page's time. Measured over a 100,000-field hash, 10,000-field pages take half the wall time of
 * 1,000-field ones for the same CPU; one HGETALL costs more CPU than pages (ioredis decodes a reply that
 * spans many socket chunks slowly, and a 1,000,000-field one took seconds), so whole-key commands are not
 * used even for keys that fit.
 */
export const DEFAULT_KEY_BATCH = 10_000;
/**
 * The first page of a single-key table: a key up to this size is read in one round trip, with no dedupe
 * set (a 100,000-field hash: one HSCAN). Its reply is held whole while it is decoded, so this is also the
 * largest transient a read adds to the rows it keeps: measured, pages of 100,000 throughout took a 1M-field
 * read's RSS growth from 78 to 129 MB; a first page of this size alone leaves the peak where it was.
 */
export const DEFAULT_FIRST_PAGE = 100_000;
export const DEFAULT_KEYS_PER_PIPELINE = 100;

const isCluster = (c: RedisClient): c is Cluster => (c as { isCluster?: boolean }).isCluster === true;
/** Both clients have the same command methods; the union's overloads just do not unify for TypeScript. */
const commands = (c: RedisClient): Redis => c as unknown as Redis;

/** Reads `spec` into `sink`. Errors are PgErrors (42809 wrong type, 22021 bad text, HV00N, HV000). */
export async function readTable(
  client: RedisClient,
  spec: TableSpec,
  pushdown: Pushdown,
  sink: RowSink,
  opts: ReadOptions = {},
): Promise<void> {
  await new TableReader(client, spec, pushdown, sink, opts).run();
}

// ---------------------------------------------------------------------------------------------------------

/** Turns items into rows in declared column order, and counts them against the limit. */
class Emitter {
  count = 0;
  private readonly fieldNames: (Buffer | undefined)[];

  constructor(
    private readonly spec: TableSpec,
    private readonly sink: RowSink,
    private readonly limit: number,
  ) {
    this.fieldNames = spec.roles.map((r) => (r.kind === 'streamField' ? Buffer.from(r.name, 'utf8') : undefined));
  }

  get full(): boolean {
    return this.count >= this.limit;
  }

  get remaining(): number {
    return this.limit - this.count;
  }

  row(keyLabel: string, keyValue: Buffer | string, item: Item): void {
    const roles = this.spec.roles;
    const values = new Array<Buffer | string | null>(roles.length);
    for (let i = 0; i < roles.length; i++) values[i] = this.value(roles[i]!, i, keyLabel, keyValue, item);
    this.count++;
    this.sink.row(keyLabel, values);
  }

  aggregate(keyLabel: string, keyValue: Buffer | string, itemsJson: string): void {
    const values = this.spec.roles.map((r) => (r.kind === 'key' ? keyValue : r.kind === 'items' ? itemsJson : null));
    this.count++;
    this.sink.row(keyLabel, values);
  }

  private value(role: ColumnRole, col: number, keyLabel: string, keyValue: Buffer | string, item: Item): Buffer | string | null {
    switch (role.kind) {
      case 'key':
        return keyValue;
      case 'field':
        return item.field ?? null;
      case 'value':
        return item.value ?? null;
      case 'element':
        return item.element ?? null;
      case 'score':
        return item.score ?? null;
      case 'index':
        return item.index === undefined ? null : String(item.index);
      case 'id':
        return item.id ?? null;
      case 'items':
        return item.pairs ? pairsJson(item.pairs, keyLabel, this.spec.table) : null;
      case 'streamField': {
        const name = this.fieldNames[col]!;
        const pairs = item.pairs;
        if (!pairs) return null;
        for (let i = pairs.length - 2; i >= 0; i -= 2) if (pairs[i]!.equals(name)) return pairs[i + 1]!;
        return null;
      }
    }
  }
}

/** Whether the read looks up pushed-down pins (a hash's fields) instead of walking each key. */
function usesPins(spec: TableSpec, pushdown: Pushdown): boolean {
  return typeOf(spec).pinnedRole === 'field' && spec.multi !== 'aggregate' && pushdown.fields !== undefined;
}

function cursorParams(spec: TableSpec, pushdown: Pushdown, useFields: boolean, opts: ReadOptions): CursorParams {
  const oneKey = spec.multi === 'none' && !useFields;
  const size = (def: number): number => Math.max(1, Math.floor(opts.batchSize ?? def));
  return { pushdown, useFields, batch: size(oneKey ? DEFAULT_KEY_BATCH : DEFAULT_BATCH), firstBatch: size(oneKey ? DEFAULT_FIRST_PAGE : DEFAULT_BATCH) };
}

type BatchResult = { ok: true; reply: unknown } | { ok: false; err: unknown };

class TableReader {
  private readonly em: Emitter;
  private readonly params: CursorParams;
  private readonly type: RedisTypeRecord;
  private readonly open: OpenCursor;
  private readonly keysPerPipeline: number;
  private readonly server: string;
  private readonly giveWay: GiveWay;

  constructor(
    private readonly client: RedisClient,
    private readonly spec: TableSpec,
    private readonly pushdown: Pushdown,
    private readonly sink: RowSink,
    private readonly opts: ReadOptions,
  ) {
    const limit = pushdown.limit ?? Infinity;
    this.em = new Emitter(spec, sink, limit);
    this.params = cursorParams(spec, pushdown, usesPins(spec, pushdown), opts);
    this.type = typeOf(spec);
    this.open = this.type.open;
    this.keysPerPipeline = Math.max(1, Math.floor(opts.keysPerPipeline ?? DEFAULT_KEYS_PER_PIPELINE));
    this.server = opts.server ?? serverOf(client);
    this.giveWay = new GiveWay(opts.signal);
  }

  async run(): Promise<void> {
    if (this.em.full) return; // LIMIT 0
    if (this.params.useFields && this.pushdown.fields!.length === 0) return;
    if (this.spec.multi === 'none') {
      if (await this.fastScan()) return;
      await this.readKey(this.client, this.spec.key, this.spec.key, this.spec.key, null);
      return;
    }
    if (this.spec.multi === 'aggregate' && !this.type.aggregate) {
      throw new PgError(SqlState.FeatureNotSupported, `foreign table ${this.spec.table}: multi-key ${this.spec.type} tables cannot aggregate keys; only list, set, hash and zset can`);
    }
    await this.readMulti();
  }

  // ---- single key ----

  /**
   * Reads one key to the end (or the limit), emitting a row per item. `pre` carries a cursor whose first page
   * was already fetched in a pipeline.
   */
  private async readKey(
    node: RedisClient,
    key: RedisKey,
    keyLabel: string,
    keyValue: Buffer | string,
    pre: { cursor: KeyCursor; items: Item[] } | null,
  ): Promise<void> {
    const cur = pre?.cursor ?? this.open(key, this.params);
    let items = pre?.items;
    for (;;) {
      if (items) {
        for (let i = 0; i < items.length; i++) {
          this.em.row(keyLabel, keyValue, items[i]!);
          if (this.em.full) return;
          // A big page is emitted in slices of a few ms, whatever the sink costs per row (a write's
          // snapshot row costs several times a SELECT's): other sessions, and a cancel, get a turn between.
          const p = this.giveWay.at(i);
          if (p) await p;
        }
      }
      const cmd = cur.command(this.em.remaining);
      if (!cmd) return;
      const reply = await this.call(node, cmd, key);
      items = cur.accept(reply);
    }
  }

  /** All items of one key (for 'aggregate'), continuing from a pipelined first page. */
  private async collectKey(node: RedisClient, key: RedisKey, cur: KeyCursor, first: Item[]): Promise<Item[]> {
    const items = first;
    for (let cmd = cur.command(Infinity); cmd; cmd = cur.command(Infinity)) {
      for (const item of cur.accept(await this.call(node, cmd, key))) items.push(item);
    }
    return items;
  }

  /**
   * A whole single-key hash/set/list/zset scan into the sink's `text[]` parameters, parsed from a raw
   * connection (resp-scan.ts); false when this read is not one (cluster, pushdown, limit, fast scan off).
   */
  private async fastScan(): Promise<boolean> {
    const cols = this.sink.columns;
    const scan = this.type.fastScan;
    if (!cols || cols.arrays.some((a) => a.length > 0) || this.params.useFields || this.pushdown.limit !== undefined) return false;
    if (!scan || (scan.whole && !scan.whole(this.pushdown))) return false;
    if (isCluster(this.client)) return false;
    const pool = fastScanFor(this.client);
    if (!pool) return false;
    const firstRole = scan.first;
    const secondRole = scan.second;
    const targets: ScanTargets = cols.direct ?? { first: undefined, second: undefined };
    const rest: { i: number; kind: ColumnRole['kind'] }[] = [];
    const roles = this.spec.roles;
    for (let i = 0; i < roles.length && !cols.direct; i++) {
      const role = roles[i]!.kind;
      const arr = cols.arrays[i]!;
      if (role === firstRole || role === secondRole) {
        const slot = role === firstRole ? 'first' : 'second';
        if (targets[slot]) return false; // two columns with one role: the row path copies it
        targets[slot] = arr;
      } else rest.push({ i, kind: role });
    }
    // The dedupe needs the members, shown or not.
    if (scan.dedupe && !targets.first) targets.first = new DiscardTarget();
    this.checkCanceled();
    // A key that fits the first page is one whole-key reply; a bigger one goes in pages of `batch`,
    // pipelined (resp-scan.ts), so Redis builds the next while this one is parsed: measured over a 1M-field
    // hash, pages of 5,000-20,000 overlap best, and cost Redis less CPU than pages of 100,000.
    let rows: number;
    try {
      const note = (this.client as { noteCommand?: CommandNote }).noteCommand;
      rows = await scanKey(pool, { kind: scan.kind, key: this.spec.key, table: cols.table, firstBatch: this.params.firstBatch, batch: this.params.batch, signal: this.opts.signal, note, checkedWhole: cols.checkedWhole, wholeRead: this.opts.batchSize === undefined ? undefined : this.params.firstBatch }, targets);
    } catch (e) {
      if (e instanceof PgError) throw e;
      if (this.opts.signal?.aborted) throw new PgError(SqlState.QueryCanceled, 'canceling statement due to user request');
      throw await mapRedisErrorWithType(e, this.errCtx(this.spec.key), this.client);
    }
    // Columns the reply does not fill, as the row path fills them (Emitter.value); none for `direct`.
    for (const { i, kind: role } of rest) {
      const arr = cols.arrays[i]!;
      if (role === 'key') arr.pushRepeated(this.spec.key, rows);
      else if (role === scan.position) for (let n = 0; n < rows; n++) arr.push(String(n));
      else arr.pushRepeated(null, rows);
    }
    this.em.count += rows;
    return true;
  }

  // ---- multi key ----

  private async readMulti(): Promise<void> {
    const pattern = this.spec.key;
    const exact = exactKeys(this.spec, this.pushdown);
    if (exact) {
      const keys = exact.map((k) => Buffer.from(k, 'utf8'));
      for (let i = 0; i < keys.length && !this.em.full; i += this.keysPerPipeline) {
        await this.readKeys(this.client, keys.slice(i, i + this.keysPerPipeline));
      }
      return;
    }
    const call = async (node: RedisClient, cmd: Cmd): Promise<unknown> => {
      const arr = asArray(await this.call(node, cmd, pattern), 'SCAN');
      return [asText(arr[0] ?? '0'), asArray(arr[1], 'SCAN')];
    };
    for await (const { node, keys } of scanPattern(this.client, pattern, this.spec.type, { count: this.params.batch, call, table: this.spec.table })) {
      for (let i = 0; i < keys.length && !this.em.full; i += this.keysPerPipeline) {
        await this.readKeys(node, keys.slice(i, i + this.keysPerPipeline));
      }
      if (this.em.full) return;
    }
  }

  /** Pipelines the first page of each key, then emits key by key (reading further pages as needed). */
  private async readKeys(node: RedisClient, keys: Buffer[]): Promise<void> {
    const aggregate = this.spec.multi === 'aggregate';
    const cursors = keys.map((k) => this.open(k, this.params));
    const want = aggregate ? Infinity : this.em.remaining;
    const cmds = cursors.map((c) => c.command(want)!);
    const results = await this.batch(node, cmds, keys);
    for (let i = 0; i < keys.length; i++) {
      if (this.em.full) return;
      const key = keys[i]!;
      const res = results[i]!;
      const keyLabel = key.toString('utf8');
      if (!res.ok) {
        if (isWrongTypeError(res.err)) continue; // another type under the pattern: not this table's key
        throw mapRedisError(res.err, this.errCtx(key));
      }
      const cur = cursors[i]!;
      const first = cur.accept(res.reply);
      try {
        if (aggregate) {
          const items = await this.collectKey(node, key, cur, first);
          if (items.length === 0) continue; // gone since SCAN, or never existed
          this.em.aggregate(keyLabel, key, this.type.aggregate!.json(items, keyLabel, this.spec.table));
        } else {
          await this.readKey(node, key, keyLabel, key, { cursor: cur, items: first });
        }
      } catch (e) {
        // The key was replaced by another type between pages: treat it as gone.
        if (e instanceof PgError && e.code === SqlState.WrongObjectType) continue;
        throw e;
      }
    }
  }

  // ---- I/O ----

  private errCtx(key: RedisKey): { key: RedisKey; table: string; server: string; expected: RedisType } {
    return { key, table: this.spec.table, server: this.server, expected: this.spec.type };
  }

  private checkCanceled(): void {
    if (this.opts.signal?.aborted) throw new PgError(SqlState.QueryCanceled, 'canceling statement due to user request');
  }

  private async call(node: RedisClient, cmd: Cmd, key: RedisKey): Promise<unknown> {
    const held = this.opts.pace?.();
    if (held) await held;
    this.checkCanceled();
    try {
      return await commands(node).callBuffer(...cmd);
    } catch (e) {
      throw await mapRedisErrorWithType(e, this.errCtx(key), node);
    }
  }

  /** One round trip for many commands: a pipeline (per node on a cluster: plain concurrent commands). */
  private async batch(node: RedisClient, cmds: Cmd[], keys: Buffer[]): Promise<BatchResult[]> {
    const held = this.opts.pace?.();
    if (held) await held;
    this.checkCanceled();
    if (isCluster(node)) {
      const settled = await Promise.allSettled(cmds.map((c) => commands(node).callBuffer(...c)));
      return settled.map((s) => (s.status === 'fulfilled' ? { ok: true, reply: s.value } : { ok: false, err: s.reason }));
    }
    const pipe = commands(node).pipeline();
    for (const c of cmds) pipe.callBuffer(...c);
    let res: [Error | null, unknown][] | null;
    try {
      res = await pipe.exec();
    } catch (e) {
      throw mapRedisError(e, this.errCtx(keys[0] ?? this.spec.key));
    }
    if (!res) throw mapRedisError(new Error('Connection is closed.'), this.errCtx(keys[0] ?? this.spec.key));
    return res.map(([err, reply]) => (err ? { ok: false, err } : { ok: true, reply }));
  }
}

// ---- EXPLAIN ------------------------------------------------------------------------------------------

const quote = (s: string): string => (/^[\x21-\x7e]+$/.test(s) && !/["'\\]/.test(s) ? s : JSON.stringify(s));
const show = (cmd: Cmd): string => cmd.map((a, i) => (i === 0 ? String(a).toUpperCase() : quote(Buffer.isBuffer(a) ? a.toString('utf8') : String(a)))).join(' ');

/** The Redis commands a read would run, for EXPLAIN (one line per step; no I/O). */
export function explainRead(spec: TableSpec, pushdown: Pushdown, opts: ReadOptions = {}): string[] {
  const useFields = usesPins(spec, pushdown);
  const params = cursorParams(spec, pushdown, useFields, opts);
  const batch = params.batch;
  const limit = pushdown.limit ?? Infinity;
  const type = typeOf(spec);
  const open = type.open;
  const lines: string[] = [];
  const perKey = (key: string): string => {
    const cmd = open(key, params).command(spec.multi === 'aggregate' ? Infinity : limit);
    if (!cmd) return '(nothing to read)';
    const paged = !type.paged ? '' : useFields ? ` (${batch} fields per command)` : ' (repeated page by page)';
    return `${show(cmd)}${paged}`;
  };
  if (useFields && pushdown.fields!.length === 0) return ['(no Redis command: the field list is empty)'];
  if (spec.multi === 'none') {
    lines.push(perKey(spec.key));
    const fast = type.fastScan;
    if (fast && (fast.kind === 'hash' || fast.kind === 'set') && !useFields && pushdown.limit === undefined && (!fast.whole || fast.whole(pushdown))) {
      const [len, whole] = fast.kind === 'hash' ? ['HLEN', 'HGETALL'] : ['SCARD', 'SMEMBERS'];
      lines.push(`on a standalone server (--redis-fast-scan on): ${show([len, spec.key])} first; one ${whole} when it holds at most ${params.firstBatch} members`);
    }
  } else {
    const keys = exactKeys(spec, pushdown);
    if (keys) {
      lines.push(`keys: ${keys.map(quote).join(', ') || '(none match the pattern)'}`);
    } else {
      lines.push(`${show(['scan', 0, 'MATCH', spec.key, 'COUNT', batch, 'TYPE', spec.type])} (until the cursor returns to 0; on every master of a cluster)`);
    }
    lines.push(`per key, pipelined ${opts.keysPerPipeline ?? DEFAULT_KEYS_PER_PIPELINE} keys at a time: ${perKey('<key>')}`);
    lines.push(spec.multi === 'aggregate' ? 'one row per key: items = JSON of its contents' : 'one row per element');
  }
  if (pushdown.limit !== undefined) lines.push(`stops after ${pushdown.limit} row(s)`);
  return lines;
}
