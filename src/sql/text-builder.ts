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

/** The statement's tokens (byte offsets), with nesting depth. */
export function tokensOf(text: string): Token[] {
  let depth = 0;
  return scanSql(text).tokens.map((t) => {
    const tx = (t.text ?? '').toLowerCase();
    if (tx === ')' || tx === ']') depth--;
    const tok = { start: t.start, end: t.end, text: tx, depth };
    if (tx === '(' || tx === '[') depth++;
    return tok;
  });
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
  private readonly bytes: Buffer;
  private out = '';
  private readonly pieces: Piece[] = [];

  constructor(
    private readonly original: string,
    private readonly replaces: readonly Replace[] = [],
  ) {
    this.bytes = Buffer.from(original, 'utf8');
  }

  private charOffset(byte: number): number {
    return this.bytes.subarray(0, byte).toString('utf8').length;
  }

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
    const s = this.bytes.subarray(start, end).toString('utf8');
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
      out += this.bytes.subarray(at, r.start).toString('utf8') + r.sql;
      at = r.end;
    }
    return out + this.bytes.subarray(at, end).toString('utf8');
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
