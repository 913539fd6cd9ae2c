/**
 * The declared column types the fast path answers for, and how it writes their values as upstream
 * would. Upstream casts each Redis value from text to the declared type and sends the type's output
 * (or binary send) form; the fast path never reimplements a type's input function. It answers only
 * when a value is already in the canonical form the type's output would print, so text out is the
 * very bytes read; for anything else (`' 7'`, `'+7'`, `'007'`, `'true'`, out of range, too long) it
 * says so and the upstream path answers, with Postgres's own value or error (22003, 22P02, …).
 */

export interface FastType {
  /** RowDescription's type size and modifier, as upstream reports them. */
  typeLen: number;
  typeMod: number;
  /** The text-format bytes upstream sends for this value, or undefined when they can't be sure. */
  text(v: Buffer): Buffer | undefined;
  /** The binary-format bytes of a value `text` accepted (its output). */
  binary(out: Buffer): Buffer;
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

const FIXED = new Map<string, FastType>([
  ['25 text', TEXT],
  ['1043 character varying', TEXT],
  ['21 smallint', integer(2, -32768n, 32767n)],
  ['23 integer', integer(4, -2147483648n, 2147483647n)],
  ['20 bigint', integer(8, -9223372036854775808n, 9223372036854775807n)],
  ['16 boolean', BOOL],
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
