/**
 * The declared column types the fast path answers for, and how it writes their values as upstream
 * would. Upstream casts each Redis value from text to the declared type and sends the type's output
 * (or binary send) form; the fast path never reimplements a type's input function. It answers only
 * when a value is already in the canonical form the type's output would print, so text out is the
 * very bytes read; for anything else (`' 7'`, `'+7'`, `'007'`, `'true'`, out of range, too long) it
 * says so and the upstream path answers, with Postgres's own value or error (22003, 22P02, …).
 *
 * double precision is the one exception, because a zset's scores are doubles: its text is read as
 * float8in reads plain decimal text (correctly rounded, as strtod) and printed as float8out prints the
 * shortest exact form, which holds only while the session's extra_float_digits is above 0 (the fast
 * path asks, see `shortestFloat`). Anything but plain decimals and infinities goes upstream.
 */

export interface FastType {
  /** RowDescription's type size and modifier, as upstream reports them. */
  typeLen: number;
  typeMod: number;
  /** The text-format bytes upstream sends for this value, or undefined when they can't be sure. */
  text(v: Buffer): Buffer | undefined;
  /**
   * Whether text output is exactly the bytes v[start, end), judged in place (no Buffer made): a cheap
   * first test before text(); false says only "ask text()".
   */
  asIs?(v: Buffer, start: number, end: number): boolean;
  /** The binary-format bytes of a value `text` accepted (its output). */
  binary(out: Buffer): Buffer;
  /**
   * Its text output depends on the session's extra_float_digits, which the fast path then reads: the
   * shortest exact form it reproduces is what Postgres prints only while that setting is above 0.
   */
  shortestFloat?: true;
}

const same = (b: Buffer): Buffer => b;

const TEXT: FastType = { typeLen: -1, typeMod: -1, text: same, binary: same };

/** Characters in valid UTF-8 (the caller checked it): bytes that don't continue a sequence. */
function chars(b: Buffer): number {
  let n = 0;
  for (let i = 0; i < b.length; i++) if ((b[i]! & 0xc0) !== 0x80) n++;
  return n;
}

/** `character varying(n)`: the explicit cast would truncate a longer value, so only those that fit. */
function varchar(n: number): FastType {
  return { typeLen: -1, typeMod: n + 4, text: (v) => (v.length <= n || chars(v) <= n ? v : undefined), binary: same };
}

/** `character(n)`: padded with spaces to n characters; a longer value would be truncated, so not those. */
function bpchar(n: number): FastType {
  return {
    typeLen: -1,
    typeMod: n + 4,
    text(v) {
      const len = chars(v);
      if (len > n) return undefined;
      return len === n ? v : Buffer.concat([v, Buffer.alloc(n - len, 0x20)]);
    },
    binary: same,
  };
}

const MINUS = 0x2d;
const ZERO = 0x30;

/**
 * A signed integer as its output prints it: an optional minus, then 0 or digits with no leading
 * zero (never `-0`), within [min, max]. Anything else is left to Postgres's input function.
 */
function integer(bytes: 2 | 4 | 8, min: bigint, max: bigint): FastType {
  const maxDigits = String(max).length;
  const small = bytes < 8;
  return {
    typeLen: bytes,
    typeMod: -1,
    text(v) {
      const neg = v[0] === MINUS;
      const start = neg ? 1 : 0;
      const digits = v.length - start;
      if (digits < 1 || digits > maxDigits) return undefined;
      if (v[start] === ZERO && (digits > 1 || neg)) return undefined;
      for (let i = start; i < v.length; i++) {
        const d = v[i]! - ZERO;
        if (d < 0 || d > 9) return undefined;
      }
      if (digits < maxDigits) return v;
      const n = small ? BigInt(Number(v.toString('latin1'))) : BigInt(v.toString('latin1'));
      return n < min || n > max ? undefined : v;
    },
    binary(out) {
      const b = Buffer.allocUnsafe(bytes);
      if (bytes === 8) b.writeBigInt64BE(BigInt(out.toString('latin1')));
      else if (bytes === 4) b.writeInt32BE(Number(out.toString('latin1')));
      else b.writeInt16BE(Number(out.toString('latin1')));
      return b;
    },
  };
}

const T = Buffer.from('t');
const F = Buffer.from('f');
const ONE = Buffer.from([1]);
const NIL = Buffer.from([0]);

/** boolean: only `t` and `f`, which is what its output prints. */
const BOOL: FastType = {
  typeLen: 1,
  typeMod: -1,
  text: (v) => (v.length === 1 && (v[0] === 0x74 || v[0] === 0x66) ? (v[0] === 0x74 ? T : F) : undefined),
  binary: (out) => (out[0] === 0x74 ? ONE : NIL),
};

/** A decimal number as Redis writes a score and float8in reads it; hex, `Infinity`, `1_0` and blanks are not. */
const DECIMAL = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;

/**
 * The double precision value of text, as float8in reads it, or undefined for text it would refuse or
 * the fast path doesn't model (NaN, whitespace, overflow and underflow to zero, which are errors there).
 */
export function parseFloat8(s: string): number | undefined {
  const lower = s.toLowerCase();
  if (lower === 'inf' || lower === 'infinity' || lower === '+inf' || lower === '+infinity') return Infinity;
  if (lower === '-inf' || lower === '-infinity') return -Infinity;
  if (!DECIMAL.test(s)) return undefined;
  const v = Number(s);
  if (!Number.isFinite(v)) return undefined; // 22003 upstream
  // strtod's underflow to zero is 22003 upstream; a zero written as zeros is fine.
  if (v === 0 && /[1-9]/.test(s.replace(/[eE].*$/, ''))) return undefined;
  return v;
}

