/**
 * One ioredis client per connection spec (server, db, credentials), shared by every session.
 *
 * `getClient()` / `get()` hand out a ready client or fail with HV00N within a bounded time; they never wait
 * for Redis indefinitely. Commands fail fast too (no offline queue, one retry, in-flight commands rejected
 * when the connection drops), so a dead Redis surfaces as an error, not a hung query. A hung one (paused,
 * overloaded, a black-holed network) is bounded by the command timeout: each command gets a reply within
 * it or fails, and a connection that stays silent that long with commands outstanding is reset. Once a client has been
 * ready it stays in the pool and keeps reconnecting in the background, so a restarted Redis is picked up by
 * the next call. A client that never became ready, or whose login the server refused, is dropped so the next
 * call starts afresh.
 *
 * Redis Cluster: the first connection asks the server (INFO cluster). If it is a cluster node, the entry
 * switches to an ioredis Cluster client seeded with that node; `getClient()` returns it. `get()` is for code
 * that needs a plain `Redis` and refuses a cluster with 0A000.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { connKey, describeConn, type RedisConnSpec } from './connection.js';
import { closeFastScan, DEFAULT_WHOLE_READ, registerFastScan } from './resp-scan.js';
import { instrumentRedis } from '../metrics/redis-metrics.js';
import { redisRecorder } from '../metrics/metrics.js';
import { writePerTurn } from './turn-writes.js';
import { RespPipe } from './resp-pipe.js';

export type RedisClient = Redis | Cluster;

export const DEFAULT_COMMAND_TIMEOUT_MS = 5000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 2000;

export interface RedisPoolOptions {
  /** TCP connect + handshake budget per attempt, ms. Default 2000. */
  connectTimeoutMs?: number;
  /** A get gives up after this long overall, ms. Default connectTimeoutMs + 1000. */
  getTimeoutMs?: number;
  /** Background reconnect backoff ceiling, ms. Default 1000. */
  maxRetryDelayMs?: number;
  /** A command with no reply within this long fails with HV00N (ioredis `commandTimeout`). Default 5000; 0 = off. */
  commandTimeoutMs?: number;
  /**
   * A connection with commands outstanding that receives nothing for this long is considered dead and is
   * reset (its commands fail with HV00N). Guards against a hung (not crashed) server. Default: the command
   * timeout + 1 s (or 30000 when that is off); 0 = off.
   */
  socketTimeoutMs?: number;
  /**
   * Whole single-key scans of standalone servers read their replies from raw connections straight into
   * the `text[]` parameters (resp-scan.ts, --redis-fast-scan). Default true.
   */
  fastScan?: boolean;
  /** A raw scan reads a single key of at most this many members with one command (--redis-whole-read). Default 100,000. */
  wholeRead?: number;
  /** Point lookups' commands on one raw pipelined connection per standalone server (resp-pipe.ts, --redis-fast-lookup). Default true. */
  fastLookup?: boolean;
  /** CLIENT SETNAME for the pool's connections. Default `redis-fdw-proxy`. */
  connectionName?: string;
  /** Called for each ioredis 'error' / 'node error' event (they are otherwise only recorded), e.g. to log them. */
  onError?: (err: Error, server: string) => void;
}

interface Entry {
  key: string;
  spec: RedisConnSpec;
  client: RedisClient;
  /** Whether the server is a cluster node; known after the first successful connection. */
  kind: 'unknown' | 'standalone' | 'cluster';
  everReady: boolean;
  lastError: Error | undefined;
  pending: Promise<RedisClient> | undefined;
  pipe?: RespPipe;
}

export class RedisPool {
  private readonly entries = new Map<string, Entry>();
  private readonly opts: Required<Omit<RedisPoolOptions, 'onError'>> & Pick<RedisPoolOptions, 'onError'>;
  private closed = false;

