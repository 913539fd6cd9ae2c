/** Untyped startup-phase packets: int32 length, int32 code, body. */
import { MAX_STARTUP_PACKET, StartupCode } from './codes.js';
import { PgError } from './pg-error.js';
import { SqlState } from './sqlstate.js';
import { MessageReader } from './writer.js';

export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; raw: Buffer; processId: number; secretKey: Buffer }
  | { kind: 'startup'; raw: Buffer; params: Map<string, string> };

/** Length of the packet at the start of buf, or -1 until 4 bytes have arrived. Throws on a bad length. */
export function startupPacketLength(buf: Buffer): number {
  if (buf.length < 4) return -1;
  const len = buf.readInt32BE(0);
  if (len < 8 || len > MAX_STARTUP_PACKET) throw new PgError(SqlState.ProtocolViolation, 'invalid length of startup packet', { severity: 'FATAL' });
  return len;
}

export function decodeStartupPacket(raw: Buffer): StartupPacket {
  const code = raw.readInt32BE(4);
  switch (code) {
    case StartupCode.SSL:
      return { kind: 'ssl' };
    case StartupCode.GSSENC:
      return { kind: 'gssenc' };
    case StartupCode.Cancel:
      if (raw.length < 16) throw new PgError(SqlState.ProtocolViolation, 'invalid length of cancel request', { severity: 'FATAL' });
      return { kind: 'cancel', raw, processId: raw.readInt32BE(8), secretKey: raw.subarray(12) };
  }
  const major = code >>> 16;
  if (major !== 3) {
    throw new PgError(SqlState.FeatureNotSupported, `unsupported frontend protocol ${major}.${code & 0xffff}: server supports 3.0 to 3.0`, { severity: 'FATAL' });
  }
  // As Postgres: name/value pairs, each NUL-terminated, then one final NUL as the very last byte.
  const params = new Map<string, string>();
  const layout = (): PgError => new PgError(SqlState.ProtocolViolation, 'invalid startup packet layout: expected terminator as last byte', { severity: 'FATAL' });
  const r = new MessageReader(raw, 8, raw.length);
  try {
    for (;;) {
      if (r.remaining === 0) throw layout();
      const k = r.cstring();
      if (k === '') break;
      params.set(k, r.cstring());
    }
  } catch (e) {
    throw e instanceof PgError ? e : layout();
  }
  if (r.remaining !== 0) throw layout();
  return { kind: 'startup', raw, params };
}
