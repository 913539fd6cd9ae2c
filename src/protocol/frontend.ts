/**
 * Frontend messages the proxy must look inside, decoded only when a statement may concern a
 * Redis foreign table; plus encoders for the rewritten ones it sends upstream instead.
 */
import { Frontend } from './codes.js';
import { MessageReader, MessageWriter } from './writer.js';
import { PgError } from './pg-error.js';
import { SqlState } from './sqlstate.js';
import type { Codec } from './encoding.js';

export function decodeQuery(buf: Buffer, start: number, end: number): string {
  return new MessageReader(buf, start + 5, end).cstring();
}

export interface ParseMessage {
  name: string;
  text: string;
  paramTypes: number[];
}

export function decodeParse(buf: Buffer, start: number, end: number): ParseMessage {
  const r = new MessageReader(buf, start + 5, end);
  const name = r.cstring();
  const text = r.cstring();
  const n = r.uint16();
  const paramTypes: number[] = [];
  for (let i = 0; i < n; i++) paramTypes.push(r.uint32());
  return { name, text, paramTypes };
}

/** Reads only the statement text of a Parse, for the cheap relevance check. */
export function parseText(buf: Buffer, start: number, end: number): string {
  const nameEnd = buf.indexOf(0, start + 5);
  const textEnd = nameEnd < 0 ? -1 : buf.indexOf(0, nameEnd + 1);
  if (textEnd < 0 || textEnd >= end) throw new RangeError('malformed Parse');
  return buf.toString('utf8', nameEnd + 1, textEnd);
}

/** `codec`: the client's encoding, when not UTF-8 (upstream reads the text in it). */
export function encodeParse(m: ParseMessage, codec?: Codec): Buffer {
  const w = new MessageWriter(Frontend.Parse, m.text.length + 16 + m.paramTypes.length * 4).cstring(m.name);
  if (codec) w.bytes(codec.encode(m.text)).int8(0);
  else w.cstring(m.text);
  w.uint16(m.paramTypes.length);
  for (const t of m.paramTypes) w.uint32(t);
  return w.finish();
}

export interface BindMessage {
  portal: string;
  statement: string;
  /** As sent: empty (all text), one (applies to all), or one per parameter. */
  paramFormats: number[];
  params: (Buffer | null)[];
  resultFormats: number[];
}

/** The statement a Bind names ('' when the frame is too short to say: decodeBind then reports why). */
export function bindStatementName(buf: Buffer): string {
  const portalEnd = buf.indexOf(0, 5);
  const end = portalEnd < 0 ? -1 : buf.indexOf(0, portalEnd + 1);
  return end < 0 ? '' : buf.toString('utf8', portalEnd + 1, end);
}

/** What the proxy knows of the statement a Bind names, for the checks Postgres makes before reading values. */
export interface BindCheck {
  /** Parameters the client's statement takes; undefined skips that check. */
  params?: number;
  /** The transaction is aborted: Postgres refuses the Bind once its counts are read. */
  failedTx?: boolean;
}

const insufficient = (): PgError => new PgError(SqlState.ProtocolViolation, 'insufficient data left in message');

/**
 * Decodes a Bind as Postgres's exec_bind_message reads it, failing where and as it fails: a short
 * field is 08P01 "insufficient data left in message", a count that doesn't fit is 08P01 with its
 * wording, a format code other than 0 or 1 is 22023, trailing bytes are "invalid message format".
 * These are ERRORs after which the session goes on, as they are in Postgres.
 */
export function decodeBind(buf: Buffer, start: number, end: number, check: BindCheck = {}): BindMessage {
  const r = new MessageReader(buf, start + 5, end);
  const read = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof RangeError) throw e.message === 'unterminated string' ? new PgError(SqlState.ProtocolViolation, 'invalid string in message') : insufficient();
      throw e;
    }
  };
  const portal = read(() => r.cstring());
  const statement = read(() => r.cstring());
  const paramFormats: number[] = [];
  for (let i = read(() => r.uint16()); i > 0; i--) paramFormats.push(read(() => r.int16()));
  const count = read(() => r.uint16());
  if (paramFormats.length > 1 && paramFormats.length !== count) {
    throw new PgError(SqlState.ProtocolViolation, `bind message has ${paramFormats.length} parameter formats but ${count} parameters`);
  }
  if (check.params !== undefined && count !== check.params) {
    throw new PgError(SqlState.ProtocolViolation, `bind message supplies ${count} parameters, but prepared statement "${statement}" requires ${check.params}`);
  }
  if (check.failedTx) throw new PgError(SqlState.InFailedTransaction, 'current transaction is aborted, commands ignored until end of transaction block');
  const params: (Buffer | null)[] = [];
  for (let i = 0; i < count; i++) {
    // Postgres names the parameter it was reading in the error's context.
    const where = `${portal === '' ? 'unnamed portal' : `portal "${portal}"`} parameter $${i + 1}`;
    const inParam = (e: PgError): PgError => new PgError(e.code, e.message, { where });
    let n: number;
    try {
      n = read(() => r.int32());
    } catch (e) {
      throw e instanceof PgError ? inParam(e) : e;
    }
    if (n !== -1 && (n < 0 || n > r.remaining)) throw inParam(insufficient());
    params.push(n === -1 ? null : r.bytes(n));
    const format = paramFormats.length === 0 ? 0 : paramFormats.length === 1 ? paramFormats[0]! : paramFormats[i]!;
    if (format !== 0 && format !== 1) throw new PgError(SqlState.InvalidParameterValue, `unsupported format code: ${format}`, { where });
  }
  const resultFormats: number[] = [];
  for (let i = read(() => r.uint16()); i > 0; i--) resultFormats.push(read(() => r.int16()));
  if (r.remaining !== 0) throw new PgError(SqlState.ProtocolViolation, 'invalid message format');
  return { portal, statement, paramFormats, params, resultFormats };
}

