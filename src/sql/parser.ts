/**
 * The only module that talks to libpg-query (the real Postgres parser, as WASM). Everything else sees
 * `parseSql`/`scanSql` and plain JSON trees, so the parser can be swapped or upgraded in one place.
 */
import { loadModule, parseSync, scanSync, hasSqlDetails } from 'libpg-query';
import type { ParseResult, ScanResult } from 'libpg-query';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';

export type { ParseResult, ScanResult };

let ready: Promise<void> | undefined;

/** Loads the WASM module once; call before the first parse. */
export function initParser(): Promise<void> {
  ready ??= loadModule();
  return ready;
}

/** Parses SQL text. A syntax error becomes the 42601 error Postgres itself would raise. */
export function parseSql(text: string): ParseResult {
  try {
    return parseSync(text);
  } catch (e) {
    if (hasSqlDetails(e)) {
      const pos = e.sqlDetails?.cursorPosition;
      throw new PgError(SqlState.SyntaxError, e.message, pos === undefined ? {} : { position: byteToCharPosition(text, pos) + 1 });
    }
    throw e;
  }
}

/**
 * The scanner's tokens (byte offsets). libpg-query's scan output is JSON that doesn't escape control
 * characters inside token text (a string literal with a newline in it), so on that failure the text
 * is scanned again with control characters blanked: same length, same token boundaries, except that a
 * newline ending a `--` comment must stay, so those are put back until the comments end where they did.
 */
export function scanSql(text: string): ScanResult {
  try {
    return scanSync(text);
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
  }
  // A control character is one byte in UTF-8, and so is its blank: byte offsets stay the same.
  // eslint-disable-next-line no-control-regex
  const candidate = Buffer.from(text.replace(/[\x00-\x1f]/g, ' '), 'utf8');
  const original = Buffer.from(text, 'utf8');
  for (let round = 0; round < 1000; round++) {
    const result = scanSync(candidate.toString('utf8'));
    let restored = false;
    for (const t of result.tokens) {
      if (candidate[t.start] !== 0x2d || candidate[t.start + 1] !== 0x2d) continue; // only `--` comments
      for (let i = t.start; i < t.end; i++) {
        if (original[i] === 0x0a || original[i] === 0x0d) {
          candidate[i] = original[i]!;
          restored = true;
          break;
        }
      }
    }
    if (!restored) return result;
  }
  return scanSync(candidate.toString('utf8'));
}

/** libpg_query reports byte offsets into the UTF-8 text; clients expect character positions. */
export function byteToCharPosition(text: string, byteOffset: number): number {
  return Buffer.from(text, 'utf8').subarray(0, byteOffset).toString('utf8').length;
}
