/**
 * Text in the client's encoding (its `client_encoding`, as upstream reports it in ParameterStatus) to
 * and from the UTF-8 the proxy, Redis and upstream's server encoding use.
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

export function decodeClientText(bytes: Buffer, encoding: string): string {
  return bytes.toString('utf8');
}
