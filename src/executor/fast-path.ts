/**
 * The local fast path (DESIGN §2): a SELECT of plain columns from one Redis foreign table, whose WHERE
 * the pushdown applies exactly, is answered by the proxy from Redis with no upstream round trip.
 *
 * Its bytes must be those the upstream path sends, so the shape is narrow on purpose: every declared
 * column is of a type fast-types.ts reproduces (text, varchar, varchar(n), char(n), smallint, integer,
 * bigint, boolean), and a value not already in its type's canonical output form sends the statement
 * upstream; anything else is planned the usual way. The differential test
 * (test/fdw/fast-path.test.ts) holds the two paths byte for byte.
 */
import { isUtf8 } from 'node:buffer';
import { encodeCommandComplete, encodeDataRow, encodeRowDescription, type FieldDescription } from '../protocol/backend.js';
import { paramFormat, type BindMessage } from '../protocol/frontend.js';
import { inner, nodeKind, type Node } from '../sql/analyze.js';
import { exactPins, type ParamText } from '../sql/pushdown.js';
import { checkText } from '../redis/text.js';
import { countRows, pushdownFor, readRows, type ForeignRead, type ReadPlan, type RedisAccess } from './select.js';
import { isCountStar } from './count.js';
import { fastType, isPlainText, type FastType } from './fast-types.js';
import { decodes, type Codec } from '../protocol/encoding.js';
import { Backend } from '../protocol/codes.js';
import { bindFilter, planFilter, type FilterPlan, type RowView } from './fast-filter.js';
import { DataRowTarget, type ValueFix } from '../protocol/data-row-target.js';
import { RowViewTarget, type RowColumns } from './row-view-target.js';
import type { WholeCheck } from '../redis/resp-scan.js';
import { typeOf } from '../redis/types/type.js';
import type { Pushdown, TableSpec } from '../redis/table-spec.js';

const TEXT_PARAM_TYPES = new Set([0, 25, 1043]);
const INT8_OID = 20;
/** Postgres truncates longer identifiers (with a NOTICE the fast path doesn't make). */
const MAX_IDENT_BYTES = 63;

export interface FastShape {
  read: ForeignRead;
  /** Output columns: the table column each one is, and the name upstream reports for it. */
  columns: { col: number; name: string }[];
  /** `SELECT count(*)`: the one output column's name (the rows are counted, not shown). */
  count?: string;
  /** Each table column's type handling; `typed` lists the columns whose values need checking. */
  types: FastType[];
  typed: number[];
  limit: Node | undefined;
  offset: Node | undefined;
  /** How each client parameter is used: compared as text, or a LIMIT/OFFSET count. */
  params: Map<number, 'text' | 'count'>;
  /** A WHERE the pushdown doesn't apply exactly, evaluated here (fast-filter.ts); else the pins are exact. */
  filter?: FilterPlan;
}

/**
 * Whether a statement has the fast path's shape, judged from its parse tree alone: one SELECT of
 * column references from one relation, with none of the clauses that need an evaluator.
 */
export function fastSyntax(select: Node): string | undefined {
  const q = select;
  if (q.op !== 'SETOP_NONE' || q.withClause || q.intoClause || q.valuesLists) return 'not a plain SELECT';
  if (q.groupClause || q.havingClause || q.distinctClause || q.windowClause || q.groupDistinct) return 'grouping or DISTINCT';
  if (q.sortClause) return 'ORDER BY';
  if (q.lockingClause) return 'row locking';
  if (q.limitOption === 'LIMIT_OPTION_WITH_TIES') return 'WITH TIES';
  const from = (q.fromClause as Node[] | undefined) ?? [];
  if (from.length !== 1 || nodeKind(from[0]) !== 'RangeVar') return 'not one table in FROM';
  const alias = inner(from[0]).alias as Node | undefined;
  if (alias?.colnames) return 'column aliases on the table';
  const targets = (q.targetList as Node[] | undefined) ?? [];
  for (const t of targets) {
    const rt = inner(t);
    const countStar = targets.length === 1 && isCountStar(rt.val);
    if ((nodeKind(rt.val) !== 'ColumnRef' && !countStar) || rt.indirection) return 'an output column that is not a plain column or count(*)';
    if (rt.name !== undefined && Buffer.byteLength(String(rt.name)) > MAX_IDENT_BYTES) return 'a long alias';
  }
  return undefined;
}

