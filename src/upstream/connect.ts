/** Opens the byte stream to upstream Postgres: TCP or Unix socket, then TLS as sslmode asks. */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { UpstreamTarget } from '../config/config.js';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

export type UpstreamSocket = net.Socket | tls.TLSSocket;

function openSocket(t: UpstreamTarget): net.Socket {
  return t.host.startsWith('/') ? net.connect(`${t.host}/.s.PGSQL.${t.port}`) : net.connect({ host: t.host, port: t.port });
}

function describe(t: UpstreamTarget): string {
  return t.host.startsWith('/') ? `socket "${t.host}/.s.PGSQL.${t.port}"` : `${t.host}:${t.port}`;
}

/** Rejects with a PgError (08006) the client can be shown; resolves once bytes can flow. */
export function connectUpstream(t: UpstreamTarget, timeoutMs = 10_000): Promise<UpstreamSocket> {
  return new Promise((resolve, reject) => {
    const sock = openSocket(t);
    sock.setNoDelay(true);
    const fail = (why: string): void => {
      sock.destroy();
      reject(new PgError(SqlState.ConnectionFailure, `could not connect to upstream server at ${describe(t)}: ${why}`, { severity: 'FATAL' }));
    };
    const timer = setTimeout(() => fail('timeout expired'), timeoutMs);
    sock.once('error', (e) => {
      clearTimeout(timer);
      fail(e.message);
    });
    sock.once('connect', () => {
      if (t.sslmode === 'disable') {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        resolve(sock);
        return;
      }
      sock.write(SSL_REQUEST);
      sock.once('data', (b) => {
        if (b[0] === 0x4e /* N */) {
          clearTimeout(timer);
          if (t.sslmode === 'prefer') {
            sock.removeAllListeners('error');
            resolve(sock);
          } else fail('server does not support SSL, but SSL was required');
          return;
        }
        if (b[0] !== 0x53 /* S */ || b.length !== 1) {
          clearTimeout(timer);
          fail('received invalid response to SSL negotiation');
          return;
        }
        const verify = t.sslmode === 'verify-ca' || t.sslmode === 'verify-full';
        const secure = tls.connect({
          socket: sock,
          rejectUnauthorized: verify,
          ca: t.sslrootcert ? readFileSync(t.sslrootcert) : undefined,
          servername: net.isIP(t.host) ? undefined : t.host,
          checkServerIdentity: t.sslmode === 'verify-full' ? tls.checkServerIdentity : () => undefined,
        });
        secure.once('secureConnect', () => {
          clearTimeout(timer);
          secure.removeAllListeners('error');
          sock.removeAllListeners('error');
          secure.setNoDelay(true);
          resolve(secure);
        });
        secure.once('error', (e) => {
          clearTimeout(timer);
          fail(`SSL error: ${e.message}`);
        });
      });
    });
  });
}

/** Sends a CancelRequest on a fresh connection, as libpq does; upstream replies by closing. */
export async function sendCancel(t: UpstreamTarget, packet: Buffer): Promise<void> {
  const sock = await connectUpstream({ ...t, sslmode: t.sslmode === 'require' || t.sslmode.startsWith('verify') ? t.sslmode : 'disable' }, 5000);
  await new Promise<void>((resolve) => {
    sock.once('close', () => resolve());
    sock.once('error', () => resolve());
    sock.end(packet);
    setTimeout(() => {
      sock.destroy();
      resolve();
    }, 5000).unref();
  });
}

/** Checks at start-up that upstream answers at all, so a wrong --upstream fails fast. */
export async function probeUpstream(t: UpstreamTarget): Promise<void> {
  const sock = await connectUpstream(t, 5000);
  sock.destroy();
}
