/**
 * The fast path's commonest statement with the least work per execution: a SELECT from a single-key hash
 * table whose WHERE pins the field column (`key = $1`, `key = 'x'`, `key IN (…)`, conjunctions of those),
 * with text columns and no LIMIT, OFFSET or count. What doesn't depend on the bound values is worked out
 * once per prepared statement (planPoint); an execution builds one HMGET, sends it on the server's raw
 * pipelined connection (redis/resp-pipe.ts) and makes the DataRows straight from the reply.
 *
 * The answer is runFast's for the same statement: the fields asked are the pushdown's (each pin's values
 * intersected in the first pin's order, duplicates dropped), the rows are the fields Redis has, in that
 * order, and every pin passes for them by construction. Anything else (an error reply, a value that isn't
 * valid text, a parameter the fast path can't read) is left to the usual paths, which report it as they
 * always have. test/fdw/fast-path.test.ts holds both against upstream's bytes.
 */
import { isUtf8 } from 'node:buffer';
import { encodeCommandComplete, encodeDataRow } from '../protocol/backend.js';
import type { BindMessage } from '../protocol/frontend.js';
import { exactPins } from '../sql/pushdown.js';
import { RespError, type Reply } from '../redis/resp-pipe.js';
import { isPlainText } from './fast-types.js';
import type { FastResult, FastShape } from './fast-path.js';

export interface PointLookup {
  /** Each conjunct's values: a literal's bytes, or the number of the parameter that gives it. */
  pins: (Buffer | number)[][];
  /** For each output column: 0 the field, 1 the value. */
  out: (0 | 1)[];
  /** The command after its array header: `$5\r\nHMGET\r\n$<n>\r\n<key>\r\n`. */
  head: Buffer;
}

/** Stands in for parameter n while the pins are worked out: no literal can hold a NUL. */
const marker = (n: number): string => `\0${n}`;

/** The point lookup a fast-path shape is, or undefined when it is any other read. */
export function planPoint(shape: FastShape): PointLookup | undefined {
  const { read } = shape;
  const spec = read.table.spec;
  if (spec.type !== 'hash' || spec.multi !== 'none' || read.countOnly || shape.count !== undefined) return undefined;
  if (shape.limit !== undefined || shape.offset !== undefined || !shape.types.every(isPlainText)) return undefined;
  const out: (0 | 1)[] = [];
  for (const c of shape.columns) {
    const role = spec.roles[c.col]?.kind;
    if (role !== 'field' && role !== 'value') return undefined;
    out.push(role === 'field' ? 0 : 1);
  }
  // The very pins runFast re-applies, with markers for the parameters' values.
  const pins = exactPins(read.ref, spec, marker);
  if (!pins || pins.length === 0 || pins.some((p) => spec.roles[p.col]?.kind !== 'field')) return undefined;
  const key = Buffer.from(spec.key, 'utf8');
  return {
    pins: pins.map((p) => p.values.map((v) => (v.startsWith('\0') ? Number(v.slice(1)) : Buffer.from(v, 'utf8')))),
    out,
    head: Buffer.concat([Buffer.from(`$5\r\nHMGET\r\n$${key.length}\r\n`, 'latin1'), key, CRLF]),
  };
}

const CRLF = Buffer.from('\r\n', 'latin1');

/**
 * The fields an execution asks for. Parameters were checked as fastParams checks them (valid text, or
 * NULL, which pins nothing), so their bytes are the text compared.
 */
export function pointFields(p: PointLookup, m: BindMessage): Buffer[] {
  let fields = values(p.pins[0]!, m);
  for (let i = 1; i < p.pins.length; i++) {
    const other = values(p.pins[i]!, m);
    fields = fields.filter((f) => other.some((o) => o.equals(f)));
  }
  if (fields.length < 2) return fields;
  return fields.filter((f, i) => fields.findIndex((g) => g.equals(f)) === i);
}

function values(sources: (Buffer | number)[], m: BindMessage): Buffer[] {
  const out: Buffer[] = [];
  for (const s of sources) {
    const v = typeof s === 'number' ? m.params[s - 1] : s;
    if (v) out.push(v);
  }
  return out;
}

/** `HMGET key field…` as RESP bytes. */
export function encodeHmget(p: PointLookup, fields: readonly Buffer[]): Buffer {
  const header = `*${fields.length + 2}\r\n`;
  let size = header.length + p.head.length;
  for (const f of fields) size += 5 + decimalLength(f.length) + f.length;
  const cmd = Buffer.allocUnsafe(size);
  let o = cmd.write(header, 0, 'latin1');
  o += p.head.copy(cmd, o);
  for (const f of fields) {
    o += cmd.write(`$${f.length}\r\n`, o, 'latin1');
    o += f.copy(cmd, o);
    cmd[o++] = 13;
    cmd[o++] = 10;
  }
  return cmd;
}

const decimalLength = (n: number): number => (n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : String(n).length);

const COMPLETE = [encodeCommandComplete('SELECT 0'), encodeCommandComplete('SELECT 1')];

/**
 * The rows of HMGET's reply, as runFast makes them; undefined when the usual paths must answer (an error
 * reply, a reply of another shape, a value that isn't valid text: those report it as they always have).
 */
export function pointResult(p: PointLookup, fields: readonly Buffer[], reply: Reply): FastResult | undefined {
  if (reply instanceof RespError || !Array.isArray(reply) || reply.length !== fields.length) return undefined;
  const rows: Buffer[] = [];
  for (let i = 0; i < fields.length; i++) {
    const v = reply[i];
    if (v === null) continue;
    if (!Buffer.isBuffer(v) || !isText(v)) return undefined;
    const f = fields[i]!;
    rows.push(encodeDataRow(p.out.map((o) => (o === 0 ? f : v))));
  }
  return { rows, rowCount: rows.length, complete: COMPLETE[rows.length] ?? encodeCommandComplete(`SELECT ${rows.length}`) };
}

/** Valid UTF-8 without NUL, what checkText lets through (short ASCII checked by hand, as there). */
function isText(b: Buffer): boolean {
  if (b.length <= 64) {
    let ascii = true;
    for (let k = 0; k < b.length; k++) {
      const c = b[k]!;
      if (c === 0) return false;
      if (c > 0x7f) ascii = false;
    }
    if (ascii) return true;
  }
  return isUtf8(b) && !b.includes(0);
}
