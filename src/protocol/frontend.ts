/**
 * Frontend messages the proxy must look inside, decoded only when a statement may concern a
 * Redis foreign table; plus encoders for the rewritten ones it sends upstream instead.
 */
import { Frontend } from './codes.js';
import { MessageReader, MessageWriter } from './writer.js';

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

export function encodeParse(m: ParseMessage): Buffer {
  const w = new MessageWriter(Frontend.Parse, m.text.length + 16 + m.paramTypes.length * 4).cstring(m.name).cstring(m.text).uint16(m.paramTypes.length);
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

export function decodeBind(buf: Buffer, start: number, end: number): BindMessage {
  const r = new MessageReader(buf, start + 5, end);
  const portal = r.cstring();
  const statement = r.cstring();
  const paramFormats: number[] = [];
  for (let i = r.uint16(); i > 0; i--) paramFormats.push(r.int16());
  const params: (Buffer | null)[] = [];
  for (let i = r.uint16(); i > 0; i--) params.push(r.lengthPrefixed());
  const resultFormats: number[] = [];
  for (let i = r.uint16(); i > 0; i--) resultFormats.push(r.int16());
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

export interface TargetMessage {
  kind: 'S' | 'P';
  name: string;
}

/** Describe and Close share one shape: a kind byte and a name. */
export function decodeTarget(buf: Buffer, start: number, end: number): TargetMessage {
  const r = new MessageReader(buf, start + 5, end);
  const k = r.int8();
  if (k !== 0x53 && k !== 0x50) throw new RangeError(`invalid target type ${k}`);
  return { kind: k === 0x53 ? 'S' : 'P', name: r.cstring() };
}

export function encodeTarget(code: Frontend.Describe | Frontend.Close, t: TargetMessage): Buffer {
  return new MessageWriter(code, t.name.length + 8).int8(t.kind.charCodeAt(0)).cstring(t.name).finish();
}

export interface ExecuteMessage {
  portal: string;
  maxRows: number;
}

export function decodeExecute(buf: Buffer, start: number, end: number): ExecuteMessage {
  const r = new MessageReader(buf, start + 5, end);
  return { portal: r.cstring(), maxRows: r.int32() };
}

export function encodeExecute(m: ExecuteMessage): Buffer {
  return new MessageWriter(Frontend.Execute, m.portal.length + 10).cstring(m.portal).int32(m.maxRows).finish();
}

const fixed = (code: number): Buffer => Buffer.from([code, 0, 0, 0, 4]);
export const SYNC = fixed(Frontend.Sync);
export const FLUSH = fixed(Frontend.Flush);
export const TERMINATE = fixed(Frontend.Terminate);
