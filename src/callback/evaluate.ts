/**
 * Answers the SELECT inside a postgres_fdw remote query. Two routes:
 * - local: a plain scan (`SELECT cols FROM t`, or `SELECT NULL FROM t`) or `SELECT count(*) FROM t`
 *   with no WHERE, ORDER BY or LIMIT is answered from Redis alone (count(*) of a single-key table is
 *   HLEN/LLEN/SCARD/ZCARD/XLEN);
 * - upstream: anything else postgres_fdw pushed down (WHERE, ORDER BY, LIMIT, aggregates, joins) runs
 *   on the callback's own upstream link with every table replaced by a derived table over the Redis
 *   rows (the rewrite of DESIGN §2), so upstream evaluates it and the proxy evaluates no SQL. Every
 *   relation must be a Redis foreign table, so that statement can never reach a foreign table again.
 */
import type { Redis } from 'ioredis';
import { decodeDataRow, decodeRowDescription, encodeDataRow, encodeRowDescription, type FieldDescription } from '../protocol/backend.js';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { TEXT_ARRAY_OID } from '../protocol/text-array.js';
import { analyzeStatement, inner, nodeKind, type Node, type RangeVarRef } from '../sql/analyze.js';
import { rewriteText } from '../sql/rewrite.js';
import { tokensOf } from '../sql/text-builder.js';
import { prepareWrite } from '../executor/dml.js';
import type { WritePlan } from '../executor/write.js';
import type { SnapshotRow } from '../redis/row-ops.js';
import { quoteIdent } from '../sql/quote.js';
import type { ParamText } from '../sql/pushdown.js';
import { derivedRows, fetchReadParams, readRows, type ForeignRead, type ForeignTable, type PendingWrites, type RedisAccess } from '../executor/select.js';
import { mapRedisErrorWithType } from '../redis/errors.js';
import { typeOf } from '../redis/types/type.js';
import { checkText } from '../redis/text.js';
import type { CallbackCatalog } from './catalog.js';
import { DEFAULT_KEY_BATCH, readTable } from '../redis/read.js';
import type { RowSink } from '../redis/table-spec.js';
import { RowStream } from './row-stream.js';
import type { UpstreamLink } from './upstream-link.js';

export interface RowSet {
  rowDescription: Buffer;
  rows: Buffer[];
}

export interface EvalContext {
  catalog: CallbackCatalog;
  redis: RedisAccess;
  link: UpstreamLink;
  /** Writes of the callback's open remote transaction, which its reads must see. */
  pending: PendingWrites;
  /** The rows behind the synthetic ctids of the transaction's last `FOR UPDATE` scan, per table. */
  snapshots: Map<string, SnapshotRow[]>;
}

/** A synthetic ctid: the row's number in the scan's snapshot, as block number (offset 1). */
export const ctidOf = (rid: number): string => `(${rid},1)`;
export function ridOf(ctid: string): number | undefined {
  const m = /^\((\d+),1\)$/.exec(ctid);
  return m ? Number(m[1]) : undefined;
}

const isCtid = (v: unknown): boolean => {
  const f = (inner(v).fields as Node[] | undefined) ?? [];
  return nodeKind(v) === 'ColumnRef' && String(inner(f[f.length - 1]).sval) === 'ctid';
};

function selectsCtid(q: Node): boolean {
  return ((q.targetList as Node[] | undefined) ?? []).some((t) => isCtid(inner(t).val));
}

/**
 * postgres_fdw's row-by-row UPDATE/DELETE starts with `SELECT cols, ctid FROM t [WHERE ...] FOR UPDATE`.
 * The rows are numbered in a snapshot (kept for the UPDATE/DELETE ... WHERE ctid = $1 that follow),
 * and `ctid` is that number. Upstream evaluates the WHERE over the numbered rows, as for any pushed-down
 * query; FOR UPDATE is dropped: Redis has no row locks, and the derived table takes none.
 */
