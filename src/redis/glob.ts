/**
 * Redis glob patterns (KEYS / SCAN MATCH), matched byte for byte exactly as Redis's `stringmatchlen` does:
 * `*` any run of bytes, `?` one byte, `[abc]`, `[^a]`, `[a-z]` (reversed ranges allowed), and `\x` for a
 * literal x (also inside brackets). Case-sensitive.
 */

const toBytes = (s: string | Buffer): Buffer => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s);
/** Redis compares range bounds as (signed) C chars. */
const signed = (b: number): number => (b >= 0x80 ? b - 0x100 : b);

const STAR = 0x2a;
const QUESTION = 0x3f;
const OPEN = 0x5b;
const CLOSE = 0x5d;
const CARET = 0x5e;
const BACKSLASH = 0x5c;
const DASH = 0x2d;

export function globMatch(pattern: string | Buffer, subject: string | Buffer): boolean {
  const p = toBytes(pattern);
  // SCAN/KEYS skip matching altogether for a lone '*', so it matches even the empty key (stringmatchlen would not).
  if (p.length === 1 && p[0] === STAR) return true;
  const s = toBytes(subject);
  const state = { skipLonger: false };
  return matchAt(p, 0, s, 0, state, 0);
}

function matchAt(p: Buffer, pi: number, s: Buffer, si: number, state: { skipLonger: boolean }, nesting: number): boolean {
  if (nesting > 1000) return false; // Redis's own guard against abusive patterns
  const pl = p.length;
  const sl = s.length;
  while (pi < pl && si < sl) {
    const c = p[pi]!;
    switch (c) {
      case STAR: {
        while (pi + 1 < pl && p[pi + 1] === STAR) pi++;
        if (pi + 1 === pl) return true;
        while (si < sl) {
          if (matchAt(p, pi + 1, s, si, state, nesting + 1)) return true;
          if (state.skipLonger) return false;
          si++;
        }
        state.skipLonger = true;
        return false;
      }
      case QUESTION:
        si++;
        break;
      case OPEN: {
        pi++;
        const not = p[pi] === CARET;
        if (not) pi++;
        let match = false;
        const ch = s[si]!;
        for (;;) {
          if (p[pi] === BACKSLASH && pl - pi >= 2) {
            pi++;
            if (p[pi] === ch) match = true;
          } else if (p[pi] === CLOSE) {
            break;
          } else if (pi >= pl) {
            pi--; // unterminated class: Redis backs up one so the outer loop's advance ends the pattern
            break;
          } else if (pl - pi >= 3 && p[pi + 1] === DASH) {
            let start = signed(p[pi]!);
            let end = signed(p[pi + 2]!);
            if (start > end) [start, end] = [end, start];
            const v = signed(ch);
            pi += 2;
            if (v >= start && v <= end) match = true;
          } else if (p[pi] === ch) {
            match = true;
          }
          pi++;
        }
        if (not) match = !match;
        if (!match) return false;
        si++;
        break;
      }
      case BACKSLASH:
        if (pl - pi >= 2) pi++;
        if (p[pi] !== s[si]) return false;
        si++;
        break;
      default:
        if (c !== s[si]) return false;
        si++;
        break;
    }
    pi++;
    if (si === sl) {
      while (pi < pl && p[pi] === STAR) pi++;
      break;
    }
  }
  return pi === pl && si === sl;
}

/**
 * If the pattern matches exactly one string (no unescaped `*`, `?` or `[`), that string with escapes
 * removed; otherwise null. Lets a `multi` table whose pattern is really a single key skip SCAN.
 */
export function globLiteral(pattern: string): string | null {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' || c === '?' || c === '[') return null;
    if (c === '\\' && i + 1 < pattern.length) {
      i++;
      out += pattern[i];
    } else {
      out += c;
    }
  }
  return out;
}
