/**
 * The local fast write: the write analogue of the read fast path (fast-path.ts). An INSERT … VALUES
 * into one Redis foreign table whose every value is a constant, a parameter or a text concatenation
 * of those is evaluated by the proxy itself: it computes the rows upstream's evaluating SELECT
 * (write.ts) would return, and they become Redis commands exactly as upstream's rows do. No upstream
 * round trip, so a prepared single-row INSERT costs the client one Redis round trip.
 *
 * The rows must be upstream's, byte for byte, so the shape is narrow and every value is checked:
 * - every declared column of the table is a type fast-types.ts reproduces (text, varchar[(n)],
 *   char(n), int2/int4/int8, bool), so a NULL or a value cast to it is exactly computable;
 * - a column left out, or given DEFAULT, has no default expression (it is NULL, as upstream's
 *   `CAST(NULL AS type)`); one with a default is upstream's to evaluate;
 * - a value is a string constant (standard or dollar-quoted: no escapes to decode), an integer or
 *   boolean constant, NULL, `$n`, a `::text`/`::varchar` cast, or `a || b` over text values;
 * - a parameter's type is the one Postgres gives it: declared at Parse, else the column's for a bare
 *   `$n` (the rewrite casts it so) or text inside `||`; its bytes are accepted only when that type's
 *   input takes them as they are (valid text without NUL, a canonical integer, `t`/`f`, or their
 *   binary forms), and a value is cast to its column only when the result is certain (a canonical
 *   integer or boolean, a string that fits its varchar(n), char(n) padded).
 * Anything else goes upstream, which evaluates it or reports its error in Postgres's own words. The
 * differential test (test/fdw/fast-write.test.ts) holds both paths to the same replies and the same
 * Redis contents.
 */
import { isUtf8 } from 'node:buffer';
import { paramFormat, type BindMessage } from '../protocol/frontend.js';
import { decodes, type Codec } from '../protocol/encoding.js';
import { inner, nodeKind, type Node } from '../sql/analyze.js';
import { fastType, type FastType } from './fast-types.js';
import type { ForeignTable } from './select.js';
import type { WritePlan } from './write.js';
import type { GiveWay } from './give-way.js';

const TEXT_OID = 25;
const VARCHAR_OID = 1043;
const BPCHAR_OID = 1042;
const BOOL_OID = 16;
const INT_OIDS: Record<number, FastType | undefined> = { 21: fastType(21, 'smallint'), 23: fastType(23, 'integer'), 20: fastType(20, 'bigint') };
const INT_BYTES: Record<number, number> = { 21: 2, 23: 4, 20: 8 };
const TEXT_OIDS = new Set([TEXT_OID, VARCHAR_OID, BPCHAR_OID]);
const BOOL_TYPE = fastType(BOOL_OID, 'boolean');
const PARAM_OIDS = new Set([TEXT_OID, VARCHAR_OID, BPCHAR_OID, BOOL_OID, 21, 23, 20]);

/** How a value is computed. `kind` is the SQL type family the value has before its column's cast. */
type Expr =
  | { k: 'null' }
  | { k: 'const'; kind: Kind; value: string }
  | { k: 'param'; n: number }
  | { k: 'concat'; parts: Expr[] };
type Kind = 'text' | 'int' | 'bool';

export interface FastWriteShape {
  table: ForeignTable;
  /** One entry per VALUES row, one expression per table column (null for a column left out). */
  rows: Expr[][];
  /** Each column's cast from text, as fast-types.ts models it. */
  types: FastType[];
  /** Each client parameter's type as upstream resolves it (declared, or inferred from its use). */
  paramTypes: number[];
}

/**
 * The fast-write shape of a planned write, or why it has none (EXPLAIN prints the reason). `text` is
 * the statement's text and `base` its byte offset in what the parser saw (parse locations count from there).
 */
export function fastWriteShape(plan: WritePlan, text: string, base = 0): FastWriteShape | string {
  const s = shaping(plan, text, base);
  if (typeof s === 'string') return s;
  return s.rows(0, s.count) ?? s.finish();
}

