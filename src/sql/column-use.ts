/**
 * Which columns of one relation reference a statement names, for column privileges: Postgres lets a
 * role without SELECT on a table read the columns it holds SELECT on, and checks exactly the columns
 * a statement uses. Upstream never sees our tables in a statement, so the proxy works this out from
 * the parse tree.
 *
 * It errs on the side of naming more: an unqualified name counts for every relation with such a
 * column (Postgres would pick one, or call it ambiguous), a NATURAL join names every column. So a
 * statement is never allowed that Postgres would deny; a rare one (an unqualified name that really is
 * another table's) is denied that Postgres would allow.
 */
import { inner, nodeKind, returningList, type Node, type RangeVarRef } from './analyze.js';

/** Every column; or the columns named, by index (none: `count(*)`, `SELECT 1 FROM t`). */
export type ColumnUse = 'all' | ReadonlySet<number>;

/** The columns of `ref` that `tree` names. `columns`: the relation's column names, in order. */
export function columnsUsed(tree: unknown, ref: RangeVarRef, columns: readonly string[]): ColumnUse {
  const name = ref.alias ?? ref.relname;
  const used = new Set<number>();
  const column = (n: string): boolean => {
    const i = columns.indexOf(n);
    if (i >= 0) used.add(i);
    return i >= 0;
  };
  let all = false;
  const stack: unknown[] = [tree];
  while (stack.length && !all) {
    const x = stack.pop();
    if (Array.isArray(x)) {
      for (const y of x) stack.push(y);
      continue;
    }
    if (x === null || typeof x !== 'object') continue;
    const kind = nodeKind(x);
    if (kind === 'ColumnRef') {
      const fields = ((inner(x).fields as Node[] | undefined) ?? []).map((f) => (nodeKind(f) === 'A_Star' ? '*' : String(inner(f).sval)));
      const last = fields[fields.length - 1]!;
      const qualifier = fields.slice(0, -1);
      if (qualifier.length === 0) {
        // `*` alone is scoped to its own SELECT (starOf below); a bare name that is no column is a whole row.
        if (last !== '*' && !column(last) && last === name) all = true;
      } else if (names(qualifier, ref, name)) {
        if (last === '*') all = true;
        else column(last);
      }
      continue;
    }
    // A SelectStmt wrapped, or the body a statement's analysis holds (only a SELECT's has limitOption).
    const select = kind === 'SelectStmt' ? inner(x) : kind === undefined && 'limitOption' in x ? (x as Node) : undefined;
    if (select && starOf(select, ref)) all = true;
    if (kind === 'JoinExpr') {
      const j = inner(x);
      if (j.isNatural) all = true;
      for (const u of (j.usingClause as Node[] | undefined) ?? []) column(String(inner(u).sval));
    }
    for (const v of Object.values(x)) if (v !== null && typeof v === 'object') stack.push(v);
  }
  return all ? 'all' : used;
}

/** Whether a qualified reference's qualifier (`t`, `s.t`, `db.s.t`) names the relation. */
function names(qualifier: readonly string[], ref: RangeVarRef, name: string): boolean {
  if (qualifier[qualifier.length - 1] !== name) return false;
  if (qualifier.length === 1) return true;
  // A schema-qualified name reaches the relation only as it was written (no alias hides it).
  return ref.alias === undefined && (ref.schemaname === undefined || qualifier[qualifier.length - 2] === ref.schemaname);
}

/** `SELECT *` (or `RETURNING *`) whose FROM holds the relation directly (joins included, not subqueries). */
function starOf(select: Node, ref: RangeVarRef): boolean {
  return ((select.targetList as Node[] | undefined) ?? []).some(isBareStar) && holdsDirectly((select.fromClause as Node[] | undefined) ?? [], ref);
}

/** Whether a FROM list holds the relation itself, through joins but not inside subqueries. */
export function holdsDirectly(from: readonly Node[], ref: RangeVarRef): boolean {
  const stack: unknown[] = [...from];
  while (stack.length) {
    const n = stack.pop();
    const kind = nodeKind(n);
    if (kind === 'RangeVar' && Number(inner(n).location) === ref.location) return true;
    if (kind === 'JoinExpr') stack.push(inner(n).larg, inner(n).rarg);
  }
  return false;
}

/** `RETURNING *` of an INSERT, UPDATE or DELETE. */
export function returnsStar(q: Node): boolean {
  return returningList(q).some(isBareStar);
}

/** A target-list entry that is `*` alone (analyze.ts's isStarTarget also takes `t.*`, whose qualifier decides). */
function isBareStar(resTarget: Node): boolean {
  const v = inner(resTarget).val;
  const fields = nodeKind(v) === 'ColumnRef' ? ((inner(v).fields as Node[] | undefined) ?? []) : [];
  return fields.length === 1 && nodeKind(fields[0]) === 'A_Star';
}