async function ctidScan(ctx: EvalContext, text: string, ref: RangeVarRef, t: ForeignTable, bound: Bound): Promise<RowSet> {
  const param: ParamText = (n) => {
    const v = bound.values[n - 1];
    return v === undefined ? undefined : v === null ? null : v.toString('utf8');
  };
  // prepareWrite reads only what an UPDATE's snapshot needs from the plan: its kind, target and reads.
  const prepared = await prepareWrite(ctx.redis, { kind: 'update', target: t, targetRef: ref, reads: [] } as unknown as WritePlan, param, ctx.pending);
  ctx.snapshots.set(t.display, prepared.snapshot);
  const lock = tokensOf(text).find((tk) => tk.depth === 0 && tk.text === 'for');
  const unlocked = lock ? Buffer.from(text, 'utf8').subarray(0, lock.start).toString('utf8') : text;
  const clientParams = Math.max(bound.values.length, bound.types.length);
  const rewritten = rewriteText(unlocked, [{ location: ref.location, sql: `${derivedRows(t, clientParams + 1, (n) => `$${n}::pg_catalog.text[]`, 'ctid')}${ref.alias === undefined ? ` AS ${quoteIdent(ref.relname)}` : ''}` }]);
  const types = [...bound.types];
  while (types.length < clientParams) types.push(0);
  const values: (string | Buffer | null)[] = [];
  for (let i = 0; i < clientParams; i++) values.push(param(i + 1) ?? null);
  for (const a of prepared.extra) {
    values.push(a);
    types.push(TEXT_ARRAY_OID);
  }
  const r = await ctx.link.query(rewritten.text, values, types, ctx.catalog.ownerOf([t]));
  if (!r.rowDescription) throw unsupported('a remote query that returns no rows');
  const fields = decodeRowDescription(r.rowDescription, 0, r.rowDescription.length);
  const at = fields.findIndex((f) => f.name === 'ctid');
  const rows = r.rows.map((m) => {
    const vs = decodeDataRow(m, 0, m.length);
    vs[at] = Buffer.from(ctidOf(Number(vs[at]!.toString('utf8'))));
    return encodeDataRow(vs);
  });
  const desc = encodeRowDescription(fields.map((f, i) => (i === at ? { ...f, typeOid: 27, typeLen: 6 } : f)));
  return { rowDescription: desc, rows };
}


export interface Bound {
  /** Parameter values as sent (text format from postgres_fdw), and their types from Parse. */
  values: (Buffer | null)[];
  types: number[];
}

const INT8_OID = 20;
const field = (name: string, typeOid: number): FieldDescription => ({ name, tableOid: 0, attnum: 0, typeOid, typeLen: -1, typeMod: -1, format: 0 });

/** postgres_fdw's ANALYZE asks the remote relation's size in pages: a Redis key has none. */
const RELATION_SIZE = /^\s*SELECT pg_catalog\.pg_relation_size\('(?:[^']|'')*'::pg_catalog\.regclass\) \/ \d+\s*$/;

export async function evaluateSelect(ctx: EvalContext, text: string, stmt: Node, bound: Bound): Promise<RowSet> {
  const info = analyzeStatement(stmt);
  if (info.reads.length === 0 && RELATION_SIZE.test(text)) return { rowDescription: encodeRowDescription([field('?column?', INT8_OID)]), rows: [encodeDataRow([Buffer.from('0')])] };
  if (info.reads.length === 0) throw unsupported('a remote query that reads no table');
  const tables = await Promise.all(info.reads.map((r) => ctx.catalog.table(r.schemaname ?? 'public', r.relname)));
  if (inner(stmt).lockingClause && info.reads.length === 1 && selectsCtid(inner(stmt))) return ctidScan(ctx, text, info.reads[0]!, tables[0]!, bound);
  const local = localShape(inner(stmt), tables);
  if (local) return local.kind === 'count' ? countRows(ctx, tables[0]!) : scanRows(ctx, tables[0]!, local.columns);
  return viaUpstream(ctx, text, info.reads, tables, bound);
}

type LocalShape = { kind: 'count' } | { kind: 'scan'; columns: (number | null)[] } | undefined;

