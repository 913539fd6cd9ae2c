/**
 * Finds the conjuncts of a WHERE clause that narrow what must be read from Redis. Pushdown may only
 * make a read smaller, never change the answer: upstream re-applies the whole WHERE to what we send.
 * So anything not understood here is simply not pushed down.
 */
import type { Pushdown, TableSpec } from '../redis/table-spec.js';
import { typeOf } from '../redis/types/type.js';
import { inner, nodeKind, type Node, type RangeVarRef } from './analyze.js';

/** A bound parameter's value as text, or undefined when it can't be read as text. */
export type ParamText = (n: number) => string | null | undefined;

const EXACT_TEXT_COLUMNS = new Set(['text', 'character varying']);
const CAST_KEEPS_TEXT = new Set(['text', 'varchar']);

export function conjuncts(where: Node | undefined, out: Node[] = []): Node[] {
  if (!where) return out;
  if (nodeKind(where) === 'BoolExpr' && inner(where).boolop === 'AND_EXPR') {
    for (const a of (inner(where).args as Node[]) ?? []) conjuncts(a, out);
  } else out.push(where);
  return out;
}

/** The column a ColumnRef names if it belongs to this reference, else undefined. */
export function columnOf(n: unknown, ref: RangeVarRef, spec: TableSpec): number | undefined {
  if (nodeKind(n) !== 'ColumnRef') return undefined;
  const fields = (inner(n).fields as Node[]).map((f) => (nodeKind(f) === 'String' ? String(inner(f).sval) : undefined));
  let col: string | undefined;
  if (fields.length === 1) col = fields[0];
  else if (fields.length === 2 && fields[0] === (ref.alias ?? ref.relname)) col = fields[1];
  if (col === undefined) return undefined;
  const i = spec.columns.findIndex((c) => c.name === col);
  return i < 0 ? undefined : i;
}

/** The text of a constant or parameter, or undefined when it isn't one (NULL can never match `=`). */
export function constText(n: unknown, param: ParamText): string | null | undefined {
  let k = nodeKind(n);
  let b = inner(n);
  if (k === 'TypeCast') {
    // TypeCast.typeName is a bare TypeName object, not wrapped in a node-type key like the rest.
    const typeName = (b.typeName as Node | undefined) ?? {};
    const names = ((typeName.names as Node[] | undefined) ?? []).map((x) => String(inner(x).sval));
    // A length (varchar(3)) or a padded type would change the value the cast yields.
    if (!CAST_KEEPS_TEXT.has(names[names.length - 1] ?? '') || typeName.typmods) return undefined;
    n = b.arg;
    k = nodeKind(n);
    b = inner(n);
  }
  if (k === 'ParamRef') return param(Number(b.number));
  if (k !== 'A_Const') return undefined;
  if (b.isnull) return null;
  if (b.sval) return String((b.sval as Node).sval ?? '');
  return undefined; // numbers compared to text columns go through casts we don't model
}

/** The values `col = v` or `col IN (v, ...)` pins the given column to, or undefined. */
function pinnedValues(c: Node, ref: RangeVarRef, spec: TableSpec, col: number, param: ParamText): string[] | undefined {
  if (nodeKind(c) !== 'A_Expr') return undefined;
  const e = inner(c);
  const op = ((e.name as Node[]) ?? []).map((x) => String(inner(x).sval)).join('.');
  if (e.kind === 'AEXPR_OP' && op === '=') {
    for (const [l, r] of [
      [e.lexpr, e.rexpr],
      [e.rexpr, e.lexpr],
    ]) {
      if (columnOf(l, ref, spec) === col) {
        const v = constText(r, param);
        if (v === null) return [];
        if (v !== undefined) return [v];
      }
    }
  }
  const list = Array.isArray(e.rexpr) ? e.rexpr : nodeKind(e.rexpr) === 'List' ? ((inner(e.rexpr).items as unknown[] | undefined) ?? []) : undefined;
  if (e.kind === 'AEXPR_IN' && op === '=' && columnOf(e.lexpr, ref, spec) === col && list) {
    const out: string[] = [];
    for (const x of list) {
      const v = constText(x, param);
      if (v === undefined) return undefined;
      if (v !== null) out.push(v);
    }
    return out;
  }
  return undefined;
}

