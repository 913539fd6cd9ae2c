/**
 * Redis values are bytes; Postgres text is UTF-8 without NUL. Every value that becomes text goes through
 * here, so a bad value fails with 22021 naming the Redis key and the foreign table, the way Postgres itself
 * reports an invalid byte sequence.
 */
import { isUtf8 } from 'node:buffer';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';

const MAX_KEY_IN_MESSAGE = 200;

/**
 * A key as it may appear inside an error message: decoded leniently (bad bytes become U+FFFD), control
 * characters escaped (a NUL would end the C string on the wire), and long keys shortened.
 */
export function keyForMessage(key: string | Buffer): string {
  let s = typeof key === 'string' ? key : key.toString('utf8');
  if (s.length > MAX_KEY_IN_MESSAGE) s = `${s.slice(0, MAX_KEY_IN_MESSAGE)}…`;
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Where the first invalid sequence starts, and its bytes as Postgres prints them (`0xc3 0x28`). */
function firstBadSequence(buf: Buffer): { offset: number; bytes: string } {
  let i = 0;
  while (i < buf.length) {
    const b = buf[i]!;
    let need = 0;
    let min = 0;
    if (b < 0x80) {
      i++;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
      min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      min = 0x10000;
    } else {
      return { offset: i, bytes: hex(buf, i, 1) };
    }
    let cp = b & (0x3f >> need);
    let ok = i + need < buf.length;
    for (let k = 1; ok && k <= need; k++) {
      const c = buf[i + k]!;
      if ((c & 0xc0) !== 0x80) ok = false;
      else cp = (cp << 6) | (c & 0x3f);
    }
    if (!ok || cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return { offset: i, bytes: hex(buf, i, Math.min(need + 1, buf.length - i)) };
    }
    i += need + 1;
  }
  return { offset: -1, bytes: '' };
}

function hex(buf: Buffer, from: number, n: number): string {
  const parts: string[] = [];
  for (let k = from; k < from + n && k < buf.length; k++) parts.push(`0x${buf[k]!.toString(16).padStart(2, '0')}`);
  return parts.join(' ');
}

/**
 * Throws PgError 22021 unless `buf` is valid UTF-8 without NUL bytes. `key` is the Redis key the value came
 * from, `table` the foreign table, both for the message.
 */
export function checkText(buf: Buffer, key: string | Buffer, table: string): void {
  if (isShortAscii(buf)) return;
  if (!isUtf8(buf)) {
    const bad = firstBadSequence(buf);
    throw new PgError(
      SqlState.CharacterNotInRepertoire,
      `invalid byte sequence for encoding "UTF8" in Redis key "${keyForMessage(key)}" of foreign table ${table}`,
      { detail: bad.offset >= 0 ? `Invalid bytes ${bad.bytes} at byte offset ${bad.offset} of a ${buf.length}-byte value.` : undefined },
    );
  }
  const nul = buf.indexOf(0);
  if (nul >= 0) {
    throw new PgError(
      SqlState.CharacterNotInRepertoire,
      `invalid byte sequence for encoding "UTF8": 0x00 (NUL byte) in Redis key "${keyForMessage(key)}" of foreign table ${table}`,
      { detail: `The value has a NUL byte at byte offset ${nul}; PostgreSQL text cannot contain NUL bytes.` },
    );
  }
}

/**
 * ASCII without NUL, checked by hand for short values: one loop instead of two native calls (isUtf8, then
 * indexOf(0)), each of which costs more in argument handling than scanning a few dozen bytes.
 */
function isShortAscii(buf: Buffer): boolean {
  const n = buf.length;
  if (n > 64) return false;
  for (let k = 0; k < n; k++) {
    const c = buf[k]!;
    if (c === 0 || c > 0x7f) return false;
  }
  return true;
}

/** checkText, then decode. */
export function toText(buf: Buffer, key: string | Buffer, table: string): string {
  checkText(buf, key, table);
  return buf.toString('utf8');
}
