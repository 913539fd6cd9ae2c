/**
 * Builds statement text from pieces of the client's text and the proxy's own SQL, remembering where
 * each copied piece came from so an error position upstream reports maps back to the client's text.
 */
import { scanSql } from './parser.js';

export interface Token {
  start: number;
  end: number;
  text: string;
  /** Parenthesis/bracket depth the token is at (its own bracket counts as the outer depth). */
  depth: number;
}

/** Token text longer than this is never looked at (no keyword is this long). */
export const LONG_TOKEN = 256;

type ScanTokens = ReturnType<typeof scanSql>['tokens'];

/**
 * A statement's tokens packed to cross from the parse worker: `spans` holds start, end and depth of
 * each, `texts` their texts joined by NUL (which statement text never holds: the protocol ends it
 * there). A cloned array of token objects cost the event loop 370 ms at 600,000 tokens (a
 * 100,000-row VALUES); these two move whole (a transfer and one string copy), and unpacking them is
 * about a tenth of that.
 */
export interface PackedTokens {
  spans: Int32Array;
  texts: string;
}

/**
 * Scans of big statements done off the event loop, by text; only the last few are kept. `unpacked`:
 * unpacked ahead (unpackAhead), for the next tokensOf only.
 */
const remembered = new Map<string, { packed: PackedTokens; unpacked?: Token[] }>();
const REMEMBERED_MAX = 4;

/** Records a scan made elsewhere (the parse worker), for the tokensOf call that follows. */
export function rememberTokens(text: string, tokens: PackedTokens): void {
  remembered.delete(text);
  remembered.set(text, { packed: tokens });
  if (remembered.size > REMEMBERED_MAX) remembered.delete(remembered.keys().next().value as string);
}

/** The statement's tokens (byte offsets), with nesting depth. */
export function tokensOf(text: string): Token[] {
  const r = remembered.get(text);
  if (!r) return withDepth(scanSql(text).tokens);
  const ahead = r.unpacked;
  // 600,000 token objects are not kept past their use: later calls unpack again.
  r.unpacked = undefined;
  return ahead ?? unpackTokens(r.packed);
}

/** Tokens between two calls of unpackAhead's `pause`. */
const UNPACK_STRIDE = 4096;

/**
 * Unpacks a remembered scan for the next tokensOf of `text`, calling `pause` (which may give way)
 * between slices: at 600,000 tokens (a 100,000-row INSERT … VALUES) unpacking took 30–70 ms in one go.
 */
export async function unpackAhead(text: string, pause: () => Promise<void> | undefined): Promise<void> {
  const r = remembered.get(text);
  if (!r || r.unpacked) return;
  const { spans, texts } = r.packed;
  const n = spans.length / 3;
  const out = new Array<Token>(n);
  let at = 0;
  for (let i = 0; i < n; i++) {
    const end = i === n - 1 ? texts.length : texts.indexOf('\0', at);
    out[i] = { start: spans[3 * i]!, end: spans[3 * i + 1]!, text: texts.slice(at, end), depth: spans[3 * i + 2]! };
    at = end + 1;
    if (i % UNPACK_STRIDE === UNPACK_STRIDE - 1) {
      const p = pause();
      if (p) await p;
    }
  }
  // Another reply for the same text may have replaced the entry meanwhile: it is as good.
  const now = remembered.get(text);
  if (now) now.unpacked = out;
}

/** Drops tokens unpacked ahead that were not used. */
export function forgetUnpacked(text: string): void {
  const r = remembered.get(text);
  if (r) r.unpacked = undefined;
}

function withDepth(scanned: ScanTokens): Token[] {
  let depth = 0;
  return scanned.map((t) => {
    // Only keywords and punctuation are compared; lower-casing a multi-megabyte literal is waste.
    const tx = t.text === undefined || t.text.length > LONG_TOKEN ? '' : t.text.toLowerCase();
    if (tx === ')' || tx === ']') depth--;
    const tok = { start: t.start, end: t.end, text: tx, depth };
    if (tx === '(' || tx === '[') depth++;
    return tok;
  });
}

/** tokensOf's answer for `text`, packed (in the parse worker). */
export function packedTokensOf(text: string): PackedTokens {
  const tokens = withDepth(scanSql(text).tokens);
  const spans = new Int32Array(tokens.length * 3);
  tokens.forEach((t, i) => {
    spans[3 * i] = t.start;
    spans[3 * i + 1] = t.end;
    spans[3 * i + 2] = t.depth;
  });
  return { spans, texts: tokens.map((t) => t.text).join('\0') };
}

