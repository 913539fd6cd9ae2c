/**
 * Splices replacement SQL into statement text at relation references. Only the proxy's own fragments
 * are spliced in (derived tables over bound parameters); client text and Redis values never are.
 */
import { relationSpan, tokensOf } from './text-builder.js';

export interface Splice {
  /** Byte offset of the relation name (RangeVar.location). */
  location: number;
  /** SQL that replaces the (possibly qualified) name, and a preceding ONLY. */
  sql: string;
}

export interface Rewritten {
  text: string;
  /** Maps a 0-based character offset in `text` to one in the original, for error positions. */
  toOriginal(charOffset: number): number;
}

interface Span {
  start: number;
  end: number;
  sql: string;
}

export function rewriteText(original: string, splices: readonly Splice[]): Rewritten {
  if (splices.length === 0) return { text: original, toOriginal: (n) => n };
  const bytes = Buffer.from(original, 'utf8');
  const tokens = tokensOf(original);
  const spans: Span[] = splices.map((s) => ({ ...relationSpan(tokens, s.location), sql: s.sql }));
  spans.sort((a, b) => a.start - b.start);
  const parts: Buffer[] = [];
  // Offsets (in characters) of each splice in the new text and the old, to map error positions back.
  const marks: { newStart: number; newEnd: number; oldStart: number; oldEnd: number }[] = [];
  let at = 0;
  let newChars = 0;
  let oldChars = 0;
  for (const sp of spans) {
    const keep = bytes.subarray(at, sp.start);
    const keepChars = keep.toString('utf8').length;
    parts.push(keep, Buffer.from(sp.sql, 'utf8'));
    const oldLen = bytes.subarray(sp.start, sp.end).toString('utf8').length;
    marks.push({ newStart: newChars + keepChars, newEnd: newChars + keepChars + sp.sql.length, oldStart: oldChars + keepChars, oldEnd: oldChars + keepChars + oldLen });
    newChars += keepChars + sp.sql.length;
    oldChars += keepChars + oldLen;
    at = sp.end;
  }
  parts.push(bytes.subarray(at));
  return {
    text: Buffer.concat(parts).toString('utf8'),
    toOriginal(n) {
      let delta = 0;
      for (const m of marks) {
        if (n < m.newStart) break;
        if (n < m.newEnd) return m.oldStart;
        delta = m.oldEnd - m.newEnd;
      }
      return n + delta;
    },
  };
}
