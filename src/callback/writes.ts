/**
 * Writes through the callback: postgres_fdw's remote INSERT (`INSERT INTO s.t(cols) VALUES ($1, ...)
 * [, (...)] [RETURNING cols]`, values already evaluated by upstream) becomes Redis commands, staged in
 * the callback's remote transaction and applied in one MULTI/EXEC per Redis server when postgres_fdw
 * commits it, which it does just before upstream's own commit. A failure then fails that COMMIT, so
 * upstream's transaction aborts with it; ABORT TRANSACTION drops them.
 */
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { inner, nodeKind, type Node } from '../sql/analyze.js';
import { returningSet } from './modify.js';
import { connKey } from '../redis/connection.js';
import { StatementOps, type SnapshotRow } from '../redis/row-ops.js';
import type { RedisOp } from '../redis/write.js';
import type { ForeignTable, PendingWrites, RedisAccess } from '../executor/select.js';
import { applyStaged } from '../executor/transaction.js';
import type { CallbackCatalog } from './catalog.js';
import type { Bound, RowSet } from './evaluate.js';

interface Staged {
  op: RedisOp;
  table: string;
  conn: ForeignTable['conn'];
  connKey: string;
}

export class CallbackTx implements PendingWrites {
  private staged: Staged[] = [];
  private savepoints: { name: string; at: number }[] = [];
  /** The rows behind the synthetic ctids of this transaction's `FOR UPDATE` scans, per table. */
  readonly snapshots = new Map<string, SnapshotRow[]>();

  constructor(
    private readonly redis: RedisAccess,
    private readonly maxValueBytes: number,
  ) {}

  on(table: ForeignTable): RedisOp[] {
    return this.staged.filter((s) => s.table === table.display).map((s) => s.op);
  }

  savepoint(name: string): void {
    this.savepoints.push({ name, at: this.staged.length });
  }

  rollbackTo(name: string): void {
    const i = this.savepoints.map((s) => s.name).lastIndexOf(name);
    if (i < 0) throw new PgError('3B001', `savepoint "${name}" does not exist`);
    this.staged.length = this.savepoints[i]!.at;
    this.savepoints.length = i + 1;
  }

  release(name: string): void {
    const i = this.savepoints.map((s) => s.name).lastIndexOf(name);
    if (i < 0) throw new PgError('3B001', `savepoint "${name}" does not exist`);
    this.savepoints.length = i;
  }

  async commit(): Promise<void> {
    const staged = this.staged;
    this.reset();
    if (staged.length) await applyStaged(this.redis, staged);
  }

  reset(): void {
    this.staged = [];
    this.savepoints = [];
    this.snapshots.clear();
  }

  /** Stages the rows; applied at once when `autocommit` (no remote transaction open). */
  async insert(catalog: CallbackCatalog, n: Node, bound: Bound, autocommit: boolean): Promise<{ tag: string; set?: RowSet }> {
    const rel = inner({ RangeVar: n.relation });
    const t = await catalog.table(rel.schemaname === undefined ? 'public' : String(rel.schemaname), String(rel.relname));
    if (n.onConflictClause) throw new PgError(SqlState.FeatureNotSupported, 'ON CONFLICT is not supported on Redis foreign tables where PostgreSQL evaluates the statement itself', { hint: 'Send the upsert through the proxy as a statement of its own.' });
    const cols = t.spec.columns;
    const names = ((n.cols as Node[] | undefined) ?? []).map((c) => String(inner(c).name));
    const positions = names.map((name) => {
      const i = cols.findIndex((c) => c.name === name);
      if (i < 0) throw new PgError(SqlState.UndefinedColumn, `column "${name}" of relation "${t.resolved.name}" does not exist`);
      return i;
    });
    const lists = ((inner(n.selectStmt).valuesLists as Node[] | undefined) ?? []).map((l) => (inner(l).items as Node[]) ?? []);
    if (lists.length === 0) throw new PgError(SqlState.FeatureNotSupported, 'only INSERT ... VALUES reaches a callback session');
    const ops = new StatementOps({ spec: t.spec, relname: t.resolved.name, maxValueBytes: this.maxValueBytes });
    const rows: (string | null)[][] = [];
    for (const items of lists) {
      const row = new Array<string | null>(cols.length).fill(null);
      items.forEach((item, k) => (row[positions[k]!] = valueOf(item, bound)));
      ops.insert(row);
      rows.push(row);
    }
    await this.stage(t, ops.finish(), autocommit);
    return { tag: `INSERT 0 ${rows.length}`, ...returningSet({ InsertStmt: n }, t, rows) };
  }

  /** Stages one statement's commands, or applies them now outside a remote transaction. */
  async stage(t: ForeignTable, ops: RedisOp[], autocommit: boolean): Promise<void> {
    const staged = ops.map((op): Staged => ({ op, table: t.display, conn: t.conn, connKey: connKey(t.conn) }));
    if (autocommit) await applyStaged(this.redis, staged);
    // A loop, not push(...staged): spreading past ~125,000 arguments overflows the stack.
    else for (const s of staged) this.staged.push(s);
  }
}

function valueOf(item: Node, bound: Bound): string | null {
  if (nodeKind(item) === 'ParamRef') {
    const v = bound.values[Number(inner(item).number) - 1];
    return v === undefined || v === null ? null : v.toString('utf8');
  }
  if (nodeKind(item) === 'A_Const' && inner(item).isnull) return null;
  if (nodeKind(item) === 'SetToDefault') return null;
  throw new PgError(SqlState.FeatureNotSupported, 'INSERT values other than parameters on a callback session');
}
