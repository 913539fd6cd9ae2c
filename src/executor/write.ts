/**
 * Writes: INSERT, UPDATE and DELETE on a Redis foreign table become a SELECT that upstream evaluates
 * (DESIGN §3). Upstream computes every new row (casts, defaults, expressions, subqueries) and, for
 * UPDATE and DELETE, which rows of the table match, over the table's rows passed in as parameters and
 * numbered; the proxy turns the result into Redis commands. The SELECT's leading columns carry what the
 * proxy needs (row number, new values); RETURNING columns follow and go to the client.
 *
 *   INSERT: SELECT q.*, r.* FROM (SELECT CAST(s.k1 AS type) ... FROM (<source>) AS s(k1, ...)) AS q
 *             CROSS JOIN LATERAL (SELECT <returning> FROM (SELECT q.c1 AS "col", ...) AS alias) AS r
 *   UPDATE: SELECT q.*, r.* FROM (SELECT alias.rid, <new value or alias.col> ... FROM <rows> AS alias
 *             [WHERE <cond>]) AS q CROSS JOIN LATERAL (...returning over the new row...) AS r
 *   UPDATE ... FROM ... RETURNING, whose RETURNING also names the FROM items:
 *           SELECT alias.rid, n.c1, ..., r.* FROM <rows> AS alias, <from>, LATERAL (SELECT <new values>) AS n,
 *             LATERAL (SELECT <returning> FROM (SELECT n.c1 AS "col", ...) AS alias) AS r [WHERE <cond>]
 *   DELETE: SELECT alias.rid, alias.col, ..., <returning> FROM <rows> AS alias [, <using>] [WHERE <cond>]
 * (q, r, n and c1 are spelled __redis_fdw_q, ...: RETURNING sees them through LATERAL, and a client's
 * `RETURNING c1` must fail as it would on a table.)
 */
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { isUtf8Encoding } from '../protocol/encoding.js';
import { inner, isStarTarget, nodeKind, returningList, type Node, type RangeVarRef, type StatementInfo } from '../sql/analyze.js';
import type { NameIndex } from '../sql/classify.js';
import { quoteIdent } from '../sql/quote.js';
import { wholeRowLocations, wholeRowNames } from '../sql/whole-row.js';
import { relationSpan, TextBuilder, tokensOf, type Replace, type Token } from '../sql/text-builder.js';
import { typeOf } from '../redis/types/type.js';
import type { SessionPort } from '../session/types.js';
import { planConflict, type ConflictPlan } from './upsert.js';
import { GiveWay } from './give-way.js';
import { columnsUsed, returnsStar, type ColumnUse } from '../sql/column-use.js';
import { checkPrivilege, derivedRows, resolveTables, rowArray, rowParamType, ROW_ID, type ForeignRead, type ForeignTable, type Privilege, type ReadPlan, type Resolver } from './select.js';

export type WriteKind = 'insert' | 'update' | 'delete';

export interface WritePlan {
  kind: WriteKind;
  info: StatementInfo;
  target: ForeignTable;
  targetRef: RangeVarRef;
  /** Other foreign tables the statement reads (INSERT ... SELECT FROM, USING, subqueries). */
  reads: ForeignRead[];
  /** First parameter of the target's rows (UPDATE and DELETE). */
  targetParam: number;
  text: string;
  toOriginal: (n: number) => number;
  paramTypes: number[];
  clientParams: number;
  /** Result columns the proxy keeps (row number and row values) before the RETURNING ones. */
  leading: number;
  /** The leading row values come as the hex of their UTF-8 bytes (utf8Hex): a session whose client_encoding isn't UTF-8. */
  hexValues: boolean;
  returning: boolean;
  /** What the statement needs on its target: the write itself, and SELECT when it reads the target's rows. */
  targetPrivileges: Privilege[];
  /** The target's columns each privilege is needed on (column privileges). */
  targetUses: Partial<Record<Privilege, ColumnUse>>;
  /** INSERT ... ON CONFLICT: what Redis does with an entry that exists. */
  conflict: ConflictPlan | undefined;
  /**
   * INSERT whose source's width the text doesn't tell (`SELECT *`, a set operation, TABLE): the error
   * for a source of only `available` columns, in place of upstream's about the rewrite's column list.
   */
  narrowSource: ((available: number) => PgError) | undefined;
}

