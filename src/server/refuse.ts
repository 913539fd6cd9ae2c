/**
 * Refusing a client the way Postgres does: answer its SSL/GSSENC negotiation first, read its
 * StartupMessage, then send the FATAL. An error written before the negotiation reply is what made
 * psql print "server sent an error response during SSL exchange" instead of the message.
 */
import type net from 'node:net';
import tls from 'node:tls';
import { encodeError } from '../protocol/backend.js';
import type { PgError } from '../protocol/pg-error.js';
import { decodeStartupPacket, startupPacketLength } from '../protocol/startup.js';

/** A refused client gets this long to send its startup packet before we just close. */
const REFUSE_TIMEOUT_MS = 5000;

export function refuseClient(socket: net.Socket, why: PgError, secureContext: tls.SecureContext | undefined): void {
  let conn: net.Socket | tls.TLSSocket = socket;
  let buf: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), REFUSE_TIMEOUT_MS);
  timer.unref();
  socket.on('close', () => clearTimeout(timer));
  const done = (reply?: Buffer): void => {
    conn.removeAllListeners('data');
    conn.on('data', () => {});
    conn.on('end', () => conn.destroy());
    if (reply) conn.end(reply);
    else conn.destroy();
  };
  const onData = (chunk: Buffer): void => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    let len: number;
    try {
      len = startupPacketLength(buf);
    } catch {
      return done(encodeError(why));
    }
    if (len < 0 || buf.length < len) return;
    let packet;
    try {
      packet = decodeStartupPacket(buf.subarray(0, len));
    } catch {
      return done(encodeError(why));
    }
    buf = buf.subarray(len);
    if (packet.kind === 'gssenc') conn.write('N');
    else if (packet.kind === 'ssl') {
      if (secureContext === undefined || conn instanceof tls.TLSSocket) conn.write('N');
      else {
        conn.removeAllListeners('data');
        conn.write('S');
        const secure = new tls.TLSSocket(conn, { isServer: true, secureContext });
        secure.on('error', () => socket.destroy());
        secure.on('data', onData);
        conn = secure;
        buf = Buffer.alloc(0);
        return;
      }
    } else if (packet.kind === 'cancel') return done();
    else return done(encodeError(why));
    if (buf.length > 0) onData(Buffer.alloc(0));
  };
  socket.on('error', () => {});
  socket.on('data', onData);
}
