/**
 * `SELECT count(*) FROM ft` with no WHERE, answered by Redis's own length commands (HLEN, LLEN,
 * SCARD, ZCARD, XLEN) rather than by reading every element: the foreign reference becomes a derived
 * table of that many rows, generated upstream from one bigint parameter, and the fast path sends the
 * same number itself. Either way no value is read, so none is checked: a count never fails on a
 * value that isn't UTF-8, as a count over a real table never fails on its contents.
 */
import { inner, nodeKind, type Node, type StatementInfo } from '../sql/analyze.js';
import { mapRedisErrorWithType, serverOf } from '../redis/errors.js';
import type { RedisClient } from '../redis/pool.js';
import type { RedisType, TableSpec } from '../redis/table-spec.js';

const LENGTH: Partial<Record<RedisType, string>> = { hash: 'hlen', list: 'llen', set: 'scard', zset: 'zcard', stream: 'xlen' };

/** `count(*)` (or `pg_catalog.count(*)`) as the plain aggregate: no FILTER, OVER, ORDER BY or DISTINCT. */
export function isCountStar(n: unknown): boolean {
  if (nodeKind(n) !== 'FuncCall') return false;
  const f = inner(n);
  const name = ((f.funcname as Node[] | undefined) ?? []).map((x) => String(inner(x).sval)).join('.');
  return (name === 'count' || name === 'pg_catalog.count') && f.agg_star === true && !f.args && !f.agg_filter && !f.over && !f.agg_order && !f.agg_distinct && !f.agg_within_group && !f.func_variadic;
}

/**
 * Whether the statement is `SELECT count(*) FROM <this one-key table>` and nothing else (LIMIT and
 * OFFSET aside, which upstream applies to the one row): then only the number of rows matters.
 */
export function countsOnly(info: StatementInfo, spec: TableSpec): boolean {
  // EXPLAIN of such a statement shows the count (and EXPLAIN ANALYZE runs it).
  const explained = info.kind === 'ExplainStmt' && nodeKind(info.node.query) === 'SelectStmt';
  const q = explained ? inner(info.node.query) : info.node;
  if ((info.kind !== 'SelectStmt' && !explained) || info.reads.length !== 1 || spec.multi !== 'none' || LENGTH[spec.type] === undefined) return false;
  if (q.op !== 'SETOP_NONE' || q.withClause || q.intoClause || q.valuesLists || q.whereClause || q.groupClause || q.havingClause) return false;
  if (q.distinctClause || q.windowClause || q.sortClause || q.lockingClause || q.limitOption === 'LIMIT_OPTION_WITH_TIES') return false;
  const from = (q.fromClause as Node[] | undefined) ?? [];
  const targets = (q.targetList as Node[] | undefined) ?? [];
  return from.length === 1 && nodeKind(from[0]) === 'RangeVar' && targets.length === 1 && isCountStar(inner(targets[0]).val) && !inner(targets[0]).indirection;
}

/** The table's row count from Redis's length command; Redis errors become the reader's own. */
export async function redisCount(client: RedisClient, spec: TableSpec): Promise<number> {
  const cmd = LENGTH[spec.type]!;
  try {
    return Number(await client.call(cmd, spec.key));
  } catch (e) {
    throw await mapRedisErrorWithType(e, { key: spec.key, table: spec.table, server: serverOf(client), expected: spec.type }, client);
  }
}

/** The command EXPLAIN shows. */
export const countCommand = (spec: TableSpec): string => `${LENGTH[spec.type]!.toUpperCase()} ${spec.key}`;

/** A count as a binary int8 parameter. */
export function int8Param(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(n));
  return b;
}