/** A plain scan or count(*) of one table with nothing else to apply. */
function localShape(q: Node, tables: ForeignTable[]): LocalShape {
  if (tables.length !== 1 || q.whereClause || q.sortClause || q.limitCount || q.limitOffset || q.groupClause || q.havingClause || q.distinctClause || q.withClause || q.lockingClause) return undefined;
  const from = (q.fromClause as Node[] | undefined) ?? [];
  if (from.length !== 1 || nodeKind(from[0]) !== 'RangeVar') return undefined;
  const cols = tables[0]!.spec.columns;
  const targets = ((q.targetList as Node[] | undefined) ?? []).map((t) => inner(t).val as Node);
  if (targets.length === 1 && nodeKind(targets[0]) === 'FuncCall') {
    const f = inner(targets[0]);
    const name = ((f.funcname as Node[]) ?? []).map((x) => String(inner(x).sval)).join('.');
    if ((name === 'count' || name === 'pg_catalog.count') && f.agg_star && !f.agg_filter && !f.over && !f.agg_distinct) return { kind: 'count' };
    return undefined;
  }
  const columns: (number | null)[] = [];
  for (const v of targets) {
    if (nodeKind(v) === 'A_Const' && inner(v).isnull) {
      columns.push(null);
      continue;
    }
    if (nodeKind(v) !== 'ColumnRef') return undefined;
    const fields = (inner(v).fields as Node[]) ?? [];
    const last = fields[fields.length - 1];
    if (nodeKind(last) !== 'String') return undefined;
    const i = cols.findIndex((c) => c.name === String(inner(last).sval));
    if (i < 0) return undefined;
    columns.push(i);
  }
  return columns.length ? { kind: 'scan', columns } : undefined;
}

async function scanRows(ctx: EvalContext, t: ForeignTable, columns: (number | null)[]): Promise<RowSet> {
  const rows: Buffer[] = [];
  await readRows(ctx.redis, t, {}, ctx.pending, scanSink(t, columns, (r) => void rows.push(r)));
  return { rowDescription: scanDescription(t, columns), rows };
}

function scanDescription(t: ForeignTable, columns: (number | null)[]): Buffer {
  const cols = t.spec.columns;
  return encodeRowDescription(columns.map((c) => (c === null ? field('?column?', 25) : field(cols[c]!.name, cols[c]!.typeOid))));
}

/** The scan's DataRows: the chosen columns of each Redis row (null for `SELECT NULL`), text checked. */
function scanSink(t: ForeignTable, columns: (number | null)[], push: (row: Buffer) => void): RowSink {
  const values = new Array<Buffer | null>(columns.length);
  return {
    row(key, vs) {
      for (let i = 0; i < columns.length; i++) {
        const c = columns[i]!;
        const v = c === null ? null : (vs[c] ?? null);
        if (Buffer.isBuffer(v)) checkText(v, key, t.display);
        values[i] = v === null ? null : typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
      }
      push(encodeDataRow(values));
    },
  };
}

/**
 * Redis page of a streamed scan, the first one included: a read-ahead bounded by the FETCHes would
 * otherwise still start with a 100,000-field first page (DEFAULT_FIRST_PAGE).
 */
const STREAM_PAGE = DEFAULT_KEY_BATCH;

/**
 * A cursor's plain scan read while it is fetched (see row-stream.ts); undefined when the cursor's query
 * is anything else, or its table has writes pending in this transaction (evaluateSelect answers those).
 */
export async function openStream(ctx: EvalContext, stmt: Node): Promise<{ rowDescription: Buffer; stream: RowStream } | undefined> {
  const info = analyzeStatement(stmt);
  if (info.reads.length !== 1) return undefined;
  const ref = info.reads[0]!;
  const t = await ctx.catalog.table(ref.schemaname ?? 'public', ref.relname);
  const local = localShape(inner(stmt), [t]);
  if (local?.kind !== 'scan' || ctx.pending.on(t).length) return undefined;
  const client = await ctx.redis.client(t.conn);
  const stream = new RowStream();
  stream.follow(readTable(client, t.spec, {}, scanSink(t, local.columns, (r) => stream.push(r)), { signal: stream.signal, pace: stream.pace, batchSize: STREAM_PAGE }));
  return { rowDescription: scanDescription(t, local.columns), stream };
}

