/**
 * Redis and ioredis errors → Postgres errors from the FDW class, naming the key and the foreign table:
 * - WRONGTYPE → 42809 (with the key's actual type when known);
 * - the connection failing (refused, reset, timed out, closed, auth lost, server loading) → HV00N;
 * - any other Redis error → HV000 with Redis's own message.
 * A PgError passes through unchanged.
 */
import type { Cluster, Redis } from 'ioredis';
import { PgError, isPgError } from '../protocol/pg-error.js';
import { SqlState } from '../protocol/sqlstate.js';
import { keyForMessage } from './text.js';
import type { RedisType } from './table-spec.js';

export interface RedisErrorContext {
  /** The Redis key (or key pattern) being accessed. */
  key: string | Buffer;
  /** Qualified foreign table name. */
  table: string;
  /** `host:port` for connection messages. */
  server?: string;
  /** The type the table expects. */
  expected?: RedisType;
  /** The key's actual Redis type, if already known (TYPE's answer). */
  actualType?: string;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH',
  'EAI_AGAIN', 'ECONNABORTED', 'EHOSTDOWN', 'ENETDOWN', 'ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_TLS_CERT_ALTNAME_INVALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_HAS_EXPIRED',
]);
const CONNECTION_NAMES = new Set(['MaxRetriesPerRequestError', 'AbortError', 'ClusterAllFailedError']);
const CONNECTION_MESSAGES =
  /^(Connection is closed|Stream isn't writeable|Socket timeout|Command timed out|Connection in subscriber mode|None of startup nodes is available|Failed to refresh slots cache|Cluster isn't ready|connect ETIMEDOUT)/;
/** Server replies that mean "this connection cannot serve you", not "your command is wrong". */
const CONNECTION_REPLIES = /^(NOAUTH|WRONGPASS|LOADING|MASTERDOWN|CLUSTERDOWN|NOPERM this user has no permissions to run the 'auth')/;

function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

export function isWrongTypeError(e: unknown): boolean {
  return !isPgError(e) && messageOf(e).startsWith('WRONGTYPE');
}

/** Authentication refused by the server (a wrong password or user, or none given). */
export function isAuthError(e: unknown): boolean {
  return /^(WRONGPASS|NOAUTH|NOPERM)/.test(messageOf(e)) || /invalid (username-)?password|invalid password/i.test(messageOf(e));
}

export function isConnectionError(e: unknown): boolean {
  if (isPgError(e) || !(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
  if (CONNECTION_NAMES.has(e.name)) return true;
  return CONNECTION_MESSAGES.test(e.message) || CONNECTION_REPLIES.test(e.message);
}

/** No reply within the command timeout, or a connection reset for staying silent that long. */
export function isTimeout(e: unknown): boolean {
  return !isPgError(e) && e instanceof Error && /^(Command timed out|Socket timeout)/.test(e.message);
}

/** Where a client connects, for messages: `host:port`, the socket path, or `cluster host:port,…`. */
export function serverOf(client: Redis | Cluster): string {
  const c = client as unknown as {
    isCluster?: boolean;
    options?: { host?: string; port?: number; path?: string };
    startupNodes?: Array<{ host?: string; port?: number } | string | number>;
  };
  if (c.isCluster) {
    const nodes = (c.startupNodes ?? []).map((n) =>
      typeof n === 'object' ? `${n.host ?? '127.0.0.1'}:${n.port ?? 6379}` : String(n),
    );
    return `cluster ${nodes.join(',')}`;
  }
  if (c.options?.path) return c.options.path;
  const host = c.options?.host ?? '127.0.0.1';
  return `${host.includes(':') ? `[${host}]` : host}:${c.options?.port ?? 6379}`;
}

/** ioredis's internal wording → what a Postgres user can act on (the original goes into the detail). */
function friendlyConnectionReason(e: Error): string {
  if (/^Stream isn't writeable/.test(e.message)) return 'the connection is down (reconnecting in the background)';
  if (e.name === 'MaxRetriesPerRequestError') return 'the connection was lost and could not be re-established';
  if (/^Cluster isn't ready/.test(e.message)) return 'the Redis Cluster is not ready (reconnecting in the background)';
  return e.message;
}

const ARTICLE: Record<string, string> = { list: 'a list', set: 'a set', hash: 'a hash', zset: 'a zset', stream: 'a stream', string: 'a string' };
const withArticle = (t: string): string => ARTICLE[t] ?? `a ${t}`;

export function mapRedisError(e: unknown, ctx: RedisErrorContext): PgError {
  if (isPgError(e)) return e;
  const msg = messageOf(e);
  const key = keyForMessage(ctx.key);
  if (msg.startsWith('WRONGTYPE')) {
    const actual = ctx.actualType && ctx.actualType !== 'none' ? ctx.actualType : undefined;
    const is = actual ? ` holds ${withArticle(actual)}` : ' holds the wrong kind of value';
    const expected = ctx.expected ? `, but foreign table ${ctx.table} reads ${withArticle(ctx.expected)}` : ` for foreign table ${ctx.table}`;
    return new PgError(SqlState.WrongObjectType, `Redis key "${key}"${is}${expected}`, {
      detail: `Redis said: ${msg}`,
    });
  }
  if (isTimeout(e)) {
    const where = ctx.server ? ` at ${ctx.server}` : '';
    return new PgError(
      SqlState.FdwUnableToEstablishConnection,
      `Redis${where} did not answer within the command timeout (--redis-timeout) while accessing key "${key}" of foreign table ${ctx.table}`,
      {
        detail: msg,
        // The command may be sitting in a paused server's socket buffer: it can still run later.
        hint: 'The server may be paused or overloaded. A write sent before the timeout may still be applied when it answers.',
      },
    );
  }
  if (isConnectionError(e)) {
    const where = ctx.server ? ` at ${ctx.server}` : '';
    const reason = friendlyConnectionReason(e as Error);
    return new PgError(
      SqlState.FdwUnableToEstablishConnection,
      `connection to Redis${where} failed while accessing key "${key}" of foreign table ${ctx.table}: ${reason}`,
      reason === msg ? {} : { detail: msg },
    );
  }
  return new PgError(SqlState.FdwError, `Redis error on key "${key}" of foreign table ${ctx.table}: ${msg}`);
}

/**
 * mapRedisError, but on WRONGTYPE first asks Redis for the key's actual type (best effort: if TYPE fails the
 * message just says "the wrong kind of value").
 */
export async function mapRedisErrorWithType(
  e: unknown,
  ctx: RedisErrorContext,
  client: Redis | Cluster,
): Promise<PgError> {
  if (isWrongTypeError(e) && ctx.actualType === undefined) {
    try {
      const t = await client.type(ctx.key);
      return mapRedisError(e, { ...ctx, actualType: t });
    } catch {
      /* fall through without the type */
    }
  }
  return mapRedisError(e, ctx);
}
