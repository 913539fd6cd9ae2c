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
import { CancelRegistry } from '../session/cancel.js';
import type { Interceptor, SessionPort } from '../session/types.js';
import type { RedisPool } from '../redis/pool.js';
import type { CatalogCache } from '../catalog/catalog.js';
import { clientConnectionsRefused, clientConnectionsTotal, setMetricsSource } from '../metrics/metrics.js';
import { refuseClient } from './refuse.js';
import { ADMIN_DATABASE, runAdminConsole } from '../admin/console.js';
import type { AdminContext } from '../admin/commands.js';

import type { RedisAccess } from '../executor/select.js';
import type { OwnConnections } from '../upstream/own-connection.js';
import { callbackDatabase } from '../callback/reserved.js';
import { CallbackSession } from '../callback/session.js';
import { resolveAdvertise } from '../callback/advertise.js';

export interface ProxyServerOptions {
  /** Serves Redis foreign tables; absent means pure passthrough. */
  fdw?: { interceptor: (port: SessionPort) => Interceptor; close(): Promise<void>; redis?: RedisAccess; pool?: RedisPool; catalog?: CatalogCache; own?: OwnConnections };
  hook?: StatementHook;
  /** The admin console's commands; absent means no admin database. */
  admin?: AdminContext;
}

interface Client {
  socket: net.Socket;
  address: string;
  connectedAt: Date;
}

export class ProxyServer {
  private readonly server: net.Server;
  private readonly sessions = new Map<Session, Client>();
  private readonly consoles = new Set<net.Socket>();
  private readonly callbacks = new Set<CallbackSession>();
  /** Where upstream's postgres_fdw reaches this proxy, once listening (callback mode). */
  advertise: string | undefined;
  private nextId = 1;
  private closing: Promise<void> | undefined;
  readonly hook: StatementHook;
  private secureContext: tls.SecureContext | undefined;
  /** Bytes of sessions already closed (open ones are read from their sockets when scraped). */
  private closedBytes = { in: 0, out: 0 };
  private readonly cancels = new CancelRegistry();

  constructor(
    readonly config: ProxyConfig,
    private readonly log: Logger,
    private readonly options: ProxyServerOptions = {},
  ) {
    this.hook = options.hook ?? new StatementHook();
    this.secureContext = config.tls ? ProxyServer.loadTls(config.tls) : undefined;
    this.server = net.createServer({ noDelay: true, allowHalfOpen: true }, (s) => this.accept(s));
    setMetricsSource({
      clients: () => this.sessions.size,
      upstreams: () => [...this.sessions.keys()].filter((s) => s.upstreamOpen).length,
      bytes: () => {
        const b = { ...this.closedBytes };
        for (const c of this.sessions.values()) {
          b.in += c.socket.bytesRead;
          b.out += c.socket.bytesWritten;
        }
        return b;
      },
      parseCache: () => {
        const p = this.hook.cache.snapshot();
        return { hits: p.hits, misses: p.misses, size: p.entries };
      },
      redisClients: () => this.options.fdw?.pool?.size ?? 0,
    });
  }

