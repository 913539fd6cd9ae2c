/**
 * An independent builder (and reader) of Postgres v3 wire frames for tests.
 *
 * It shares no code with src/protocol: bytes are assembled by hand from plain number arrays, so a
 * bug in the project's MessageWriter/MessageReader cannot hide a matching bug in the code under test
 * (the same habit as pg-protocol's testing/buffer-list.ts).
 */

/** Accumulates a message body; `frame(code)` prepends the type byte and the int32 length. */
export class Body {
  private readonly bytes: number[] = [];

  int8(v: number): this {
    this.bytes.push(v & 0xff);
    return this;
  }

  int16(v: number): this {
    this.bytes.push((v >>> 8) & 0xff, v & 0xff);
    return this;
  }

  /** Signed or unsigned: only the low 32 bits are written, big-endian. */
  int32(v: number): this {
    this.bytes.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
    return this;
  }

  /** UTF-8 text followed by a NUL. */
  cstring(s: string): this {
    return this.raw(utf8(s)).int8(0);
  }

  raw(b: Uint8Array | readonly number[]): this {
    for (const x of b) this.bytes.push(x & 0xff);
    return this;
  }

  /** int32 length then the bytes; null is -1 (SQL NULL). */
  value(b: Uint8Array | null): this {
    if (b === null) return this.int32(-1);
    return this.int32(b.length).raw(b);
  }

  get length(): number {
    return this.bytes.length;
  }

  /** A typed message: type byte, int32 length (which counts itself), body. */
  frame(code: string | number): Buffer {
    const c = typeof code === 'string' ? code.charCodeAt(0) : code;
    return Buffer.from([c, ...be32(this.bytes.length + 4), ...this.bytes]);
  }

  /** An untyped startup-phase packet: int32 length (counts itself), body. */
  packet(): Buffer {
    return Buffer.from([...be32(this.bytes.length + 4), ...this.bytes]);
  }
}

export const body = (): Body => new Body();

function be32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/** UTF-8 encoding done by hand, so it does not lean on Buffer.byteLength/write either. */
export function utf8(s: string): number[] {
  const out: number[] = [];
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp < 0x80) out.push(cp);
    else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
    else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  }
  return out;
}

/** A typed frame with an arbitrary (possibly lying) length word and body. */
export function rawFrame(code: string | number, length: number, payload: readonly number[] | Uint8Array = []): Buffer {
  const c = typeof code === 'string' ? code.charCodeAt(0) : code;
  return Buffer.from([c, ...be32(length), ...payload]);
}

// ---------------------------------------------------------------------------------------------
// Frontend (client → server) messages
// ---------------------------------------------------------------------------------------------

export const fe = {
  query: (text: string): Buffer => body().cstring(text).frame('Q'),
  parse: (name: string, text: string, types: readonly number[] = []): Buffer => {
    const b = body().cstring(name).cstring(text).int16(types.length);
    for (const t of types) b.int32(t);
    return b.frame('P');
  },
  bind: (
    portal: string,
    statement: string,
    paramFormats: readonly number[],
    params: readonly (Uint8Array | null)[],
    resultFormats: readonly number[],
  ): Buffer => {
    const b = body().cstring(portal).cstring(statement).int16(paramFormats.length);
    for (const f of paramFormats) b.int16(f);
    b.int16(params.length);
    for (const p of params) b.value(p);
    b.int16(resultFormats.length);
    for (const f of resultFormats) b.int16(f);
    return b.frame('B');
  },
  describe: (kind: 'S' | 'P', name: string): Buffer => body().int8(kind.charCodeAt(0)).cstring(name).frame('D'),
  close: (kind: 'S' | 'P', name: string): Buffer => body().int8(kind.charCodeAt(0)).cstring(name).frame('C'),
  execute: (portal: string, maxRows: number): Buffer => body().cstring(portal).int32(maxRows).frame('E'),
  functionCall: (oid: number, argFormats: readonly number[], args: readonly (Uint8Array | null)[], resultFormat: number): Buffer => {
    const b = body().int32(oid).int16(argFormats.length);
    for (const f of argFormats) b.int16(f);
    b.int16(args.length);
    for (const a of args) b.value(a);
    return b.int16(resultFormat).frame('F');
  },
  sync: (): Buffer => body().frame('S'),
  flush: (): Buffer => body().frame('H'),
  terminate: (): Buffer => body().frame('X'),
  copyData: (data: Uint8Array): Buffer => body().raw(data).frame('d'),
  copyDone: (): Buffer => body().frame('c'),
  copyFail: (message: string): Buffer => body().cstring(message).frame('f'),
  password: (pw: string): Buffer => body().cstring(pw).frame('p'),
  saslInitialResponse: (mechanism: string, data: Uint8Array): Buffer => body().cstring(mechanism).value(data).frame('p'),
  saslResponse: (data: Uint8Array): Buffer => body().raw(data).frame('p'),
};