async function countRows(ctx: EvalContext, t: ForeignTable): Promise<RowSet> {
  let n = 0;
  const s = t.spec;
  const length = typeOf(s).count.length;
  if (s.multi === 'none' && length && ctx.pending.on(t).length === 0) {
    const client = (await ctx.redis.client(t.conn)) as Redis;
    try {
      n = Number(await client.call(length, s.key));
    } catch (e) {
      throw await mapRedisErrorWithType(e, { key: s.key, table: t.display, expected: s.type }, client);
    }
  } else await readRows(ctx.redis, t, {}, ctx.pending, { row: () => void n++ });
  return { rowDescription: encodeRowDescription([field('count', INT8_OID)]), rows: [encodeDataRow([Buffer.from(String(n))])] };
}

async function viaUpstream(ctx: EvalContext, text: string, refs: RangeVarRef[], tables: ForeignTable[], bound: Bound): Promise<RowSet> {
  const clientParams = Math.max(bound.values.length, bound.types.length);
  let next = clientParams + 1;
  const reads: ForeignRead[] = refs.map((ref, i) => {
    const r = { ref, table: tables[i]!, firstParam: next };
    next += tables[i]!.spec.columns.length;
    return r;
  });
  const param: ParamText = (n) => {
    const v = bound.values[n - 1];
    return v === undefined ? undefined : v === null ? null : v.toString('utf8');
  };
  // ctx.redis carries the statement's signal: a cancel answers at once, and the read stops paging.
  const arrays = await fetchReadParams(ctx.redis, { reads, carrier: 'params' }, param, { pending: ctx.pending });
  const rewritten = rewriteText(
    text,
    reads.map((r) => ({ location: r.ref.location, sql: `${derivedRows(r.table, r.firstParam, (n) => `$${n}::pg_catalog.text[]`, undefined)}${r.ref.alias === undefined ? ` AS ${quoteIdent(r.ref.relname)}` : ''}` })),
  );
  const types = [...bound.types];
  while (types.length < clientParams) types.push(0);
  for (let i = 0; i < arrays.length; i++) types.push(TEXT_ARRAY_OID);
  const values: (string | Buffer | null)[] = [];
  for (let i = 0; i < clientParams; i++) {
    const v = bound.values[i] ?? null;
    values.push(v === null ? null : v.toString('utf8'));
  }
  values.push(...arrays);
  const r = await ctx.link.query(rewritten.text, values, types, ctx.catalog.ownerOf(tables));
  if (!r.rowDescription) throw unsupported('a remote query that returns no rows');
  return { rowDescription: r.rowDescription, rows: r.rows };
}

/**
 * EXPLAIN of a remote query (postgres_fdw's use_remote_estimate): one plan line with the cost and row
 * estimate it parses. Rows: the key's length for a single-key table (HLEN...), else 1000.
 */
export async function explainEstimate(ctx: EvalContext, stmt: Node): Promise<RowSet> {
  const info = analyzeStatement(stmt);
  let rows = 1000;
  const tables = await Promise.all(info.reads.map((r) => ctx.catalog.table(r.schemaname ?? 'public', r.relname)));
  const t = tables[0];
  const length = t && typeOf(t.spec).count.length;
  if (tables.length === 1 && t && t.spec.multi === 'none' && length) {
    const client = (await ctx.redis.client(t.conn)) as Redis;
    rows = Number(await client.call(length, t.spec.key).catch(() => 1000));
  }
  const width = 32 * Math.max(1, t?.spec.columns.length ?? 1);
  const line = `Foreign Scan on Redis  (cost=0.00..${(rows * 0.01 + 1).toFixed(2)} rows=${rows} width=${width})`;
  return { rowDescription: encodeRowDescription([field('QUERY PLAN', 25)]), rows: [encodeDataRow([Buffer.from(line)])] };
}

export function unsupported(what: string): PgError {
  return new PgError(SqlState.FeatureNotSupported, `redis-fdw-proxy does not answer ${what} on a callback session`, { hint: 'Callback sessions answer the remote queries of postgres_fdw over Redis foreign tables.' });
}
