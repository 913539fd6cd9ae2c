/**
 * The client's encoding (its `client_encoding`, as upstream reports it in ParameterStatus) and how the
 * proxy reads statement text in it.
 */

/** Upper-cased, without `_` or `-`, as Postgres matches encoding names. */
function normalize(encoding: string): string {
  return encoding.toUpperCase().replace(/[-_]/g, '');
}

/**
 * Encodings whose bytes the proxy takes as UTF-8: UTF8 itself, and SQL_ASCII, for which Postgres
 * converts nothing and checks client text against the server encoding.
 */
export function isUtf8Encoding(encoding: string): boolean {
  const n = normalize(encoding);
  return n === 'UTF8' || n === 'UNICODE' || n === 'SQLASCII';
}

/**
 * Statement text as the proxy reads it to decide about it. Other encodings are read byte for byte
 * (latin1): enough to find keywords and table names, which are ASCII in every server-safe encoding.
 */
export function decodeClientText(bytes: Buffer, encoding: string): string {
  return bytes.toString(isUtf8Encoding(encoding) ? 'utf8' : 'latin1');
}
