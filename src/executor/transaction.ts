/**
 * Redis writes made inside a transaction block wait here until upstream's COMMIT succeeds, then go to
 * Redis in one MULTI/EXEC per Redis server. ROLLBACK drops them; ROLLBACK TO SAVEPOINT drops those
 * made after the savepoint. Reads in the same transaction see them (PendingWrites).
 */
import { commitApplyFailuresTotal } from '../metrics/metrics.js';
import { connKey } from '../redis/connection.js';
import { touches } from '../redis/types/multi.js';
import { randomUUID } from 'node:crypto';
import { applyOps, describeFailures, type RedisOp, type StagedOp } from '../redis/write.js';
import { applyShare, markerKey, missedWrites, notApplied, type OutboxPart } from './outbox.js';
import { GiveWay, type CancelSignal } from './give-way.js';
import type { RedisConnSpec } from '../redis/connection.js';
import type { ForeignTable, PendingWrites, RedisAccess } from './select.js';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import type { Node } from '../sql/analyze.js';

interface Staged extends StagedOp {
  conn: RedisConnSpec;
  connKey: string;
}

/** A transaction-control statement, as far as pending writes care. */
export type TxCommand =
  | { kind: 'commit'; chain: boolean }
  | { kind: 'rollback'; chain: boolean }
  | { kind: 'savepoint'; name: string }
  | { kind: 'release'; name: string }
  | { kind: 'rollbackTo'; name: string }
  | { kind: 'prepare' }
  | { kind: 'begin' };

export function txCommand(node: Node): TxCommand | undefined {
  const kind = String(node.kind);
  const chain = node.chain === true;
  const name = String(node.savepoint_name ?? '');
  switch (kind) {
    case 'TRANS_STMT_COMMIT':
      return { kind: 'commit', chain };
    case 'TRANS_STMT_ROLLBACK':
      return { kind: 'rollback', chain };
    case 'TRANS_STMT_SAVEPOINT':
      return { kind: 'savepoint', name };
    case 'TRANS_STMT_RELEASE':
      return { kind: 'release', name };
    case 'TRANS_STMT_ROLLBACK_TO':
      return { kind: 'rollbackTo', name };
    case 'TRANS_STMT_PREPARE':
      return { kind: 'prepare' };
    case 'TRANS_STMT_BEGIN':
    case 'TRANS_STMT_START':
      return { kind: 'begin' };
    default:
      return undefined;
  }
}

export class TxWrites implements PendingWrites {
  private staged: Staged[] = [];
  /** Savepoints made since the first write; one made before it rolls back to "no writes". */
  private savepoints: { name: string; mark: number }[] = [];

  /** Writes are waiting: transaction control must be watched. */
  get active(): boolean {
    return this.staged.length > 0 || this.savepoints.length > 0;
  }

  get count(): number {
    return this.staged.length;
  }

  on(table: ForeignTable): RedisOp[] {
    if (this.staged.length === 0) return [];
    const key = connKey(table.conn);
    return this.staged.filter((s) => s.connKey === key && touches(table.spec, s.op)).map((s) => s.op);
  }

  stage(table: ForeignTable, ops: readonly RedisOp[]): void {
    const key = connKey(table.conn);
    for (const op of ops) this.staged.push({ op, table: table.display, conn: table.conn, connKey: key });
  }

  /** After a transaction-control statement succeeded upstream. */
  note(cmd: TxCommand): void {
    switch (cmd.kind) {
      case 'savepoint':
        if (this.staged.length) this.savepoints.push({ name: cmd.name, mark: this.staged.length });
        return;
      case 'release': {
        const i = this.lastIndexOf(cmd.name);
        if (i >= 0) this.savepoints.length = i;
        return;
      }
      case 'rollbackTo': {
        const i = this.lastIndexOf(cmd.name);
        if (i < 0) {
          // Made before the first write: everything since is undone.
          this.clear();
          return;
        }
        this.staged.length = this.savepoints[i]!.mark;
        this.savepoints.length = i + 1;
        return;
      }
      case 'rollback':
      case 'prepare':
        this.clear();
        return;
      case 'commit':
      case 'begin':
        return;
    }
  }

  private lastIndexOf(name: string): number {
    for (let i = this.savepoints.length - 1; i >= 0; i--) if (this.savepoints[i]!.name === name) return i;
    return -1;
  }

  clear(): void {
    this.staged = [];
    this.savepoints = [];
  }

  /** The writes as they stand (for the outbox row written before COMMIT). */
  peek(): readonly Staged[] {
    return this.staged;
  }

  /** Takes the writes for applying at COMMIT; the block is then empty. */
  take(): Staged[] {
    const s = this.staged;
    this.clear();
    return s;
  }
}