export function extractPushdown(ref: RangeVarRef, spec: TableSpec, param: ParamText): Pushdown {
  const p: Pushdown = {};
  // Only types whose cast from text keeps the value as is: varchar(n), char(n) and name truncate or
  // pad, so 'abcdef' could match 'abc' upstream and pushing 'abc' down would lose that row.
  const textCol = (role: string): number => spec.roles.findIndex((r, i) => r.kind === role && EXACT_TEXT_COLUMNS.has(spec.columns[i]!.type));
  const fieldCol = typeOf(spec).pinnedRole === 'field' ? textCol('field') : -1;
  const keyCol = spec.multi !== 'none' ? textCol('key') : -1;
  for (const c of conjuncts(ref.where)) {
    if (fieldCol >= 0) {
      const v = pinnedValues(c, ref, spec, fieldCol, param);
      if (v) p.fields = p.fields ? p.fields.filter((x) => v.includes(x)) : v;
    }
    if (keyCol >= 0) {
      const v = pinnedValues(c, ref, spec, keyCol, param);
      if (v) p.keys = p.keys ? p.keys.filter((x) => v.includes(x)) : v;
    }
  }
  // Only with no WHERE at all: a pushed-down predicate is re-applied upstream, and rows it would
  // drop must not use up the limit. A SCAN of a pattern then stops once the limit is met.
  const limit = ref.limitStopsRead ? rowCount(ref.limit, param) : undefined;
  const offset = ref.offset === undefined ? 0 : rowCount(ref.offset, param);
  if (limit !== undefined && offset !== undefined && ref.where === undefined) p.limit = limit + offset;
  return p;
}

/** One conjunct of a WHERE that pins a column to a list of values (`col = v`, `col IN (...)`). */
export interface Pin {
  col: number;
  values: string[];
}

/**
 * The WHERE of `ref` as pins on the columns the pushdown narrows, or undefined when any conjunct is
 * something else: only then does the pushdown apply the whole WHERE, so a reader that re-checks the
 * pins gets exactly the rows upstream would.
 */
export function exactPins(ref: RangeVarRef, spec: TableSpec, param: ParamText): Pin[] | undefined {
  const textCol = (role: string): number => spec.roles.findIndex((r, i) => r.kind === role && EXACT_TEXT_COLUMNS.has(spec.columns[i]!.type));
  const cols = [typeOf(spec).pinnedRole === 'field' ? textCol('field') : -1, spec.multi !== 'none' ? textCol('key') : -1].filter((c) => c >= 0);
  const pins: Pin[] = [];
  for (const c of conjuncts(ref.where)) {
    let pin: Pin | undefined;
    for (const col of cols) {
      const values = pinnedValues(c, ref, spec, col, param);
      if (values) pin = { col, values };
    }
    if (!pin) return undefined;
    pins.push(pin);
  }
  return pins;
}

/** A LIMIT/OFFSET that is an integer constant or parameter; undefined for anything else (LIMIT ALL, expressions). */
function rowCount(n: Node | undefined, param: ParamText): number | undefined {
  if (n === undefined) return undefined;
  const k = nodeKind(n);
  const b = inner(n);
  let v: number;
  if (k === 'A_Const' && b.ival !== undefined) v = Number((b.ival as Node).ival ?? 0);
  else if (k === 'ParamRef') {
    const t = param(Number(b.number));
    if (t === null || t === undefined || !/^\s*\+?\d+\s*$/.test(t)) return undefined;
    v = Number(t);
  } else return undefined;
  return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}