// ---------------------------------------------------------------------------------------------
// Backend (server → client) messages
// ---------------------------------------------------------------------------------------------

export interface Field {
  name: string;
  tableOid: number;
  attnum: number;
  typeOid: number;
  typeLen: number;
  typeMod: number;
  format: number;
}

export const be = {
  authenticationOk: (): Buffer => body().int32(0).frame('R'),
  authenticationCleartext: (): Buffer => body().int32(3).frame('R'),
  authenticationMd5: (salt: readonly number[]): Buffer => body().int32(5).raw(salt).frame('R'),
  authenticationSasl: (mechanisms: readonly string[]): Buffer => {
    const b = body().int32(10);
    for (const m of mechanisms) b.cstring(m);
    return b.int8(0).frame('R');
  },
  authenticationSaslContinue: (data: string): Buffer => body().int32(11).raw(utf8(data)).frame('R'),
  authenticationSaslFinal: (data: string): Buffer => body().int32(12).raw(utf8(data)).frame('R'),
  backendKeyData: (pid: number, key: number): Buffer => body().int32(pid).int32(key).frame('K'),
  parameterStatus: (name: string, value: string): Buffer => body().cstring(name).cstring(value).frame('S'),
  readyForQuery: (status: 'I' | 'T' | 'E'): Buffer => body().int8(status.charCodeAt(0)).frame('Z'),
  parseComplete: (): Buffer => body().frame('1'),
  bindComplete: (): Buffer => body().frame('2'),
  closeComplete: (): Buffer => body().frame('3'),
  noData: (): Buffer => body().frame('n'),
  emptyQuery: (): Buffer => body().frame('I'),
  portalSuspended: (): Buffer => body().frame('s'),
  commandComplete: (tag: string): Buffer => body().cstring(tag).frame('C'),
  rowDescription: (fields: readonly Field[]): Buffer => {
    const b = body().int16(fields.length);
    for (const f of fields) b.cstring(f.name).int32(f.tableOid).int16(f.attnum).int32(f.typeOid).int16(f.typeLen).int32(f.typeMod).int16(f.format);
    return b.frame('T');
  },
  parameterDescription: (oids: readonly number[]): Buffer => {
    const b = body().int16(oids.length);
    for (const o of oids) b.int32(o);
    return b.frame('t');
  },
  dataRow: (values: readonly (Uint8Array | null)[]): Buffer => {
    const b = body().int16(values.length);
    for (const v of values) b.value(v);
    return b.frame('D');
  },
  /** Fields in the order given; each is a one-letter type and a value. */
  errorResponse: (fields: readonly [string, string][]): Buffer => {
    const b = body();
    for (const [t, v] of fields) b.int8(t.charCodeAt(0)).cstring(v);
    return b.int8(0).frame('E');
  },
  noticeResponse: (fields: readonly [string, string][]): Buffer => {
    const b = body();
    for (const [t, v] of fields) b.int8(t.charCodeAt(0)).cstring(v);
    return b.int8(0).frame('N');
  },
  notification: (pid: number, channel: string, payload: string): Buffer => body().int32(pid).cstring(channel).cstring(payload).frame('A'),
  copyInResponse: (format: number, columnFormats: readonly number[]): Buffer => {
    const b = body().int8(format).int16(columnFormats.length);
    for (const f of columnFormats) b.int16(f);
    return b.frame('G');
  },
  copyOutResponse: (format: number, columnFormats: readonly number[]): Buffer => {
    const b = body().int8(format).int16(columnFormats.length);
    for (const f of columnFormats) b.int16(f);
    return b.frame('H');
  },
  copyBothResponse: (format: number, columnFormats: readonly number[]): Buffer => {
    const b = body().int8(format).int16(columnFormats.length);
    for (const f of columnFormats) b.int16(f);
    return b.frame('W');
  },
  copyData: (data: Uint8Array): Buffer => body().raw(data).frame('d'),
  copyDone: (): Buffer => body().frame('c'),
  functionCallResponse: (value: Uint8Array | null): Buffer => body().value(value).frame('V'),
  negotiateProtocolVersion: (minor: number, unrecognized: readonly string[]): Buffer => {
    const b = body().int32(minor).int32(unrecognized.length);
    for (const o of unrecognized) b.cstring(o);
    return b.frame('v');
  },
};

