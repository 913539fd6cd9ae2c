/** The proxy's typed configuration, and the parsing that turns strings into it with actionable errors. */

export type SslMode = 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

export interface UpstreamTarget {
  /** A hostname, an IP, or a Unix socket directory (starts with '/'). */
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  database: string;
  sslmode: SslMode;
  sslrootcert: string | undefined;
}

export interface ProxyConfig {
  listenHost: string;
  listenPort: number;
  upstream: UpstreamTarget;
  tls: { cert: string; key: string } | undefined;
  logLevel: LogLevel;
  logFormat: 'json' | 'pretty';
  shutdownTimeoutMs: number;
  maxConnections: number;
  /** Largest value (field, element, JSON text...) a write sends to Redis, in bytes. */
  maxValueBytes: number;
  /** Whether simple reads are answered from Redis without upstream (the local fast path); default on. */
  fastPath?: boolean;
  /**
   * Where upstream's postgres_fdw reaches this proxy (callback mode): HOST:PORT, 'auto' (the listen
   * address, when it and upstream are both on this machine), or undefined (handler-less wrappers).
   */
  advertise?: string;
  /** The transactional outbox for committed Redis writes (executor/outbox.ts); defaults when absent. */
  outbox?: { enabled: boolean; replayIntervalMs: number; replayAfterMs: number; markerTtlS: number };
  /** Refuse clients that do not negotiate TLS (as a `hostssl`-only pg_hba.conf does). */
  tlsRequired?: boolean;
  /** Close a connection that has not finished authenticating by then (Postgres's authentication_timeout). */
  loginTimeoutMs?: number;
  /** HTTP address for /metrics, /health and /ready; off when absent. */
  metricsListen?: { host: string; port: number };
  /** Roles admitted to the admin console besides upstream superusers. */
  adminUsers?: string[];
  /** Log statements slower than this; off when absent. */
  logMinDurationMs?: number;
  /** Set when the upstream is the embedded Postgres this process runs. */
  embedded?: { dataDir: string };
  /** A Redis command with no reply within this long fails with HV00N; 0 = no per-command bound (default 5 s). */
  redisTimeoutMs?: number;
  /** Connecting to a Redis server (TCP, TLS) gives up after this long (default 2 s). */
  redisConnectTimeoutMs?: number;
  /** Whole single-key scans parse Redis's replies straight into the parameters (default on). */
  redisFastScan?: boolean;
  /** The fast path's hash point lookups go over a raw pipelined connection per server (default on). */
  redisFastLookup?: boolean;
  /** A raw scan reads a single key of at most this many members with one command (default 100,000). */
  redisWholeRead?: number;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function parseHostPort(s: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(s.trim());
  if (!m) throw new ConfigError(`${what} must be HOST:PORT, got ${JSON.stringify(s)}`);
  const port = Number(m[3]);
  if (port < 0 || port > 65535) throw new ConfigError(`${what} port must be 0-65535, got ${m[3]}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

const SSL_MODES: readonly SslMode[] = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'];

/** Defaults follow libpq's environment variables, as psql's would. */
export function upstreamDefault(env: NodeJS.ProcessEnv = process.env): string {
  const host = env.PGHOST ?? '127.0.0.1';
  const port = env.PGPORT ?? '5432';
  const user = env.PGUSER ?? 'postgres';
  const db = env.PGDATABASE ?? 'postgres';
  const hostPart = host.startsWith('/') ? `localhost:${port}` : `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const q = host.startsWith('/') ? `?host=${encodeURIComponent(host)}` : '';
  return `postgres://${encodeURIComponent(user)}@${hostPart}/${encodeURIComponent(db)}${q}`;
}

/** A URL for messages, with any password replaced; works on text that does not parse as a URL too. */
export function maskUrl(s: string): string {
  // Greedy to the last '@': a password may itself hold '@' or '/' in a URL that does not parse.
  return s.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/?#@]*):.*@/i, '$1:***@').replace(/([?&]password=)[^&#]*/gi, '$1***');
}

export function parseUpstreamUrl(s: string): UpstreamTarget {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new ConfigError(`--upstream must be a postgres:// URL (or "embedded"), got ${JSON.stringify(maskUrl(s))}`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new ConfigError(`--upstream must use the postgres:// scheme (or be "embedded"), got ${JSON.stringify(u.protocol)}`);
  }
  const sslmode = (u.searchParams.get('sslmode') ?? 'disable') as SslMode;
  if (!SSL_MODES.includes(sslmode)) throw new ConfigError(`--upstream sslmode must be one of ${SSL_MODES.join(', ')}, got ${JSON.stringify(sslmode)}`);
  const port = u.port === '' ? 5432 : Number(u.port);
  const socketDir = u.searchParams.get('host');
  return {
    host: socketDir ?? (u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1'),
    port,
    user: decodeURIComponent(u.username) || 'postgres',
    password: u.password === '' ? undefined : decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || decodeURIComponent(u.username) || 'postgres',
    sslmode,
    sslrootcert: u.searchParams.get('sslrootcert') ?? undefined,
  };
}

export function parseDuration(s: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s.trim());
  if (!m) throw new ConfigError(`${what} must be a duration like 30s, 500ms or 2m, got ${JSON.stringify(s)}`);
  const n = Number(m[1]);
  return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000);
}
