/**
 * A WHERE the fast path evaluates itself, when the pushdown does not apply it exactly: AND, OR, NOT,
 * IS [NOT] NULL, and `=`, `<>`, LIKE and NOT LIKE between a text column and a constant or a text
 * parameter. Only these, because for text under a deterministic collation (every database default
 * is one) each is a pure function of the bytes: `=` is byte equality and LIKE matches characters
 * exactly (Postgres's MatchText), with SQL's three-valued logic. Anything else — ILIKE (case folding
 * depends on the locale), `<` (collation order), casts, functions, other column types — leaves the
 * statement to upstream, which evaluates it as always.
 */
import { inner, nodeKind, type Node, type RangeVarRef } from '../sql/analyze.js';
import { columnOf, constText, type ParamText } from '../sql/pushdown.js';
import type { TableSpec } from '../redis/table-spec.js';

/** A value as the filter sees it: bytes view[start, end) of the column, or null. */
export interface RowView {
  bufs: (Buffer | undefined)[];
  starts: Int32Array;
  /** -1 for NULL. */
  ends: Int32Array;
}

type Operand = { kind: 'const'; text: string | null } | { kind: 'param'; n: number };

/** The filter as planned from the parse tree; parameters are read at each execution. */
export type FilterPlan =
  | { kind: 'and' | 'or'; args: FilterPlan[] }
  | { kind: 'not'; arg: FilterPlan }
  | { kind: 'null'; col: number; negated: boolean }
  | { kind: 'eq'; col: number; value: Operand; negated: boolean }
  | { kind: 'like'; col: number; pattern: Operand; negated: boolean };

/** true, false or SQL's unknown (null). */
type Truth = boolean | null;
export type Predicate = (row: RowView) => Truth;

const FILTER_TYPES = new Set(['text', 'character varying']);

/** The filter for `ref`'s WHERE, or why the fast path can't evaluate it. */
export function planFilter(where: Node, ref: RangeVarRef, spec: TableSpec): FilterPlan | string {
  const col = (n: unknown): number | undefined => {
    const c = columnOf(n, ref, spec);
    return c !== undefined && FILTER_TYPES.has(spec.columns[c]!.type) ? c : undefined;
  };
  const operand = (n: unknown): Operand | undefined => {
    // A parameter (perhaps cast to text) is read at each execution; a constant's text now.
    let param: number | undefined;
    const v = constText(n, (k) => {
      param = k;
      return '';
    });
    if (param !== undefined) return { kind: 'param', n: param };
    return v === undefined ? undefined : { kind: 'const', text: v };
  };
  const walk = (n: Node): FilterPlan | string => {
    const k = nodeKind(n);
    const b = inner(n);
    if (k === 'BoolExpr') {
      const args = ((b.args as Node[] | undefined) ?? []).map(walk);
      const bad = args.find((a) => typeof a === 'string');
      if (bad !== undefined) return bad;
      const plans = args as FilterPlan[];
      if (b.boolop === 'NOT_EXPR') return plans.length === 1 ? { kind: 'not', arg: plans[0]! } : 'a NOT of several arguments';
      return { kind: b.boolop === 'AND_EXPR' ? 'and' : 'or', args: plans };
    }
    if (k === 'NullTest') {
      const c = col(b.arg);
      if (c === undefined) return 'IS NULL on something other than a text column';
      return { kind: 'null', col: c, negated: b.nulltesttype === 'IS_NOT_NULL' };
    }
    if (k !== 'A_Expr') return `a ${k ?? 'condition'} in WHERE`;
    const op = ((b.name as Node[] | undefined) ?? []).map((x) => String(inner(x).sval)).join('.');
    // `a LIKE b` and the operator spelled out, `a ~~ b`, are the same function.
    if ((b.kind === 'AEXPR_LIKE' || b.kind === 'AEXPR_OP') && (op === '~~' || op === '!~~')) {
      const c = col(b.lexpr);
      const p = operand(b.rexpr);
      if (c === undefined || p === undefined) return 'a LIKE other than a text column against a constant or parameter';
      return { kind: 'like', col: c, pattern: p, negated: op === '!~~' };
    }
    if (b.kind === 'AEXPR_OP' && (op === '=' || op === '<>')) {
      for (const [l, r] of [
        [b.lexpr, b.rexpr],
        [b.rexpr, b.lexpr],
      ]) {
        const c = col(l);
        const v = operand(r);
        if (c !== undefined && v !== undefined) return { kind: 'eq', col: c, value: v, negated: op === '<>' };
      }
      return 'a comparison other than a text column against a constant or parameter';
    }
    return `the operator ${op || String(b.kind)}`;
  };
  return walk(where);
}

/** The client parameters a filter reads (they must be text). */
export function filterParams(p: FilterPlan, out: number[] = []): number[] {
  switch (p.kind) {
    case 'and':
    case 'or':
      for (const a of p.args) filterParams(a, out);
      break;
    case 'not':
      filterParams(p.arg, out);
      break;
    case 'eq':
      if (p.value.kind === 'param') out.push(p.value.n);
      break;
    case 'like':
      if (p.pattern.kind === 'param') out.push(p.pattern.n);
      break;
    case 'null':
      break;
  }
  return out;
}

/**
 * The predicate with this execution's parameters, or a reason to leave it to upstream (a LIKE
 * pattern Postgres would reject, which upstream then reports with its own error).
 */
