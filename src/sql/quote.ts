/** Quoting for the few identifiers and literals the proxy writes into SQL text itself. */

export function quoteIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/** As Postgres's quote_literal: safe whatever standard_conforming_strings is. */
export function quoteLiteral(s: string): string {
  const body = s.replace(/'/g, "''");
  return s.includes('\\') ? `E'${body.replace(/\\/g, '\\\\')}'` : `'${body}'`;
}