/** The fast-path shape of a planned read, or why it has none (EXPLAIN prints the reason). */
export function fastShape(plan: ReadPlan): FastShape | string {
  const select = plan.info.kind === 'ExplainStmt' ? inner(plan.info.node.query) : plan.info.kind === 'SelectStmt' ? plan.info.node : undefined;
  if (!select || (plan.info.kind === 'ExplainStmt' && nodeKind(plan.info.node.query) !== 'SelectStmt')) return 'not a SELECT';
  const syntax = fastSyntax(select);
  if (syntax) return syntax;
  if (plan.reads.length !== 1 || plan.info.reads.length !== 1 || plan.carrier !== 'params') return 'more than one relation';
  const read = plan.reads[0]!;
  const cols = read.table.spec.columns;
  // The catalog's JSON carries oids as strings.
  // A count from Redis's length command reads no value, so no type matters.
  const types: FastType[] = [];
  for (const c of cols) {
    const t = read.countOnly ? undefined : fastType(Number(c.typeOid), c.type);
    if (t) types.push(t);
    else if (!read.countOnly) return `column ${c.name} is ${c.type}`;
  }
  const typed = types.flatMap((t, i) => (isPlainText(t) ? [] : [i]));
  const qualifier = read.ref.alias ?? read.ref.relname;
  const columns: FastShape['columns'] = [];
  let count: string | undefined;
  for (const t of (select.targetList as Node[] | undefined) ?? []) {
    const rt = inner(t);
    if (nodeKind(rt.val) === 'FuncCall') {
      count = rt.name === undefined ? 'count' : String(rt.name);
      continue;
    }
    const fields = ((inner(rt.val).fields as Node[] | undefined) ?? []).map((f) => (nodeKind(f) === 'A_Star' ? '*' : nodeKind(f) === 'String' ? String(inner(f).sval) : undefined));
    const name = fields.length === 1 ? fields[0] : fields.length === 2 && fields[0] === qualifier ? fields[1] : undefined;
    if (name === '*') {
      cols.forEach((c, i) => columns.push({ col: i, name: c.name }));
      continue;
    }
    const i = cols.findIndex((c) => c.name === name);
    if (name === undefined || i < 0) return 'an unknown or qualified column';
    columns.push({ col: i, name: rt.name === undefined ? cols[i]!.name : String(rt.name) });
  }
  if (columns.length === 0 && count === undefined) return 'no output columns';
  const params = new Map<number, 'text' | 'count'>();
  const use = (n: number, how: 'text' | 'count'): boolean => {
    if (params.has(n) && params.get(n) !== how) return false;
    params.set(n, how);
    return true;
  };
  // Any text stands in for a parameter here; the real values are checked at each execution.
  let filter: FilterPlan | undefined;
  if (!exactPins(read.ref, read.table.spec, () => '')) {
    const f = planFilter(read.ref.where!, read.ref, read.table.spec);
    if (typeof f === 'string') return `a WHERE the pushdown does not apply exactly (${f})`;
    filter = f;
  }
  for (const n of paramRefs(read.ref.where)) if (!use(n, 'text')) return 'a parameter used two ways';
  for (const c of [select.limitCount, select.limitOffset] as (Node | undefined)[]) {
    if (c === undefined) continue;
    const k = nodeKind(c);
    if (k === 'ParamRef') {
      if (!use(Number(inner(c).number), 'count')) return 'a parameter used two ways';
    } else if (k !== 'A_Const' || !(inner(c).isnull || inner(c).ival)) return 'a LIMIT or OFFSET that is not an integer';
  }
  for (let n = 1; n <= plan.clientParams; n++) if (!params.has(n)) return `parameter $${n} is not used`;
  return { read, columns, ...(count === undefined ? {} : { count }), ...(filter ? { filter } : {}), types, typed, limit: select.limitCount as Node | undefined, offset: select.limitOffset as Node | undefined, params };
}

function paramRefs(n: unknown, out: number[] = []): number[] {
  if (Array.isArray(n)) for (const x of n) paramRefs(x, out);
  else if (n && typeof n === 'object') {
    if (nodeKind(n) === 'ParamRef') out.push(Number(inner(n).number));
    else for (const v of Object.values(n)) paramRefs(v, out);
  }
  return out;
}

