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

export function scanSql(text: string): ScanResult {
  return scanSync(text);
}

/** libpg_query reports byte offsets into the UTF-8 text; clients expect character positions. */
export function byteToCharPosition(text: string, byteOffset: number): number {
  return Buffer.from(text, 'utf8').subarray(0, byteOffset).toString('utf8').length;
}
