/**
 * The admin console: a virtual database, `redis_fdw_proxy`, answered by the proxy itself (as
 * pgbouncer's `pgbouncer` database is). Login is relayed to upstream like any session's, on the
 * upstream URL's database; then the role must be an upstream superuser or named in --admin-users.
 * After that the upstream connection is closed and simple-protocol commands are answered here.
 */
import type net from 'node:net';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import { Backend, Frontend } from '../protocol/codes.js';
import { decodeDataRow, decodeErrorFields, encodeCommandComplete, encodeDataRow, encodeError, encodeReadyForQuery, encodeRowDescription } from '../protocol/backend.js';
import { Framer, FrameError } from '../protocol/framer.js';
import { decodeQuery } from '../protocol/frontend.js';
import { PgError } from '../protocol/pg-error.js';
import { connectUpstream, type UpstreamSocket } from '../upstream/connect.js';
import type { ProxyConfig } from '../config/config.js';
import { recordStatement } from '../metrics/metrics.js';
import { runAdminCommand, type AdminContext } from './commands.js';

export const ADMIN_DATABASE = 'redis_fdw_proxy';

const SUPERUSER_SQL = 'SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user';

/** The StartupMessage with its database replaced: the console's login goes to a database that exists. */
function rewriteStartup(params: Map<string, string>, database: string): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of params) if (k !== 'database') parts.push(Buffer.from(`${k}\0${v}\0`));
  parts.push(Buffer.from(`database\0${database}\0\0`));
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(196608, 4);
  return Buffer.concat([head, body]);
}

function queryMessage(sql: string): Buffer {
  const body = Buffer.from(`${sql}\0`);
  const head = Buffer.alloc(5);
  head[0] = Frontend.Query;
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

/** Runs a console on `client`, which has sent `params` for the admin database. Resolves when it closes. */
export function runAdminConsole(client: net.Socket | tls.TLSSocket, params: Map<string, string>, rest: Buffer, config: ProxyConfig, log: Logger, ctx: AdminContext): Promise<void> {
  return new Promise((resolveClosed) => {
    const user = params.get('user') ?? '';
    let upstream: UpstreamSocket | undefined;
    let phase: 'auth' | 'check' | 'console' | 'closed' = 'auth';
    const upFramer = new Framer();
    const clientFramer = new Framer();
    let pendingReady: Buffer | undefined;
    let isSuper = false;
    let checkFailed: string | undefined;
    let extendedError = false;

    const close = (): void => {
      if (phase === 'closed') return;
      phase = 'closed';
      upstream?.destroy();
      client.end();
      setTimeout(() => client.destroy(), 1000).unref();
      resolveClosed();
    };
    const fatal = (err: PgError): void => {
      client.write(encodeError(err));
      log.info({ user, code: err.code, err: err.message }, 'admin console refused');
      close();
    };

    const onUpstreamFrame = (code: number, frame: Buffer): void => {
      if (phase === 'auth') {
        if (code === Backend.ReadyForQuery) {
          // Logged in: before the client may talk, find out whether the role may use the console.
          pendingReady = frame;
          phase = 'check';
          upstream!.write(queryMessage(SUPERUSER_SQL));
          return;
        }
        if (code === Backend.BackendKeyData) return; // a cancel would go to a backend we close
        client.write(frame);
        if (code === Backend.ErrorResponse) close();
        return;
      }
      if (phase === 'check') {
        if (code === Backend.DataRow) isSuper = decodeDataRow(frame, 0, frame.length)[0]?.toString() === 't';
        else if (code === Backend.ErrorResponse) checkFailed = decodeErrorFields(frame, 0, frame.length).message;
        else if (code === Backend.ReadyForQuery) {
          upstream!.end(Buffer.from([Frontend.Terminate, 0, 0, 0, 4]));
          if (checkFailed !== undefined) return fatal(new PgError('42501', `cannot check the role's privileges upstream: ${checkFailed}`, { severity: 'FATAL' }));
          if (!isSuper && !(config.adminUsers ?? []).includes(user)) {
            return fatal(new PgError('42501', `permission denied for database "${ADMIN_DATABASE}"`, { severity: 'FATAL', detail: 'Only upstream superusers and the roles named in --admin-users may use the admin console.' }));
          }
          phase = 'console';
          log.info({ user }, 'admin console session');
          client.write(pendingReady!);
          client.resume();
        }
      }
    };

    const reply = async (frame: Buffer): Promise<void> => {
      const code = frame[0]!;
      if (code === Frontend.Terminate) return close();
      if (code === Frontend.Query) {
        const sql = decodeQuery(frame, 0, frame.length);
        client.pause();
        try {
          const out = await runAdminCommand(sql, ctx);
          recordStatement('admin');
          for (const r of out) {
            if (r.notice) client.write(encodeError(r.notice, true));
            if (r.columns) {
              client.write(encodeRowDescription(r.columns.map((name) => ({ name, tableOid: 0, attnum: 0, typeOid: 25, typeLen: -1, typeMod: -1, format: 0 }))));
              for (const row of r.rows ?? []) client.write(encodeDataRow(row.map((v) => (v === null ? null : Buffer.from(v)))));
            }
            client.write(encodeCommandComplete(r.tag));
          }
        } catch (e) {
          client.write(encodeError(e instanceof PgError ? e : new PgError('XX000', String(e))));
        }
        client.write(encodeReadyForQuery('I'));
        client.resume();
        return;
      }
      // Extended protocol: one error per batch, then ReadyForQuery at its Sync, as Postgres does.
      if (code === Frontend.Sync) {
        extendedError = false;
        client.write(encodeReadyForQuery('I'));
      } else if (!extendedError && code !== Frontend.Flush) {
        extendedError = true;
        client.write(encodeError(new PgError('0A000', 'the admin console accepts only simple-protocol queries')));
      }
    };

    let chain = Promise.resolve();
    client.removeAllListeners('data');
    client.on('data', (chunk: Buffer) => {
      if (phase === 'auth' || phase === 'check') {
        upstream?.write(chunk); // password messages and the like, relayed untouched
        return;
      }
      if (phase !== 'console') return;
      const r = clientFramer.push(chunk);
      if (r instanceof FrameError) return fatal(new PgError('08P01', 'invalid frontend message', { severity: 'FATAL' }));
      for (let off = 0; off < r.end; ) {
        const next = off + 1 + r.buf.readInt32BE(off + 1);
        const frame = Buffer.from(r.buf.subarray(off, next));
        chain = chain.then(() => reply(frame));
        off = next;
      }
    });
    client.on('close', close);
    client.on('error', () => close());

    connectUpstream(config.upstream).then(
      (up) => {
        if (phase === 'closed') return up.destroy();
        upstream = up;
        up.on('data', (chunk: Buffer) => {
          const r = upFramer.push(chunk);
          if (r instanceof FrameError) return close();
          for (let off = 0; off < r.end; ) {
            const next = off + 1 + r.buf.readInt32BE(off + 1);
            onUpstreamFrame(r.buf[off]!, Buffer.from(r.buf.subarray(off, next)));
            off = next;
          }
        });
        up.on('error', () => close());
        up.on('close', () => {
          if (phase === 'auth' || phase === 'check') close();
        });
        up.write(rewriteStartup(params, config.upstream.database));
        if (rest.length) up.write(rest);
      },
      (e: unknown) => fatal(e instanceof PgError ? e : new PgError('08006', String(e), { severity: 'FATAL' })),
    );
  });
}