/** A client's bound parameters as the fast path may use them, or a reason it can't. */
export interface FastParams {
  text: ParamText;
  count(n: number): number | null | undefined;
}

export const NO_FAST_PARAMS: FastParams = { text: () => undefined, count: () => undefined };

/**
 * Reads a Bind's parameters for the fast path, or says why it can't: a value Postgres's input would
 * refuse or change (bad UTF-8, NUL, a count that isn't a plain non-negative integer) stays upstream's.
 */
export function fastParams(shape: FastShape, m: BindMessage, declared: readonly number[], codec?: Codec): FastParams | string {
  const problem = fastParamsProblem(shape, m, declared, codec);
  if (problem !== undefined) return problem;
  return {
    text: (n) => {
      const v = m.params[n - 1];
      return v === undefined ? undefined : v === null ? null : codec ? codec.decode(v) : v.toString('utf8');
    },
    count: (n) => {
      const v = m.params[n - 1];
      return v === undefined ? undefined : v === null ? null : countValue(v, paramFormat(m, n - 1), declared[n - 1] ?? 0);
    },
  };
}

/** Why fastParams would refuse a Bind's parameters, or undefined when it takes them (no closures made). */
export function fastParamsProblem(shape: FastShape, m: BindMessage, declared: readonly number[], codec?: Codec): string | undefined {
  for (const [n, how] of shape.params) {
    const v = m.params[n - 1];
    const type = declared[n - 1] ?? 0;
    const fmt = paramFormat(m, n - 1);
    if (fmt !== 0 && fmt !== 1) return 'a parameter format code upstream refuses';
    if (v === null || v === undefined) continue;
    if (how === 'text') {
      if (!TEXT_PARAM_TYPES.has(type)) return `parameter $${n} is declared with type ${type}`;
      if (!(codec ? decodes(codec, v) : isUtf8(v)) || v.includes(0)) return `parameter $${n} is not valid text`;
    } else if (countValue(v, fmt, type) === undefined) return `parameter $${n} is not a count the fast path reads`;
  }
  return undefined;
}

function countValue(v: Buffer, fmt: number, type: number): number | undefined {
  if (type !== 0 && type !== INT8_OID) return undefined;
  if (fmt === 0) {
    const s = v.toString('latin1');
    return /^[0-9]{1,15}$/.test(s) ? Number(s) : undefined;
  }
  if (v.length !== 8) return undefined;
  const n = v.readBigInt64BE(0);
  return n >= 0n && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : undefined;
}

/** A LIMIT or OFFSET as a count; null for none (ALL or NULL); undefined when the fast path can't tell. */
function count(n: Node | undefined, params: FastParams): number | null | undefined {
  if (n === undefined) return null;
  if (nodeKind(n) === 'ParamRef') return params.count(Number(inner(n).number));
  const c = inner(n);
  if (c.isnull) return null;
  const v = Number((c.ival as Node | undefined)?.ival ?? 0);
  return Number.isInteger(v) && v >= 0 ? v : undefined;
}

/** The row description upstream sends for this shape, with the client's result formats. */
export function fastFields(shape: FastShape, formats: readonly number[]): FieldDescription[] | undefined {
  const n = shape.count === undefined ? shape.columns.length : 1;
  if (formats.length > 1 && formats.length !== n) return undefined;
  if (formats.some((f) => f !== 0 && f !== 1)) return undefined;
  // count(*) is bigint, computed: no table or column behind it.
  if (shape.count !== undefined) return [{ name: shape.count, tableOid: 0, attnum: 0, typeOid: INT8_OID, typeLen: 8, typeMod: -1, format: formats[0] ?? 0 }];
  const { table } = shape.read;
  return shape.columns.map((c, i) => ({
    name: c.name,
    tableOid: table.resolved.oid,
    attnum: c.col + 1,
    typeOid: Number(table.spec.columns[c.col]!.typeOid),
    typeLen: shape.types[c.col]!.typeLen,
    typeMod: shape.types[c.col]!.typeMod,
    format: formats.length === 0 ? 0 : formats.length === 1 ? formats[0]! : formats[i]!,
  }));
}