/**
 * float8out with extra_float_digits > 0: the shortest digits that read back as the same double (Ryu
 * there, ECMAScript's Number::toString digits here, both the closest shortest string), printed as
 * printf's %g would place them: fixed notation for decimal exponents -4 < e <= 15, else d.ddde±XX.
 */
export function float8Out(v: number): string {
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  if (Number.isNaN(v)) return 'NaN';
  if (v === 0) return Object.is(v, -0) ? '-0' : '0';
  const sign = v < 0 ? '-' : '';
  const a = Math.abs(v);
  let [mant, e] = a.toExponential().split('e') as [string, string];
  // Postgres's Ryu never prints a string exactly halfway to a neighbouring double (ECMAScript's digits
  // may be one, when round-half-even reads it back as this double): then it takes more digits. Only
  // integers from 2^53 up can be such halfway points with 17 or fewer digits.
  for (let n = mant.length - (mant.includes('.') ? 1 : 0); a >= 2 ** 53 && n < 17 && halfway(a, mant, Number(e)); ) {
    [mant, e] = a.toExponential(n++).split('e') as [string, string];
    mant = mant.replace(/\.?0+$/, '');
  }
  const digits = mant.replace('.', '');
  const point = Number(e) + 1; // digits × 10^(point - digits.length)
  if (point >= -3 && point <= 15) {
    if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
    if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}`;
    return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
  }
  const x = point - 1;
  const exp = Math.abs(x) < 10 ? `0${Math.abs(x)}` : String(Math.abs(x));
  return `${sign}${digits[0]}${digits.length > 1 ? `.${digits.slice(1)}` : ''}e${x < 0 ? '-' : '+'}${exp}`;
}

/** Whether mant × 10^e (an integer, as a ≥ 2^53 is) lies exactly halfway between `a` and a neighbour. */
function halfway(a: number, mant: string, e: number): boolean {
  const digits = mant.replace('.', '');
  const shift = e - (digits.length - 1);
  if (shift < 0) return false;
  const n = BigInt(digits) * 10n ** BigInt(shift);
  const exact = BigInt(a);
  const bits = new DataView(new Float64Array([a]).buffer).getBigUint64(0, true);
  const ulp = 2n ** ((bits >> 52n) - 1075n);
  // Below a power of two the next double down is half an ulp away.
  const gap = n < exact && (bits & 0xfffffffffffffn) === 0n ? ulp / 2n : ulp;
  const d = n < exact ? exact - n : n - exact;
  return d * 2n === gap;
}

const DOT = 0x2e;

/**
 * Whether float8out prints these bytes back unchanged: at most 15 significant digits (so no shorter
 * string reads as the same double), no trailing fractional zero, no exponent, and a decimal point where
 * %g notation keeps fixed notation (at most 15 integer digits, at most three zeros after `0.`). Most
 * scores (integers, halves, short decimals) are; they then cost no parse and no allocation.
 */
function printsAsIs(v: Buffer, start = 0, n = v.length): boolean {
  let i = v[start] === MINUS ? start + 1 : start;
  if (i >= n) return false;
  let digits = 0;
  if (v[i] === ZERO) {
    i++;
    if (i === n) return true; // 0, -0
    if (v[i] !== DOT) return false;
    i++;
    let zeros = 0;
    while (i < n && v[i] === ZERO) {
      zeros++;
      i++;
    }
    if (zeros > 3 || i === n) return false;
  } else {
    if (v[i] === DOT) return false; // `.5` prints as 0.5
    for (; i < n && v[i] !== DOT; i++) {
      const d = v[i]! - ZERO;
      if (d < 0 || d > 9 || ++digits > 15) return false;
    }
    if (i === n) return true;
    i++; // the point
    if (i === n) return false; // `5.`
  }
  for (; i < n; i++) {
    const d = v[i]! - ZERO;
    if (d < 0 || d > 9 || ++digits > 15) return false;
  }
  return v[n - 1] !== ZERO;
}

/** double precision: any value float8in reads without error, printed as float8out prints it. */
const FLOAT8: FastType = {
  typeLen: 8,
  typeMod: -1,
  shortestFloat: true,
  asIs: printsAsIs,
  text(v) {
    if (printsAsIs(v)) return v;
    const f = parseFloat8(v.toString('latin1'));
    return f === undefined ? undefined : Buffer.from(float8Out(f), 'latin1');
  },
  binary(out) {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleBE(parseFloat8(out.toString('latin1'))!);
    return b;
  },
};

const FIXED = new Map<string, FastType>([
  ['25 text', TEXT],
  ['1043 character varying', TEXT],
  ['21 smallint', integer(2, -32768n, 32767n)],
  ['23 integer', integer(4, -2147483648n, 2147483647n)],
  ['20 bigint', integer(8, -9223372036854775808n, 9223372036854775807n)],
  ['16 boolean', BOOL],
  ['701 double precision', FLOAT8],
]);

/** The fast path's handling of a declared column (oid and format_type's name), if it has one. */
export function fastType(typeOid: number, type: string): FastType | undefined {
  const fixed = FIXED.get(`${typeOid} ${type}`);
  if (fixed) return fixed;
  const m = /^(character varying|character)\((\d+)\)$/.exec(type);
  if (!m) return undefined;
  const n = Number(m[2]);
  if (m[1] === 'character varying' && typeOid === 1043) return varchar(n);
  if (m[1] === 'character' && typeOid === 1042) return bpchar(n);
  return undefined;
}

export const isPlainText = (t: FastType): boolean => t === TEXT;