/** The proxy's own names in the evaluating SELECT (see the top of this file). */
const Q = '__redis_fdw_q';
const R = '__redis_fdw_r';
const N = '__redis_fdw_n';
const C = (i: number): string => `__redis_fdw_c${i + 1}`;

export const WRITE_KINDS: Record<string, WriteKind> = { InsertStmt: 'insert', UpdateStmt: 'update', DeleteStmt: 'delete' };

const notSupported = (what: string, hint?: string): PgError => new PgError(SqlState.FeatureNotSupported, what, hint ? { hint } : {});

/**
 * Plans a write whose target is a Redis foreign table; `undefined` when the target isn't one (reads
 * of foreign tables in it are then the read path's job).
 */
export async function planWrite(port: SessionPort, names: NameIndex, text: string, info: StatementInfo, clientTypes: readonly number[], base = 0, resolve: Resolver = resolveTables): Promise<WritePlan | undefined | 'failed'> {
  const kind = WRITE_KINDS[info.kind];
  const targetRef = info.targets[0];
  if (!kind || !targetRef || !names.has(targetRef.relname)) return undefined;
  const readRefs = info.reads.filter((r) => names.has(r.relname));
  const res = await resolve(port, [targetRef, ...readRefs]);
  if (res.kind === 'failed') return 'failed';
  const [target, ...readTables] = res.tables;
  if (!target) return undefined;
  const b0 = new TextBuilder(text);
  const q = info.node;
  const returning = returningList(q).length > 0;
  const clause = q.onConflictClause as Node | undefined;
  const conflict = kind === 'insert' && clause ? planConflict(clause, target, (byte) => charPos(b0, byte - base)) : undefined;
  const { privileges: targetPrivileges, uses: targetUses } = targetNeeds(kind, q, targetRef, target);
  for (const p of targetPrivileges) checkPrivilege(target, p, targetUses[p]);
  const refuseUpdate = typeOf(target.spec).refuseUpdate;
  if (kind === 'update' && refuseUpdate) throw refuseUpdate(target.display);

  const utf8 = isUtf8Encoding(port.clientEncoding);
  const clientParams = Math.max(info.maxParam, clientTypes.length);
  const paramTypes = [...clientTypes];
  while (paramTypes.length < clientParams) paramTypes.push(0);
  let next = paramTypes.length + 1;
  const reads: ForeignRead[] = [];
  readTables.forEach((t, i) => {
    if (!t) return;
    const uses = columnsUsed(q, readRefs[i]!, t.spec.columns.map((c) => c.name));
    checkPrivilege(t, 'select', uses);
    reads.push({ ref: readRefs[i]!, table: t, firstParam: next, uses });
    for (let c = 0; c < t.spec.columns.length; c++) paramTypes.push(rowParamType(utf8));
    next += t.spec.columns.length;
  });
  const targetParam = next;
  if (kind !== 'insert') for (let c = 0; c < target.spec.columns.length; c++) paramTypes.push(rowParamType(utf8));

  const array = (n: number): string => rowArray(n, utf8);
  const tokens = tokensOf(text);
  const replaces: Replace[] = reads.map((r) => {
    const alias = r.ref.alias === undefined ? ` AS ${quoteIdent(r.ref.relname)}` : '';
    return { ...relationSpan(tokens, r.ref.location - base), sql: `${derivedRows(r.table, r.firstParam, array, undefined)}${alias}` };
  });
  const b = new TextBuilder(text, replaces);
  const cols = target.spec.columns;
  const alias = targetRef.alias ?? targetRef.relname;
  const stmtStart = tokens.findIndex((t) => t.depth === 0 && t.text === kind);
  if (stmtStart < 0) throw new Error(`no ${kind} keyword in ${text}`);
  const end = statementEnd(tokens, text);
  const retTok = returning ? tokens.findIndex((t, i) => i > stmtStart && t.depth === 0 && t.text === 'returning') : -1;
  const bodyEnd = retTok >= 0 ? tokens[retTok]!.start : end;

  // WITH ... stays in front.
  if (stmtStart > 0) b.copy(tokens[0]!.start, tokens[stmtStart]!.start);
  const value = utf8 ? (sql: string): string => sql : utf8Hex;
  const lead = kind === 'insert' ? cols.map((_, i) => value(`${Q}.${C(i)}`)) : [`${Q}.${ROW_ID}`, ...cols.map((_, i) => value(`${Q}.${C(i)}`))];
  const rows = derivedRows(target, targetParam, array, ROW_ID);
  let narrowSource: WritePlan['narrowSource'];
  // DELETE's RETURNING sees the old row and the USING tables, UPDATE ... FROM's the new row and the FROM
  // items: each is evaluated right beside them.
  const beside = returning && (kind === 'delete' || (kind === 'update' && ((q.fromClause as unknown[] | undefined)?.length ?? 0) > 0));
  if (kind === 'delete' || beside) {
    filterBody(b, kind, info, target, targetRef, tokens, stmtStart, bodyEnd, base, rows, returning ? { start: tokens[retTok]!.end, end } : undefined, value);
  } else {
    b.emit(`SELECT ${lead.join(', ')}${returning ? `, ${R}.*` : ''} FROM (`, tokens[stmtStart]!.start);
    if (kind === 'insert') narrowSource = await insertBody(b, info, target, tokens, stmtStart, bodyEnd, base);
    else filterBody(b, kind, info, target, targetRef, tokens, stmtStart, bodyEnd, base, rows, undefined, (sql) => sql);
    b.emit(`) AS ${Q}`);
  }
  if (returning && !beside) {
    b.emit(' CROSS JOIN LATERAL (SELECT ', tokens[retTok]!.start);
    b.copy(tokens[retTok]!.end, end);
    b.emit(` FROM ${newRowOf(target, Q, info)} AS ${quoteIdent(alias)}) AS ${R}`, tokens[retTok]!.start);
  }
  if (process.env.REDIS_FDW_PROXY_DEBUG_SQL) process.stderr.write(`${b.text}\n`);
  return {
    kind,
    info,
    target,
    targetRef,
    reads,
    targetParam,
    text: b.text,
    toOriginal: b.toOriginal,
    paramTypes,
    clientParams,
    leading: lead.length,
    hexValues: !utf8,
    returning,
    targetPrivileges,
    targetUses,
    conflict,
    narrowSource,
  };
}