export const encodeFastFields = encodeRowDescription;

export interface FastResult {
  /** The DataRow messages, in Redis's order as upstream would return them, packed into a few buffers. */
  rows: Buffer[];
  rowCount: number;
  /** CommandComplete. */
  complete: Buffer;
  /** RowDescription and the rows went to the FastStream already: only CommandComplete is left. */
  streamed?: true;
}

/**
 * Reads the rows from Redis and shapes them as upstream would. Throws what the upstream path would
 * throw for a bad value (22021), and says so for a value its type's output would print otherwise;
 * the caller then lets the upstream path run and report or convert it.
 */
/**
 * Where a whole-key read may stream its rows: begin() (false: not now, collect them) before the first,
 * then chunk() for each piece of DataRows, in order.
 */
export interface FastStream {
  begin(): boolean;
  chunk(rows: Buffer): void;
}

export async function runFast(redis: RedisAccess, shape: FastShape, params: FastParams, fields: readonly FieldDescription[], codec?: Codec, stream?: FastStream): Promise<FastResult | string> {
  const { read } = shape;
  const spec = read.table.spec;
  const pins = shape.filter ? [] : exactPins(read.ref, spec, params.text);
  if (!pins) return 'a parameter the pushdown cannot read';
  const filter = shape.filter ? bindFilter(shape.filter, params.text) : undefined;
  if (typeof filter === 'string') return filter;
  const limit = count(shape.limit, params);
  const offset = count(shape.offset, params);
  if (limit === undefined || offset === undefined) return 'LIMIT or OFFSET';
  // count(*) is one row, which OFFSET and LIMIT apply to; every row read is counted.
  const counting = shape.count !== undefined;
  if (counting && read.countOnly) {
    const n = await countRows(redis, read.table, undefined);
    const rows = (offset ?? 0) === 0 && limit !== 0 ? [encodeDataRow([countValue64(n, fields[0]!.format)])] : [];
    return { rows, rowCount: rows.length, complete: encodeCommandComplete(`SELECT ${rows.length}`) };
  }
  const end = counting || limit === null ? Infinity : (offset ?? 0) + limit;
  const { types, typed } = shape;
  const pinBytes = pins.map((p) => ({ col: p.col, values: p.values.map((v) => Buffer.from(v, 'utf8')) }));
  const out = new RowWriter(shape.columns.map((c, i) => outputOf(types[c.col]!, fields[i]!.format, codec, c.col)));
  let seen = 0;
  let odd = false;
  // Called for every row read, in order; `view` holds its values.
  const consume = (view: RowView): void => {
    // Upstream may never cast a value it doesn't show; the fast path doesn't guess which.
    for (const c of typed) {
      const e = view.ends[c]!;
      if (e >= 0 && types[c]!.text(view.bufs[c]!.subarray(view.starts[c]!, e)) === undefined) odd = true;
    }
    if (odd || seen >= end || !passes(pinBytes, view) || (filter && filter(view) !== true)) return;
    if (counting) {
      seen++;
      return;
    }
    if (seen++ < (offset ?? 0)) return;
    out.row(view);
  };
  const pushdown = pushdownFor(read, params.text);
  const ncols = spec.columns.length;
  const view: RowView = { bufs: new Array<Buffer | undefined>(ncols), starts: new Int32Array(ncols), ends: new Int32Array(ncols) };
  const table = read.table.display;
  // One row from the row path (pinned, multi-key, or no raw scan for this client) into `view`.
  const consumeRow = (key: string, values: (Buffer | string | null)[]): void => {
    for (let c = 0; c < ncols; c++) {
      const v = values[c];
      if (v === null || v === undefined) {
        view.ends[c] = -1;
        continue;
      }
      // Every value read is checked, shown or not, as the upstream path checks all it ships.
      if (Buffer.isBuffer(v)) checkText(v, key, table);
      const b = bytesOf(v);
      view.bufs[c] = b;
      view.starts[c] = 0;
      view.ends[c] = b.length;
    }
    consume(view);
  };
  const direct = !filter && pins.length === 0 && !counting && !offset && limit === null ? directColumns(shape, spec, pushdown, fields, codec) : undefined;
  let rowCols: RowColumns | undefined;
  if (direct) {
    // Rows are the reply's elements: written as DataRows while the reply is parsed.
    const target = new DataRowTarget(direct.ncols, direct.fixes);
    let viaRows = false;
    // A reply checked whole before a row is written can't fail later: its rows go out as they are
    // written, overlapping this parse with the client's. The fixes are checked with it: a value they
    // can't vouch for sends the statement upstream, which must not follow rows already sent.
    let streamed = false;
    const checkedWhole: WholeCheck | undefined = stream ? {
      checked: () => {
        if (!stream.begin()) return;
        streamed = true;
        target.handOn((c) => stream.chunk(c));
      },
      values: direct.fixes.some((f) => f !== undefined) ? direct.fixes.map((f) => f && ((b, s, e) => f(b, s, e) !== undefined)) : undefined,
    } : undefined;
    await readRows(redis, read.table, pushdown, undefined, {
      columns: { arrays: [], table, direct: { first: target, second: direct.ncols === 2 ? target : undefined }, checkedWhole },
      // No raw scan for this client (a cluster, --redis-fast-scan off): row by row as below.
      row(key, values) {
        viaRows = true;
        consumeRow(key, values);
      },
    });
    if (!viaRows) {
      if (target.odd) return 'a value not in its type\'s canonical form';
      if (streamed) {
        for (const c of target.finish()) stream!.chunk(c);
        return { rows: [], rowCount: target.length, complete: encodeCommandComplete(`SELECT ${target.length}`), streamed: true };
      }
      return { rows: target.finish(), rowCount: target.length, complete: encodeCommandComplete(`SELECT ${target.length}`) };
    }
  } else if ((rowCols = streamColumns(spec, pushdown))) {
    // A whole key: each row is handed to consume() as the reply is parsed, from one scratch buffer.
    const target = new RowViewTarget(view, rowCols, Buffer.from(spec.key, 'utf8'), consume);
    let viaRows = false;
    await readRows(redis, read.table, pushdown, undefined, {
      columns: { arrays: [], table, direct: { first: target, second: rowCols.slots.length === 2 ? target : undefined } },
      row(key, values) {
        viaRows = true;
        consumeRow(key, values);
      },
    });
    if (!viaRows) target.flush();
  } else {
    await readRows(redis, read.table, pushdown, undefined, { row: consumeRow });
  }
  if (odd) return 'a value not in its type\'s canonical form';
  if (counting && (offset ?? 0) === 0 && limit !== 0) out.values([countValue64(seen, fields[0]!.format)]);
  return { rows: out.finish(), rowCount: out.count, complete: encodeCommandComplete(`SELECT ${out.count}`) };
}

