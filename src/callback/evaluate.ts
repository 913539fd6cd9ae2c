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
import { encodeDataRow, encodeRowDescription, type FieldDescription } from '../protocol/backend.js';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { TEXT_ARRAY_OID } from '../protocol/text-array.js';
import { analyzeStatement, inner, nodeKind, type Node, type RangeVarRef } from '../sql/analyze.js';
import { rewriteText } from '../sql/rewrite.js';
import { quoteIdent } from '../sql/quote.js';
import type { ParamText } from '../sql/pushdown.js';
import { derivedRows, fetchReadParams, readRows, type ForeignRead, type ForeignTable, type PendingWrites, type RedisAccess } from '../executor/select.js';
import { mapRedisErrorWithType } from '../redis/errors.js';
import { checkText } from '../redis/text.js';
import type { CallbackCatalog } from './catalog.js';
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
  if (/\bctid\b/.test(text) && inner(stmt).lockingClause) {
    // postgres_fdw's row-by-row UPDATE/DELETE: it fetches ctids FOR UPDATE, then writes WHERE ctid = $1.
    throw new PgError(SqlState.FeatureNotSupported, 'this UPDATE or DELETE of a Redis foreign table cannot be sent whole to Redis', {
      hint: 'PostgreSQL sends an UPDATE or DELETE whole when its SET and WHERE use only the table\'s columns, parameters and built-in functions, and no trigger on the foreign table needs the old row; otherwise send it through the proxy as a statement of its own.',
    });
  }
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
  const cols = t.spec.columns;
  const rows: Buffer[] = [];
  const values = new Array<Buffer | null>(columns.length);
  await readRows(ctx.redis, t, {}, ctx.pending, {
    row(key, vs) {
      for (let i = 0; i < columns.length; i++) {
        const c = columns[i]!;
        const v = c === null ? null : (vs[c] ?? null);
        if (Buffer.isBuffer(v)) checkText(v, key, t.display);
        values[i] = v === null ? null : typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
      }
      rows.push(encodeDataRow(values));
    },
  });
  const desc = encodeRowDescription(columns.map((c) => (c === null ? field('?column?', 25) : field(cols[c]!.name, cols[c]!.typeOid))));
  return { rowDescription: desc, rows };
}

const COUNT_COMMAND = { hash: 'hlen', list: 'llen', set: 'scard', zset: 'zcard', stream: 'xlen' } as const;

async function countRows(ctx: EvalContext, t: ForeignTable): Promise<RowSet> {
  let n = 0;
  const s = t.spec;
  if (s.multi === 'none' && s.type !== 'string' && ctx.pending.on(t).length === 0) {
    const client = (await ctx.redis.client(t.conn)) as Redis;
    try {
      n = Number(await client[COUNT_COMMAND[s.type]](s.key));
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
  const r = await ctx.link.query(rewritten.text, values, types);
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
  if (tables.length === 1 && t && t.spec.multi === 'none' && t.spec.type !== 'string') {
    const client = (await ctx.redis.client(t.conn)) as Redis;
    rows = Number(await client[COUNT_COMMAND[t.spec.type]](t.spec.key).catch(() => 1000));
  }
  const width = 32 * Math.max(1, t?.spec.columns.length ?? 1);
  const line = `Foreign Scan on Redis  (cost=0.00..${(rows * 0.01 + 1).toFixed(2)} rows=${rows} width=${width})`;
  return { rowDescription: encodeRowDescription([field('QUERY PLAN', 25)]), rows: [encodeDataRow([Buffer.from(line)])] };
}

export function unsupported(what: string): PgError {
  return new PgError(SqlState.FeatureNotSupported, `redis-fdw-proxy does not answer ${what} on a callback session`, { hint: 'Callback sessions answer the remote queries of postgres_fdw over Redis foreign tables.' });
}