  constructor(opts: RedisPoolOptions = {}) {
    const connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const commandTimeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.opts = {
      connectTimeoutMs,
      getTimeoutMs: opts.getTimeoutMs ?? connectTimeoutMs + 1000,
      maxRetryDelayMs: opts.maxRetryDelayMs ?? 1000,
      commandTimeoutMs,
      // A little past the command timeout, so a command fails as timed out before its connection is reset.
      socketTimeoutMs: opts.socketTimeoutMs ?? (commandTimeoutMs > 0 ? commandTimeoutMs + 1000 : 30_000),
      fastScan: opts.fastScan ?? true,
      fastLookup: opts.fastLookup ?? true,
      wholeRead: opts.wholeRead ?? DEFAULT_WHOLE_READ,
      connectionName: opts.connectionName ?? 'redis-fdw-proxy',
      onError: opts.onError,
    };
  }

  /** Number of pooled clients. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * A ready client for `spec`: a `Redis`, or a `Cluster` when the server is a Redis Cluster node. Fails with
   * PgError HV00N `could not connect to Redis at host:port: <reason>`.
   */
  async getClient(spec: RedisConnSpec): Promise<RedisClient> {
    if (this.closed) {
      throw new PgError(SqlState.FdwUnableToEstablishConnection, `could not connect to Redis at ${describeConn(spec)}: the connection pool is closed`);
    }
    const key = connKey(spec);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { key, spec, client: undefined as unknown as Redis, kind: 'unknown', everReady: false, lastError: undefined, pending: undefined };
      entry.client = this.createStandalone(entry);
      this.entries.set(key, entry);
    }
    if (entry.kind !== 'unknown' && usable(entry.client)) return entry.client;
    const e = entry;
    e.pending ??= this.prepare(e).finally(() => {
      e.pending = undefined;
    });
    return e.pending;
  }

  /**
   * The raw pipelined connection for point lookups on `spec`'s server, once its ioredis client has been
   * ready and the server is known to be standalone; undefined otherwise (the caller uses getClient()).
   */
  lookupPipe(spec: RedisConnSpec): RespPipe | undefined {
    if (!this.opts.fastLookup || this.closed) return undefined;
    const entry = this.entries.get(connKey(spec));
    if (!entry || entry.kind !== 'standalone' || !entry.everReady) return undefined;
    const commandTimeoutMs = this.opts.commandTimeoutMs > 0 ? this.opts.commandTimeoutMs : this.opts.socketTimeoutMs;
    return (entry.pipe ??= new RespPipe(entry.spec, { connectTimeoutMs: this.opts.connectTimeoutMs, commandTimeoutMs, record: redisRecorder(describeConn(entry.spec)) }));
  }

  /** Like getClient(), for callers that need a standalone `Redis`: a cluster is refused with 0A000. */
  async get(spec: RedisConnSpec): Promise<Redis> {
    const client = await this.getClient(spec);
    if (isCluster(client)) {
      throw new PgError(SqlState.FeatureNotSupported, `Redis at ${describeConn(spec)} is a Redis Cluster, which this operation does not support`);
    }
    return client;
  }

  /** Each pooled server and its connection state, for /ready and the admin console. */
  servers(): { server: string; status: string; lastError: string | undefined; client: RedisClient }[] {
    return [...this.entries.values()].map((e) => ({ server: describeConn(e.spec), status: e.client.status, lastError: e.lastError?.message, client: e.client }));
  }

  /** QUIT every client (disconnect those that cannot), and refuse further gets. */
  async close(): Promise<void> {
    this.closed = true;
    const entries = [...this.entries.values()];
    this.entries.clear();
    for (const e of entries) e.pipe?.close();
    await Promise.all(entries.map((e) => quitClient(e.client)));
  }

  // ---- internals ----

  private baseOptions(spec: RedisConnSpec): RedisOptions {
    const options: RedisOptions = {
      username: spec.username,
      password: spec.password,
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      connectTimeout: this.opts.connectTimeoutMs,
      // A command must not be replayed after a reconnect: a retried write could apply twice.
      autoResendUnfulfilledCommands: false,
      // RESP2: the same reply shapes on every server version (Redis < 6 has no HELLO).
      protocol: 2,
      connectionName: this.opts.connectionName,
      disableClientInfo: true,
      socketTimeout: this.opts.socketTimeoutMs > 0 ? this.opts.socketTimeoutMs : undefined,
      commandTimeout: this.opts.commandTimeoutMs > 0 ? this.opts.commandTimeoutMs : undefined,
    };
    if (spec.tls) options.tls = spec.tlsInsecure ? { rejectUnauthorized: false } : { servername: spec.host };
    return options;
  }

  private createStandalone(entry: Entry): Redis {
    const { spec } = entry;
    const maxDelay = this.opts.maxRetryDelayMs;
    const options: RedisOptions = {
      ...this.baseOptions(spec),
      db: spec.db,
      enableOfflineQueue: false,
      // Keep trying in the background (forever, capped backoff); a get bounds how long a caller waits.
      retryStrategy: (times) => Math.min(times * 100, maxDelay),
    };
    if (spec.path) options.path = spec.path;
    else {
      options.host = spec.host;
      options.port = spec.port;
    }
    const client = new Redis(options);
    this.watch(entry, client);
    writePerTurn(client);
    if (this.opts.fastScan) {
      const commandTimeoutMs = this.opts.commandTimeoutMs > 0 ? this.opts.commandTimeoutMs : this.opts.socketTimeoutMs;
      registerFastScan(client, spec, { connectTimeoutMs: this.opts.connectTimeoutMs, commandTimeoutMs, wholeRead: this.opts.wholeRead });
    }
    return client;
  }

  private createCluster(entry: Entry): Cluster {
    const { spec } = entry;
    const maxDelay = this.opts.maxRetryDelayMs;
    const { username, password, connectTimeout, protocol, connectionName, disableClientInfo, socketTimeout, commandTimeout, tls, maxRetriesPerRequest, autoResendUnfulfilledCommands } =
      this.baseOptions(spec);
    const options: ClusterOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      clusterRetryStrategy: (times) => Math.min(times * 100, maxDelay),
      slotsRefreshTimeout: this.opts.connectTimeoutMs,
      redisOptions: { username, password, connectTimeout, protocol, connectionName, disableClientInfo, socketTimeout, commandTimeout, tls, maxRetriesPerRequest, autoResendUnfulfilledCommands },
    };
    const cluster = new Cluster([{ host: spec.host, port: spec.port }], options);
    this.watch(entry, cluster);
    cluster.on('node error', (err: Error, node: string) => {
      entry.lastError = err;
      this.opts.onError?.(err, node);
    });
    // Node connections need the same in-flight protection as a standalone client.
    cluster.on('+node', (node: Redis) => {
      failInFlightOnClose(node);
      writePerTurn(node);
    });
    return cluster;
  }

  private watch(entry: Entry, client: RedisClient): void {
    instrumentRedis(client, describeConn(entry.spec));
    // Never let an 'error' event go unhandled: record it for the next get's message.
    client.on('error', (err: Error) => {
      entry.lastError = err;
      this.opts.onError?.(err, describeConn(entry.spec));
    });
    client.on('ready', () => {
      if (entry.client !== client) return;
      entry.everReady = true;
      entry.lastError = undefined;
    });
    if (!isCluster(client)) failInFlightOnClose(client);
  }

  /** Waits for the entry's client; on the first connection, finds out whether the server is a cluster. */
  private async prepare(entry: Entry): Promise<RedisClient> {
    const client = await this.waitReady(entry, entry.client);
    if (entry.kind !== 'unknown') return client;
    let info: string;
    try {
      info = await (client as Redis).info('cluster');
    } catch (e) {
      this.drop(entry);
      throw connectFailed(entry.spec, e instanceof Error ? e : new Error(String(e)));
    }
    if (!/^cluster_enabled:1\s*$/m.test(info)) {
      entry.kind = 'standalone';
      return client;
    }
    if (entry.spec.db !== 0 || entry.spec.path) {
      this.drop(entry);
      throw new PgError(
        SqlState.FdwInvalidAttributeValue,
        `Redis at ${describeConn(entry.spec)} is a Redis Cluster node: ${entry.spec.path ? 'connect over TCP' : `it has only database 0, not ${entry.spec.db}`}`,
      );
    }
    // Switch the entry to a Cluster client seeded with this node; the standalone connection is not needed.
    entry.kind = 'cluster';
    entry.everReady = false;
    entry.client = this.createCluster(entry);
    void quitClient(client);
    return this.waitReady(entry, entry.client);
  }

  private waitReady(entry: Entry, client: RedisClient): Promise<RedisClient> {
    const { spec } = entry;
    if (usable(client)) return Promise.resolve(client);
    return new Promise<RedisClient>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = (): void => {
        clearTimeout(timer);
        client.off('ready', onReady);
        client.off('error', onError);
        client.off('end', onEnd);
      };
      const fail = (reason: Error | string): void => {
        cleanup();
        const err = reason instanceof Error ? reason : new Error(reason);
        // A client that never worked, or whose login/SELECT the server refused, is not worth keeping: the next
        // get starts afresh. One that worked before keeps reconnecting in the background.
        if (!entry.everReady || !isNetworkError(err)) this.drop(entry);
        reject(connectFailed(spec, err));
      };
      const onReady = (): void => {
        cleanup();
        resolve(client);
      };
      const onError = (err: Error): void => fail(err);
      const onEnd = (): void => fail(entry.lastError ?? 'the connection was closed');
      client.on('ready', onReady);
      client.on('error', onError);
      client.on('end', onEnd);
      timer = setTimeout(() => {
        fail(entry.lastError ?? `no connection within ${this.opts.getTimeoutMs} ms`);
      }, this.opts.getTimeoutMs);
      if (client.status === 'wait' || client.status === 'end') {
        // Errors arrive through the 'error' event too (with the reason), so the promise's rejection adds nothing.
        client.connect().catch(() => {});
      }
    });
  }

  private drop(entry: Entry): void {
    if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
    entry.pipe?.close();
    entry.client.disconnect();
  }
}

