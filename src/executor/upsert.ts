/**
 * INSERT ... ON CONFLICT on Redis foreign tables. A Redis entry is identified by its key and, inside
 * the key, its field (hash) or member (set, zset), so that identity plays the part of the unique
 * constraint Postgres would infer. Only the shapes Redis itself applies atomically are taken:
 *
 *   DO NOTHING                                  HSETNX, SADD, ZADD NX, SET NX
 *   DO UPDATE SET <each stored column> = EXCLUDED.<same column>
 *                                               HSET, SADD, ZADD, SET (an overwrite)
 *
 * Anything whose outcome depends on the existing row (SET value = h.value || ..., a WHERE, a SET of
 * another expression) would need a read before the write that another client could slip between: 0A000.
 */
import type { Redis } from 'ioredis';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { inner, nodeKind, type Node } from '../sql/analyze.js';
import { quoteIdent } from '../sql/quote.js';
import { mapRedisErrorWithType, serverOf } from '../redis/errors.js';
import type { TableSpec } from '../redis/table-spec.js';
import { typeOf } from '../redis/types/type.js';
import { readRows, type ForeignTable, type PendingWrites, type RedisAccess } from './select.js';
import { GiveWay } from './give-way.js';
import { ChunkedMap, ChunkedSet } from '../redis/types/chunked-map.js';

export interface ConflictPlan {
  action: 'nothing' | 'update';
  /** Columns that identify a row (key column of a multi-key table, then field or member). */
  identity: number[];
  /** Whether the write leaves an existing entry untouched (DO NOTHING; DO UPDATE that stores nothing new). */
  nx: boolean;
}

const notSupported = (what: string, hint: string): PgError => new PgError(SqlState.FeatureNotSupported, what, { hint });

/** The columns that identify an entry, or undefined when entries of this type have no identity to conflict on. */
function identityOf(spec: TableSpec): number[] | undefined {
  const conflict = typeOf(spec).conflict;
  if (spec.multi === 'aggregate' || !conflict) return undefined;
  const role = (k: string): number => spec.roles.findIndex((r) => r.kind === k);
  const key = spec.multi === 'rows' ? [role('key')] : [];
  return conflict.role ? [...key, role(conflict.role)] : key;
}

function targetHint(t: ForeignTable, identity: number[]): string {
  if (identity.length === 0) return `A row of ${t.display} is its one Redis key: write ON CONFLICT DO NOTHING without a conflict target.`;
  return `A row of ${t.display} is identified by (${identity.map((i) => quoteIdent(t.spec.columns[i]!.name)).join(', ')}): write ON CONFLICT (${identity.map((i) => t.spec.columns[i]!.name).join(', ')}).`;
}

/** Validates an ON CONFLICT clause against what Redis can honour exactly; throws the PgError the client gets. */
export function planConflict(clause: Node, t: ForeignTable, charPos: (byte: number) => number): ConflictPlan {
  const spec = t.spec;
  const identity = identityOf(spec);
  if (!identity) {
    const what = spec.multi === 'aggregate' ? `multi_${spec.type}` : spec.type;
    throw notSupported(`ON CONFLICT is not supported on Redis foreign table ${t.display}`, `Entries of a Redis ${what} table have no identity to conflict on; write a plain INSERT.`);
  }
  const action = clause.action === 'ONCONFLICT_NOTHING' ? 'nothing' : 'update';
  const infer = clause.infer as Node | undefined;
  if (infer?.conname) throw notSupported(`ON CONFLICT ON CONSTRAINT is not supported on Redis foreign table ${t.display}`, targetHint(t, identity));
  if (infer?.whereClause) throw notSupported(`ON CONFLICT (...) WHERE is not supported on Redis foreign table ${t.display}`, targetHint(t, identity));
  if (infer) {
    const named: number[] = [];
    for (const e of (infer.indexElems as Node[] | undefined) ?? []) {
      const el = inner(e);
      if (el.expr || el.collation || el.opclass) throw notSupported(`ON CONFLICT on an expression is not supported on Redis foreign table ${t.display}`, targetHint(t, identity));
      const i = spec.columns.findIndex((c) => c.name === el.name);
      if (i < 0) throw new PgError(SqlState.UndefinedColumn, `column "${String(el.name)}" does not exist`, { position: charPos(Number(infer.location)) });
      named.push(i);
    }
    const same = named.length === identity.length && identity.every((i) => named.includes(i));
    if (!same) throw notSupported(`ON CONFLICT (${named.map((i) => spec.columns[i]!.name).join(', ')}) does not name what identifies a row of Redis foreign table ${t.display}`, targetHint(t, identity));
  }
  if (action === 'nothing') return { action, identity, nx: true };
  if (!infer) {
    // Postgres's own answer to DO UPDATE without a target.
    throw new PgError(SqlState.SyntaxError, 'ON CONFLICT DO UPDATE requires inference specification or constraint name', { hint: 'For example, ON CONFLICT (column_name).', position: charPos(Number(clause.location)) });
  }
  const overwriteHint = `Redis applies DO UPDATE only as an overwrite: SET ${storedColumns(spec, identity).map((i) => `${spec.columns[i]!.name} = EXCLUDED.${spec.columns[i]!.name}`).join(', ') || `${spec.columns[identity[identity.length - 1]!]!.name} = EXCLUDED.${spec.columns[identity[identity.length - 1]!]!.name}`}.`;
  if (clause.whereClause) throw notSupported(`ON CONFLICT DO UPDATE ... WHERE is not supported on Redis foreign table ${t.display}`, overwriteHint);
  const assigned = new Set<number>();
  for (const rt of ((clause.targetList as Node[] | undefined) ?? []).map((x) => inner(x))) {
    const i = spec.columns.findIndex((c) => c.name === rt.name);
    if (i < 0) throw new PgError(SqlState.UndefinedColumn, `column "${String(rt.name)}" of relation "${t.resolved.name}" does not exist`, { position: charPos(Number(rt.location)) });
    if (rt.indirection || !isExcludedRef(rt.val, String(rt.name))) {
      throw notSupported(`ON CONFLICT DO UPDATE SET ${String(rt.name)} = <expression> is not supported on Redis foreign table ${t.display}`, `${overwriteHint} A value computed from the existing row or differing from the proposed one would need a read before the write.`);
    }
    assigned.add(i);
  }
  const missing = storedColumns(spec, identity).filter((i) => !assigned.has(i));
  if (missing.length) throw notSupported(`ON CONFLICT DO UPDATE must set ${missing.map((i) => spec.columns[i]!.name).join(', ')} on Redis foreign table ${t.display}`, overwriteHint);
  // A set member, or a zset member without a score column, stores nothing beyond its identity.
  return { action, identity, nx: storedColumns(spec, identity).length === 0 };
}

