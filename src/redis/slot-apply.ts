/**
 * A committed share applied on a Redis Cluster exactly once, slot by slot. A cluster runs WATCH and
 * MULTI/EXEC only over keys of one hash slot, so the share is cut per slot (each key's writes keep
 * their order; writes to different keys commute), and each slot's part runs under a marker key in
 * that same slot (applyGuarded: WATCH marker, stop if it exists, MULTI, the writes, SET marker, EXEC)
 * on a connection of its own to the master serving the slot. Masters are worked in parallel, a
 * master's slots one after another. Atomic per slot only: another client can see one slot's writes
 * before another's, and a crash can leave some slots applied (their markers say so to the replay).
 */
import type { Cluster, Redis } from 'ioredis';
import { GiveWay } from '../executor/give-way.js';
import { isPgError, PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { mapRedisError } from './errors.js';
import { lease, release } from './exclusive.js';
import { slotOf, slotTags } from './slots.js';
import { applyGuarded, expandPatterns, type ApplyResult, type StagedOp } from './write.js';

export interface SlotsOutcome {
  /** What EXEC answered in the slots that ran (commands Redis refused inside EXEC). */
  result: ApplyResult;
  /** Writes of slots that did not run, or whose outcome is unknown (`error` says why), and how many slots. */
  missed: number;
  missedSlots: number;
  error?: PgError;
  /** Every write, patterns expanded. */
  total: number;
}

/** A slot that moved (resharding, failover) is retried this many times after a refresh of the slot map. */
const ATTEMPTS = 3;

export async function applyPerSlot(cluster: Cluster, ops: readonly StagedOp[], markerFor: (tag: string) => string, markerTtlS: number, table: string): Promise<SlotsOutcome> {
  const bySlot = await groupBySlot(await expandPatterns(cluster, ops));
  const tags = await slotTags();
  const out: SlotsOutcome = { result: { applied: 0, failures: [] }, missed: 0, missedSlots: 0, total: 0 };
  for (const g of bySlot.values()) out.total += g.length;
  const miss = (slot: number, e: PgError): void => {
    out.missed += bySlot.get(slot)!.length;
    out.missedSlots++;
    if (!out.error || severity(e) > severity(out.error)) out.error = e;
  };

  let pending = [...bySlot.keys()];
  for (let attempt = 1; pending.length && attempt <= ATTEMPTS; attempt++) {
    if (attempt > 1) await refreshSlots(cluster);
    const masters = new Map(cluster.nodes('master').map((n) => [`${n.options.host}:${n.options.port}`, n]));
    const byMaster = new Map<Redis, number[]>();
    const moved: number[] = [];
    for (const slot of pending) {
      const node = masters.get(cluster.slots[slot]?.[0] ?? '');
      if (!node) moved.push(slot);
      else if (byMaster.has(node)) byMaster.get(node)!.push(slot);
      else byMaster.set(node, [slot]);
    }
    await Promise.all(
      [...byMaster].map(async ([node, slots]) => {
        const server = `${node.options.host}:${node.options.port}`;
        let conn: Redis | undefined;
        for (let i = 0; i < slots.length; i++) {
          const slot = slots[i]!;
          const marker = markerFor(tags[slot]!);
          try {
            conn ??= await lease(node);
          } catch (e) {
            // Nothing reached this master: its slots wait (for the replay).
            const err = mapRedisError(e, { key: marker, table, server });
            for (const rest of slots.slice(i)) miss(rest, err);
            return;
          }
          try {
            const g = await applyGuarded(conn, bySlot.get(slot)!, marker, markerTtlS, table);
            if (g.kind === 'applied') merge(out.result, g.result);
          } catch (e) {
            // The connection may be inside MULTI: never reused.
            release(node, conn, false);
            conn = undefined;
            const err = isPgError(e) ? e : new PgError(SqlState.FdwError, String(e));
            if (isMoved(err)) {
              moved.push(slot);
              continue;
            }
            miss(slot, err);
            if (err.code === SqlState.FdwUnableToEstablishConnection || err.code === SqlState.TransactionResolutionUnknown) {
              // The master is down or hung: its other slots aren't tried now (each would wait as long).
              for (const rest of slots.slice(i + 1)) miss(rest, err);
              return;
            }
          }
        }
        if (conn) release(node, conn, true);
      }),
    );
    pending = moved;
  }
  for (const slot of pending) {
    miss(slot, new PgError(SqlState.FdwUnableToEstablishConnection, `Redis Cluster hash slot ${slot} has no reachable master that serves it (the cluster is failing over or resharding) while writing foreign table ${table}`));
  }
  return out;
}

/** The writes per slot, each list in staging order. A key's slot is hashed once per run of that key. */
async function groupBySlot(ops: readonly StagedOp[]): Promise<Map<number, StagedOp[]>> {
  const giveWay = new GiveWay();
  const bySlot = new Map<number, StagedOp[]>();
  let lastKey: string | undefined;
  let slot = 0;
  for (let i = 0; i < ops.length; i++) {
    const s = ops[i]!;
    if (!('key' in s.op)) throw new Error(`${s.op.op} has no key: resolved before the apply`);
    if (s.op.key !== lastKey) {
      lastKey = s.op.key;
      slot = slotOf(lastKey);
    }
    const list = bySlot.get(slot);
    if (list) list.push(s);
    else bySlot.set(slot, [s]);
    if ((i & 1023) === 1023) {
      const p = giveWay.maybe();
      if (p) await p;
    }
  }
  return bySlot;
}

function merge(into: ApplyResult, r: ApplyResult): void {
  into.applied += r.applied;
  for (const f of r.failures) into.failures.push({ ...f, index: into.failures.length });
}

/** The slot is served elsewhere now: the map is refreshed and the slot retried (nothing ran: EXEC was refused whole). */
const isMoved = (e: PgError): boolean => / (?:MOVED|ASK) \d+ \S+$/.test(e.message);

/** Which error a report leads with: an unknown outcome says the most, a lost connection next. */
function severity(e: PgError): number {
  if (e.code === SqlState.TransactionResolutionUnknown) return 2;
  return e.code === SqlState.FdwUnableToEstablishConnection ? 1 : 0;
}

/** Bounded by the cluster's slotsRefreshTimeout; a failed refresh leaves the old map (the retry then fails). */
function refreshSlots(cluster: Cluster): Promise<void> {
  return new Promise((resolve) => cluster.refreshSlotsCache(() => resolve()));
}