const isCluster = (c: RedisClient): c is Cluster => (c as { isCluster?: boolean }).isCluster === true;

/**
 * Ready and (for a standalone client) its socket still writable. Right after the server dies the status can
 * still say 'ready' while the socket is already gone; such a client is waited on (its reconnect decides)
 * rather than handed out.
 */
function usable(client: RedisClient): boolean {
  if (client.status !== 'ready') return false;
  if (isCluster(client)) return true;
  const stream = client.stream as { writable?: boolean; _writableState?: { ended?: boolean } } | undefined;
  return !!stream && stream.writable !== false && stream._writableState?.ended !== true;
}

/**
 * Commands in flight when a connection drops: with autoResendUnfulfilledCommands off, ioredis would leave
 * them pending forever if the reconnect succeeds at once. Fail them as soon as the connection closes instead
 * (they become HV00N for the caller). Runs on the 'close' event, after ioredis's own close handling and
 * before any reconnect (which waits at least the retry delay).
 */
function failInFlightOnClose(client: Redis): void {
  client.on('close', () => {
    const queue = client.commandQueue;
    if (!queue || queue.length === 0) return;
    const err = new Error('Connection is closed (the connection to Redis dropped while a command was in flight).');
    for (let item = queue.shift(); item; item = queue.shift()) item.command.reject(err);
  });
}