/** Columns whose values Redis stores besides the identity (hash value, zset score, string value). */
function storedColumns(spec: TableSpec, identity: number[]): number[] {
  return spec.roles.flatMap((r, i) => (!identity.includes(i) && (r.kind === 'value' || r.kind === 'score') ? [i] : []));
}

function isExcludedRef(val: unknown, column: string): boolean {
  if (nodeKind(val) !== 'ColumnRef') return false;
  const f = ((inner(val).fields as Node[] | undefined) ?? []).map((x) => (nodeKind(x) === 'String' ? String(inner(x).sval) : '*'));
  return f.length === 2 && f[0] === 'excluded' && f[1] === column;
}

/** A row's identity as one string (key and member), for sets of identities. */
export function identityKey(spec: TableSpec, plan: ConflictPlan, row: readonly (string | null)[]): string {
  const parts = plan.identity.map((i) => row[i] ?? '\u0000null');
  if (spec.multi === 'none') parts.unshift(spec.key);
  return JSON.stringify(parts);
}

/** Members asked about per command: one HMGET/SMISMEMBER/ZMSCORE of 150,000 overflowed the stack (spread arguments). */
const EXISTING_PER_CALL = 1000;

/**
 * Which of the proposed rows' identities exist now, as the statement sees Redis (its transaction's
 * pending writes included). Only DO NOTHING needs this, for its count and RETURNING; the writes
 * themselves are NX, so a concurrent insert is never overwritten. Asked EXISTING_PER_CALL members at a
 * time, giving way (`giveWay`) while a big statement's rows are grouped.
 */
export async function existingIdentities(redis: RedisAccess, t: ForeignTable, plan: ConflictPlan, rows: readonly (readonly (string | null)[])[], pending: PendingWrites | undefined, giveWay = new GiveWay()): Promise<ChunkedSet<string>> {
  const spec = t.spec;
  const found = new ChunkedSet<string>();
  // A row with a NULL in its identity conflicts with nothing.
  const isWanted = (r: readonly (string | null)[]): boolean => plan.identity.every((i) => r[i] !== null);
  if (!rows.some(isWanted)) return found;
  if (pending?.on(t).length) {
    await readRows(redis, t, {}, pending, {
      row(_key, values) {
        found.add(identityKey(spec, plan, values.map((v) => (v === null ? null : v.toString()))));
      },
    });
    return found;
  }
  const client = (await redis.client(t.conn)) as unknown as Redis;
  const keyCol = spec.multi === 'rows' ? plan.identity[0]! : -1;
  const conflict = typeOf(spec).conflict!;
  const memberCol = conflict.role ? plan.identity[plan.identity.length - 1]! : -1;
  // Each key's members, each once, in the order the rows give them.
  const byKey = new ChunkedMap<{ seen: ChunkedSet<string>; list: string[] }>();
  for (let i = 0; i < rows.length; i++) {
    const p = giveWay.at(i);
    if (p) await p;
    const r = rows[i]!;
    if (!isWanted(r)) continue;
    const key = keyCol >= 0 ? r[keyCol]! : spec.key;
    let members = byKey.get(key);
    if (!members) byKey.set(key, (members = { seen: new ChunkedSet(), list: [] }));
    const m = memberCol >= 0 ? r[memberCol]! : undefined;
    if (m !== undefined && !members.seen.has(m)) {
      members.seen.add(m);
      members.list.push(m);
    }
  }
  await Promise.all(
    [...byKey.entries()].map(async ([key, { list: members }]) => {
      try {
        // A key alone (a string, a multi_* row): asked once, with no members.
        for (let at = 0; at === 0 || at < members.length; at += EXISTING_PER_CALL) {
          const has = await conflict.existing(client, key, members.slice(at, at + EXISTING_PER_CALL));
          for (const m of has) found.add(JSON.stringify(conflict.role ? [key, m] : [key]));
        }
      } catch (e) {
        throw await mapRedisErrorWithType(e, { key, table: t.display, expected: spec.type, server: serverOf(client) }, client);
      }
    }),
  );
  return found;
}
