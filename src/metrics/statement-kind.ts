/** Which kind of statement the interceptor handled, for statements_total and the latency histogram. */
import type { NameIndex } from '../sql/classify.js';
import type { StatementInfo } from '../sql/analyze.js';
import { DDL_KINDS } from '../executor/ddl.js';
import type { Logger } from 'pino';
import { recordStatement, type StatementKind } from './metrics.js';
import type { StatementStats } from './statement-stats.js';

/** --log-min-duration: read from the live config, so the console's SET changes it at once. */
let slow: { config: { logMinDurationMs?: number }; log: Logger } | undefined;
export function configureSlowLog(config: { logMinDurationMs?: number }, log: Logger): void {
  slow = { config, log };
}

const MAX_SQL_IN_LOG = 200;

/**
 * Logs a foreign-table statement slower than --log-min-duration: kind, duration, the Redis commands
 * it sent (count and names), the rows it read from or wrote to Redis, whether a local whole-key read
 * streamed its rows, and the client's SQL cut short.
 * Parameter values are never logged: extended-protocol SQL carries $n placeholders, not values.
 */
export function noteSlow(kind: StatementKind, seconds: number, sql: string, log?: Logger, stats?: StatementStats): void {
  const min = slow?.config.logMinDurationMs;
  if (min === undefined || seconds * 1000 < min) return;
  const text = sql.length > MAX_SQL_IN_LOG ? `${sql.slice(0, MAX_SQL_IN_LOG)}...` : sql;
  const redis = stats ? { redisCommands: stats.commands, redis: stats.commandNames(), rows: stats.rows ?? 0, ...(stats.streamed === undefined ? {} : { streamed: stats.streamed }) } : {};
  (log ?? slow!.log).info({ kind, durationMs: Math.round(seconds * 1e4) / 10, ...redis, sql: text }, 'slow statement');
}

export const secondsSince = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;

const WRITES = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'TruncateStmt']);

/** For one statement of an intercepted simple Query; transaction control is not counted as a statement kind. */
export function recordStatementInfo(info: StatementInfo, names: NameIndex, t0: bigint, sql: string, log?: Logger, fast = false, stats?: StatementStats): void {
  if (info.kind === 'TransactionStmt') return;
  const foreign = (r: { relname: string }): boolean => names.has(r.relname);
  const kind: StatementKind = DDL_KINDS.has(info.kind) ? 'ddl' : WRITES.has(info.kind) && info.targets.some(foreign) ? 'foreign_write' : info.reads.some(foreign) ? (fast ? 'foreign_read_fast' : 'foreign_read_upstream') : 'passthrough';
  const seconds = secondsSince(t0);
  recordStatement(kind, kind === 'passthrough' || kind === 'ddl' ? undefined : seconds);
  noteSlow(kind, seconds, sql, log, stats);
}

/** For an extended-protocol read, at its Bind (where the proxy's work for it happens); `sql` is the client's Parse text. */
export function recordRead(kind: 'foreign_read_fast' | 'foreign_read_upstream', t0: bigint, sql: string, log?: Logger, stats?: StatementStats): void {
  const seconds = secondsSince(t0);
  recordStatement(kind, seconds);
  noteSlow(kind, seconds, sql, log, stats);
}

/** For an extended-protocol write, at its Execute (upstream's evaluation, then Redis). */
export function recordWrite(t0: bigint, sql: string, log?: Logger, stats?: StatementStats): void {
  const seconds = secondsSince(t0);
  recordStatement('foreign_write', seconds);
  noteSlow('foreign_write', seconds, sql, log, stats);
}
