/**
 * Running a planned write: the target's rows go in as parameters (UPDATE, DELETE), upstream's answer to
 * the evaluating SELECT is collected instead of forwarded, and its rows become Redis commands and the
 * client's RETURNING rows and command tag.
 */
import { Backend } from '../protocol/codes.js';
import { decodeDataRow, decodeErrorFields, decodeRowDescription, encodeCommandComplete, encodeDataRow, encodeError, encodeRowDescription, remapErrorPosition } from '../protocol/backend.js';
import { TextArrayBuilder } from '../protocol/text-array.js';
import type { Codec } from '../protocol/encoding.js';
import { extractPushdown, type ParamText } from '../sql/pushdown.js';
import { isStarTarget, returningList } from '../sql/analyze.js';
import { Req, type Capture } from '../session/expected-queue.js';
import { StatementOps, type SnapshotRow } from '../redis/row-ops.js';
import { checkText } from '../redis/text.js';
import type { ColumnRole, TableSpec } from '../redis/table-spec.js';
import { typeOf } from '../redis/types/type.js';
import type { RedisOp } from '../redis/write.js';
import { fetchReadParams, readRows, type ForeignTable, type PendingWrites, type RedisAccess } from './select.js';
import type { WritePlan } from './write.js';
import { existingIdentities, identityKey, type ConflictPlan } from './upsert.js';
import { ChunkedSet } from '../redis/types/chunked-map.js';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import type { PositionMap } from './replies.js';
import { GiveWay, type CancelSignal } from './give-way.js';

export interface PreparedWrite {
  /** Parameters after the client's: other foreign tables' rows, then the target's. */
  extra: Buffer[];
  snapshot: SnapshotRow[];
}

/**
 * Pages of a write's snapshot read. ioredis decodes a reply in the turns its bytes arrive in, and libuv
 * hands over up to 2 MB in one: the reader's first page of a single-key table (100,000 items, one round
 * trip) held the loop for 30-50 ms of CPU here. Pages of 5,000 (as the overlay's) cost a round trip each.
 */
const SNAPSHOT_READ = { batchSize: 5000 };

/** Reads what a write needs before upstream evaluates it. */
export async function prepareWrite(redis: RedisAccess, plan: WritePlan, param: ParamText, pending: PendingWrites | undefined): Promise<PreparedWrite> {
  const extra = await fetchReadParams(redis, { reads: plan.reads, carrier: 'params' }, param, { pending });
  const snapshot: SnapshotRow[] = [];
  if (plan.kind === 'insert') return { extra, snapshot };
  const table = plan.target;
  const spec = withIdentity(table.spec);
  const n = table.spec.columns.length;
  const arrays = table.spec.columns.map(() => new TextArrayBuilder());
  const keyCol = spec.roles.findIndex((r) => r.kind === 'key');
  const indexCol = spec.roles.findIndex((r) => r.kind === 'index');
  const scoreCol = spec.roles.findIndex((r) => r.kind === 'score');
  const pushdown = extractPushdown(plan.targetRef, table.spec, param);
  await readRows(redis, { ...table, spec }, { ...pushdown, limit: undefined }, pending, {
    row(key, values, staged) {
      const text: (string | null)[] = values.map((v) => {
        if (v === null) return null;
        if (Buffer.isBuffer(v)) {
          checkText(v, key, table.display);
          return v.toString('utf8');
        }
        return v;
      });
      for (let i = 0; i < n; i++) arrays[i]!.push(text[i] ?? null);
      snapshot.push({
        key: keyCol >= 0 ? text[keyCol]! : table.spec.key,
        values: text.slice(0, n),
        ...(indexCol >= 0 ? { index: Number(text[indexCol]) } : {}),
        ...(scoreCol >= 0 && text[scoreCol] !== null ? { score: text[scoreCol]! } : {}),
        ...(staged ? { staged } : {}),
      });
    },
  }, SNAPSHOT_READ);
  for (const a of arrays) extra.push(a.finish());
  return { extra, snapshot };
}

/** The table's roles plus what identifies a row when the declared columns don't: list index, zset score. */
function withIdentity(spec: TableSpec): TableSpec {
  // A multi_* row is its whole key: the key identifies it.
  const roles = spec.multi === 'aggregate' ? [] : (typeOf(spec).identityRoles ?? []);
  const extra: ColumnRole[] = roles.filter((kind) => !spec.roles.some((r) => r.kind === kind)).map((kind) => ({ kind }));
  if (extra.length === 0) return spec;
  return {
    ...spec,
    roles: [...spec.roles, ...extra],
    columns: [...spec.columns, ...extra.map((r) => ({ name: `__${r.kind}`, type: 'text', typeOid: 25, notNull: false }))],
  };
}

