/**
 * `SELECT count(*) FROM ft` with no WHERE, answered by Redis's own length commands (HLEN, LLEN,
 * SCARD, ZCARD, XLEN; STRLEN with EXISTS for a string key) rather than by reading every element, and
 * for a multi-key table whose rows are one per key by a counted SCAN: the foreign reference becomes a
 * derived table of that many rows, generated upstream from one bigint parameter, and the fast path
 * sends the same number itself. The SELECT may sit anywhere in a larger statement (a subquery, a
 * CTE): only its own FROM is replaced. Either way no value is read, so none is checked: a count never
 * fails on a value that isn't UTF-8, as a count over a real table never fails on its contents.
 */
import { inner, nodeKind, type Node, type RangeVarRef, type StatementInfo } from '../sql/analyze.js';
import { mapRedisErrorWithType, serverOf } from '../redis/errors.js';
import type { RedisClient } from '../redis/pool.js';
import { PgError } from '../protocol/pg-error.js';
import type { TableSpec } from '../redis/table-spec.js';
import { countKeys, countKeysCommand } from '../redis/types/multi.js';
import { typeOf } from '../redis/types/type.js';

/** `count(*)` (or `pg_catalog.count(*)`) as the plain aggregate: no FILTER, OVER, ORDER BY or DISTINCT. */
export function isCountStar(n: unknown): boolean {
  if (nodeKind(n) !== 'FuncCall') return false;
  const f = inner(n);
  const name = ((f.funcname as Node[] | undefined) ?? []).map((x) => String(inner(x).sval)).join('.');
  return (name === 'count' || name === 'pg_catalog.count') && f.agg_star === true && !f.args && !f.agg_filter && !f.over && !f.agg_order && !f.agg_distinct && !f.agg_within_group && !f.func_variadic;
}

/**
 * Whether Redis can say how many rows the table has without reading them: a one-key table of a type
 * with a length command (or a string key, one row or none); a multi-key table whose rows are one per
 * matching key — Supabase multi_* (hash, list, set, zset: never empty while they exist) and
 * redis_fdw_rs string globs. Other glob tables have a row per element, which only a read counts.
 */
function countable(spec: TableSpec): boolean {
  if (spec.multi === 'none') return true;
  if (spec.multi === 'aggregate') return typeOf(spec).aggregate !== undefined;
  return typeOf(spec).singleRow === true;
}

/**
 * Whether the SELECT whose FROM is this reference is `SELECT count(*) FROM <ref>` and nothing else
 * (LIMIT and OFFSET aside, which upstream applies to the one row): then only the number of rows
 * matters. That SELECT may be the statement or any subquery or CTE of it.
 */
export function countsOnly(info: StatementInfo, ref: Pick<RangeVarRef, 'location'>, spec: TableSpec): boolean {
  // EXPLAIN of such a statement shows the count (and EXPLAIN ANALYZE runs it).
  const explained = info.kind === 'ExplainStmt' && nodeKind(info.node.query) === 'SelectStmt';
  if ((info.kind !== 'SelectStmt' && !explained) || !countable(spec)) return false;
  const top = explained ? inner(info.node.query) : info.node;
  const q = fromIs(top, ref.location) ? top : selectOf(top, ref.location);
  if (!q) return false;
  if (q.op !== 'SETOP_NONE' || q.withClause || q.intoClause || q.valuesLists || q.whereClause || q.groupClause || q.havingClause) return false;
  if (q.distinctClause || q.windowClause || q.sortClause || q.lockingClause || q.limitOption === 'LIMIT_OPTION_WITH_TIES') return false;
  const targets = (q.targetList as Node[] | undefined) ?? [];
  return targets.length === 1 && isCountStar(inner(targets[0]).val) && !inner(targets[0]).indirection;
}

function fromIs(select: Node, location: number): boolean {
  const from = (select.fromClause as Node[] | undefined) ?? [];
  return from.length === 1 && nodeKind(from[0]) === 'RangeVar' && Number(inner(from[0]).location ?? 0) === location;
}

/** The SELECT (its body) whose FROM is exactly the table reference at `location`, anywhere in `n`. */
function selectOf(n: unknown, location: number): Node | undefined {
  if (Array.isArray(n)) {
    for (const x of n) {
      const hit = selectOf(x, location);
      if (hit) return hit;
    }
    return undefined;
  }
  if (!n || typeof n !== 'object') return undefined;
  if (nodeKind(n) === 'SelectStmt' && fromIs(inner(n), location)) return inner(n);
  for (const v of Object.values(n)) {
    const hit = selectOf(v, location);
    if (hit) return hit;
  }
  return undefined;
}

/** The table's row count from Redis; Redis errors become the reader's own. */
export async function redisCount(client: RedisClient, spec: TableSpec): Promise<number> {
  try {
    if (spec.multi !== 'none') return await countKeys(client, spec);
    return await typeOf(spec).count.run(client, spec.key);
  } catch (e) {
    if (e instanceof PgError) throw e;
    throw await mapRedisErrorWithType(e, { key: spec.key, table: spec.table, server: serverOf(client), expected: spec.type }, client);
  }
}

/** The command EXPLAIN shows. */
export function countCommand(spec: TableSpec): string {
  if (spec.multi !== 'none') return countKeysCommand(spec);
  return typeOf(spec).count.explain(spec.key);
}

/** A count as a binary int8 parameter. */
export function int8Param(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(n));
  return b;
}