/**
 * fastWriteShape of a simple Query's statement that gives way every few milliseconds: each of a
 * 100,000-row VALUES's items is looked at, ~50 ms on the event loop in one go.
 */
export async function fastWriteShapeGivingWay(plan: WritePlan, text: string, base: number, giveWay: GiveWay): Promise<FastWriteShape | string> {
  const s = shaping(plan, text, base);
  if (typeof s === 'string') return s;
  for (let from = 0; from < s.count; from += SHAPE_STRIDE) {
    const refused = s.rows(from, Math.min(from + SHAPE_STRIDE, s.count));
    if (refused !== undefined) return refused;
    const p = giveWay.maybe();
    if (p) await p;
  }
  return s.finish();
}

/** VALUES rows shaped between two looks at the clock. */
const SHAPE_STRIDE = 256;

/** A shape being made: `rows` takes VALUES rows [from, to) in order (a reason stops it), `finish` the checks after all of them. */
interface Shaping {
  count: number;
  rows(from: number, to: number): string | undefined;
  finish(): FastWriteShape | string;
}

function shaping(plan: WritePlan, text: string, base: number): Shaping | string {
  if (plan.kind !== 'insert') return `${plan.kind.toUpperCase()}: only INSERT … VALUES is written locally`;
  const q = plan.info.node;
  if (q.withClause) return 'WITH';
  if (plan.reads.length) return 'reads another foreign table';
  if (plan.returning) return 'RETURNING';
  if (plan.conflict) return 'ON CONFLICT';
  if (plan.info.kind !== 'InsertStmt') return 'not an INSERT';
  const cols = plan.target.spec.columns;
  const types: FastType[] = [];
  for (const c of cols) {
    const t = fastType(Number(c.typeOid), c.type);
    // double precision's text depends on extra_float_digits, which only the read path asks for.
    if (!t || t.shortestFloat) return `column ${c.name} is ${c.type}`;
    types.push(t);
  }
  const sel = q.selectStmt ? inner(q.selectStmt) : undefined;
  const lists = (sel?.valuesLists as Node[] | undefined) ?? [];
  if (sel && (!lists.length || sel.op !== 'SETOP_NONE' || sel.withClause || sel.sortClause || sel.limitCount || sel.limitOffset || sel.lockingClause)) return 'a source that is not VALUES';
  const listed = ((q.cols as Node[] | undefined) ?? []).map((c) => cols.findIndex((x) => x.name === inner(c).name));
  if (listed.some((i) => i < 0)) return 'an unknown column';
  const bytes = Buffer.from(text, 'utf8');
  const declared = plan.paramTypes.slice(0, plan.clientParams);
  const inferred: number[] = declared.slice();
  const uses = new Map<number, number>();
  const rows: Expr[][] = [];
  const families: (Kind | undefined)[] = cols.map(() => undefined);
  const mixes = cols.map(() => ({ literal: false, constant: false }));
  const width = lists.length ? ((inner(lists[0]).items as Node[] | undefined) ?? []).length : 0;
  // Without a column list the values fill the first columns; the rest are left out.
  const order = listed.length ? listed : cols.map((_, i) => i).slice(0, width);
  const sources = sel ? lists : [undefined];
  const shapeRow = (list: Node | undefined): string | undefined => {
    const items = list ? ((inner(list).items as Node[] | undefined) ?? []) : [];
    if (items.length !== order.length) return 'a VALUES row of another width';
    const row: Expr[] = cols.map(() => ({ k: 'null' }));
    const given = new Set<number>();
    for (let k = 0; k < items.length; k++) {
      const ci = order[k]!;
      const col = cols[ci]!;
      given.add(ci);
      const item = items[k]!;
      const bare = nodeKind(item) === 'SetToDefault' || nodeKind(item) === 'ParamRef';
      if (nodeKind(item) === 'SetToDefault') {
        if (col.default !== undefined) return `column ${col.name} has a default`;
      } else {
        // A bare $n is cast to its column by the rewrite, so that is the type Postgres gives it.
        const e = expr(item, bytes, base, Number(col.typeOid), uses, inferred);
        if (typeof e === 'string') return e;
        row[ci] = e;
      }
      // Rows of one VALUES list get a common type per column, which must be the one each value has:
      // the rewrite casts a bare $n and a DEFAULT to the column's type, a string constant or NULL takes
      // any type, the rest have their own.
      const e = row[ci]!;
      const literal = e.k === 'const' && e.kind === 'text';
      const family = bare ? familyOf(types[ci]!) : e.k === 'null' || literal ? undefined : e.k === 'const' ? e.kind : 'text';
      if (literal) mixes[ci]!.literal = true;
      if (e.k === 'const' && !literal) mixes[ci]!.constant = true;
      if (family === undefined) continue;
      if (families[ci] !== undefined && families[ci] !== family) return `column ${col.name} gets values of different types`;
      families[ci] = family;
    }
    for (let ci = 0; ci < cols.length; ci++) if (!given.has(ci) && cols[ci]!.default !== undefined) return `column ${cols[ci]!.name} has a default`;
    rows.push(row);
    return undefined;
  };
  const finish = (): FastWriteShape | string => {
    // A string constant then takes the common type by that type's input, which is the column's own
    // (whose input the fast write models) only when no integer or boolean constant set it.
    if (rows.length > 1) for (let ci = 0; ci < cols.length; ci++) if (mixes[ci]!.literal && mixes[ci]!.constant && families[ci] !== 'text') return `column ${cols[ci]!.name} mixes string and other constants`;
    for (let n = 1; n <= plan.clientParams; n++) {
      const t = inferred[n - 1] ?? 0;
      if (!PARAM_OIDS.has(t)) return t === 0 ? `parameter $${n} has no type` : `parameter $${n} is of type ${t}`;
      // A declared character(n) parameter loses its trailing spaces when it becomes text: not modelled.
      if (declared[n - 1] === BPCHAR_OID) return `parameter $${n} is declared character`;
      // Postgres infers an untyped parameter from its first use; a second use could need another type.
      if ((declared[n - 1] ?? 0) === 0 && (uses.get(n) ?? 0) > 1) return `parameter $${n} is used more than once`;
    }
    return { table: plan.target, rows, types, paramTypes: inferred };
  };
  return {
    count: sources.length,
    rows: (from, to) => {
      for (let i = from; i < to; i++) {
        const refused = shapeRow(sources[i]);
        if (refused !== undefined) return refused;
      }
      return undefined;
    },
    finish,
  };
}

