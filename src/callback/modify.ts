/**
 * postgres_fdw's direct UPDATE and DELETE (`UPDATE s.t SET c = expr, ... [WHERE cond] [RETURNING cols]`,
 * `DELETE FROM s.t [WHERE cond] [RETURNING cols]`, sent when Postgres can ship the whole statement).
 * As on the proxy's own write path (DESIGN §3), upstream evaluates which rows match and their new
 * values, over the table's rows passed as parameters and numbered; the proxy turns the result into
 * Redis commands. The statement's pieces are cut from postgres_fdw's text at top-level keywords, and
 * only ever put back into a SELECT over a derived table, so this never names a foreign table.
 */
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { TEXT_ARRAY_OID } from '../protocol/text-array.js';
import { encodeDataRow, encodeRowDescription } from '../protocol/backend.js';
import { analyzeStatement, inner, nodeKind, returningList, type Node } from '../sql/analyze.js';
import { quoteIdent } from '../sql/quote.js';
import { tokensOf, type Token } from '../sql/text-builder.js';
import type { ParamText } from '../sql/pushdown.js';
import { StatementOps } from '../redis/row-ops.js';
import { derivedRows, ROW_ID, type ForeignTable } from '../executor/select.js';
import { prepareWrite } from '../executor/dml.js';
import type { WritePlan } from '../executor/write.js';
import { dataRowText } from './catalog.js';
import { ridOf, type Bound, type EvalContext, type RowSet } from './evaluate.js';
import type { CallbackTx } from './writes.js';

export async function directModify(ctx: EvalContext, tx: CallbackTx, text: string, stmt: Node, bound: Bound, autocommit: boolean, maxValueBytes: number): Promise<{ tag: string; set?: RowSet }> {
  const kind = nodeKind(stmt) === 'UpdateStmt' ? 'update' : 'delete';
  const info = analyzeStatement(stmt);
  const ref = info.targets[0]!;
  if (info.reads.length) throw new PgError(SqlState.FeatureNotSupported, `${kind.toUpperCase()} joined with other tables is not supported on Redis foreign tables where PostgreSQL evaluates the statement itself`, { hint: 'Send the statement through the proxy as a statement of its own.' });
  const t = await ctx.catalog.table(ref.schemaname ?? 'public', ref.relname);
  const param: ParamText = (n) => {
    const v = bound.values[n - 1];
    return v === undefined ? undefined : v === null ? null : v.toString('utf8');
  };
  const byCtid = ctidParam(ref.where);
  if (byCtid !== undefined) return rowByRow(ctx, tx, stmt, kind, t, byCtid, param, autocommit, maxValueBytes);
  // prepareWrite reads only what an UPDATE/DELETE's snapshot needs from the plan: its kind, target and reads.
  const plan = { kind, target: t, targetRef: ref, reads: [] } as unknown as WritePlan;
  const prepared = await prepareWrite(ctx.redis, plan, param, ctx.pending);

  const tokens = tokensOf(text);
  const bytes = Buffer.from(text, 'utf8');
  const slice = (a: number, b: number): string => bytes.toString('utf8', a, b);
  const top = (word: string): Token | undefined => tokens.find((tk) => tk.depth === 0 && tk.text === word);
  const where = top('where');
  const ret = top('returning');
  const end = (ret ?? { start: bytes.length }).start;
  const cols = t.spec.columns;
  const newValues = cols.map((c) => `${quoteIdent(ref.alias ?? ref.relname)}.${quoteIdent(c.name)}`);
  if (kind === 'update') {
    const set = top('set')!;
    const stop = (where ?? { start: end }).start;
    const targets = ((stmt.UpdateStmt as Node).targetList as Node[]).map((r) => inner(r));
    const region = tokens.filter((tk) => tk.start >= set.end && tk.end <= stop);
    const pieces: Token[][] = [[]];
    for (const tk of region) {
      if (tk.depth === 0 && tk.text === ',') pieces.push([]);
      else pieces[pieces.length - 1]!.push(tk);
    }
    if (pieces.length !== targets.length) throw new PgError(SqlState.FeatureNotSupported, 'this form of UPDATE on a callback session');
    pieces.forEach((p, k) => {
      const eq = p.findIndex((tk) => tk.text === '=');
      const name = String(targets[k]!.name);
      const i = cols.findIndex((c) => c.name === name);
      if (eq < 0 || i < 0 || targets[k]!.indirection) throw new PgError(SqlState.FeatureNotSupported, 'this form of UPDATE on a callback session');
      newValues[i] = `CAST((${slice(p[eq + 1]!.start, p[p.length - 1]!.end)}) AS ${cols[i]!.type})`;
    });
  }
  const clientParams = Math.max(bound.values.length, bound.types.length);
  const rows = derivedRows(t, clientParams + 1, (n) => `$${n}::pg_catalog.text[]`, ROW_ID);
  const sql = `SELECT ${quoteIdent(ref.alias ?? ref.relname)}.${ROW_ID}${kind === 'update' ? `, ${newValues.join(', ')}` : ''} FROM ${rows} AS ${quoteIdent(ref.alias ?? ref.relname)}${where ? ` WHERE ${slice(where.end, end)}` : ''}`;
  const types = [...bound.types];
  while (types.length < clientParams) types.push(0);
  const values: (string | Buffer | null)[] = [];
  for (let i = 0; i < clientParams; i++) values.push(bound.values[i] === undefined || bound.values[i] === null ? null : bound.values[i]!.toString('utf8'));
  for (const a of prepared.extra) {
    values.push(a);
    types.push(TEXT_ARRAY_OID);
  }
  const r = await ctx.link.query(sql, values, types, ctx.catalog.ownerOf([t]));

  const ops = new StatementOps({ spec: t.spec, relname: t.resolved.name, maxValueBytes });
  const seen = new Set<number>();
  const out: (string | null)[][] = [];
  for (const msg of r.rows) {
    const row = dataRowText(msg);
    const rid = Number(row[0]);
    if (seen.has(rid)) continue;
    seen.add(rid);
    const old = prepared.snapshot[rid - 1]!;
    if (kind === 'update') {
      ops.update(old, row.slice(1));
      out.push(row.slice(1));
    } else {
      ops.delete(old);
      out.push(old.values);
    }
  }
  await tx.stage(t, ops.finish(), autocommit);
  return { tag: `${kind.toUpperCase()} ${seen.size}`, ...returningSet(stmt, t, out) };
}