/**
 * Where a whole-key raw scan's elements go in the row view, when the read is one (a single key, no
 * pushed-down fields or limit, a type with a raw scan, each role in one column); undefined otherwise.
 */
export function streamColumns(spec: TableSpec, pushdown: Pushdown): RowColumns | undefined {
  const scan = typeOf(spec).fastScan;
  if (!scan || spec.multi !== 'none' || pushdown.fields !== undefined || pushdown.limit !== undefined) return undefined;
  if (scan.whole && !scan.whole(pushdown)) return undefined;
  const roles: string[] = spec.roles.map((r) => r.kind);
  const only = (role: string | undefined): number => (role === undefined ? -1 : roles.indexOf(role));
  const twice = (role: string | undefined): boolean => role !== undefined && roles.indexOf(role) !== roles.lastIndexOf(role);
  if (twice(scan.first) || twice(scan.second)) return undefined;
  const slots = scan.second === undefined ? [only(scan.first)] : [only(scan.first), only(scan.second)];
  const key: number[] = [];
  const position: number[] = [];
  roles.forEach((r, i) => {
    if (r === 'key') key.push(i);
    else if (r === scan.position) position.push(i);
  });
  return { slots, key, position };
}

/**
 * How a whole-key read writes its DataRows directly, when the output is exactly the scan's elements in
 * reply order (the member, or member and value/score): each column sent as read, or in text format as
 * its type's fix prints it; undefined otherwise.
 */