export function bindFilter(p: FilterPlan, param: ParamText): Predicate | string {
  const text = (o: Operand): string | null | undefined => (o.kind === 'const' ? o.text : param(o.n));
  switch (p.kind) {
    case 'and':
    case 'or': {
      const args: Predicate[] = [];
      for (const a of p.args) {
        const f = bindFilter(a, param);
        if (typeof f === 'string') return f;
        args.push(f);
      }
      return p.kind === 'and' ? and(args) : or(args);
    }
    case 'not': {
      const f = bindFilter(p.arg, param);
      if (typeof f === 'string') return f;
      return (row) => {
        const v = f(row);
        return v === null ? null : !v;
      };
    }
    case 'null': {
      const { col, negated } = p;
      return (row) => (row.ends[col]! < 0) === !negated;
    }
    case 'eq': {
      const v = text(p.value);
      if (v === undefined) return 'a parameter the filter cannot read';
      if (v === null) return () => null;
      const want = Buffer.from(v, 'utf8');
      const { col, negated } = p;
      return (row) => {
        const e = row.ends[col]!;
        if (e < 0) return null;
        const s = row.starts[col]!;
        return bytesEqual(row.bufs[col]!, s, e, want) !== negated;
      };
    }
    case 'like': {
      const v = text(p.pattern);
      if (v === undefined) return 'a parameter the filter cannot read';
      if (v === null) return () => null;
      const m = likeMatcher(Buffer.from(v, 'utf8'));
      if (!m) return 'a LIKE pattern ending in its escape character';
      const { col, negated } = p;
      return (row) => {
        const e = row.ends[col]!;
        if (e < 0) return null;
        return m(row.bufs[col]!, row.starts[col]!, e) !== negated;
      };
    }
  }
}

function and(args: Predicate[]): Predicate {
  return (row) => {
    let unknown = false;
    for (const f of args) {
      const v = f(row);
      if (v === false) return false;
      if (v === null) unknown = true;
    }
    return unknown ? null : true;
  };
}

function or(args: Predicate[]): Predicate {
  return (row) => {
    let unknown = false;
    for (const f of args) {
      const v = f(row);
      if (v === true) return true;
      if (v === null) unknown = true;
    }
    return unknown ? null : false;
  };
}

function bytesEqual(buf: Buffer, s: number, e: number, want: Buffer): boolean {
  const n = want.length;
  if (e - s !== n) return false;
  for (let i = 0; i < n; i++) if (buf[s + i] !== want[i]) return false;
  return true;
}

// ---- LIKE ---------------------------------------------------------------------------------------------

const BACKSLASH = 0x5c;
const PERCENT = 0x25;
const UNDERSCORE = 0x5f;

/** A pattern element: literal bytes (one character), any one character, or any run of characters. */
type Token = Buffer | 'one' | 'any';

type Matcher = (buf: Buffer, start: number, end: number) => boolean;

/** Bytes in the UTF-8 character starting with `b` (the text was checked to be valid UTF-8). */
const charLen = (b: number): number => (b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4);

/**
 * LIKE with the default escape (backslash), as Postgres's MatchText over UTF-8 text: `%` any run of
 * characters, `_` one character, `\x` the character x. Undefined for a pattern ending in a lone
 * backslash, which Postgres rejects (22025).
 */
export function likeMatcher(pattern: Buffer): Matcher | undefined {
  const tokens: Token[] = [];
  for (let i = 0; i < pattern.length; ) {
    const b = pattern[i]!;
    if (b === PERCENT) {
      if (tokens[tokens.length - 1] !== 'any') tokens.push('any');
      i++;
    } else if (b === UNDERSCORE) {
      tokens.push('one');
      i++;
    } else {
      if (b === BACKSLASH) {
        i++;
        if (i >= pattern.length) return undefined;
      }
      const n = charLen(pattern[i]!);
      tokens.push(pattern.subarray(i, i + n));
      i += n;
    }
  }
  // Most patterns are literals around `%`s: those are prefix / suffix / substring searches.
  if (!tokens.includes('one')) return segmentMatcher(tokens);
  return (buf, start, end) => wildcardMatch(tokens, buf, start, end);
}

function segmentMatcher(tokens: Token[]): Matcher {
  const segments: Buffer[] = [];
  let cur: Buffer[] = [];
  for (const t of tokens) {
    if (t === 'any') {
      segments.push(Buffer.concat(cur));
      cur = [];
    } else cur.push(t as Buffer);
  }
  segments.push(Buffer.concat(cur));
  if (segments.length === 1) {
    const only = segments[0]!;
    return (buf, s, e) => bytesEqual(buf, s, e, only);
  }
  const head = segments[0]!;
  const tail = segments[segments.length - 1]!;
  const middle = segments.slice(1, -1).filter((x) => x.length > 0);
  return (buf, s, e) => {
    if (e - s < head.length + tail.length) return false;
    if (!bytesEqual(buf, s, s + head.length, head) || !bytesEqual(buf, e - tail.length, e, tail)) return false;
    let at = s + head.length;
    const stop = e - tail.length;
    for (const m of middle) {
      const i = buf.indexOf(m, at);
      if (i < 0 || i + m.length > stop) return false;
      at = i + m.length;
    }
    return true;
  };
}

/** The classic wildcard walk: on a mismatch, the last `%` takes one more character and the rest retries. */
function wildcardMatch(tokens: Token[], buf: Buffer, start: number, end: number): boolean {
  let p = 0;
  let i = start;
  let starP = -1;
  let starI = 0;
  while (i < end) {
    const t = tokens[p];
    if (t === 'any') {
      starP = p++;
      starI = i;
      continue;
    }
    if (t === 'one') {
      i += charLen(buf[i]!);
      p++;
      continue;
    }
    if (t !== undefined && i + t.length <= end && bytesEqual(buf, i, i + t.length, t)) {
      i += t.length;
      p++;
      continue;
    }
    if (starP < 0) return false;
    p = starP + 1;
    starI += charLen(buf[starI]!);
    i = starI;
  }
  while (tokens[p] === 'any') p++;
  return p === tokens.length;
}
