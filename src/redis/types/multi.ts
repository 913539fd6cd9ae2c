/**
 * Multi-key tables: a glob pattern of keys of one type, read as one row per key (Supabase multi_*,
 * `multi: 'aggregate'`) or one row per element with the key first (redis_fdw_rs glob prefix, 'rows').
 * What the table's keys are (the pattern's SCAN on every master, a literal pattern's one key, or the
 * exact keys a WHERE pins), how many there are, and which staged writes touch them. Every SCAN of a
 * pattern goes through `scanPattern`.
 */
import type { Cluster, Redis } from 'ioredis';
import { PgError } from '../../protocol/pg-error.js';
import { SqlState } from '../../protocol/sqlstate.js';
import { globLiteral, globMatch } from '../glob.js';
import type { RedisClient } from '../pool.js';
import { serverOf } from '../errors.js';
import type { Pushdown, RedisType, TableSpec } from '../table-spec.js';
import type { RedisOp } from '../write.js';
import { dedupe, type Cmd } from './cursor.js';

/** Keys per SCAN page when nothing else says (counts, overlay reads, TRUNCATE). */
export const SCAN_COUNT = 1000;

const isCluster = (c: RedisClient): c is Cluster => (c as { isCluster?: boolean }).isCluster === true;

/** Whether `op` touches a key of `spec`. */
export function touches(spec: TableSpec, op: RedisOp): boolean {
  if (op.op === 'delPattern') return op.type === spec.type && (spec.multi === 'none' ? globMatch(op.pattern, spec.key) : op.pattern === spec.key);
  return spec.multi === 'none' ? op.key === spec.key : globMatch(spec.key, op.key);
}

/**
 * The keys a read of a multi-key table takes without a SCAN: those a WHERE pins (deduplicated, only
 * those the pattern matches), or the one key a pattern with no wildcard names; undefined: SCAN.
 */
export function exactKeys(spec: TableSpec, pushdown: Pushdown): string[] | undefined {
  const lit = globLiteral(spec.key);
  const exact = pushdown.keys ?? (lit === null ? undefined : [lit]);
  return exact && dedupe(exact).filter((k) => globMatch(spec.key, k));
}

export interface ScanOptions {
  /** Keys per page (SCAN's COUNT hint). */
  count?: number;
  /** Sends one SCAN page to a node (a reader's paced, cancellable, error-mapped call); default callBuffer. */
  call?: (node: RedisClient, cmd: Cmd) => Promise<unknown>;
  /** Names the table in the error for a cluster with no reachable master; without it, such a scan is empty. */
  table?: string;
}

/**
 * The keys of `type` matching `pattern`, page by page: SCAN … MATCH … TYPE on every master (keys of
 * other types are not the table's), each key once even when SCAN returns it twice. Stopping the
 * iteration stops the SCAN.
 */
export async function* scanPattern(client: RedisClient, pattern: string, type: RedisType, opts: ScanOptions = {}): AsyncGenerator<{ node: RedisClient; keys: Buffer[] }> {
  const nodes: RedisClient[] = isCluster(client) ? client.nodes('master') : [client];
  if (nodes.length === 0 && opts.table !== undefined) {
    throw new PgError(SqlState.FdwUnableToEstablishConnection, `could not reach any Redis Cluster master at ${serverOf(client)} for foreign table ${opts.table}`);
  }
  const call = opts.call ?? ((node: RedisClient, cmd: Cmd) => (node as Redis).callBuffer(...cmd));
  const seen = new Set<string>();
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, page] = (await call(node, ['scan', cursor, 'MATCH', pattern, 'COUNT', opts.count ?? SCAN_COUNT, 'TYPE', type])) as [Buffer | string | undefined, Buffer[] | undefined];
      cursor = next === undefined ? '0' : Buffer.isBuffer(next) ? next.toString('latin1') : String(next);
      const keys: Buffer[] = [];
      for (const k of page ?? []) {
        const id = k.toString('latin1');
        if (!seen.has(id)) {
          seen.add(id);
          keys.push(k);
        }
      }
      yield { node, keys };
    } while (cursor !== '0');
  }
}

/** Every key of `type` matching `pattern`, as text (an overlay read, a TRUNCATE's DELs). */
export async function scanKeys(client: RedisClient, pattern: string, type: RedisType, opts: ScanOptions = {}): Promise<string[]> {
  const keys: string[] = [];
  for await (const page of scanPattern(client, pattern, type, opts)) for (const k of page.keys) keys.push(k.toString('utf8'));
  return [...new Set(keys)];
}

/**
 * How many keys the table has, as the reader finds them (`count(*)` of a table whose rows are one per
 * key): a pattern with no wildcard is that one key, if it has the type.
 */
export async function countKeys(client: RedisClient, spec: TableSpec): Promise<number> {
  const literal = globLiteral(spec.key);
  if (literal !== null) return String(await client.call('type', literal)) === spec.type ? 1 : 0;
  let n = 0;
  for await (const page of scanPattern(client, spec.key, spec.type, { table: spec.table })) n += page.keys.length;
  return n;
}

/** The command EXPLAIN shows for countKeys. */
export function countKeysCommand(spec: TableSpec): string {
  const literal = globLiteral(spec.key);
  return literal !== null ? `TYPE ${literal}` : `SCAN 0 MATCH ${spec.key} COUNT ${SCAN_COUNT} TYPE ${spec.type} (keys counted, on every master)`;
}
