/**
 * Conversion between the client's encoding and UTF-8 (Redis's, and the proxy's own strings), for the
 * single-byte encodings Postgres converts to and from UTF8. Upstream speaks the client's encoding on
 * the proxy's connection too, so every text the proxy hands upstream (statement text, Redis values as
 * parameters) is encoded into it, and every text it takes from upstream or the client is decoded.
 *
 * Each table is built once from the WHATWG decoders Node ships (full ICU), corrected where WHATWG
 * and Postgres differ: WHATWG maps ISO-8859-1 and -9 to windows-1252/1254, and maps windows-125x's
 * unassigned bytes to C1 controls, which Postgres has no equivalent for. The tests compare every
 * byte of every table with upstream's own `convert_from`.
 */
import { PgError } from './pg-error.js';
import { SqlState } from './sqlstate.js';

export interface Codec {
  /** Postgres's name of the encoding, as error messages spell it. */
  readonly name: string;
  /** Client bytes to text; 22P05 for a byte with no equivalent in UTF8. */
  decode(bytes: Uint8Array): string;
  /** Text (or UTF-8 bytes) to client bytes; 22P05, in Postgres's words, for a character the encoding lacks. */
  encode(text: string | Buffer): Buffer;
}

/** Upper-cased, without `_` or `-`, as Postgres matches encoding names. */
export function normalizeEncoding(encoding: string): string {
  return encoding.toUpperCase().replace(/[-_]/g, '');
}

/**
 * windows-1252's 0x80–0x9F (0: unassigned); its 0xA0–0xFF are Latin-1's. Written out because Node's
 * TextDecoder('windows-1252') decodes as ISO-8859-1.
 */
const WIN1252_C1 = [
  0x20ac, 0, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017d, 0,
  0, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0, 0x017e, 0x0178,
];

interface SingleByte {
  pg: string;
  /** WHATWG label of the decoder the table is read from; none: Latin-1 (plus `c1`). */
  label?: string;
  /** 0x80–0x9F are the C1 controls, as in every ISO-8859 part. */
  iso: boolean;
  c1?: readonly number[];
  /** Bytes WHATWG maps and Postgres doesn't. */
  unassigned?: readonly number[];
}

/** Postgres's name → how to build its table. */
const SINGLE_BYTE: Record<string, SingleByte> = {
  LATIN1: { pg: 'LATIN1', iso: true },
  LATIN2: { pg: 'LATIN2', label: 'iso-8859-2', iso: true },
  LATIN3: { pg: 'LATIN3', label: 'iso-8859-3', iso: true },
  LATIN4: { pg: 'LATIN4', label: 'iso-8859-4', iso: true },
  LATIN5: { pg: 'LATIN5', label: 'windows-1254', iso: true },
  LATIN6: { pg: 'LATIN6', label: 'iso-8859-10', iso: true },
  LATIN7: { pg: 'LATIN7', label: 'iso-8859-13', iso: true },
  LATIN8: { pg: 'LATIN8', label: 'iso-8859-14', iso: true },
  LATIN9: { pg: 'LATIN9', label: 'iso-8859-15', iso: true },
  ISO88595: { pg: 'ISO_8859_5', label: 'iso-8859-5', iso: true },
  ISO88596: { pg: 'ISO_8859_6', label: 'iso-8859-6', iso: true },
  ISO88597: { pg: 'ISO_8859_7', label: 'iso-8859-7', iso: true },
  ISO88598: { pg: 'ISO_8859_8', label: 'iso-8859-8', iso: true },
  WIN1250: { pg: 'WIN1250', label: 'windows-1250', iso: false },
  WIN1251: { pg: 'WIN1251', label: 'windows-1251', iso: false },
  WIN1252: { pg: 'WIN1252', iso: false, c1: WIN1252_C1 },
  WIN1253: { pg: 'WIN1253', label: 'windows-1253', iso: false, unassigned: [0xaa] },
  WIN1254: { pg: 'WIN1254', label: 'windows-1254', iso: false },
  WIN1255: { pg: 'WIN1255', label: 'windows-1255', iso: false },
  WIN1256: { pg: 'WIN1256', label: 'windows-1256', iso: false },
  WIN1257: { pg: 'WIN1257', label: 'windows-1257', iso: false },
  WIN866: { pg: 'WIN866', label: 'ibm866', iso: false },
  WIN874: { pg: 'WIN874', label: 'windows-874', iso: false, unassigned: [0xdb, 0xdc, 0xdd, 0xde, 0xfc, 0xfd, 0xfe, 0xff] },
  KOI8R: { pg: 'KOI8R', label: 'koi8-r', iso: false },
  KOI8U: { pg: 'KOI8U', label: 'koi8-u', iso: false },
};

/** The single-byte encodings converted here, by Postgres's names. */
export const SUPPORTED_ENCODINGS: readonly string[] = Object.values(SINGLE_BYTE).map((e) => e.pg);

/**
 * Encodings whose bytes the proxy takes as UTF-8: UTF8 itself, and SQL_ASCII, for which Postgres
 * converts nothing and checks client text against the server encoding.
 */
