/**
 * Where a Redis server is and how to log in, parsed from either FDW dialect's options:
 * - Supabase wrappers: server option `conn_url` (`redis://[user[:pass]@]host[:port][/db]`, `rediss://` for TLS,
 *   `redis+unix:///path?db=N` / `unix:///path` for a Unix socket, as redis-rs accepts);
 * - redis_fdw_rs: server option `host_port` ('host:port'), table option `database`, and `password` /
 *   `username` from the user mapping (or server).
 *
 * Messages never contain the password.
 */
import { createHash } from 'node:crypto';
import { PgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';

export interface RedisConnSpec {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db: number;
  tls: boolean;
  /** `rediss://…#insecure` (redis-rs): TLS without certificate verification. */
  tlsInsecure?: boolean;
  /** Unix socket path (`redis+unix://` / `unix://`); host and port are then unused. */
  path?: string;
}

export const DEFAULT_REDIS_PORT = 6379;
/** Redis's own ceiling is the server's `databases` setting (16 by default); SELECT reports anything beyond. */
const MAX_DB = 2 ** 31 - 1;

/** `host:port` (or the socket path) for messages; IPv6 hosts are bracketed. */
export function describeConn(spec: RedisConnSpec): string {
  if (spec.path) return spec.path;
  const host = spec.host.includes(':') ? `[${spec.host}]` : spec.host;
  return `${host}:${spec.port}`;
}

/**
 * A stable pool key: same server, db, TLS mode and credentials ⇒ same key. The password is hashed, so
 * the key is safe to log.
 */
export function connKey(spec: RedisConnSpec): string {
  let key = keys.get(spec);
  if (key === undefined) keys.set(spec, (key = makeKey(spec)));
  return key;
}

/** Every statement asks for its table's pool entry by key: a spec's key (a SHA-256 inside) is made once. */
const keys = new WeakMap<RedisConnSpec, string>();

function makeKey(spec: RedisConnSpec): string {
  const scheme = spec.tls ? (spec.tlsInsecure ? 'rediss+insecure' : 'rediss') : 'redis';
  const where = spec.path ? `unix:${spec.path}` : `${spec.host.toLowerCase()}:${spec.port}`;
  const user = spec.username ? `${encodeURIComponent(spec.username)}@` : '';
  const pw = spec.password === undefined ? '-' : createHash('sha256').update(spec.password).digest('hex').slice(0, 16);
  return `${scheme}://${user}${where}/${spec.db}#${pw}`;
}

/** The URL with its password replaced by `***` (best effort, also for URLs that do not parse). */
export function redactConnUrl(url: string): string {
  const schemeEnd = url.indexOf('://');
  const start = schemeEnd < 0 ? 0 : schemeEnd + 3;
  const at = url.lastIndexOf('@');
  let out = url;
  if (at > start) {
    const colon = url.indexOf(':', start);
    if (colon >= 0 && colon < at) out = `${url.slice(0, colon + 1)}***${url.slice(at)}`;
  }
  // Query-string passwords (redis+unix://…?pass=…).
  return out.replace(/([?&](?:pass|password)=)[^&#]*/gi, '$1***');
}

function invalidUrl(url: string, why: string): PgError {
  return new PgError(SqlState.FdwInvalidAttributeValue, `invalid conn_url "${redactConnUrl(url)}": ${why}`, {
    hint: 'Expected redis://[user[:password]@]host[:port][/db] or rediss://… for TLS.',
  });
}

function decode(part: string, what: string, url: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw invalidUrl(url, `bad percent-encoding in the ${what}`);
  }
}

function parseDb(text: string, onError: (why: string) => PgError): number {
  if (!/^\d+$/.test(text)) throw onError('the database must be a non-negative integer');
  const db = Number(text);
  if (db > MAX_DB) throw onError('the database number is too large');
  return db;
}

function parsePort(text: string, onError: (why: string) => PgError): number {
  if (!/^\d+$/.test(text)) throw onError(`port "${text}" is not a number`);
  const port = Number(text);
  if (port < 1 || port > 65535) throw onError(`port ${port} is out of range 1-65535`);
  return port;
}

/** Supabase's `conn_url`. Malformed ⇒ PgError HV024 naming the URL with its password hidden. */
export function fromConnUrl(url: string): RedisConnSpec {
  const trimmed = url.trim();
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(trimmed);
  if (!m) throw invalidUrl(url, 'it must start with redis://, rediss://, redis+unix:// or unix://');
  const scheme = m[1]!.toLowerCase();
  if (scheme === 'redis+unix' || scheme === 'unix') return fromUnixUrl(url, trimmed);
  if (scheme !== 'redis' && scheme !== 'rediss') {
    throw invalidUrl(url, `unsupported scheme "${scheme}" (use redis://, rediss://, redis+unix:// or unix://)`);
  }

  let rest = trimmed.slice(m[0].length);
  let fragment = '';
  const hashAt = rest.indexOf('#');
  if (hashAt >= 0) {
    fragment = rest.slice(hashAt + 1);
    rest = rest.slice(0, hashAt);
  }
  const queryAt = rest.indexOf('?');
  if (queryAt >= 0) rest = rest.slice(0, queryAt); // redis-rs options such as ?protocol=resp3: nothing for us
  // Authority ends at the first '/' after the last '@' (a password may contain '/').
  const at = rest.lastIndexOf('@');
  const slash = rest.indexOf('/', at + 1);
  const authority = slash >= 0 ? rest.slice(0, slash) : rest;
  const pathPart = slash >= 0 ? rest.slice(slash + 1) : '';

  let username: string | undefined;
  let password: string | undefined;
  let hostPort = authority;
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    hostPort = authority.slice(at + 1);
    const colon = userinfo.indexOf(':');
    const user = colon >= 0 ? userinfo.slice(0, colon) : userinfo;
    if (user !== '') username = decode(user, 'user name', url);
    if (colon >= 0) password = decode(userinfo.slice(colon + 1), 'password', url);
  }

  const { host, port } = splitHostPort(hostPort, (why) => invalidUrl(url, why));
  let db = 0;
  const dbText = pathPart.replace(/\/+$/, '');
  if (dbText !== '') db = parseDb(dbText, (why) => invalidUrl(url, why));

  const spec: RedisConnSpec = { host, port, db, tls: scheme === 'rediss' };
  if (username !== undefined) spec.username = username;
  if (password !== undefined) spec.password = password;
  if (spec.tls && fragment === 'insecure') spec.tlsInsecure = true;
  return spec;
}

function fromUnixUrl(url: string, trimmed: string): RedisConnSpec {
  const parsed = (() => {
    try {
      return new URL(trimmed);
    } catch {
      throw invalidUrl(url, 'it is not a valid URL');
    }
  })();
  const path = decode(parsed.pathname, 'socket path', url);
  if (!path || path === '/') throw invalidUrl(url, 'the Unix socket path is missing');
  const q = parsed.searchParams;
  const spec: RedisConnSpec = { host: 'localhost', port: DEFAULT_REDIS_PORT, db: 0, tls: false, path };
  const dbText = q.get('db');
  if (dbText !== null && dbText !== '') spec.db = parseDb(dbText, (why) => invalidUrl(url, why));
  const user = q.get('user') ?? (parsed.username ? decode(parsed.username, 'user name', url) : '');
  const pass = q.get('pass') ?? q.get('password') ?? (parsed.password ? decode(parsed.password, 'password', url) : null);
  if (user) spec.username = user;
  if (pass !== null) spec.password = pass;
  return spec;
}

function splitHostPort(text: string, onError: (why: string) => PgError): { host: string; port: number } {
  if (text === '') throw onError('the host is missing');
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) throw onError('unterminated [IPv6] host');
    host = text.slice(1, close);
    const after = text.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) throw onError(`unexpected "${after}" after the host`);
      portText = after.slice(1);
    }
  } else {
    const colon = text.lastIndexOf(':');
    if (colon >= 0) {
      if (text.indexOf(':') !== colon) throw onError('IPv6 hosts must be written in brackets, e.g. [::1]:6379');
      host = text.slice(0, colon);
      portText = text.slice(colon + 1);
    } else {
      host = text;
    }
  }
  if (host === '') throw onError('the host is missing');
  if (/[\s/?#@]/.test(host)) throw onError(`invalid host "${host}"`);
  const port = portText === undefined || portText === '' ? DEFAULT_REDIS_PORT : parsePort(portText, onError);
  return { host, port };
}

/**
 * redis_fdw_rs: server option `host_port` ('host:port'; the port defaults to 6379), table option `database`
 * (default 0), and the user mapping's (or server's) `password` / `username`.
 */
export function fromHostPort(hostPort: string, database?: string, password?: string, username?: string): RedisConnSpec {
  const { host, port } = splitHostPort(
    hostPort.trim(),
    (why) => new PgError(SqlState.FdwInvalidAttributeValue, `invalid host_port "${hostPort}": ${why}`, {
      hint: "Expected 'host:port', e.g. '127.0.0.1:6379'.",
    }),
  );
  let db = 0;
  if (database !== undefined && database.trim() !== '') {
    db = parseDb(
      database.trim(),
      (why) => new PgError(SqlState.FdwInvalidAttributeValue, `invalid database "${database}": ${why}`),
    );
  }
  const spec: RedisConnSpec = { host, port, db, tls: false };
  if (password !== undefined && password !== '') spec.password = password;
  if (username !== undefined && username !== '') spec.username = username;
  return spec;
}
