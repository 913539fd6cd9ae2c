/** The statements of a parsed text, each cut out with its offsets (libpg_query reports bytes). */
import type { ParseResult } from './parser.js';

export interface StatementSlice {
  node: unknown;
  /** The statement's own text. */
  text: string;
  /** Byte offset of the statement in the whole text. */
  base: number;
  /** Character offset of the statement in the whole text. */
  offset: number;
}

/**
 * For ASCII text, bytes and characters agree and the cuts are string slices; a text that is one
 * statement is not copied at all. Otherwise the text is cut as UTF-8 bytes.
 */
export function splitStatements(text: string, tree: ParseResult): StatementSlice[] {
  const stmts = tree.stmts ?? [];
  const ascii = Buffer.byteLength(text, 'utf8') === text.length;
  const bytes = ascii ? undefined : Buffer.from(text, 'utf8');
  const total = bytes ? bytes.length : text.length;
  return stmts.map((s) => {
    const start = s.stmt_location ?? 0;
    const end = s.stmt_len ? start + s.stmt_len : total;
    if (!bytes) return { node: s.stmt, text: start === 0 && end === total ? text : text.slice(start, end), base: start, offset: start };
    return { node: s.stmt, text: bytes.subarray(start, end).toString('utf8'), base: start, offset: bytes.subarray(0, start).toString('utf8').length };
  });
}