export function isUtf8Encoding(encoding: string): boolean {
  const n = normalizeEncoding(encoding);
  return n === 'UTF8' || n === 'UNICODE' || n === 'SQLASCII';
}

/** Whether a session in `encoding` can use foreign tables: UTF-8 or one of the tables here. */
export function isConvertible(encoding: string): boolean {
  return isUtf8Encoding(encoding) || normalizeEncoding(encoding) in SINGLE_BYTE;
}

const codecs = new Map<string, Codec>();

/** The codec for `encoding`; undefined for UTF-8 (nothing to convert) and for encodings not covered. */
export function codecFor(encoding: string): Codec | undefined {
  // As upstream reports it nearly always: asked once per statement, so before any string work.
  if (encoding === 'UTF8' || isUtf8Encoding(encoding)) return undefined;
  const n = normalizeEncoding(encoding);
  const spec = SINGLE_BYTE[n];
  if (!spec) return undefined;
  let c = codecs.get(n);
  if (!c) codecs.set(n, (c = buildCodec(spec)));
  return c;
}

function buildCodec(spec: SingleByte): Codec {
  // toChar[b]: the code point byte b stands for, or -1 when Postgres has none.
  const toChar = new Int32Array(256);
  const decoder = spec.label ? new TextDecoder(spec.label) : undefined;
  for (let b = 0; b < 256; b++) {
    if (spec.c1 && b >= 0x80 && b < 0xa0) toChar[b] = spec.c1[b - 0x80] || -1;
    else if (b < 0x80 || !decoder) toChar[b] = b;
    else if (spec.iso && b < 0xa0) toChar[b] = b;
    else {
      const s = decoder.decode(Uint8Array.of(b));
      const cp = s.codePointAt(0) ?? 0xfffd;
      toChar[b] = cp === 0xfffd || (!spec.iso && cp >= 0x80 && cp < 0xa0) ? -1 : cp;
    }
  }
  for (const b of spec.unassigned ?? []) toChar[b] = -1;
  const toByte = new Map<number, number>();
  for (let b = 0; b < 256; b++) if (toChar[b]! >= 0) toByte.set(toChar[b]!, b);
  const chars = Array.from(toChar, (cp) => (cp >= 0 ? String.fromCodePoint(cp) : ''));
  return {
    name: spec.pg,
    decode(bytes) {
      let ascii = true;
      for (let i = 0; i < bytes.length; i++) if (bytes[i]! >= 0x80) ascii = false;
      if (ascii) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
      let out = '';
      for (let i = 0; i < bytes.length; i++) {
        const b = bytes[i]!;
        if (toChar[b]! < 0) throw untranslatable(Buffer.of(b), spec.pg, 'UTF8');
        out += chars[b];
      }
      return out;
    },
    encode(text) {
      const s = typeof text === 'string' ? text : text.toString('utf8');
      const out = Buffer.allocUnsafe(s.length);
      let n = 0;
      for (const ch of s) {
        const cp = ch.codePointAt(0)!;
        const b = cp < 0x80 ? cp : toByte.get(cp);
        if (b === undefined) throw untranslatable(Buffer.from(ch, 'utf8'), 'UTF8', spec.pg);
        out[n++] = b;
      }
      return out.subarray(0, n);
    },
  };
}

/** Postgres's report_untranslatable_char. */
function untranslatable(bytes: Buffer, from: string, to: string): PgError {
  const seq = [...bytes].map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(' ');
  return new PgError(SqlState.UntranslatableCharacter, `character with byte sequence ${seq} in encoding "${from}" has no equivalent in encoding "${to}"`);
}

/** Whether `bytes` decode in `codec` (a byte Postgres can't convert sends the text upstream to refuse). */
export function decodes(codec: Codec, bytes: Uint8Array): boolean {
  try {
    codec.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/**
 * A binary `text[]` (as the proxy builds its row parameters, UTF-8 elements) with each element
 * encoded into `codec`: upstream's array_recv reads text elements in the client's encoding.
 */
export function encodeTextArray(buf: Buffer, codec: Codec): Buffer {
  // Not a text[] (a count's int8): nothing to convert.
  if (buf.length < 12 || buf.readUInt32BE(8) !== 25) return buf;
  const ndim = buf.readInt32BE(0);
  let off = 12 + ndim * 8;
  const parts: Buffer[] = [buf.subarray(0, off)];
  let ascii = true;
  while (off < buf.length) {
    const len = buf.readInt32BE(off);
    off += 4;
    if (len < 0) {
      parts.push(buf.subarray(off - 4, off));
      continue;
    }
    const el = buf.subarray(off, off + len);
    off += len;
    let plain = true;
    for (let i = 0; i < el.length; i++) if (el[i]! >= 0x80) plain = false;
    const enc = plain ? el : codec.encode(el);
    if (!plain) ascii = false;
    const head = Buffer.allocUnsafe(4);
    head.writeInt32BE(enc.length);
    parts.push(head, enc);
  }
  return ascii ? buf : Buffer.concat(parts);
}
