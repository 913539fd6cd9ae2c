/**
 * Writing to Redis: the commands a statement or a committed transaction turns into, applied in one
 * MULTI/EXEC so no other client sees half of them. Edits of list positions run as a small Lua script
 * inside the same MULTI: it first checks every position still holds the element the statement read,
 * so a list changed by someone else in between is refused rather than edited in the wrong place.
 */
import { ReplyError, type Cluster, type Redis } from 'ioredis';
import { isPgError, PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import type { RedisClient } from './pool.js';
import { mapRedisError, serverOf } from './errors.js';
import { GiveWay, type CancelSignal } from '../executor/give-way.js';
import { abortable, throwIfCanceled } from '../session/cancel.js';
import { isCluster, lease, release } from './exclusive.js';
import type { RedisType } from './table-spec.js';
import { scanKeys } from './types/multi.js';
import { slotOf } from './slots.js';

/** One list position a statement edits: set to `value`, or removed when `value` is null. */
export interface ListEdit {
  index: number;
  expected: string;
  value: string | null;
}

export type RedisOp =
  /** `nx`: only if the field/member/key doesn't exist yet (INSERT ... ON CONFLICT DO NOTHING). */
  | { op: 'hset'; key: string; field: string; value: string; nx?: boolean }
  | { op: 'hdel'; key: string; field: string }
  | { op: 'rpush'; key: string; value: string }
  | { op: 'ledit'; key: string; edits: ListEdit[] }
  | { op: 'sadd'; key: string; member: string }
  | { op: 'srem'; key: string; member: string }
  | { op: 'zadd'; key: string; member: string; score: string; nx?: boolean }
  | { op: 'zrem'; key: string; member: string }
  | XaddOp
  /** `id`: an entry Redis numbered (read from Redis, or added with an explicit id). */
  | { op: 'xdel'; key: string; id: string }
  /**
   * Deletes an entry this transaction added and Redis has not numbered yet: `cancels` is that staged
   * XADD itself, the same object the read-your-writes model shows the entry as (types/stream.ts). Both
   * the XADD and this op are dropped at COMMIT, so Redis never sees either.
   */
  | { op: 'xcancel'; key: string; cancels: XaddOp }
  | { op: 'set'; key: string; value: string; nx?: boolean }
  | { op: 'del'; key: string }
  /** Every key matching a glob whose type is `type` (TRUNCATE of a multi-key table). */
  | { op: 'delPattern'; pattern: string; type: RedisType };

/** `id`: `*` or `<ms>-*` when Redis picks it at COMMIT (types/stream.ts), else the entry's own id. */
export interface XaddOp {
  op: 'xadd';
  key: string;
  id: string;
  pairs: string[];
}

/** Where a batch of ops goes, and the table to name in messages. */
export interface OpTarget {
  table: string;
}

export interface StagedOp {
  op: RedisOp;
  table: string;
}

/**
 * ARGV: the tombstone, then the edits as JSON arrays of [index, expected, action] triples, EDITS_PER_ARG
 * to an argument (a 100,000-position edit as 300,000 arguments cost ~90 ms of one command's encoding and
 * overflowed the stack of call(...args); as 100 JSON texts it is built in slices).
 */
const LIST_EDIT = `
local parts = {}
for a = 2, #ARGV do parts[a - 1] = cjson.decode(ARGV[a]) end
for _, p in ipairs(parts) do
  for i = 1, #p, 3 do
    if redis.call('LINDEX', KEYS[1], p[i]) ~= p[i + 1] then
      return redis.error_reply('REDISFDWCHANGED element ' .. p[i] .. ' no longer holds what the statement read')
    end
  end
end
local removed = false
local n = 0
for _, p in ipairs(parts) do
  for i = 1, #p, 3 do
    local act = p[i + 2]
    if string.sub(act, 1, 1) == 'S' then
      redis.call('LSET', KEYS[1], p[i], string.sub(act, 2))
    else
      redis.call('LSET', KEYS[1], p[i], ARGV[1])
      removed = true
    end
    n = n + 1
  end
end
if removed then redis.call('LREM', KEYS[1], 0, ARGV[1]) end
return n`;

const EDITS_PER_ARG = 1000;

/**
 * HSETNX of many fields of KEYS[1] (ARGV: field, value, ...), in order; returns how many it set.
 * HSETNX takes one field: 150,000 of them in a MULTI came back as an EXEC reply of 150,000 integers
 * whose decoding held the event loop for 30-40 ms. A refusal (WRONGTYPE) is Redis's own reply, as
 * HSETNX's would be; it comes at the first field, before anything is set.
 */
const HSETNX_MANY = `
local n = 0
for i = 1, #ARGV, 2 do
  local r = redis.pcall('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
  if type(r) == 'table' and r.err then return r end
  n = n + r
end
return n`;

/** A list edit's edits, as LIST_EDIT takes them: one JSON text per EDITS_PER_ARG. */
function* editArgs(edits: readonly ListEdit[]): Generator<string> {
  for (let at = 0; at < edits.length; at += EDITS_PER_ARG) {
    const flat: (number | string)[] = [];
    for (let i = at; i < Math.min(at + EDITS_PER_ARG, edits.length); i++) {
      const e = edits[i]!;
      flat.push(e.index, e.expected, e.value === null ? 'D' : `S${e.value}`);
    }
    yield JSON.stringify(flat);
  }
}

/** A value no real element can equal: it marks positions to remove, then LREM takes them all out. */
const tombstone = (): string => `\u0000redis-fdw-proxy-removed:${process.pid}:${Date.now()}:${Math.random()}`;

const commands = (c: RedisClient): Redis => c as unknown as Redis;

/** What goes into the MULTI: one op, or a run of the same variadic op on one key sent as one command. */
type Queued = RedisOp | { op: 'many'; key: string; of: RedisOp['op']; nx: boolean; items: RedisOp[] };
interface QueuedOp {
  op: Queued;
  table: string;
}

/** The outcome of applying ops: which ones failed (by position), if any. */
export interface ApplyResult {
  applied: number;
  failures: { index: number; op: QueuedOp; error: PgError }[];
}

/**
 * Above this many members, fields and positions, a statement's MULTI is queued in slices on a
 * connection of its own (applySliced); below it, built and sent at once on the shared client, which
 * costs no more than a few milliseconds of the event loop and one round trip (a single-row INSERT's hot
 * path). Measured here: 100,000 HSET fields sent at once held the loop for ~30-60 ms of CPU, 200,000
 * single ZREM/ZADD commands (a renaming zset UPDATE) for ~0.7-1.7 s.
 */
const AT_ONCE_MAX = 4096;

export interface ApplyOptions {
  /**
   * The statement's cancel. It takes the statement back whole until EXEC is sent (57014, nothing
   * applied); once EXEC is sent Redis applies all of it, and the statement waits for that.
   */
  signal?: CancelSignal;
}

/**
 * Applies `ops` in order in one MULTI/EXEC. A connection failure before EXEC means nothing applied
 * (thrown as a PgError); a command Redis refuses inside EXEC leaves the others applied (Redis has no
 * rollback), and is reported in the result.
 */
export async function applyOps(client: RedisClient, ops: readonly StagedOp[], opts: ApplyOptions = {}): Promise<ApplyResult> {
  if (ops.length === 0) return { applied: 0, failures: [] };
  const expanded = await batched(await expandPatterns(client, ops), opts.signal);
  let weight = 0;
  for (const { op } of expanded) weight += weightOf(op);
  if (weight > AT_ONCE_MAX) {
    if (!isCluster(client)) return applySliced(client, expanded, opts.signal);
    // On a cluster, on the master that serves the statement's one slot; one that spans slots is the
    // cluster client's to refuse (CROSSSLOT), as it always was.
    const master = masterOfOneSlot(client as Cluster, expanded);
    if (master) return applySliced(master, expanded, opts.signal);
  }
  // One command is atomic by itself; MULTI/EXEC around it would cost Redis two more commands and the
  // proxy a pipeline (the single-row INSERT's hot path).
  if (expanded.length === 1) return applyOne(client, expanded);
  // No cancel check here: the caller made one just before, and asking for the signal makes it (a cost
  // the fast write's hot path avoids); the loops above check it after each turn they give.
  const multi = commands(client).multi();
  for (const { op } of expanded) multi.call(...commandOf(op));
  let replies: [Error | null, unknown][] | null;
  try {
    replies = await multi.exec();
  } catch (e) {
    throw execError(e, expanded, client);
  }
  if (!replies) throw new PgError(SqlState.SerializationFailure, 'Redis aborted the transaction');
  return resultOf(replies, expanded);
}

/**
 * A big statement's MULTI/EXEC, on a connection nobody else uses (other sessions' commands would land
 * inside the transaction): MULTI, the commands in slices, giving way between them, then EXEC. A cancel
 * before EXEC drops the connection, and Redis discards the transaction: nothing applied.
 */
async function applySliced(client: RedisClient, expanded: QueuedOp[], signal: CancelSignal): Promise<ApplyResult> {
  // Waits before EXEC give up at a cancel: nothing is applied yet (a connection that comes late goes).
  const leasing = lease(client);
  let conn: Redis;
  try {
    conn = await abortable(leasing, signalOf(signal));
  } catch (e) {
    leasing.then((c) => release(client, c, false), () => {});
    if (isPgError(e)) throw e;
    throw mapRedisError(e, { key: keyOf(expanded[0]!.op), table: expanded[0]!.table, server: serverOf(client) });
  }
  let clean = false;
  let execSent = false;
  let refused: () => unknown = () => undefined;
  try {
    await abortable(conn.multi({ pipeline: false }), signalOf(signal));
    refused = await queueSliced(conn, expanded, new GiveWay(signal));
    // The last point where a cancel takes the statement back whole.
    throwIfCanceled(signalOf(signal));
    execSent = true;
    const replies = (await conn.exec()) as [Error | null, unknown][] | null;
    clean = true;
    if (!replies) throw new PgError(SqlState.SerializationFailure, 'Redis aborted the transaction');
    return resultOf(replies, expanded);
  } catch (e) {
    if (isPgError(e)) throw e;
    // A command refused while queueing made EXEC fail whole (EXECABORT): nothing applied, for that reason.
    const why = refused() ?? e;
    // Before EXEC the transaction dies with the connection: nothing applied, whatever the failure.
    throw execSent && why === e ? execError(e, expanded, conn) : mapRedisError(why, { key: keyOf(expanded[0]!.op), table: expanded[0]!.table, server: serverOf(client) });
  } finally {
    release(client, conn, clean);
  }
}

/**
 * Sends the commands into the MULTI open on `conn`, giving way between slices. Their QUEUED replies
 * aren't awaited together (Promise.all over 200,000 of them held the loop for ~150 ms): the first
 * refusal is kept, for the caller to name when EXEC fails with EXECABORT.
 */
async function queueSliced(conn: Redis, expanded: QueuedOp[], giveWay: GiveWay): Promise<() => unknown> {
  let first: unknown;
  // Only Redis's refusals: a lost connection fails EXEC too, and EXEC's failure says what is known then.
  const onRefused = (e: unknown): void => {
    if (e instanceof ReplyError) first ??= e;
  };
  for (const { op } of expanded) {
    conn.call(...(op.op === 'ledit' ? await leditSliced(op, giveWay) : commandOf(op))).catch(onRefused);
    const p = giveWay.maybe();
    if (p) await p;
  }
  return () => first;
}

const signalOf = (s: CancelSignal): AbortSignal | undefined => (typeof s === 'function' ? s() : s);
const keyOf = (o: Queued): string => (o.op === 'delPattern' ? '' : o.key);

/** The cluster node serving the one hash slot every op's key is in, or undefined (several slots, a pattern, no map). */
function masterOfOneSlot(cluster: Cluster, ops: readonly QueuedOp[]): Redis | undefined {
  let slot = -1;
  let lastKey: string | undefined;
  for (const { op } of ops) {
    if (op.op === 'delPattern') return undefined;
    if (op.key === lastKey) continue;
    lastKey = op.key;
    const s = slotOf(op.key);
    if (slot >= 0 && s !== slot) return undefined;
    slot = s;
  }
  const address = cluster.slots[slot]?.[0];
  return address === undefined ? undefined : cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === address);
}

