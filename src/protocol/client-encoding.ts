/**
 * The client's encoding (its `client_encoding`, as upstream reports it in ParameterStatus) and how the
 * proxy reads statement text in it.
 */
import { codecFor, decodes, isUtf8Encoding } from './encoding.js';

export { isUtf8Encoding };

/**
 * Statement text as the proxy reads it. An encoding without a codec here is read byte for byte
 * (latin1): enough to find keywords and table names, which are ASCII in every server-safe encoding,
 * and such a session's foreign-table statements are refused anyway.
 */
export function decodeClientText(bytes: Buffer, encoding: string): string {
  if (isUtf8Encoding(encoding)) return bytes.toString('utf8');
  const codec = codecFor(encoding);
  return codec && decodes(codec, bytes) ? codec.decode(bytes) : bytes.toString('latin1');
}