/**
 * Whether upstream's evaluation of the write has no effect of its own: an INSERT ... VALUES of
 * constants, parameters, operators and casts, with no function call, subquery, WITH, foreign read or
 * column default to run. Upstream may then end its implicit transaction before Redis has applied
 * the write (nothing there to roll back), which lets the client's Sync be answered locally.
 */
export function evaluatesPurely(plan: WritePlan): boolean {
  const q = plan.info.node;
  if (plan.kind !== 'insert' || q.withClause || plan.reads.length || !q.selectStmt) return false;
  const sel = inner(q.selectStmt);
  if (!sel.valuesLists) return false;
  const listed = ((q.cols as Node[] | undefined) ?? []).map((c) => String(inner(c).name));
  if (plan.target.spec.columns.some((c) => c.default !== undefined && listed.length > 0 && !listed.includes(c.name))) return false;
  const stack: unknown[] = [sel.valuesLists, q.returningClause, q.onConflictClause];
  while (stack.length) {
    const x = stack.pop();
    // One push per element: a 150,000-row VALUES spread into one call overflowed the stack.
    if (Array.isArray(x)) for (const y of x) stack.push(y);
    else if (x !== null && typeof x === 'object') {
      const k = nodeKind(x);
      if (k === 'FuncCall' || k === 'SubLink' || k === 'SetToDefault' || k === 'CoalesceExpr' || k === 'MinMaxExpr' || k === 'SQLValueFunction') return false;
      for (const v of Object.values(x)) if (v !== null && typeof v === 'object') stack.push(v);
    }
  }
  return true;
}