export type EvalResult = { kind: 'rows'; rows: (string | null)[][]; returning: Buffer[] } | { kind: 'error' } | { kind: 'skipped' };

/**
 * Collects upstream's answer to the evaluating SELECT's Execute; errors go to the client as they are.
 * Once `canceled()` says so, rows are no longer decoded: the statement fails with 57014 when the
 * answer has passed, without first decoding the rest of 100,000 rows.
 */
export function evalCapture(plan: WritePlan, map: PositionMap | undefined, codec?: Codec, canceled: () => boolean = () => false): { capture: Capture; result: Promise<EvalResult> } {
  const rows: (string | null)[][] = [];
  const returning: Buffer[] = [];
  // UPDATE and DELETE lead with the row number.
  const firstValue = plan.kind === 'insert' ? 0 : 1;
  let failed = false;
  let resolve!: (r: EvalResult) => void;
  const result = new Promise<EvalResult>((r) => (resolve = r));
  const capture: Capture = {
    kind: 'capture',
    req: Req.Execute,
    onFrame(code, buf, start, end) {
      if (code === Backend.DataRow) {
        if (canceled()) return null;
        const values = decodeDataRow(buf, start, end);
        // Upstream sends text in the client's encoding, or a value's UTF-8 bytes in hex (plan.hexValues); Redis gets UTF-8.
        rows.push(values.slice(0, plan.leading).map((v, i) => (v === null ? null : plan.hexValues && i >= firstValue ? Buffer.from(v.toString('latin1'), 'hex').toString('utf8') : codec ? codec.decode(v) : v.toString('utf8'))));
        if (plan.returning) returning.push(encodeDataRow(values.slice(plan.leading)));
        return null;
      }
      if (code === Backend.ErrorResponse) {
        failed = true;
        return map ? remapErrorPosition(buf, start, end, map) : Buffer.from(buf.subarray(start, end));
      }
      return null; // CommandComplete: the proxy says what happened instead.
    },
    onDone(outcome) {
      resolve(outcome === 'skipped' ? { kind: 'skipped' } : failed ? { kind: 'error' } : { kind: 'rows', rows, returning });
    },
  };
  return { capture, result };
}

export interface WriteOutcome {
  ops: RedisOp[];
  count: number;
  returning: Buffer[];
  tag: string;
}

/**
 * Upstream's rows as Redis commands; throws the PgError that makes the statement fail. A big statement's
 * rows are turned into commands in slices, giving way to other sessions, and stop with the statement's
 * 57014 (`signal`) when it is cancelled meanwhile: nothing has been sent to Redis yet.
 */
export async function writeOutcome(redis: RedisAccess, pending: PendingWrites | undefined, plan: WritePlan, prepared: PreparedWrite, result: { rows: (string | null)[][]; returning: Buffer[] }, maxValueBytes: number, signal?: CancelSignal): Promise<WriteOutcome> {
  const table: ForeignTable = plan.target;
  const ops = new StatementOps({ spec: table.spec, relname: table.resolved.name, maxValueBytes });
  const giveWay = new GiveWay(signal);
  const rows = result.rows;
  let returning: Buffer[] = [];
  let count = 0;
  if (plan.conflict) {
    count = await upsertOps(redis, pending, plan, plan.conflict, result, ops, returning, giveWay);
  } else if (plan.kind === 'insert') {
    for (let i = 0; i < rows.length; i++) {
      ops.insert(rows[i]!);
      const p = giveWay.at(i);
      if (p) await p;
    }
    count = rows.length;
    // Taken as it is: a spread into push() fails past ~120,000 rows (too many arguments).
    returning = result.returning;
  } else {
    // A row matched twice (UPDATE ... FROM a join) is changed once, as Postgres does.
    const seen = new ChunkedSet<number>();
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      const rid = Number(r[0]);
      if (!seen.has(rid)) {
        seen.add(rid);
        const old = prepared.snapshot[rid - 1]!;
        if (plan.kind === 'update') ops.update(old, r.slice(1));
        else ops.delete(old);
        if (plan.returning) returning.push(result.returning[i]!);
      }
      const p = giveWay.at(i);
      if (p) await p;
    }
    count = seen.size;
  }
  const tag = plan.kind === 'insert' ? `INSERT 0 ${count}` : `${plan.kind.toUpperCase()} ${count}`;
  return { ops: ops.finish(), count, returning, tag };
}