/** The format code of parameter i, following the protocol's 0/1/n rule. */
export function paramFormat(m: BindMessage, i: number): number {
  if (m.paramFormats.length === 0) return 0;
  if (m.paramFormats.length === 1) return m.paramFormats[0]!;
  return m.paramFormats[i] ?? 0;
}

export function encodeBind(m: BindMessage): Buffer {
  let size = 16 + m.portal.length + m.statement.length + m.paramFormats.length * 2 + m.resultFormats.length * 2;
  for (const p of m.params) size += 4 + (p?.length ?? 0);
  const w = new MessageWriter(Frontend.Bind, size).cstring(m.portal).cstring(m.statement).uint16(m.paramFormats.length);
  for (const f of m.paramFormats) w.int16(f);
  w.uint16(m.params.length);
  for (const p of m.params) w.lengthPrefixed(p);
  w.uint16(m.resultFormats.length);
  for (const f of m.resultFormats) w.int16(f);
  return w.finish();
}

/**
 * The Bind pg-protocol's `serialize.bind` writes (a string in text format, a Buffer in binary, results
 * in text), as buffers to write in order, where a parameter may also be given in pieces: those go out as
 * they are, not copied into one message (a 100,000-write COMMIT's outbox payload is ~10 MB, and each
 * copy of it held the event loop for tens of ms).
 */
export function encodeBindParts(portal: string, statement: string, params: readonly (string | Buffer | readonly Buffer[] | null)[]): Buffer[] {
  const values = params.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p));
  const lengths = values.map((p) => (p === null ? -1 : Buffer.isBuffer(p) ? p.length : p.reduce((n, b) => n + b.length, 0)));
  const names = Buffer.from(`${portal}\0${statement}\0`, 'utf8');
  const formats = Buffer.allocUnsafe(2 + 2 * params.length + 2);
  formats.writeUInt16BE(params.length, 0);
  params.forEach((p, i) => formats.writeUInt16BE(p === null || typeof p === 'string' ? 0 : 1, 2 + 2 * i));
  formats.writeUInt16BE(params.length, 2 + 2 * params.length);
  let size = 4 + names.length + formats.length + 4;
  for (const n of lengths) size += 4 + Math.max(n, 0);
  const head = Buffer.allocUnsafe(5);
  head[0] = Frontend.Bind;
  head.writeInt32BE(size, 1);
  const out: Buffer[] = [];
  let small: Buffer[] = [head, names, formats];
  const flush = (): void => {
    if (small.length > 0) out.push(small.length === 1 ? small[0]! : Buffer.concat(small));
    small = [];
  };
  values.forEach((v, i) => {
    const len = Buffer.allocUnsafe(4);
    len.writeInt32BE(lengths[i]!, 0);
    small.push(len);
    if (v === null) return;
    if (Buffer.isBuffer(v)) small.push(v);
    else {
      flush();
      out.push(...v);
    }
  });
  small.push(Buffer.from([0, 1, 0, 0])); // one result format for all: text
  flush();
  return out;
}

export interface TargetMessage {
  kind: 'S' | 'P';
  name: string;
}

/**
 * Reads fields as Postgres's pq_getmsg* do, failing with their ERRORs: a missing NUL is "invalid
 * string in message", a short field "insufficient data left in message", leftover bytes "invalid
 * message format".
 */
function pgFields<T>(buf: Buffer, start: number, end: number, f: (r: MessageReader) => T): T {
  const r = new MessageReader(buf, start + 5, end);
  let v: T;
  try {
    v = f(r);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw new PgError(SqlState.ProtocolViolation, e.message === 'unterminated string' ? 'invalid string in message' : 'insufficient data left in message');
  }
  if (r.remaining !== 0) throw new PgError(SqlState.ProtocolViolation, 'invalid message format');
  return v;
}

/** Describe and Close share one shape: a kind byte and a name. */
export function decodeTarget(buf: Buffer, start: number, end: number): TargetMessage {
  // pq_getmsgbyte's own wording for the missing kind byte.
  if (end - start <= 5) throw new PgError(SqlState.ProtocolViolation, 'no data left in message');
  const [k, name] = pgFields(buf, start, end, (r) => [r.int8(), r.cstring()] as const);
  if (k !== 0x53 && k !== 0x50) throw new PgError(SqlState.ProtocolViolation, `invalid ${buf[start] === Frontend.Close ? 'CLOSE' : 'DESCRIBE'} message subtype ${k}`);
  return { kind: k === 0x53 ? 'S' : 'P', name };
}

export function encodeTarget(code: Frontend.Describe | Frontend.Close, t: TargetMessage): Buffer {
  return new MessageWriter(code, t.name.length + 8).int8(t.kind.charCodeAt(0)).cstring(t.name).finish();
}

export interface ExecuteMessage {
  portal: string;
  maxRows: number;
}

export function decodeExecute(buf: Buffer, start: number, end: number): ExecuteMessage {
  return pgFields(buf, start, end, (r) => ({ portal: r.cstring(), maxRows: r.int32() }));
}

export function encodeExecute(m: ExecuteMessage): Buffer {
  return new MessageWriter(Frontend.Execute, m.portal.length + 10).cstring(m.portal).int32(m.maxRows).finish();
}

const fixed = (code: number): Buffer => Buffer.from([code, 0, 0, 0, 4]);
export const SYNC = fixed(Frontend.Sync);
export const FLUSH = fixed(Frontend.Flush);
export const TERMINATE = fixed(Frontend.Terminate);