export function unpackTokens(p: PackedTokens): Token[] {
  const n = p.spans.length / 3;
  if (n === 0) return [];
  const texts = p.texts.split('\0');
  const out = new Array<Token>(n);
  for (let i = 0; i < n; i++) out[i] = { start: p.spans[3 * i]!, end: p.spans[3 * i + 1]!, text: texts[i]!, depth: p.spans[3 * i + 2]! };
  return out;
}

/**
 * Byte span of a relation reference whose name starts at `location`: the whole `schema.name`, and a
 * preceding ONLY, which a derived table put in its place can't take.
 */
export function relationSpan(tokens: readonly Token[], location: number): { start: number; end: number } {
  const i = tokens.findIndex((t) => t.start === location);
  if (i < 0) throw new Error(`no token at relation location ${location}`);
  let j = i;
  while (tokens[j + 1]?.text === '.' && tokens[j + 2]) j += 2;
  const prev = tokens[i - 1];
  return { start: prev && prev.text === 'only' ? prev.start : location, end: tokens[j]!.end };
}

/** A replacement of bytes [start, end) of the original by proxy SQL. */
export interface Replace {
  start: number;
  end: number;
  sql: string;
}

interface Piece {
  newStart: number;
  newEnd: number;
  /** Character offset in the original where this piece starts; a proxy piece maps to its anchor. */
  oldStart: number;
  copied: boolean;
}

export class TextBuilder {
  /** The original's UTF-8 bytes; undefined while the text is ASCII, where byte and char offsets agree. */
  private readonly bytes: Buffer | undefined;
  private out = '';
  private readonly pieces: Piece[] = [];

  constructor(
    private readonly original: string,
    private readonly replaces: readonly Replace[] = [],
  ) {
    // Slicing the string itself costs nothing for ASCII text; a multi-megabyte literal then isn't
    // converted to bytes and back for every piece.
    this.bytes = Buffer.byteLength(original, 'utf8') === original.length ? undefined : Buffer.from(original, 'utf8');
  }

  private part(start: number, end: number): string {
    return this.bytes ? this.bytes.subarray(start, end).toString('utf8') : this.original.slice(start, end);
  }

  /** Char offsets of ASCII text are its byte offsets; otherwise counted on from the last answer. */
  private charOffset(byte: number): number {
    if (!this.bytes) return byte;
    const m = this.lastOffset;
    const chars = byte >= m.byte ? m.chars + this.bytes.subarray(m.byte, byte).toString('utf8').length : this.bytes.subarray(0, byte).toString('utf8').length;
    this.lastOffset = { byte, chars };
    return chars;
  }

  private lastOffset = { byte: 0, chars: 0 };

  /** Proxy SQL; errors inside it point at `anchorByte` of the original. */
  emit(sql: string, anchorByte = 0): this {
    this.pieces.push({ newStart: this.out.length, newEnd: this.out.length + sql.length, oldStart: this.charOffset(anchorByte), copied: false });
    this.out += sql;
    return this;
  }

  /** Original bytes [start, end), with the replacements that fall inside applied. */
  copy(start: number, end: number): this {
    return this.copyWith(start, end, []);
  }

  /** As copy, with more replacements for this stretch only. */
  copyWith(start: number, end: number, extra: readonly Replace[]): this {
    let at = start;
    for (const r of [...this.replaces, ...extra].sort((a, b) => a.start - b.start)) {
      if (r.start < start || r.end > end) continue;
      this.copyPlain(at, r.start);
      this.emit(r.sql, r.start);
      at = r.end;
    }
    return this.copyPlain(at, end);
  }

  private copyPlain(start: number, end: number): this {
    if (end <= start) return this;
    const s = this.part(start, end);
    this.pieces.push({ newStart: this.out.length, newEnd: this.out.length + s.length, oldStart: this.charOffset(start), copied: true });
    this.out += s;
    return this;
  }

  /** Original bytes [start, end) with replacements applied, as a string (for proxy SQL built around it). */
  slice(start: number, end: number): string {
    let out = '';
    let at = start;
    for (const r of [...this.replaces].sort((a, b) => a.start - b.start)) {
      if (r.start < start || r.end > end) continue;
      out += this.part(at, r.start) + r.sql;
      at = r.end;
    }
    return out + this.part(at, end);
  }

  /** 0-based character offset of a byte offset of the original. */
  charAt(byte: number): number {
    return this.charOffset(byte);
  }

  get text(): string {
    return this.out;
  }

  /** Maps a 0-based character offset in the built text to one in the original. */
  toOriginal = (n: number): number => {
    for (const p of this.pieces) {
      if (n >= p.newStart && n < p.newEnd) return p.copied ? p.oldStart + (n - p.newStart) : p.oldStart;
    }
    return this.original.length;
  };
}