const STRING_START = new Set([0x27, 0x24]); // ' and $: literals whose text is their value

/**
 * One VALUES item as an expression, or why it is not one the fast path computes. `ctx` is the type a
 * bare parameter takes here; `inferred` collects those types per parameter.
 */
function expr(n: Node, bytes: Buffer, base: number, ctx: number, uses: Map<number, number>, inferred: number[]): Expr | string {
  const k = nodeKind(n);
  const b = inner(n);
  if (k === 'A_Const') {
    if (b.isnull) return { k: 'null' };
    if (b.sval !== undefined) {
      // E'…', U&'…', N'…' decode escapes or change the type; only plain and dollar quotes are their value.
      if (!STRING_START.has(bytes[Number(b.location) - base] ?? 0)) return 'a string constant with escapes or a prefix';
      return { k: 'const', kind: 'text', value: String((b.sval as Node).sval ?? '') };
    }
    if (b.ival !== undefined) return { k: 'const', kind: 'int', value: String(Number((b.ival as Node).ival ?? 0)) };
    if (b.boolval !== undefined) return { k: 'const', kind: 'bool', value: (b.boolval as Node).boolval === true ? 't' : 'f' };
    return 'a numeric or bit-string constant';
  }
  if (k === 'ParamRef') {
    const p = Number(b.number);
    if (!(p >= 1 && p <= inferred.length)) return 'a parameter out of range';
    uses.set(p, (uses.get(p) ?? 0) + 1);
    if ((inferred[p - 1] ?? 0) === 0) inferred[p - 1] = ctx;
    return { k: 'param', n: p };
  }
  if (k === 'TypeCast') {
    const typeName = (b.typeName as Node | undefined) ?? {};
    const names = ((typeName.names as Node[] | undefined) ?? []).map((x) => String(inner(x).sval));
    const target = names.join('.');
    if (typeName.typmods || typeName.arrayBounds || !['text', 'varchar', 'pg_catalog.text', 'pg_catalog.varchar'].includes(target)) return 'a cast the fast path does not make';
    return textOperand(b.arg as Node, bytes, base, uses, inferred);
  }
  if (k === 'A_Expr' && b.kind === 'AEXPR_OP') {
    const op = ((b.name as Node[] | undefined) ?? []).map((x) => String(inner(x).sval));
    if (op.length !== 1 || op[0] !== '||' || !b.lexpr || !b.rexpr) return 'an operator other than ||';
    const l = textOperand(b.lexpr as Node, bytes, base, uses, inferred);
    if (typeof l === 'string') return l;
    const r = textOperand(b.rexpr as Node, bytes, base, uses, inferred);
    if (typeof r === 'string') return r;
    return { k: 'concat', parts: [l, r] };
  }
  return 'a value that is not a constant or parameter';
}