function isNetworkError(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('E')) return true;
  return /^(connect |Connection is closed|Socket timeout|no connection within|the connection was closed|read E|write E|Failed to refresh slots cache|None of startup nodes)/.test(err.message);
}

function connectFailed(spec: RedisConnSpec, err: Error): PgError {
  // ioredis's own wording names its option; say what happened in the proxy's terms.
  let reason = /^(Socket timeout|Command timed out)/.test(err.message)
    ? 'the server did not answer within the command timeout (--redis-timeout)'
    : err.message || String(err);
  const last = (err as { lastNodeError?: Error }).lastNodeError;
  if (last?.message) reason += ` (${last.message})`;
  if (spec.password) reason = reason.split(spec.password).join('***');
  return new PgError(SqlState.FdwUnableToEstablishConnection, `could not connect to Redis at ${describeConn(spec)}: ${reason}`);
}

/** QUIT (bounded to 1 s) when connected, then make sure the client has ended. */
async function quitClient(client: RedisClient): Promise<void> {
  closeFastScan(client);
  if (client.status === 'end') return;
  const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, 1000);
  });
  try {
    if (usable(client)) {
      await Promise.race([client.quit().then(() => ended), bound]);
    }
  } catch {
    /* disconnect below */
  }
  if ((client.status as string) !== 'end') {
    client.disconnect();
    await Promise.race([ended, bound]);
  }
  clearTimeout(timer);
}