/** A typical ErrorResponse as Postgres words it (fields in Postgres's own order). */
export function pgError(code: string, message: string, severity = 'ERROR'): Buffer {
  return be.errorResponse([
    ['S', severity],
    ['V', severity],
    ['C', code],
    ['M', message],
  ]);
}

// ---------------------------------------------------------------------------------------------
// Startup-phase packets
// ---------------------------------------------------------------------------------------------

export const startup = {
  ssl: (): Buffer => body().int32(80877103).packet(),
  gssenc: (): Buffer => body().int32(80877104).packet(),
  cancel: (pid: number, key: readonly number[]): Buffer => body().int32(80877102).int32(pid).raw(key).packet(),
  /** StartupMessage for protocol major.minor with the given parameters and the final terminator. */
  message: (params: Record<string, string>, major = 3, minor = 0): Buffer => {
    const b = body().int16(major).int16(minor);
    for (const [k, v] of Object.entries(params)) b.cstring(k).cstring(v);
    return b.int8(0).packet();
  },
};

// ---------------------------------------------------------------------------------------------
// Reading frames back, independently of src/protocol
// ---------------------------------------------------------------------------------------------

export interface RawFrame {
  code: string;
  /** The whole frame, type byte included. */
  bytes: Buffer;
  /** The payload after the length word. */
  payload: Buffer;
}

/** Splits a byte stream into whole typed frames; returns them and the unconsumed tail. */
export function splitFrames(buf: Buffer): { frames: RawFrame[]; rest: Buffer } {
  const frames: RawFrame[] = [];
  let off = 0;
  while (buf.length - off >= 5) {
    const len = ((buf[off + 1]! << 24) | (buf[off + 2]! << 16) | (buf[off + 3]! << 8) | buf[off + 4]!) >>> 0;
    if (len < 4 || off + 1 + len > buf.length) break;
    frames.push({ code: String.fromCharCode(buf[off]!), bytes: buf.subarray(off, off + 1 + len), payload: buf.subarray(off + 5, off + 1 + len) });
    off += 1 + len;
  }
  return { frames, rest: buf.subarray(off) };
}

/** Fields of an ErrorResponse/NoticeResponse payload, in order. */
export function errorFields(payload: Buffer): [string, string][] {
  const out: [string, string][] = [];
  let off = 0;
  while (off < payload.length && payload[off] !== 0) {
    const t = String.fromCharCode(payload[off]!);
    const z = payload.indexOf(0, off + 1);
    if (z < 0) throw new Error('unterminated error field');
    out.push([t, payload.toString('utf8', off + 1, z)]);
    off = z + 1;
  }
  if (payload[off] !== 0 || off !== payload.length - 1) throw new Error('error fields not terminated exactly at the end');
  return out;
}

/** Every split of `buf` into two chunks, including the empty-first and whole cases. */
export function* splitsInTwo(buf: Buffer): Generator<[Buffer, Buffer, number]> {
  for (let i = 0; i <= buf.length; i++) yield [buf.subarray(0, i), buf.subarray(i), i];
}

/** Offsets at which frames start/end in a stream of whole frames (0 and the total length included). */
export function boundaries(buf: Buffer): number[] {
  const out = [0];
  const { frames, rest } = splitFrames(buf);
  if (rest.length) throw new Error('boundaries() wants whole frames only');
  let off = 0;
  for (const f of frames) out.push((off += f.bytes.length));
  return out;
}

/** Seeded PRNG (mulberry32): reproducible fuzzing. */
export function prng(seed: number): { next(): number; int(lo: number, hi: number): number; bytes(n: number): Buffer; pick<T>(xs: readonly T[]): T } {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  return {
    next,
    int,
    bytes: (n: number) => {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = int(0, 255);
      return b;
    },
    pick: <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!,
  };
}