/** `ctid = $n`: the parameter number, when that is the whole WHERE. */
function ctidParam(where: Node | undefined): number | undefined {
  if (nodeKind(where) !== 'A_Expr') return undefined;
  const e = inner(where);
  const op = ((e.name as Node[] | undefined) ?? []).map((x) => String(inner(x).sval)).join('.');
  const l = e.lexpr;
  const lf = (inner(l).fields as Node[] | undefined) ?? [];
  if (op !== '=' || nodeKind(l) !== 'ColumnRef' || String(inner(lf[lf.length - 1]).sval) !== 'ctid' || nodeKind(e.rexpr) !== 'ParamRef') return undefined;
  return Number(inner(e.rexpr).number);
}

/**
 * postgres_fdw's row-by-row form: `UPDATE t SET c = $2, ... WHERE ctid = $1` / `DELETE FROM t WHERE
 * ctid = $1`, once per row its `FOR UPDATE` scan returned (ctids name rows of that scan's snapshot).
 */
async function rowByRow(ctx: EvalContext, tx: CallbackTx, stmt: Node, kind: 'update' | 'delete', t: ForeignTable, ctidAt: number, param: ParamText, autocommit: boolean, maxValueBytes: number): Promise<{ tag: string; set?: RowSet }> {
  const rid = ridOf(param(ctidAt) ?? '');
  const old = rid === undefined ? undefined : ctx.snapshots.get(t.display)?.[rid - 1];
  if (!old) throw new PgError(SqlState.InvalidParameterValue, `no row of ${t.display} has ctid ${param(ctidAt) ?? 'NULL'} in this transaction`);
  const ops = new StatementOps({ spec: t.spec, relname: t.resolved.name, maxValueBytes });
  const cols = t.spec.columns;
  let row = old.values;
  if (kind === 'update') {
    row = [...old.values];
    for (const r of (inner(stmt).targetList as Node[]) ?? []) {
      const target = inner(r);
      const i = cols.findIndex((c) => c.name === String(target.name));
      if (i < 0 || nodeKind(target.val) !== 'ParamRef' || target.indirection) throw new PgError(SqlState.FeatureNotSupported, 'this form of UPDATE on a callback session');
      row[i] = param(Number(inner(target.val).number)) ?? null;
    }
    ops.update(old, row);
  } else ops.delete(old);
  await tx.stage(t, ops.finish(), autocommit);
  return { tag: `${kind.toUpperCase()} 1`, ...returningSet(stmt, t, [row]) };
}

/** postgres_fdw's RETURNING is a list of plain columns; its values are the rows' own. */
export function returningSet(stmt: Node, t: ForeignTable, rows: (string | null)[][]): { set?: RowSet } {
  const cols = t.spec.columns;
  const idx = returningList(inner(stmt)).map((r) => {
    const v = inner(r).val;
    const f = ((inner(v).fields as Node[] | undefined) ?? []).map((x) => String(inner(x).sval));
    const i = cols.findIndex((c) => c.name === f[f.length - 1]);
    if (nodeKind(v) !== 'ColumnRef' || i < 0) throw new PgError(SqlState.FeatureNotSupported, 'RETURNING of anything but columns on a callback session');
    return i;
  });
  if (!idx.length) return {};
  return {
    set: {
      rowDescription: encodeRowDescription(idx.map((i) => ({ name: cols[i]!.name, tableOid: 0, attnum: 0, typeOid: cols[i]!.typeOid, typeLen: -1, typeMod: -1, format: 0 }))),
      rows: rows.map((row) => encodeDataRow(idx.map((i) => (row[i] === null || row[i] === undefined ? null : Buffer.from(row[i]!, 'utf8'))))),
    },
  };
}