function directColumns(shape: FastShape, spec: TableSpec, pushdown: Pushdown, fields: readonly FieldDescription[], codec: Codec | undefined): { ncols: 1 | 2; fixes: (ValueFix | undefined)[] } | undefined {
  const scan = typeOf(spec).fastScan;
  if (!scan || spec.multi !== 'none' || pushdown.fields !== undefined || pushdown.limit !== undefined || codec) return undefined;
  if (scan.whole && !scan.whole(pushdown)) return undefined;
  // A typed column the output doesn't show is still cast upstream: the row path checks it.
  if (shape.typed.some((c) => !shape.columns.some((o) => o.col === c))) return undefined;
  const fixes: (ValueFix | undefined)[] = [];
  for (let i = 0; i < shape.columns.length; i++) {
    const t = shape.types[shape.columns[i]!.col]!;
    if (isPlainText(t)) fixes.push(undefined);
    else if (fields[i]!.format === 0) fixes.push(fixOf(t));
    else return undefined;
  }
  const roles = shape.columns.map((c) => spec.roles[c.col]!.kind);
  // Every element the reply brings is checked as text, so a pair's second half must be written too.
  if (roles.length === 1 && roles[0] === scan.first && scan.second === undefined) return { ncols: 1, fixes };
  if (roles.length === 2 && roles[0] === scan.first && scan.second !== undefined && roles[1] === scan.second) return { ncols: 2, fixes };
  return undefined;
}

/** A typed column's text output, judged on the bytes where the scan wrote them. */
function fixOf(t: FastType): ValueFix {
  return (buf, start, end) => {
    if (t.asIs?.(buf, start, end)) return true;
    const v = buf.subarray(start, end);
    const out = t.text(v);
    return out === undefined ? undefined : out === v ? true : out;
  };
}

/** How one output column's value becomes its DataRow bytes. */
type Output = { col: number; raw: true } | { col: number; raw: false; encode: (v: Buffer) => Buffer | null };

function outputOf(t: FastType, format: number, codec: Codec | undefined, col: number): Output {
  // A text value is sent as the bytes read, in either format, to a UTF-8 client.
  if (!codec && isPlainText(t)) return { col, raw: true };
  return { col, raw: false, encode: (v) => (codec ? cellIn(codec, t, v, format) : cell(t, v, format)) };
}

const CHUNK = 64 * 1024;

/** DataRow messages written back to back into 64 kB buffers. */
class RowWriter {
  private readonly chunks: Buffer[] = [];
  private buf = Buffer.allocUnsafe(CHUNK);
  private off = 0;
  count = 0;

  private readonly allRaw: boolean;
  private readonly rawCols: Int32Array;

  /** Every column is sent as the bytes read. */
  get raw(): boolean {
    return this.allRaw;
  }

  constructor(private readonly outputs: readonly Output[]) {
    this.allRaw = outputs.every((o) => o.raw);
    this.rawCols = Int32Array.from(outputs, (o) => o.col);
  }

  row(view: RowView): void {
    if (this.allRaw) return this.rawRow(view);
    const outs = this.outputs;
    const cells: (Buffer | null)[] = [];
    let size = 7;
    for (let i = 0; i < outs.length; i++) {
      const o = outs[i]!;
      const e = view.ends[o.col]!;
      if (o.raw) size += 4 + (e < 0 ? 0 : e - view.starts[o.col]!);
      else {
        const v = e < 0 ? null : o.encode(view.bufs[o.col]!.subarray(view.starts[o.col]!, e));
        cells[i] = v;
        size += 4 + (v === null ? 0 : v.length);
      }
    }
    this.ensure(size);
    const buf = this.buf;
    let at = this.header(size, outs.length);
    for (let i = 0; i < outs.length; i++) {
      const o = outs[i]!;
      let src: Buffer | null;
      let s = 0;
      let e: number;
      if (o.raw) {
        e = view.ends[o.col]!;
        src = e < 0 ? null : view.bufs[o.col]!;
        s = view.starts[o.col]!;
      } else {
        src = cells[i]!;
        e = src === null ? -1 : src.length;
      }
      if (src === null) {
        buf.writeInt32BE(-1, at);
        at += 4;
        continue;
      }
      const n = e - s;
      buf[at] = n >>> 24;
      buf[at + 1] = (n >>> 16) & 0xff;
      buf[at + 2] = (n >>> 8) & 0xff;
      buf[at + 3] = n & 0xff;
      at += 4;
      if (n > 64) src.copy(buf, at, s, e);
      else for (let k = 0; k < n; k++) buf[at + k] = src[s + k]!;
      at += n;
    }
    this.off = at;
  }