/**
 * Staged writes per Redis server, each list in staging order. Linear: one push per write, giving way
 * to other sessions every few ms. A stream entry added and deleted in the transaction leaves nothing:
 * its XADD and the cancel are both dropped.
 */
async function groupByConn(staged: readonly Staged[]): Promise<Map<string, StagedOp[] & { conn?: RedisConnSpec }>> {
  const giveWay = new GiveWay();
  const cancelled = new Set<RedisOp>();
  for (const s of staged) if (s.op.op === 'xcancel') cancelled.add(s.op.cancels);
  const byConn = new Map<string, StagedOp[] & { conn?: RedisConnSpec }>();
  for (let i = 0; i < staged.length; i++) {
    const s = staged[i]!;
    if ((i & 1023) === 0) {
      const p = giveWay.maybe();
      if (p) await p;
    }
    if (s.op.op === 'xcancel' || cancelled.has(s.op)) continue;
    let list = byConn.get(s.connKey);
    if (!list) byConn.set(s.connKey, (list = Object.assign([], { conn: s.conn })));
    // The staged entry itself (a StagedOp with extra fields): no copy of a big transaction's writes.
    list.push(s);
  }
  return byConn;
}

/** A committed transaction's writes as one share per Redis server (what the outbox row holds). */
export async function sharesOf(staged: readonly Staged[]): Promise<OutboxPart[]> {
  const parts: OutboxPart[] = [];
  for (const ops of (await groupByConn(staged)).values()) parts.push({ conn: ops.conn!, ops });
  return parts;
}

/** Without the outbox, a marker only has to outlive the apply itself (it keeps a retried EXEC from applying twice). */
const LOCAL_MARKER_TTL_S = 600;

/**
 * Applies a committed transaction's writes without the outbox, each server's share once (guarded by a
 * marker, like the outbox's). Returns warnings (in words for the client) for whatever did not apply,
 * or may not have; upstream has committed, so these cannot be errors.
 */
export async function applyCommitted(redis: RedisAccess, staged: readonly Staged[]): Promise<string[]> {
  const parts = await sharesOf(staged);
  const txid = randomUUID();
  const warnings: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const out = await applyShare(redis, part, markerKey(txid, i), LOCAL_MARKER_TTL_S);
    if (out.kind === 'done') {
      if (out.warning) warnings.push(out.warning);
      continue;
    }
    const first = part.ops[0]!.table;
    const where = `${first}${part.ops.some((o) => o.table !== first) ? ' and other tables on that server' : ''}`;
    const atomic = (out.slots ?? 1) > 1 ? "each Redis Cluster hash slot's writes all or none" : 'all or none of them were';
    warnings.push(
      out.error.code === SqlState.TransactionResolutionUnknown
        ? `the transaction committed, but whether ${missedWrites(out)} to ${where} were applied is unknown (${atomic}${out.missed < out.total ? '; the rest were applied' : ''}): ${out.error.message}`
        : `the transaction committed, but ${notApplied(out, where)}: ${out.error.message}`,
    );
  }
  if (warnings.length) commitApplyFailuresTotal.inc();
  return warnings;
}

/** Applies a finished implicit transaction's writes; a failure is an error (upstream hasn't committed yet). */
export async function applyStaged(redis: RedisAccess, staged: readonly Staged[]): Promise<void> {
  const byConn = await groupByConn(staged);
  for (const ops of byConn.values()) {
    const client = await redis.client(ops.conn!);
    const r = await applyOps(client, ops);
    if (r.failures.length) throw failure(r, ops.length);
  }
}

function failure(r: import('../redis/write.js').ApplyResult, total: number): PgError {
  const first = r.failures[0]!.error;
  if (r.applied === 0) return first;
  return new PgError(first.code === SqlState.SerializationFailure ? first.code : SqlState.FdwError, describeFailures(r, total), { detail: first.message });
}

/**
 * Applies one statement's writes now (outside a transaction block); any failure is the statement's error.
 * `signal`: the statement's cancel, which takes it back whole until EXEC is sent (applyOps).
 */
export async function applyNow(redis: RedisAccess, table: ForeignTable, ops: readonly RedisOp[], signal?: CancelSignal): Promise<void> {
  // Outside a transaction nothing is unnumbered, so a cancel has nothing to cancel.
  if (ops.some((o) => o.op === 'xcancel')) ops = ops.filter((o) => o.op !== 'xcancel');
  if (ops.length === 0) return;
  const client = await redis.client(table.conn);
  const giveWay = new GiveWay(signal);
  const staged: StagedOp[] = [];
  for (let i = 0; i < ops.length; i++) {
    staged.push({ op: ops[i]!, table: table.display });
    const p = giveWay.at(i);
    if (p) await p;
  }
  const r = await applyOps(client, staged, { signal });
  if (r.failures.length) throw failure(r, ops.length);
}
