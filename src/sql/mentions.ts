/**
 * Whether SQL text names one of a set of relations as an identifier, outside string literals, comments
 * and dollar quotes. The substring test that runs first is cheap but matches a name inside a literal,
 * and a statement it lets through is parsed; with a multi-megabyte literal that parse is the whole cost.
 *
 * It must never miss a real mention (the statement would then bypass the proxy's foreign-table
 * handling), so whatever it can't lex with certainty counts as a mention. Literal, comment and
 * dollar-quote bodies are skipped with indexOf, so the cost is linear and mostly native.
 */

const enum Ch {
  Dollar = 36,
  DQuote = 34,
  Quote = 39,
  Star = 42,
  Minus = 45,
  Slash = 47,
  Digit0 = 48,
  Digit9 = 57,
  Amp = 38,
  UpperA = 65,
  UpperE = 69,
  UpperU = 85,
  UpperZ = 90,
  Backslash = 92,
  Underscore = 95,
  LowerA = 97,
  LowerE = 101,
  LowerU = 117,
  LowerZ = 122,
}

const isIdentStart = (c: number): boolean => (c >= Ch.LowerA && c <= Ch.LowerZ) || (c >= Ch.UpperA && c <= Ch.UpperZ) || c === Ch.Underscore || c >= 0x80;
const isIdentChar = (c: number): boolean => isIdentStart(c) || (c >= Ch.Digit0 && c <= Ch.Digit9) || c === Ch.Dollar;

/**
 * `lowerNames` are relation names in lower case. Identifiers are compared in lower case too, so a
 * quoted `"Hash"` counts for `hash`: a false mention only costs a parse, a missed one a wrong answer.
 */
export function mentionsAny(text: string, lowerNames: ReadonlySet<string>): boolean {
  if (lowerNames.size === 0) return false;
  const n = text.length;
  const f = new Finder(text);
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === Ch.Quote) {
      // A plain literal under standard_conforming_strings; a backslash would make the end depend on
      // that setting, so the rest is taken as a possible mention.
      const end = plainStringEnd(f, text, i + 1);
      if (end < 0) return true;
      i = end;
    } else if (c === Ch.DQuote) {
      let j = i + 1;
      let ident = '';
      for (;;) {
        const q = f.next('"', j);
        if (q < 0) return true;
        ident += text.slice(j, q);
        if (text.charCodeAt(q + 1) !== Ch.DQuote) {
          j = q + 1;
          break;
        }
        ident += '"';
        j = q + 2;
      }
      if (lowerNames.has(ident.toLowerCase())) return true;
      i = j;
    } else if (c === Ch.Minus && text.charCodeAt(i + 1) === Ch.Minus) {
      const nl = lineEnd(f, i + 2);
      if (nl < 0) return false;
      i = nl;
    } else if (c === Ch.Slash && text.charCodeAt(i + 1) === Ch.Star) {
      const end = blockCommentEnd(f, i + 2);
      if (end < 0) return false;
      i = end;
    } else if (c === Ch.Dollar) {
      const end = dollarQuoteEnd(f, text, i);
      if (end === -2) return true;
      i = end < 0 ? i + 1 : end;
    } else if (isIdentStart(c)) {
      let j = i + 1;
      while (j < n && isIdentChar(text.charCodeAt(j))) j++;
      const next = text.charCodeAt(j);
      if (next === Ch.Quote && j - i === 1 && (c === Ch.LowerE || c === Ch.UpperE)) {
        const end = escapeStringEnd(f, text, j + 1);
        if (end < 0) return true;
        i = end;
        continue;
      }
      if (j - i === 1 && (c === Ch.LowerU || c === Ch.UpperU) && next === Ch.Amp) {
        // U&'…' and U&"…" may spell a name with escapes; don't try to decode them.
        const q = text.charCodeAt(j + 1);
        if (q === Ch.DQuote) return true;
        i = j + 1;
        continue;
      }
      if (lowerNames.has(text.slice(i, j).toLowerCase())) return true;
      i = j;
    } else {
      i++;
    }
  }
  return false;
}

/**
 * indexOf that remembers its last answer per needle, so repeated searches from increasing positions
 * cost one pass over the text in all (a search that finds nothing is never repeated).
 */
class Finder {
  private readonly last = new Map<string, { from: number; at: number }>();
  constructor(private readonly text: string) {}

  next(needle: string, from: number): number {
    const m = this.last.get(needle);
    if (m && m.from <= from && (m.at < 0 || m.at >= from)) return m.at;
    const at = this.text.indexOf(needle, from);
    this.last.set(needle, { from, at });
    return at;
  }
}

/** Index just past a plain literal's closing quote; -1 when unterminated or holding a backslash. */
function plainStringEnd(f: Finder, text: string, from: number): number {
  const backslash = f.next('\\', from);
  let j = from;
  for (;;) {
    const q = f.next("'", j);
    if (q < 0 || (backslash >= 0 && backslash < q)) return -1;
    if (text.charCodeAt(q + 1) !== Ch.Quote) return q + 1;
    j = q + 2;
  }
}

/** Index just past an E'…' literal, where backslash escapes the next character. */
function escapeStringEnd(f: Finder, text: string, from: number): number {
  let j = from;
  for (;;) {
    const q = f.next("'", j);
    if (q < 0) return -1;
    const b = f.next('\\', j);
    if (b >= 0 && b < q) {
      j = b + 2;
      continue;
    }
    if (text.charCodeAt(q + 1) !== Ch.Quote) return q + 1;
    j = q + 2;
  }
}

function lineEnd(f: Finder, from: number): number {
  const a = f.next('\n', from);
  const b = f.next('\r', from);
  if (a < 0) return b;
  return b < 0 ? a : Math.min(a, b);
}

/** Block comments nest in Postgres. -1 when unterminated (the rest is comment, or an error). */
function blockCommentEnd(f: Finder, from: number): number {
  let depth = 1;
  let j = from;
  while (depth > 0) {
    const close = f.next('*/', j);
    if (close < 0) return -1;
    const open = f.next('/*', j);
    if (open >= 0 && open < close) {
      depth++;
      j = open + 2;
    } else {
      depth--;
      j = close + 2;
    }
  }
  return j;
}

/**
 * At a `$`: the index just past a dollar-quoted string, -1 when this `$` starts none (a parameter,
 * or part of an identifier handled elsewhere), -2 when the quote is unterminated.
 */
function dollarQuoteEnd(f: Finder, text: string, at: number): number {
  let j = at + 1;
  const n = text.length;
  if (j < n && isIdentStart(text.charCodeAt(j))) {
    j++;
    while (j < n && isIdentChar(text.charCodeAt(j)) && text.charCodeAt(j) !== Ch.Dollar) j++;
  }
  if (text.charCodeAt(j) !== Ch.Dollar) return -1;
  const tag = text.slice(at, j + 1);
  const close = f.next(tag, j + 1);
  return close < 0 ? -2 : close + tag.length;
}