/** An operand that must be text (of `||`, or cast to text): a parameter there is inferred as text. */
function textOperand(n: Node, bytes: Buffer, base: number, uses: Map<number, number>, inferred: number[]): Expr | string {
  const e = expr(n, bytes, base, TEXT_OID, uses, inferred);
  if (typeof e === 'string') return e;
  const kind = kindOf(e, inferred);
  if (kind !== undefined && kind !== 'text') return 'a non-text value in a text expression';
  return e;
}

/** A column type's family: what a value of it mixes with in one VALUES column. */
function familyOf(t: FastType): Kind {
  return t === BOOL_TYPE ? 'bool' : t.typeLen > 0 ? 'int' : 'text';
}

function kindOf(e: Expr, types: readonly number[]): Kind | undefined {
  switch (e.k) {
    case 'null':
      return undefined;
    case 'const':
      return e.kind;
    case 'concat':
      return 'text';
    case 'param': {
      const t = types[e.n - 1] ?? 0;
      return TEXT_OIDS.has(t) ? 'text' : t === BOOL_OID ? 'bool' : INT_OIDS[t] ? 'int' : undefined;
    }
  }
}

type Value = { kind: Kind; text: string } | null;

/**
 * The rows upstream's evaluating SELECT would return for these parameter values (each column as
 * text, as the write path reads them), or why the fast path can't be sure of them.
 */
export function fastWriteRows(shape: FastWriteShape, bind: BindMessage | undefined, codec?: Codec): (string | null)[][] | string {
  const params = bindValues(shape, bind, codec);
  if (typeof params === 'string') return params;
  const out: (string | null)[][] = [];
  const refused = castRows(shape, params, 0, shape.rows.length, out);
  return refused ?? out;
}

/** The parameters' values as their types' input reads them, or why the fast path can't be sure of one. */
function bindValues(shape: FastWriteShape, bind: BindMessage | undefined, codec: Codec | undefined): Value[] | string {
  const params: Value[] = [];
  if (!bind) return params;
  if (bind.paramFormats.length > 1 && bind.paramFormats.length !== bind.params.length) return 'parameter formats';
  for (let i = 0; i < shape.paramTypes.length; i++) {
    const v = bind.params[i];
    if (v === undefined) return 'a missing parameter';
    // Every parameter is read by its type's input, used or not; a refusal is upstream's to report.
    const p = paramValue(v, paramFormat(bind, i), shape.paramTypes[i]!, codec);
    if (p === undefined) return `parameter $${i + 1}`;
    params.push(p);
  }
  return params;
}

/**
 * fastWriteRows of a big statement that gives way every few milliseconds: a 100,000-row VALUES casts
 * 200,000 items, ~60 ms on the event loop in one go.
 */