/**
 * INSERT ... ON CONFLICT: DO UPDATE writes every row (the overwrite is the update), and refuses a
 * statement that proposes one entry twice, as Postgres does; DO NOTHING writes NX and counts (and
 * returns) only the rows that were new, the first of duplicates included.
 */
async function upsertOps(redis: RedisAccess, pending: PendingWrites | undefined, plan: WritePlan, conflict: ConflictPlan, result: { rows: (string | null)[][]; returning: Buffer[] }, ops: StatementOps, returning: Buffer[], giveWay: GiveWay): Promise<number> {
  const spec = plan.target.spec;
  const seen = new ChunkedSet<string>();
  const rows = result.rows;
  if (conflict.action === 'update') {
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      const id = identityKey(spec, conflict, r);
      if (seen.has(id)) {
        throw new PgError(SqlState.CardinalityViolation, 'ON CONFLICT DO UPDATE command cannot affect row a second time', { hint: 'Ensure that no rows proposed for insertion within the same command have duplicate constrained values.' });
      }
      seen.add(id);
      ops.insert(r, conflict.nx);
      const p = giveWay.at(i);
      if (p) await p;
    }
    for (const b of result.returning) returning.push(b);
    return rows.length;
  }
  const existing = await existingIdentities(redis, plan.target, conflict, rows, pending, giveWay);
  let count = 0;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const id = identityKey(spec, conflict, r);
    if (!existing.has(id) && !seen.has(id)) {
      seen.add(id);
      ops.insert(r, true);
      count++;
      if (plan.returning) returning.push(result.returning[i]!);
    }
    const p = giveWay.at(i);
    if (p) await p;
  }
  return count;
}

/** RETURNING rows not yet fetched from a portal an Execute row limit suspended, and the tag to end with. */
export interface SuspendedRows {
  rows: Buffer[];
  tag: string;
}

const PORTAL_SUSPENDED = Buffer.from([Backend.PortalSuspended, 0, 0, 0, 4]);

/**
 * One Execute's share of a write's RETURNING rows, as Postgres serves a DML portal with a row limit: the
 * statement runs whole at the first Execute, then each Execute takes up to `maxRows` of its rows, with
 * PortalSuspended while the limit was reached, and a tag once fewer came. That tag, as Postgres 15
 * prints it, counts the rows of that last fetch, not the statement's.
 */
export function fetchRows(rows: Buffer[], tag: string, maxRows: number, continuing = false): { reply: Buffer; rest: SuspendedRows | undefined } {
  if (maxRows > 0 && rows.length >= maxRows) return { reply: Buffer.concat([...rows.slice(0, maxRows), PORTAL_SUSPENDED]), rest: { rows: rows.slice(maxRows), tag } };
  const last = maxRows > 0 || continuing ? tag.replace(/\d+$/, String(rows.length)) : tag;
  return { reply: Buffer.concat([...rows, encodeCommandComplete(last)]), rest: undefined };
}

/**
 * Upstream's error at Parse of a write's SELECT, when it is about the rewrite rather than the client's
 * statement (a source narrower than the column list the rewrite gave it): the client's own error in
 * its place. Undefined for every other reply.
 */
export function writeParseError(plan: WritePlan): ((code: number, buf: Buffer, start: number, end: number) => Buffer | undefined) | undefined {
  const narrowSource = plan.narrowSource;
  if (!narrowSource) return undefined;
  return (code, buf, start, end) => {
    if (code !== Backend.ErrorResponse) return undefined;
    const m = /^table "s" has (\d+) columns? available but \d+ columns specified$/.exec(decodeErrorFields(buf, start, end).message);
    return m ? encodeError(narrowSource(Number(m[1]))) : undefined;
  };
}

/** RowDescription for the client: the RETURNING columns only, or null for NoData. */
export function clientRowDescription(plan: WritePlan, buf: Buffer, start: number, end: number): Buffer | null {
  if (!plan.returning) return null;
  return encodeRowDescription(decodeRowDescription(buf, start, end).slice(plan.leading));
}

/** How many columns RETURNING yields (`*` counts the table's columns), for per-column result formats. */
export function returningWidth(plan: WritePlan): number {
  let n = 0;
  for (const e of returningList(plan.info.node)) n += isStarTarget(e) ? plan.target.spec.columns.length : 1;
  return n;
}