  static loadTls(t: { cert: string; key: string }): tls.SecureContext {
    return tls.createSecureContext({ cert: readFileSync(t.cert), key: readFileSync(t.key) });
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

  /** Every database a client has logged in to since start, and upstream's own, for /ready's catalog read. */
  databasesSeen(): string[] {
    const dbs = new Set(this.options.fdw?.catalog?.databases() ?? []);
    dbs.add(this.config.upstream.database);
    for (const s of this.sessions.keys()) if (s.loggedIn && s.database !== ADMIN_DATABASE) dbs.add(s.database);
    return [...dbs];
  }

  /** The shared Redis pool and the catalog's generation (bumped by DDL seen here), for /ready. */
  get fdw(): { pool?: RedisPool; generation: number } {
    return { pool: this.options.fdw?.pool, generation: this.options.fdw?.catalog?.currentGeneration ?? 0 };
  }

  /**
   * A reload's log level. Open sessions' loggers are pino children with no level of their own, so
   * they follow it (test/integration/ops-live checks that through the CLI); never give them one.
   */
  setLogLevel(level: string): void {
    this.log.level = level;
  }

  /** Redis servers in the pool, for /ready and SHOW SERVERS. */
  redisServers(): ReturnType<RedisPool['servers']> {
    return this.options.fdw?.pool?.servers() ?? [];
  }

  clients(): { id: number; user: string; database: string; address: string; state: string; connectedAt: Date }[] {
    return [...this.sessions].map(([s, c]) => ({ id: s.id, user: s.user, database: s.database, address: c.address, state: s.database === ADMIN_DATABASE && !s.loggedIn ? 'admin console' : !s.loggedIn ? 'login' : s.idle ? 'idle' : `active (${s.txStatus})`, connectedAt: c.connectedAt }));
  }

  /** Re-reads the TLS certificate and key (new connections use them); throws if they don't load. */
  reloadTls(): boolean {
    if (!this.config.tls) return false;
    this.secureContext = ProxyServer.loadTls(this.config.tls);
    return true;
  }

  /** Sessions whose current statement is in the proxy's hands (planning, Redis, writes): cancellable here. */
  get statementsInProgress(): number {
    let n = 0;
    for (const s of this.sessions.keys()) if (s.signal) n++;
    return n;
  }

  private accept(socket: net.Socket): void {
    if (this.closing || this.sessions.size >= this.config.maxConnections) {
      const reason = this.closing ? 'shutdown' : 'too_many';
      const why = this.closing ? new PgError(SqlState.AdminShutdown, 'the proxy is shutting down', { severity: 'FATAL' }) : new PgError(SqlState.TooManyConnections, 'sorry, too many clients already', { severity: 'FATAL' });
      clientConnectionsRefused.inc({ reason });
      this.log.warn({ client: `${socket.remoteAddress}:${socket.remotePort}`, code: why.code, maxConnections: this.config.maxConnections }, `client refused: ${why.message}`);
      refuseClient(socket, why, this.secureContext);
      return;
    }
    clientConnectionsTotal.inc();
    const id = this.nextId++;
    const address = `${socket.remoteAddress}:${socket.remotePort}`;
    const log = this.log.child({ session: id, client: address });
    const s = new Session(socket, { config: this.config, log, hook: this.hook, secureContext: this.secureContext, interceptor: this.options.fdw?.interceptor, reserved: (params) => this.callbackFor(params) ?? this.adminFor(params, socket, log), advertise: () => this.advertise, cancels: this.cancels }, id);
    this.sessions.set(s, { socket, address, connectedAt: new Date() });
    const loginMs = this.config.loginTimeoutMs ?? 60_000;
    // Like authentication_timeout: a client that has not logged in by then (silent, or trickling bytes) is closed.
    const loginTimer = loginMs > 0 ? setTimeout(() => {
      if (s.loggedIn || socket.destroyed) return;
      clientConnectionsRefused.inc({ reason: 'login_timeout' });
      log.warn({ loginTimeoutMs: loginMs }, 'closing a connection that did not log in within --login-timeout');
      socket.destroy();
    }, loginMs) : undefined;
    void s.closed.then(() => {
      clearTimeout(loginTimer);
      this.closedBytes.in += socket.bytesRead;
      this.closedBytes.out += socket.bytesWritten;
      this.sessions.delete(s);
    });
  }

  /** The admin console database: answered by the proxy after a login relayed to upstream. */
  private adminFor(params: Map<string, string>, raw: net.Socket, log: Logger): ((sock: net.Socket | tls.TLSSocket, rest: Buffer) => void) | undefined {
    const admin = this.options.admin;
    if (params.get('database') !== ADMIN_DATABASE || !admin) return undefined;
    return (sock, rest) => {
      if (this.config.tlsRequired && !(sock instanceof tls.TLSSocket)) {
        sock.end(encodeError(new PgError('28000', `no pg_hba.conf entry for host "${raw.remoteAddress ?? ''}", user "${params.get('user') ?? ''}", database "${ADMIN_DATABASE}", no encryption`, { severity: 'FATAL' })));
        return;
      }
      this.consoles.add(raw);
      void runAdminConsole(sock, params, rest, this.config, log, admin).finally(() => this.consoles.delete(raw));
    };
  }

  /** For the reserved callback database: a session answered by the proxy alone, never relayed upstream. */
  private callbackFor(params: Map<string, string>): ((sock: net.Socket | tls.TLSSocket, rest: Buffer) => void) | undefined {
    const db = callbackDatabase(params.get('database') ?? '');
    if (db === undefined) return undefined;
    return (sock, rest) => {
      const redis = this.options.fdw?.redis;
      const own = this.options.fdw?.own;
      if (!redis || !own) {
        sock.end(encodeError(new PgError('3D000', 'this proxy serves no Redis foreign tables, so it takes no callbacks', { severity: 'FATAL' })));
        return;
      }
      const log = this.log.child({ callback: db });
      const s = new CallbackSession(sock, db, { own, redis, log, maxValueBytes: this.config.maxValueBytes, cancels: this.cancels }, log);
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
      for (const c of this.consoles) c.destroy();
      for (const s of this.sessions.keys()) s.requestShutdown();
      const all = Promise.all([...this.sessions.keys()].map((s) => s.closed));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([all, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      for (const s of this.sessions.keys()) s.terminateForShutdown();
      for (const c of this.callbacks) c.close();
      await Promise.all([...this.sessions.keys()].map((s) => s.closed));
      await stopped;
      await this.options.fdw?.close();
    })();
    return this.closing;
  }
}