async function applyOne(client: RedisClient, expanded: QueuedOp[]): Promise<ApplyResult> {
  try {
    await commands(client).call(...commandOf(expanded[0]!.op));
    return { applied: 1, failures: [] };
  } catch (e) {
    // Redis refused the command (as it would inside EXEC); anything else is the connection's failure.
    if (e instanceof ReplyError) return resultOf([[e as Error, null]], expanded);
    throw execError(e, expanded, client);
  }
}

function execError(e: unknown, expanded: QueuedOp[], client: RedisClient): PgError {
  const first = expanded[0]!;
  const mapped = mapRedisError(e, { key: first.op.op === 'delPattern' ? '' : first.op.key, table: first.table, server: serverOf(client) });
  if (!sentBeforeFailure(e)) return mapped;
  return new PgError(SqlState.TransactionResolutionUnknown, `the outcome of ${expanded.length === 1 ? 'this Redis write' : `these ${expanded.length} Redis commands`} is unknown: ${mapped.message}`, {
    detail: 'The commands reached the connection before it failed, and Redis may still run them (as one MULTI/EXEC: all or none).',
    hint: 'Check the data before you retry.',
  });
}

/**
 * Whether a failed exec may have reached Redis: a timeout or a connection lost with the commands in
 * flight (Redis may still run what it read). A refused connection or an unwritable stream sent nothing.
 */