export async function fastWriteRowsGivingWay(shape: FastWriteShape, giveWay: GiveWay, bind?: BindMessage, codec?: Codec): Promise<(string | null)[][] | string> {
  const params = bindValues(shape, bind, codec);
  if (typeof params === 'string') return params;
  const out: (string | null)[][] = [];
  for (let from = 0; from < shape.rows.length; from += CAST_STRIDE) {
    const refused = castRows(shape, params, from, Math.min(from + CAST_STRIDE, shape.rows.length), out);
    if (refused !== undefined) return refused;
    const p = giveWay.maybe();
    if (p) await p;
  }
  return out;
}

/** Rows cast between two looks at the clock. */
const CAST_STRIDE = 256;

/** Appends rows [from, to) to `out` cast to their columns; why not, when a value's cast would change or refuse it. */
function castRows(shape: FastWriteShape, params: readonly Value[], from: number, to: number, out: (string | null)[][]): string | undefined {
  for (let r = from; r < to; r++) {
    const row = shape.rows[r]!;
    const vals: (string | null)[] = [];
    for (let c = 0; c < row.length; c++) {
      const v = evaluate(row[c]!, params);
      if (v === null) {
        vals.push(null);
        continue;
      }
      const cast = castTo(v, shape.types[c]!);
      if (cast === undefined) return 'a value its column would change or refuse';
      vals.push(cast);
    }
    out.push(vals);
  }
  return undefined;
}

function evaluate(e: Expr, params: readonly Value[]): Value {
  switch (e.k) {
    case 'null':
      return null;
    case 'const':
      return { kind: e.kind, text: e.value };
    case 'param':
      return params[e.n - 1] ?? null;
    case 'concat': {
      let text = '';
      for (const p of e.parts) {
        const v = evaluate(p, params);
        // textcat is strict: NULL in, NULL out.
        if (v === null) return null;
        text += v.text;
      }
      return { kind: 'text', text };
    }
  }
}

/**
 * A value cast to its column (CAST(v AS type), explicit): text goes through the type's input, which
 * fast-types.ts accepts only in canonical form; an integer prints as its decimal digits; a boolean
 * goes only to a boolean (to text it would read `true`).
 */
function castTo(v: { kind: Kind; text: string }, t: FastType): string | undefined {
  if (v.kind === 'bool') return t === BOOL_TYPE ? v.text : undefined;
  const out = t.text(Buffer.from(v.text, 'utf8'));
  return out === undefined ? undefined : out.toString('utf8');
}

/** A parameter's value as its type's input yields it, or undefined when that input could refuse or change it. */
function paramValue(v: Buffer | null, format: number, type: number, codec?: Codec): Value | undefined {
  if (format !== 0 && format !== 1) return undefined;
  if (v === null) return null;
  if (TEXT_OIDS.has(type)) {
    // textin and textrecv take the bytes in the client's encoding, and refuse NUL.
    if (v.includes(0) || !(codec ? decodes(codec, v) : isUtf8(v))) return undefined;
    return { kind: 'text', text: codec ? codec.decode(v) : v.toString('utf8') };
  }
  if (type === BOOL_OID) {
    if (v.length !== 1) return undefined;
    const byte = v[0]!;
    if (format === 1) return byte === 0 || byte === 1 ? { kind: 'bool', text: byte === 1 ? 't' : 'f' } : undefined;
    return byte === 0x74 || byte === 0x66 ? { kind: 'bool', text: byte === 0x74 ? 't' : 'f' } : undefined;
  }
  const int = INT_OIDS[type];
  if (!int) return undefined;
  if (format === 0) {
    const out = int.text(v);
    return out === undefined ? undefined : { kind: 'int', text: out.toString('latin1') };
  }
  const size = INT_BYTES[type]!;
  if (v.length !== size) return undefined;
  const n = size === 8 ? v.readBigInt64BE(0) : size === 4 ? v.readInt32BE(0) : v.readInt16BE(0);
  return { kind: 'int', text: String(n) };
}