/**
 * EXPLAIN of a write (planned from the EXPLAIN's whole text, so the evaluating SELECT keeps the
 * EXPLAIN and its options in front): upstream explains that SELECT, as it explains a read, with the
 * rows it would be given (none: EXPLAIN reads nothing from Redis). The target of UPDATE and DELETE is
 * read like any other table, so EXPLAIN shows its Redis scan.
 */
export function explainPlanOf(explain: StatementInfo, w: WritePlan): ReadPlan {
  const reads = w.kind === 'insert' ? w.reads : [...w.reads, { ref: w.targetRef, table: w.target, firstParam: w.targetParam }];
  return { info: explain, reads, rewritten: { text: w.text, toOriginal: w.toOriginal }, paramTypes: w.paramTypes, clientParams: w.clientParams, carrier: 'params', sources: undefined };
}

/** Byte offset where the statement ends: before a trailing semicolon. */
function statementEnd(tokens: Token[], text: string): number {
  let i = tokens.length - 1;
  while (i >= 0 && tokens[i]!.text === ';') i--;
  return i >= 0 ? tokens[i]!.end : Buffer.byteLength(text);
}

/**
 * A row value as the proxy reads it in a session whose client_encoding isn't UTF-8: the hex of its
 * output's UTF-8 bytes. Upstream converts whatever it sends into the client's encoding, but a value
 * on its way to Redis needn't be representable there (a twin table's UPDATE never shows it to the
 * client); RETURNING columns, which the client sees, are left to convert, and fail, as on the table.
 * `format('%s')` is the type's output function (a cast to text isn't, for bool or char(n)).
 */
function utf8Hex(sql: string): string {
  return `CASE WHEN pg_catalog.num_nulls(${sql}) = 0 THEN pg_catalog.encode(pg_catalog.convert_to(pg_catalog.format('%s', ${sql}), 'UTF8'), 'hex') END`;
}

function castTo(sql: string, type: string): string {
  return type === 'text' ? `(${sql})::pg_catalog.text` : `CAST((${sql}) AS ${type})`;
}

const defaultOf = (c: { default?: string; type: string }): string => (c.default === undefined ? `CAST(NULL AS ${c.type})` : castTo(c.default, c.type));

function undefinedColumn(name: string, table: ForeignTable, position?: number): PgError {
  return new PgError(SqlState.UndefinedColumn, `column "${name}" of relation "${table.resolved.name}" does not exist`, position === undefined ? {} : { position });
}

/**
 * What a write needs on its target, as Postgres checks it: the write on the columns it stores (INSERT's
 * list, or every column; UPDATE's SET), SELECT on the columns it reads (WHERE, SET's expressions,
 * RETURNING, ON CONFLICT's target) when it reads any, and UPDATE on what ON CONFLICT DO UPDATE sets.
 */
function targetNeeds(kind: WriteKind, q: Node, ref: RangeVarRef, target: ForeignTable): { privileges: Privilege[]; uses: Partial<Record<Privilege, ColumnUse>> } {
  const names = target.spec.columns.map((c) => c.name);
  const indexes = (list: readonly Node[] | undefined): Set<number> => new Set((list ?? []).map((c) => names.indexOf(String(inner(c).name))).filter((i) => i >= 0));
  const clause = q.onConflictClause as Node | undefined;
  // An INSERT's other column references are its source's; the target is read only by these.
  const read = kind === 'insert' ? columnsUsed([returningList(q), clause?.whereClause, clause?.targetList], ref, names) : columnsUsed(q, ref, names);
  const inferred = indexes((clause?.infer as Node | undefined)?.indexElems as Node[] | undefined);
  const select: ColumnUse = read === 'all' || returnsStar(q) ? 'all' : new Set([...read, ...inferred]);
  const uses: Partial<Record<Privilege, ColumnUse>> = { select };
  if (kind === 'insert') uses.insert = (q.cols as Node[] | undefined)?.length ? indexes(q.cols as Node[]) : 'all';
  if (kind === 'update') uses.update = indexes(q.targetList as Node[]);
  const privileges: Privilege[] = [kind];
  if (select === 'all' || select.size > 0) privileges.push('select');
  if (clause?.action === 'ONCONFLICT_UPDATE') {
    privileges.push('update');
    uses.update = indexes(clause.targetList as Node[]);
  }
  return { privileges, uses };
}