  /** row() when every column is sent as the bytes read: the common case, kept tight. */
  private rawRow(view: RowView): void {
    const cols = this.rawCols;
    const n = cols.length;
    const { bufs, starts, ends } = view;
    let size = 7 + 4 * n;
    for (let i = 0; i < n; i++) {
      const c = cols[i]!;
      const e = ends[c]!;
      if (e >= 0) size += e - starts[c]!;
    }
    this.ensure(size);
    const buf = this.buf;
    let at = this.header(size, n);
    for (let i = 0; i < n; i++) {
      const c = cols[i]!;
      const e = ends[c]!;
      if (e < 0) {
        buf[at] = buf[at + 1] = buf[at + 2] = buf[at + 3] = 0xff;
        at += 4;
        continue;
      }
      const s = starts[c]!;
      const len = e - s;
      buf[at] = len >>> 24;
      buf[at + 1] = (len >>> 16) & 0xff;
      buf[at + 2] = (len >>> 8) & 0xff;
      buf[at + 3] = len & 0xff;
      at += 4;
      const src = bufs[c]!;
      if (len > 64) src.copy(buf, at, s, e);
      else for (let k = 0; k < len; k++) buf[at + k] = src[s + k]!;
      at += len;
    }
    this.off = at;
  }

  /** A DataRow of given values. */
  values(vs: readonly (Buffer | null)[]): void {
    const m = encodeDataRow(vs);
    this.ensure(m.length);
    m.copy(this.buf, this.off);
    this.off += m.length;
    this.count++;
  }

  finish(): Buffer[] {
    if (this.off > 0) this.chunks.push(this.buf.subarray(0, this.off));
    return this.chunks;
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    if (this.off > 0) this.chunks.push(this.buf.subarray(0, this.off));
    this.buf = Buffer.allocUnsafe(Math.max(CHUNK, n));
    this.off = 0;
  }

  /** Writes a DataRow's type, length and column count; returns where its first value goes. */
  private header(size: number, ncols: number): number {
    const buf = this.buf;
    const o = this.off;
    const len = size - 1;
    buf[o] = Backend.DataRow;
    buf[o + 1] = len >>> 24;
    buf[o + 2] = (len >>> 16) & 0xff;
    buf[o + 3] = (len >>> 8) & 0xff;
    buf[o + 4] = len & 0xff;
    buf[o + 5] = ncols >>> 8;
    buf[o + 6] = ncols & 0xff;
    this.count++;
    return o + 7;
  }
}

const bytesOf = (v: Buffer | string): Buffer => (typeof v === 'string' ? Buffer.from(v, 'utf8') : v);

/** One value as upstream sends it: its type's text output, or binary send form. */
function cell(t: FastType, v: Buffer | string | null, format: number): Buffer | null {
  if (v === null) return null;
  const out = t.text(bytesOf(v))!;
  return format === 0 ? out : t.binary(out);
}

/**
 * cell() for a client whose encoding isn't UTF-8, as upstream would send it: a text form (and the
 * binary form of a text type, which is the same bytes) in the client's encoding; 22P05 for a
 * character it lacks. A number's binary form is left as it is.
 */
function cellIn(codec: Codec, t: FastType, v: Buffer | string | null, format: number): Buffer | null {
  if (v === null) return null;
  const out = t.text(bytesOf(v))!;
  const bin = format === 0 ? out : t.binary(out);
  return bin === out ? codec.encode(out) : bin;
}

function countValue64(n: number, format: number): Buffer {
  if (format === 0) return Buffer.from(String(n), 'latin1');
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(n));
  return b;
}

function passes(pins: readonly { col: number; values: Buffer[] }[], view: RowView): boolean {
  for (const p of pins) {
    const e = view.ends[p.col]!;
    if (e < 0) return false;
    const buf = view.bufs[p.col]!;
    const s = view.starts[p.col]!;
    if (!p.values.some((v) => v.length === e - s && buf.compare(v, 0, v.length, s, e) === 0)) return false;
  }
  return true;
}
