/**
 * Redis writes made inside a transaction block wait here until upstream's COMMIT succeeds, then go to
 * Redis in one MULTI/EXEC per Redis server. ROLLBACK drops them; ROLLBACK TO SAVEPOINT drops those
 * made after the savepoint. Reads in the same transaction see them (PendingWrites).
 */
import { commitApplyFailuresTotal } from '../metrics/metrics.js';
import { connKey } from '../redis/connection.js';
import { touches } from '../redis/overlay.js';
import { applyOps, describeFailures, type RedisOp, type StagedOp } from '../redis/write.js';
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

  /** Takes the writes for applying at COMMIT; the block is then empty. */
  take(): Staged[] {
    const s = this.staged;
    this.clear();
    return s;
  }
}

/**
 * Applies a committed transaction's writes, one MULTI/EXEC per Redis server. Returns warnings (in
 * words for the client) for whatever did not apply; upstream has committed, so these cannot be errors.
 */
export async function applyCommitted(redis: RedisAccess, staged: readonly Staged[]): Promise<string[]> {
  const byConn = new Map<string, Staged[]>();
  for (const s of staged) byConn.set(s.connKey, [...(byConn.get(s.connKey) ?? []), s]);
  const warnings: string[] = [];
  for (const ops of byConn.values()) {
    try {
      const client = await redis.client(ops[0]!.conn);
      const r = await applyOps(client, ops);
      if (r.failures.length) warnings.push(`the transaction committed, but ${describeFailures(r, ops.length)}`);
    } catch (e) {
      const msg = e instanceof PgError ? e.message : String(e);
      warnings.push(`the transaction committed, but none of its ${ops.length} Redis writes to ${ops[0]!.table}${byConn.size > 1 ? ' and other tables on that server' : ''} were applied: ${msg}`);
    }
  }
  if (warnings.length) commitApplyFailuresTotal.inc();
  return warnings;
}

/** Applies a finished implicit transaction's writes; a failure is an error (upstream hasn't committed yet). */
export async function applyStaged(redis: RedisAccess, staged: readonly Staged[]): Promise<void> {
  const byConn = new Map<string, Staged[]>();
  for (const s of staged) byConn.set(s.connKey, [...(byConn.get(s.connKey) ?? []), s]);
  for (const ops of byConn.values()) {
    const client = await redis.client(ops[0]!.conn);
    const r = await applyOps(client, ops);
    if (r.failures.length) throw failure(r, ops.length);
  }
}

function failure(r: import('../redis/write.js').ApplyResult, total: number): PgError {
  const first = r.failures[0]!.error;
  if (r.applied === 0) return first;
  return new PgError(first.code === SqlState.SerializationFailure ? first.code : SqlState.FdwError, describeFailures(r, total), { detail: first.message });
}

/** Applies one statement's writes now (outside a transaction block); any failure is the statement's error. */
export async function applyNow(redis: RedisAccess, table: ForeignTable, ops: readonly RedisOp[]): Promise<void> {
  if (ops.length === 0) return;
  const client = await redis.client(table.conn);
  const r = await applyOps(
    client,
    ops.map((op) => ({ op, table: table.display })),
  );
  if (r.failures.length) throw failure(r, ops.length);
}