/** The token that starts at byte `start`, if one does. */
function tokenAt(tokens: readonly Token[], start: number): Token | undefined {
  let lo = 0;
  let hi = tokens.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const s = tokens[mid]!.start;
    if (s === start) return tokens[mid];
    if (s < start) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

/** INSERT: the source's rows, one cast per declared column, defaults where the column list leaves one out. */
async function insertBody(b: TextBuilder, info: StatementInfo, target: ForeignTable, tokens: Token[], stmtStart: number, bodyEnd: number, base: number): Promise<WritePlan['narrowSource']> {
  const q = info.node;
  const cols = target.spec.columns;
  if (q.override && q.override !== 'OVERRIDING_NOT_SET') throw notSupported('OVERRIDING is not supported on Redis foreign tables');
  const listed = ((q.cols as Node[] | undefined) ?? []).map((c) => inner(c));
  const targetCols: number[] = [];
  for (const c of listed) {
    if (c.indirection) throw notSupported('INSERT into a subfield or element of a column is not supported on Redis foreign tables');
    const i = cols.findIndex((x) => x.name === c.name);
    if (i < 0) throw undefinedColumn(String(c.name), target, charPos(b, Number(c.location) - base));
    if (targetCols.includes(i)) throw new PgError(SqlState.DuplicateColumn, `column "${String(c.name)}" specified more than once`, { position: charPos(b, Number(c.location) - base) });
    targetCols.push(i);
  }
  const sel = q.selectStmt ? inner(q.selectStmt) : undefined;
  // Without a column list, a source with fewer columns fills the first ones; the rest get defaults.
  let order = listed.length ? targetCols : cols.map((_, i) => i);
  if (!listed.length && sel) {
    const width = sourceWidth(sel);
    if (width !== undefined && width < cols.length) order = order.slice(0, width);
  }
  if (!sel) {
    // DEFAULT VALUES
    b.emit(`SELECT ${cols.map((c, i) => `${defaultOf(c)} AS ${C(i)}`).join(', ')}`);
    return undefined;
  }
  // The source begins at the first top-level token after the target (and its column list).
  const relTok = tokens.findIndex((t) => t.start === Number((q.relation as Node).location) - base);
  let i = relTok + 1;
  while (i < tokens.length && tokens[i]!.depth === 0 && !['values', 'select', 'with', 'table', '(', 'default'].includes(tokens[i]!.text)) i++;
  if (listed.length && tokens[i]?.text === '(') {
    while (i < tokens.length && !(tokens[i]!.text === ')' && tokens[i]!.depth === 0)) i++;
    i++;
    while (i < tokens.length && tokens[i]!.depth === 0 && !['values', 'select', 'with', 'table', '(', 'default'].includes(tokens[i]!.text)) i++;
  }
  const srcStart = tokens[i]!.start;
  const values = sel.valuesLists as Node[] | undefined;
  const extra: Replace[] = [];
  // As Postgres: the error points at the first listed column left without an expression.
  const moreTargets = (width: number): PgError =>
    new PgError(SqlState.SyntaxError, 'INSERT has more target columns than expressions', { position: charPos(b, Number(listed[width]?.location) - base) });
  if (values) {
    // An item's token by a binary search of the tokens (in order of start): a scan of them per item
    // made a 10,000-row VALUES take 0.45 s (quadratic), and a Map of 600,000 tokens is built in one go.
    // 100,000 rows' items held the loop for ~30 ms of a prepared INSERT's Parse.
    const giveWay = new GiveWay();
    for (let r = 0; r < values.length; r++) {
      const p = giveWay.at(r);
      if (p) await p;
      const row = values[r];
      const items = (inner(row).items as Node[] | undefined) ?? [];
      const firstLoc = Number(inner(items[0]).location ?? 0) - base;
      if (items.length > order.length) throw new PgError(SqlState.SyntaxError, 'INSERT has more expressions than target columns', { position: charPos(b, Number(inner(items[order.length]).location ?? firstLoc + base) - base) });
      if (items.length < order.length) throw moreTargets(items.length);
      items.forEach((it, k) => {
        const kind = nodeKind(it);
        if (kind !== 'SetToDefault' && kind !== 'ParamRef') return;
        const col = cols[order[k]!]!;
        const tok = tokenAt(tokens, Number(inner(it).location) - base);
        if (!tok) return;
        // DEFAULT isn't allowed in a VALUES list of its own; a bare $n gets the column's type, as INSERT would give it.
        if (kind === 'SetToDefault') extra.push({ start: tok.start, end: tok.end, sql: defaultOf(col) });
        else if (kind === 'ParamRef') extra.push({ start: tok.start, end: tok.end, sql: `CAST(${tok.text} AS ${col.type})` });
      });
    }
  } else if (sel.op === 'SETOP_NONE' && sel.targetList) {
    const tl = sel.targetList as Node[];
    const width = sourceWidth(sel);
    if (width !== undefined && width > order.length) throw new PgError(SqlState.SyntaxError, 'INSERT has more expressions than target columns', { position: charPos(b, Number(inner(tl[order.length]).location) - base) });
    if (width !== undefined && width < order.length) throw moreTargets(width);
  }
  const casts = cols.map((c, ci) => {
    const k = order.indexOf(ci);
    return `${k < 0 ? defaultOf(c) : castTo(`s.k${k + 1}`, c.type)} AS ${C(ci)}`;
  });
  // ON CONFLICT is the proxy's to apply (upsert.ts): the source ends where it begins.
  const conflictAt = q.onConflictClause ? Number((q.onConflictClause as Node).location) - base : bodyEnd;
  b.emit(`SELECT ${casts.join(', ')} FROM (`, srcStart);
  b.copyWith(srcStart, Math.min(bodyEnd, conflictAt), extra);
  b.emit(`) AS s(${order.map((_, k) => `k${k + 1}`).join(', ')})`, srcStart);
  if (values || sourceWidth(sel) !== undefined) return undefined;
  return (available) =>
    listed.length
      ? moreTargets(available)
      : notSupported(`INSERT into Redis foreign table ${target.display} from a source of ${available} columns, fewer than the table's ${cols.length}`, 'List the target columns, or name the source columns instead of *.');
}

/** UPDATE and DELETE: the numbered rows of the target, filtered by the statement's own FROM/USING and WHERE. */
/** `value` shapes the row values the proxy reads when this SELECT is the outermost one (see utf8Hex). */
function filterBody(b: TextBuilder, kind: WriteKind, info: StatementInfo, target: ForeignTable, ref: RangeVarRef, tokens: Token[], stmtStart: number, bodyEnd: number, base: number, rows: string, returning: { start: number; end: number } | undefined, value: (sql: string) => string): void {
  const q = info.node;
  const cols = target.spec.columns;
  const alias = quoteIdent(ref.alias ?? ref.relname);
  if (q.whereClause && nodeKind(q.whereClause) === 'CurrentOfExpr') throw notSupported('WHERE CURRENT OF is not supported on Redis foreign tables');
  const top = (word: string): number => tokens.findIndex((t, i) => i > stmtStart && t.depth === 0 && t.text === word && t.start < bodyEnd);
  const fromWord = kind === 'update' ? 'from' : 'using';
  const setTok = kind === 'update' ? top('set') : -1;
  // DELETE FROM: the FROM before the target is not a from list.
  const fromTok = tokens.findIndex((t, i) => i > stmtStart && t.depth === 0 && t.text === fromWord && t.start < bodyEnd && t.start > Number(ref.location) - base);
  const whereTok = top('where');
  const restStart = fromTok >= 0 ? fromTok : whereTok;
  const newValues = cols.map((c) => `${alias}.${quoteIdent(c.name)}`);
  if (kind === 'update') {
    const setEnd = restStart >= 0 ? tokens[restStart]!.start : bodyEnd;
    assignments(b, q, target, tokens, setTok, setEnd, base, newValues);
  }
  const whereStart = whereTok >= 0 ? tokens[whereTok]!.start : bodyEnd;
  if (kind === 'update' && returning) {
    // UPDATE ... FROM ... RETURNING (planWrite): the new row, and RETURNING over it beside the FROM items.
    b.emit(`SELECT ${alias}.${ROW_ID} AS ${ROW_ID}, ${cols.map((_, i) => `${value(`${N}.${C(i)}`)} AS ${C(i)}`).join(', ')}, ${R}.*`, Number(ref.location) - base);
    b.emit(` FROM ${rows} AS ${alias}, `, Number(ref.location) - base);
    b.copy(tokens[fromTok]!.end, whereStart);
    b.emit(`, LATERAL (SELECT ${newValues.map((v, i) => `${v} AS ${C(i)}`).join(', ')}) AS ${N}, LATERAL (SELECT `, tokens[fromTok]!.start);
    // A bare `*` means the new row's columns and every FROM item's, as Postgres expands it.
    const star: Replace[] = [];
    const everything = [`${alias}.*`, ...fromItemNames((q.fromClause as Node[] | undefined) ?? []).map((n) => `${quoteIdent(n)}.*`)].join(', ');
    for (const e of returningList(q)) {
      const v = inner(inner(e).val);
      const fields = (v.fields as Node[] | undefined) ?? [];
      if (!isStarTarget(e) || fields.length !== 1) continue;
      const at = tokens.findIndex((t) => t.start === Number(v.location) - base);
      if (at >= 0) star.push({ start: tokens[at]!.start, end: tokens[at]!.end, sql: everything });
    }
    b.copyWith(returning.start, returning.end, star);
    b.emit(` FROM ${newRowOf(target, N, info)} AS ${alias}) AS ${R}`, returning.start);
    if (whereTok >= 0) {
      b.emit(' ');
      b.copy(whereStart, bodyEnd);
    }
    return;
  }
  b.emit(`SELECT ${alias}.${ROW_ID} AS ${ROW_ID}, ${newValues.map((v, i) => `${value(v)} AS ${C(i)}`).join(', ')}`, Number(ref.location) - base);
  if (returning) {
    // `*` and `alias.*` mean the table's declared columns, not the row number beside them.
    const star: Replace[] = [];
    const own = cols.map((c) => `${alias}.${quoteIdent(c.name)}`).join(', ');
    for (const e of returningList(q)) {
      if (!isStarTarget(e)) continue;
      const at = tokens.findIndex((t) => t.start === Number(inner(inner(e).val).location) - base);
      const starTok = tokens.findIndex((t, i) => i >= at && t.text === '*');
      if (at >= 0 && starTok >= 0) star.push({ start: tokens[at]!.start, end: tokens[starTok]!.end, sql: own });
    }
    // So does the whole row (RETURNING h), which also has the table's row type.
    const name = ref.alias ?? ref.relname;
    if (!cols.some((c) => c.name === name)) {
      const type = `${quoteIdent(target.resolved.schema)}.${quoteIdent(target.resolved.name)}`;
      // A bare `RETURNING h` keeps its output name.
      const bare = new Set(returningList(q).flatMap((e) => (inner(e).name === undefined && nodeKind(inner(e).val) === 'ColumnRef' ? [Number(inner(inner(e).val).location)] : [])));
      for (const at of wholeRowLocations(returningList(q), name)) {
        const tok = tokens.find((t) => t.start === at - base);
        if (tok) star.push({ start: tok.start, end: tok.end, sql: `ROW(${own})::${type}${bare.has(at) ? ` AS ${quoteIdent(name)}` : ''}` });
      }
    }
    b.emit(', ');
    b.copyWith(returning.start, returning.end, star);
  }
  b.emit(` FROM ${rows} AS ${alias}`, Number(ref.location) - base);
  if (fromTok >= 0) {
    b.emit(', ', tokens[fromTok]!.start);
    b.copy(tokens[fromTok]!.end, bodyEnd);
  } else if (whereTok >= 0) {
    b.emit(' ');
    b.copy(tokens[whereTok]!.start, bodyEnd);
  }
}

/**
 * The new row RETURNING reads, from the columns `from`.c1... A whole-row reference to it (RETURNING h)
 * must have the table's row type, which a function's composite result has and a derived table hasn't.
 */
function newRowOf(target: ForeignTable, from: string, info: StatementInfo): string {
  const cols = target.spec.columns;
  const alias = info.targets[0]!.alias ?? info.targets[0]!.relname;
  if (wholeRowNames({ r: returningList(info.node) }).has(alias)) {
    const type = `${quoteIdent(target.resolved.schema)}.${quoteIdent(target.resolved.name)}`;
    return `pg_catalog.unnest(ARRAY[ROW(${cols.map((_, i) => `${from}.${C(i)}`).join(', ')})::${type}])`;
  }
  return `(SELECT ${cols.map((c, i) => `${from}.${C(i)} AS ${quoteIdent(c.name)}`).join(', ')})`;
}

/** The names a bare `*` expands through for each FROM item: its alias, or a table's name. */
function fromItemNames(items: Node[]): string[] {
  return items.flatMap((it) => {
    const k = nodeKind(it);
    const b = inner(it);
    const alias = b.alias ? String((b.alias as Node).aliasname) : undefined;
    if (k === 'RangeVar') return [alias ?? String(b.relname)];
    if (k === 'JoinExpr') return alias ? [alias] : fromItemNames([b.larg as Node, b.rarg as Node]);
    return alias ? [alias] : [];
  });
}

/** Fills in the new value of each column an UPDATE's SET list assigns. */
function assignments(b: TextBuilder, q: Node, target: ForeignTable, tokens: Token[], setTok: number, setEnd: number, base: number, newValues: string[]): void {
  const cols = target.spec.columns;
  const list = ((q.targetList as Node[] | undefined) ?? []).map((t) => inner(t));
  // Split the SET list's text at top-level commas: one piece per assignment, in order.
  const pieces: [number, number][] = [];
  let from = setTok + 1;
  for (let i = setTok + 1; i <= tokens.length; i++) {
    const t = tokens[i];
    if (!t || t.start >= setEnd || (t.depth === 0 && t.text === ',')) {
      pieces.push([from, i]);
      from = i + 1;
      if (!t || t.start >= setEnd) break;
    }
  }
  if (pieces.length !== list.length) throw notSupported('this form of UPDATE ... SET is not supported on Redis foreign tables', 'Write one "column = value" per column.');
  const seen = new Set<number>();
  list.forEach((rt, k) => {
    if (rt.indirection) throw notSupported('UPDATE of a subfield or element of a column is not supported on Redis foreign tables');
    if (nodeKind(rt.val) === 'MultiAssignRef') throw notSupported('UPDATE ... SET (a, b) = ... is not supported on Redis foreign tables', 'Write one "column = value" per column.');
    const ci = cols.findIndex((c) => c.name === rt.name);
    if (ci < 0) throw undefinedColumn(String(rt.name), target, charPos(b, Number(rt.location) - base));
    if (seen.has(ci)) throw new PgError(SqlState.SyntaxError, `multiple assignments to same column "${String(rt.name)}"`);
    seen.add(ci);
    const [a, z] = pieces[k]!;
    const eq = tokens.findIndex((t, i) => i >= a && i < z && t.depth === 0 && t.text === '=');
    const col = cols[ci]!;
    if (nodeKind(rt.val) === 'SetToDefault') {
      newValues[ci] = defaultOf(col);
      return;
    }
    const exprStart = tokens[eq + 1]!.start;
    const exprEnd = tokens[z - 1]!.end;
    newValues[ci] = castTo(b.slice(exprStart, exprEnd), col.type);
  });
}

/** How many columns an INSERT's source yields, when the parse tree says (VALUES, or a SELECT list without *). */
function sourceWidth(sel: Node): number | undefined {
  const values = sel.valuesLists as Node[] | undefined;
  if (values?.length) return ((inner(values[0]).items as Node[] | undefined) ?? []).length;
  if (sel.op !== 'SETOP_NONE' || !sel.targetList) return undefined;
  const tl = sel.targetList as Node[];
  return tl.some(isStarTarget) ? undefined : tl.length;
}

function charPos(b: TextBuilder, byte: number): number {
  return b.charAt(byte) + 1;
}
