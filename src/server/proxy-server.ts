/** The listener: accepts clients, runs one Session each, and shuts down gracefully. */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { ProxyConfig } from '../config/config.js';
import { encodeError } from '../protocol/backend.js';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { StatementHook } from '../sql/classify.js';
import { initParser } from '../sql/parser.js';
import { Session } from '../session/session.js';
import type { Interceptor, SessionPort } from '../session/types.js';
import type { RedisAccess } from '../executor/select.js';
import { callbackDatabase } from '../callback/reserved.js';
import { CallbackSession } from '../callback/session.js';
import { resolveAdvertise } from '../callback/advertise.js';

export interface ProxyServerOptions {
  /** Serves Redis foreign tables; absent means pure passthrough. */
  fdw?: { interceptor: (port: SessionPort) => Interceptor; close(): Promise<void>; redis?: RedisAccess };
  hook?: StatementHook;
}

export class ProxyServer {
  private readonly server: net.Server;
  private readonly sessions = new Set<Session>();
  private readonly callbacks = new Set<CallbackSession>();
  /** Where upstream's postgres_fdw reaches this proxy, once listening (callback mode). */
  advertise: string | undefined;
  private nextId = 1;
  private closing: Promise<void> | undefined;
  readonly hook: StatementHook;
  private readonly secureContext: tls.SecureContext | undefined;

  constructor(
    private readonly config: ProxyConfig,
    private readonly log: Logger,
    private readonly options: ProxyServerOptions = {},
  ) {
    this.hook = options.hook ?? new StatementHook();
    this.secureContext = config.tls ? tls.createSecureContext({ cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) }) : undefined;
    this.server = net.createServer({ noDelay: true, allowHalfOpen: true }, (s) => this.accept(s));
  }

  async listen(): Promise<net.AddressInfo> {
    await initParser();
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.config.listenPort, this.config.listenHost, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const addr = this.server.address() as net.AddressInfo;
    this.advertise = resolveAdvertise(this.config, addr.port);
    if (this.config.advertise && !this.advertise) this.log.warn({ advertise: this.config.advertise }, '--advertise auto needs a loopback listen address and a local upstream; Redis foreign tables stay handler-less');
    this.log.info({ listen: `${addr.address}:${addr.port}`, upstream: `${this.config.upstream.host}:${this.config.upstream.port}` }, 'redis-fdw-proxy listening');
    return addr;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  private accept(socket: net.Socket): void {
    if (this.closing || this.sessions.size >= this.config.maxConnections) {
      const why = this.closing ? new PgError(SqlState.AdminShutdown, 'the proxy is shutting down', { severity: 'FATAL' }) : new PgError(SqlState.TooManyConnections, 'sorry, too many clients already', { severity: 'FATAL' });
      socket.on('error', () => {});
      // Postgres answers a refused client's startup packet; writing at once is what clients handle.
      // The socket is half-open capable, so close it ourselves once the client has read or left.
      socket.on('end', () => socket.destroy());
      socket.resume();
      socket.end(encodeError(why));
      setTimeout(() => socket.destroy(), 2000).unref();
      return;
    }
    const id = this.nextId++;
    const s = new Session(socket, { config: this.config, log: this.log.child({ session: id, client: `${socket.remoteAddress}:${socket.remotePort}` }), hook: this.hook, secureContext: this.secureContext, interceptor: this.options.fdw?.interceptor, reserved: (params) => this.callbackFor(params), advertise: () => this.advertise }, id);
    this.sessions.add(s);
    void s.closed.then(() => this.sessions.delete(s));
  }

  /** For the reserved callback database: a session answered by the proxy alone, never relayed upstream. */
  private callbackFor(params: Map<string, string>): ((sock: net.Socket | tls.TLSSocket, rest: Buffer) => void) | undefined {
    const db = callbackDatabase(params.get('database') ?? '');
    if (db === undefined) return undefined;
    return (sock, rest) => {
      const redis = this.options.fdw?.redis;
      if (!redis) {
        sock.end(encodeError(new PgError('3D000', 'this proxy serves no Redis foreign tables, so it takes no callbacks', { severity: 'FATAL' })));
        return;
      }
      const log = this.log.child({ callback: db });
      const s = new CallbackSession(sock, db, { upstream: this.config.upstream, redis, log, maxValueBytes: this.config.maxValueBytes }, log);
      this.callbacks.add(s);
      sock.once('close', () => this.callbacks.delete(s));
      s.start(rest);
    };
  }

  /**
   * Stops accepting, lets sessions finish their transactions for up to `graceMs`, then closes the
   * rest with Postgres's admin-shutdown error.
   */
  close(graceMs = this.config.shutdownTimeoutMs): Promise<void> {
    this.closing ??= (async () => {
      this.log.info({ sessions: this.sessions.size, graceMs }, 'shutting down');
      const stopped = new Promise<void>((r) => this.server.close(() => r()));
      for (const s of this.sessions) s.requestShutdown();
      const all = Promise.all([...this.sessions].map((s) => s.closed));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([all, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      for (const s of this.sessions) s.terminateForShutdown();
      for (const c of this.callbacks) c.close();
      await Promise.all([...this.sessions].map((s) => s.closed));
      await stopped;
      await this.options.fdw?.close();
    })();
    return this.closing;
  }
}
