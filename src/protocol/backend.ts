/**
 * Backend messages: the ones the proxy produces for clients (encode*), and the few upstream
 * messages it must look inside (decode*). Everything else from upstream is forwarded as raw bytes.
 */
import { Backend } from './codes.js';
import { PgError } from './pg-error.js';
import { MessageReader, MessageWriter } from './writer.js';

const fixed = (code: number): Buffer => Buffer.from([code, 0, 0, 0, 4]);
export const PARSE_COMPLETE = fixed(Backend.ParseComplete);
export const BIND_COMPLETE = fixed(Backend.BindComplete);
export const CLOSE_COMPLETE = fixed(Backend.CloseComplete);
export const NO_DATA = fixed(Backend.NoData);
export const EMPTY_QUERY = fixed(Backend.EmptyQueryResponse);
export const PORTAL_SUSPENDED = fixed(Backend.PortalSuspended);

export type TxStatus = 'I' | 'T' | 'E';

export function encodeReadyForQuery(status: TxStatus): Buffer {
  return Buffer.from([Backend.ReadyForQuery, 0, 0, 0, 5, status.charCodeAt(0)]);
}

export function encodeCommandComplete(tag: string): Buffer {
  return new MessageWriter(Backend.CommandComplete, tag.length + 6).cstring(tag).finish();
}

/** The single place a PgError becomes bytes on the wire. */
export function encodeError(err: PgError, asNotice = false): Buffer {
  const w = new MessageWriter(asNotice ? Backend.NoticeResponse : Backend.ErrorResponse, 128);
  const field = (t: string, v: string | undefined): void => {
    if (v !== undefined) w.int8(t.charCodeAt(0)).cstring(v);
  };
  field('S', err.severity);
  field('V', err.severity);
  field('C', err.code);
  field('M', err.message);
  field('D', err.detail);
  field('H', err.hint);
  field('P', err.position === undefined ? undefined : String(err.position));
  field('W', err.where);
  field('s', err.schema);
  field('t', err.table);
  field('c', err.column);
  return w.int8(0).finish();
}

export interface FieldDescription {
  name: string;
  tableOid: number;
  attnum: number;
  typeOid: number;
  typeLen: number;
  typeMod: number;
  format: number;
}

export function encodeRowDescription(fields: readonly FieldDescription[]): Buffer {
  const w = new MessageWriter(Backend.RowDescription, 8 + fields.length * 32).uint16(fields.length);
  for (const f of fields) {
    w.cstring(f.name).uint32(f.tableOid).int16(f.attnum).uint32(f.typeOid).int16(f.typeLen).int32(f.typeMod).int16(f.format);
  }
  return w.finish();
}

export function encodeDataRow(values: readonly (Buffer | null)[]): Buffer {
  let size = 8;
  for (const v of values) size += 4 + (v === null ? 0 : v.length);
  const w = new MessageWriter(Backend.DataRow, size).uint16(values.length);
  for (const v of values) w.lengthPrefixed(v);
  return w.finish();
}

export function encodeParameterDescription(oids: readonly number[]): Buffer {
  const w = new MessageWriter(Backend.ParameterDescription, 8 + oids.length * 4).uint16(oids.length);
  for (const o of oids) w.uint32(o);
  return w.finish();
}

// ---- decoding upstream messages (frame = buf[start, end), start at the type byte) ----

const FATAL_FIELD = Buffer.from('SFATAL\0');

/** Whether the frame at `start` is an ErrorResponse of severity FATAL (Postgres sends S first). */
export function isFatalError(buf: Buffer, start: number): boolean {
  return buf[start] === Backend.ErrorResponse && buf.indexOf(FATAL_FIELD, start + 5) === start + 5;
}

export interface UpstreamError {
  severity: string;
  code: string;
  message: string;
  fields: Map<string, string>;
}

export function decodeErrorFields(buf: Buffer, start: number, end: number): UpstreamError {
  const r = new MessageReader(buf, start + 5, end);
  const fields = new Map<string, string>();
  while (r.remaining > 0) {
    const t = r.int8();
    if (t === 0) break;
    fields.set(String.fromCharCode(t), r.cstring());
  }
  return {
    severity: fields.get('V') ?? fields.get('S') ?? 'ERROR',
    code: fields.get('C') ?? 'XX000',
    message: fields.get('M') ?? '',
    fields,
  };
}

export function decodeRowDescription(buf: Buffer, start: number, end: number): FieldDescription[] {
  const r = new MessageReader(buf, start + 5, end);
  const n = r.uint16();
  const out: FieldDescription[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      name: r.cstring(),
      tableOid: r.uint32(),
      attnum: r.int16(),
      typeOid: r.uint32(),
      typeLen: r.int16(),
      typeMod: r.int32(),
      format: r.int16(),
    });
  }
  return out;
}

export function decodeDataRow(buf: Buffer, start: number, end: number): (Buffer | null)[] {
  const r = new MessageReader(buf, start + 5, end);
  const n = r.uint16();
  const out: (Buffer | null)[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = r.lengthPrefixed();
  return out;
}

export function decodeParameterDescription(buf: Buffer, start: number, end: number): number[] {
  const r = new MessageReader(buf, start + 5, end);
  const n = r.uint16();
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(r.uint32());
  return out;
}

export function decodeCommandTag(buf: Buffer, start: number, end: number): string {
  return new MessageReader(buf, start + 5, end).cstring();
}

/** Re-encodes an upstream ErrorResponse with its statement position mapped (P is 1-based, in characters). */
export function remapErrorPosition(buf: Buffer, start: number, end: number, map: (pos0: number) => number): Buffer {
  const e = decodeErrorFields(buf, start, end);
  const p = e.fields.get('P');
  if (p === undefined) return Buffer.from(buf.subarray(start, end));
  // The other fields are copied as bytes: they are in the client's encoding, which needn't be UTF-8.
  const w = new MessageWriter(buf[start]!, end - start + 8);
  let off = start + 5;
  while (off < end && buf[off] !== 0) {
    const z = buf.indexOf(0, off + 1);
    if (z < 0 || z >= end) break;
    if (buf[off] === 0x50) w.int8(0x50).cstring(String(map(Number(p) - 1) + 1));
    else w.bytes(buf.subarray(off, z + 1));
    off = z + 1;
  }
  return w.int8(0).finish();
}
