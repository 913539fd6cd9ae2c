/**
 * Writing to Redis: the commands a statement or a committed transaction turns into, applied in one
 * MULTI/EXEC so no other client sees half of them. Edits of list positions run as a small Lua script
 * inside the same MULTI: it first checks every position still holds the element the statement read,
 * so a list changed by someone else in between is refused rather than edited in the wrong place.
 */
import { ReplyError, type Redis } from 'ioredis';
import { isPgError, PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import type { RedisClient } from './pool.js';
import { mapRedisError, serverOf } from './errors.js';
import { GiveWay } from '../executor/give-way.js';
import type { RedisType } from './table-spec.js';
import { scanKeys } from './types/multi.js';

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

const LIST_EDIT = `
local n = (#ARGV - 1) / 3
for i = 0, n - 1 do
  local idx = tonumber(ARGV[2 + i * 3])
  if redis.call('LINDEX', KEYS[1], idx) ~= ARGV[3 + i * 3] then
    return redis.error_reply('REDISFDWCHANGED element ' .. idx .. ' no longer holds what the statement read')
  end
end
local removed = false
for i = 0, n - 1 do
  local idx = tonumber(ARGV[2 + i * 3])
  local act = ARGV[4 + i * 3]
  if string.sub(act, 1, 1) == 'S' then
    redis.call('LSET', KEYS[1], idx, string.sub(act, 2))
  else
    redis.call('LSET', KEYS[1], idx, ARGV[1])
    removed = true
  end
end
if removed then redis.call('LREM', KEYS[1], 0, ARGV[1]) end
return n`;

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
 * Applies `ops` in order in one MULTI/EXEC. A connection failure before EXEC means nothing applied
 * (thrown as a PgError); a command Redis refuses inside EXEC leaves the others applied (Redis has no
 * rollback), and is reported in the result.
 */
export async function applyOps(client: RedisClient, ops: readonly StagedOp[]): Promise<ApplyResult> {
  if (ops.length === 0) return { applied: 0, failures: [] };
  const expanded = await batched(await expandPatterns(client, ops));
  // One command is atomic by itself; MULTI/EXEC around it would cost Redis two more commands and the
  // proxy a pipeline (the single-row INSERT's hot path).
  if (expanded.length === 1) return applyOne(client, expanded);
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
  try {
    await conn.watch(marker);
    if ((await conn.exists(marker)) === 1) {
      await conn.unwatch();
      return { kind: 'already' };
    }
    await conn.multi({ pipeline: false });
    const giveWay = new GiveWay();
    const queued: Promise<unknown>[] = [];
    for (const { op } of expanded) {
      queued.push(conn.call(...commandOf(op)));
      const p = giveWay.maybe();
      if (p) await p;
    }
    queued.push(conn.set(marker, '1', 'EX', markerTtlS));
    // A command refused while queueing makes EXEC fail as a whole (EXECABORT): nothing applied.
    await Promise.all(queued);
    const replies = (await conn.exec()) as [Error | null, unknown][] | null;
    if (!replies) return { kind: 'already' };
    return { kind: 'applied', result: resultOf(replies.slice(0, -1), expanded) };
  } catch (e) {
    throw expanded.length ? execError(e, expanded, conn) : mapRedisError(e, { key: marker, table, server: serverOf(conn) });
  }
}

/** Commands that take many members at once; consecutive ones on the same key are sent as one. */
const VARIADIC = new Set(['hset', 'hdel', 'rpush', 'sadd', 'srem', 'zadd', 'zrem']);
const MAX_BATCH = 1000;

/**
 * Merges runs of the same variadic command on the same key (HSET k f1 v1 f2 v2 ...), as a client
 * would write them by hand: far fewer commands for Redis to parse, same effect in the same order.
 */
async function batched(ops: StagedOp[]): Promise<QueuedOp[]> {
  const giveWay = new GiveWay();
  const out: QueuedOp[] = [];
  let run: { kind: RedisOp['op']; key: string; nx: boolean; items: RedisOp[]; table: string } | undefined;
  const flush = (): void => {
    if (!run) return;
    out.push(run.items.length === 1 ? { op: run.items[0]!, table: run.table } : { op: { op: 'many', key: run.key, of: run.kind, nx: run.nx, items: run.items }, table: run.table });
    run = undefined;
  };
  for (let i = 0; i < ops.length; i++) {
    const s = ops[i]!;
    if ((i & 1023) === 1023) {
      const p = giveWay.maybe();
      if (p) await p;
    }
    const o = s.op;
    const nx = 'nx' in o && o.nx === true;
    // HSETNX takes one field; ZADD NX many, but not mixed with plain ZADDs.
    if (!VARIADIC.has(o.op) || !('key' in o) || (nx && o.op === 'hset')) {
      flush();
      out.push(s);
      continue;
    }
    if (run && (run.kind !== o.op || run.key !== o.key || run.nx !== nx || run.items.length >= MAX_BATCH)) flush();
    run ??= { kind: o.op, key: o.key, nx, items: [], table: s.table };
    run.items.push(o);
  }
  flush();
  return out;
}

/** The Redis command (name and arguments) for a queued op. */
function commandOf(o: Queued): [string, ...string[]] {
  switch (o.op) {
    case 'many': {
      const args: string[] = o.nx ? [o.key, 'NX'] : [o.key];
      for (const it of o.items) {
        if (it.op === 'hset') args.push(it.field, it.value);
        else if (it.op === 'hdel') args.push(it.field);
        else if (it.op === 'rpush') args.push(it.value);
        else if (it.op === 'sadd' || it.op === 'srem' || it.op === 'zrem') args.push(it.member);
        else if (it.op === 'zadd') args.push(it.score, it.member);
      }
      return [o.of, ...args];
    }
    case 'hset':
      return o.nx ? ['hsetnx', o.key, o.field, o.value] : ['hset', o.key, o.field, o.value];
    case 'hdel':
      return ['hdel', o.key, o.field];
    case 'rpush':
      return ['rpush', o.key, o.value];
    case 'ledit': {
      const args: string[] = [tombstone()];
      for (const e of o.edits) args.push(String(e.index), e.expected, e.value === null ? 'D' : `S${e.value}`);
      return ['eval', LIST_EDIT, '1', o.key, ...args];
    }
    case 'sadd':
      return ['sadd', o.key, o.member];
    case 'srem':
      return ['srem', o.key, o.member];
    case 'zadd':
      return o.nx ? ['zadd', o.key, 'NX', o.score, o.member] : ['zadd', o.key, o.score, o.member];
    case 'zrem':
      return ['zrem', o.key, o.member];
    case 'xadd':
      return ['xadd', o.key, o.id, ...o.pairs];
    case 'xdel':
      return ['xdel', o.key, o.id];
    case 'set':
      return o.nx ? ['set', o.key, o.value, 'NX'] : ['set', o.key, o.value];
    case 'del':
      return ['del', o.key];
    case 'delPattern':
      throw new Error('delPattern is expanded before MULTI');
    case 'xcancel':
      throw new Error('xcancel is resolved before MULTI');
  }
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