export function sentBeforeFailure(e: unknown): boolean {
  if (!(e instanceof Error) || isPgError(e)) return false;
  const code = (e as { code?: unknown }).code;
  if (code === 'ECONNREFUSED' || /^Stream isn't writeable|connect E/.test(e.message)) return false;
  return /timed? ?out|timeout|Connection is closed|ECONNRESET|EPIPE|MaxRetriesPerRequest/i.test(`${e.name} ${e.message} ${String(code ?? '')}`);
}

function resultOf(replies: [Error | null, unknown][], expanded: QueuedOp[]): ApplyResult {
  const failures: ApplyResult['failures'] = [];
  replies.forEach(([err], i) => {
    if (!err) return;
    const s = expanded[i]!;
    failures.push({ index: i, op: s, error: opError(err, s) });
  });
  return { applied: replies.length - failures.length, failures };
}

/** The outcome of a guarded apply: done (with its result), or done before by someone else (the marker was there). */
export type GuardedResult = { kind: 'applied'; result: ApplyResult } | { kind: 'already' };

/**
 * Applies `ops` at most once, on a connection nobody else uses: WATCH the transaction's `marker`, stop
 * if it exists, else MULTI, the commands, SET marker, EXEC. Two appliers of the same transaction (the
 * committing session and an outbox replay, or two replays) can't both succeed: whichever EXECs second
 * either saw the marker or had its EXEC aborted by the first one's SET. Commands are sent in slices,
 * giving way between them, so a big transaction doesn't stall other sessions.
 */
export async function applyGuarded(conn: Redis, ops: readonly StagedOp[], marker: string, markerTtlS: number, table: string): Promise<GuardedResult> {
  const expanded = await batched(await expandPatterns(conn, ops));
  let refused: () => unknown = () => undefined;
  try {
    await conn.watch(marker);
    if ((await conn.exists(marker)) === 1) {
      await conn.unwatch();
      return { kind: 'already' };
    }
    await conn.multi({ pipeline: false });
    refused = await queueSliced(conn, expanded, new GiveWay());
    conn.set(marker, '1', 'EX', markerTtlS).catch(() => {});
    const replies = (await conn.exec()) as [Error | null, unknown][] | null;
    if (!replies) return { kind: 'already' };
    return { kind: 'applied', result: resultOf(replies.slice(0, -1), expanded) };
  } catch (e) {
    // A command refused while queueing makes EXEC fail as a whole (EXECABORT): nothing applied, for that reason.
    const why = refused() ?? e;
    throw expanded.length ? execError(why, expanded, conn) : mapRedisError(why, { key: marker, table, server: serverOf(conn) });
  }
}

/**
 * Commands that take many members at once, by the lane they take in a window of one key (see batched):
 * a type's removal and its addition share a family. RPUSH has no removal.
 */
const VARIADIC: Partial<Record<RedisOp['op'], { family: string; lane: 'remove' | 'add' }>> = {
  hdel: { family: 'hash', lane: 'remove' },
  hset: { family: 'hash', lane: 'add' },
  srem: { family: 'set', lane: 'remove' },
  sadd: { family: 'set', lane: 'add' },
  zrem: { family: 'zset', lane: 'remove' },
  zadd: { family: 'zset', lane: 'add' },
  rpush: { family: 'list', lane: 'add' },
};
const MAX_BATCH = 1000;

/** The field or member a variadic op names ('' for RPUSH, which nothing removes by name). */
const memberOf = (o: RedisOp): string => (o.op === 'hset' || o.op === 'hdel' ? o.field : 'member' in o ? o.member : '');

/**
 * Merges the variadic commands on one key into few, as a client would write them by hand (HSET k f1 v1
 * f2 v2 ...): far fewer commands for Redis to parse and for the proxy to encode, with the same effect.
 * A window of one key holds a removal lane and an addition lane, sent in that order: an UPDATE that
 * renames members (ZREM old, ZADD new, row after row) becomes one ZREM and one ZADD per 1,000 rows
 * rather than 200,000 commands for 100,000 rows. Removals may go first because members other than the
 * one an op names are untouched by it; a removal of a member the window has added ends the window,
 * so no member's own ops ever change order.
 */
async function batched(ops: StagedOp[], signal?: CancelSignal): Promise<QueuedOp[]> {
  const giveWay = new GiveWay(signal);
  const out: QueuedOp[] = [];
  let w: { key: string; family: string; table: string; removes: RedisOp[]; adds: RedisOp[]; nx: boolean; added: Set<string> } | undefined;
  const emit = (items: RedisOp[], key: string, nx: boolean, table: string): void => {
    if (items.length === 1) out.push({ op: items[0]!, table });
    else if (items.length > 1) out.push({ op: { op: 'many', key, of: items[0]!.op, nx, items }, table });
  };
  const flush = (): void => {
    if (!w) return;
    emit(w.removes, w.key, false, w.table);
    emit(w.adds, w.key, w.nx, w.table);
    w = undefined;
  };
  for (let i = 0; i < ops.length; i++) {
    const s = ops[i]!;
    if ((i & 1023) === 1023) {
      const p = giveWay.maybe();
      if (p) await p;
    }
    const o = s.op;
    const nx = 'nx' in o && o.nx === true;
    const v = VARIADIC[o.op];
    // ZADD NX takes many members, and HSETNX_MANY many fields, but neither mixed with plain adds.
    if (!v || !('key' in o)) {
      flush();
      out.push(s);
      continue;
    }
    if (w && (w.key !== o.key || w.family !== v.family)) flush();
    const member = memberOf(o);
    if (w && v.lane === 'remove' && (w.added.has(member) || w.removes.length >= MAX_BATCH)) flush();
    if (w && v.lane === 'add' && ((w.adds.length > 0 && w.nx !== nx) || w.adds.length >= MAX_BATCH)) flush();
    w ??= { key: o.key, family: v.family, table: s.table, removes: [], adds: [], nx, added: new Set() };
    if (v.lane === 'remove') w.removes.push(o);
    else {
      if (w.adds.length === 0) w.nx = nx;
      w.adds.push(o);
      w.added.add(member);
    }
  }
  flush();
  return out;
}

/**
 * The Redis command for a queued op: its name and its arguments as one array, which ioredis takes as it
 * is. Spread into call(), the arguments of a 100,000-position list edit overflowed the stack.
 */
function commandOf(o: Queued): [string, string[]] {
  switch (o.op) {
    case 'many': {
      if (o.of === 'hset' && o.nx) {
        const args = [HSETNX_MANY, '1', o.key];
        for (const it of o.items) if (it.op === 'hset') args.push(it.field, it.value);
        return ['eval', args];
      }
      const args: string[] = o.nx ? [o.key, 'NX'] : [o.key];
      for (const it of o.items) {
        if (it.op === 'hset') args.push(it.field, it.value);
        else if (it.op === 'hdel') args.push(it.field);
        else if (it.op === 'rpush') args.push(it.value);
        else if (it.op === 'sadd' || it.op === 'srem' || it.op === 'zrem') args.push(it.member);
        else if (it.op === 'zadd') args.push(it.score, it.member);
      }
      return [o.of, args];
    }
    case 'hset':
      return o.nx ? ['hsetnx', [o.key, o.field, o.value]] : ['hset', [o.key, o.field, o.value]];
    case 'hdel':
      return ['hdel', [o.key, o.field]];
    case 'rpush':
      return ['rpush', [o.key, o.value]];
    case 'ledit':
      return ['eval', [LIST_EDIT, '1', o.key, tombstone(), ...editArgs(o.edits)]];
    case 'sadd':
      return ['sadd', [o.key, o.member]];
    case 'srem':
      return ['srem', [o.key, o.member]];
    case 'zadd':
      return o.nx ? ['zadd', [o.key, 'NX', o.score, o.member]] : ['zadd', [o.key, o.score, o.member]];
    case 'zrem':
      return ['zrem', [o.key, o.member]];
    case 'xadd':
      return ['xadd', [o.key, o.id, ...o.pairs]];
    case 'xdel':
      return ['xdel', [o.key, o.id]];
    case 'set':
      return o.nx ? ['set', [o.key, o.value, 'NX']] : ['set', [o.key, o.value]];
    case 'del':
      return ['del', [o.key]];
    case 'delPattern':
      throw new Error('delPattern is expanded before MULTI');
    case 'xcancel':
      throw new Error('xcancel is resolved before MULTI');
  }
}

/** commandOf of a list edit, giving way while a big one's arguments are built. */
async function leditSliced(o: Extract<RedisOp, { op: 'ledit' }>, giveWay: GiveWay): Promise<[string, (string | Buffer)[]]> {
  const args: (string | Buffer)[] = [LIST_EDIT, '1', o.key, tombstone()];
  for (const a of editArgs(o.edits)) {
    // Encoded here, a slice at a time: as strings, the socket's write encoded all ~4 MB of a
    // 100,000-position edit in one go.
    args.push(Buffer.from(a, 'utf8'));
    const p = giveWay.maybe();
    if (p) await p;
  }
  return ['eval', args];
}

/** How many members, fields or positions a queued op carries: what its encoding costs. */
function weightOf(o: Queued): number {
  if (o.op === 'many') return o.items.length;
  return o.op === 'ledit' ? o.edits.length : 1;
}

function opError(err: Error, s: QueuedOp): PgError {
  const key = 'key' in s.op ? s.op.key : '';
  if (err.message.includes('REDISFDWCHANGED')) {
    return new PgError(SqlState.SerializationFailure, `list "${key}" of foreign table ${s.table} changed since the statement read it: ${err.message.replace(/^.*REDISFDWCHANGED /, '')}`, {
      hint: 'Run the statement again.',
    });
  }
  return mapRedisError(err, { key, table: s.table });
}

/** Resolves delPattern ops to the keys they match now (SCAN can't run inside MULTI). */
export async function expandPatterns(client: RedisClient, ops: readonly StagedOp[]): Promise<StagedOp[]> {
  if (!ops.some((o) => o.op.op === 'delPattern')) return [...ops];
  const out: StagedOp[] = [];
  for (const s of ops) {
    if (s.op.op !== 'delPattern') {
      out.push(s);
      continue;
    }
    for (const key of await scanKeys(client, s.op.pattern, s.op.type)) out.push({ op: { op: 'del', key }, table: s.table });
  }
  return out;
}

/** What a failed apply did and didn't do, in words for a WARNING or an error. */
export function describeFailures(r: ApplyResult, _ops: number): string {
  const first = r.failures[0]!;
  const failed = r.failures.length;
  return `${failed} of ${failed + r.applied} Redis commands failed and ${r.applied} were applied (Redis has no rollback); first failure: ${first.error.message}`;
}
