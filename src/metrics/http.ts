/** The operations HTTP endpoint: /metrics (Prometheus text), /health (process up), /ready (upstream and Redis reachable). */
import http from 'node:http';
import type { Logger } from 'pino';
import type { ProxyServer } from '../server/proxy-server.js';
import { probeUpstream } from '../upstream/connect.js';
import { registry } from './metrics.js';
import { ConfiguredServers, type ServerList } from './redis-servers.js';
import { describeConn } from '../redis/connection.js';
import type { RedisClient } from '../redis/pool.js';

const CHECK_TIMEOUT_MS = 2000;
/** A Redis that has not answered PING by then is reported not reachable. */
const PING_TIMEOUT_MS = 1000;

function withTimeout<T>(p: Promise<T>, what: string, ms = CHECK_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export interface Readiness {
  ready: boolean;
  upstream: { ok: boolean; error?: string };
  /** Each Redis connection: `server` is host:port (never credentials), `names` the catalog's database/server entries for it. */
  redis: { server: string; names?: string[]; ok: boolean; error?: string }[];
  /** Databases whose foreign servers could not be listed; reported, but not a reason to be unready. */
  catalog?: { database: string; error: string }[];
}

let configured: ConfiguredServers | undefined;

/**
 * Upstream answers a connection, and every Redis server configured in the catalog (our wrappers'
 * foreign servers, in each database seen) answers PING, as do pooled servers outside those.
 */
export async function readiness(server: ProxyServer): Promise<Readiness> {
  configured ??= new ConfiguredServers(() => server.config.upstream);
  const upstream = await withTimeout(probeUpstream(server.config.upstream), 'upstream').then(
    () => ({ ok: true }),
    (e: unknown) => ({ ok: false, error: message(e) }),
  );
  const { pool, generation } = server.fdw;
  const list: ServerList = upstream.ok && pool ? await configured.list(server.databasesSeen(), generation).catch((e: unknown) => ({ servers: [], unreadable: [{ database: '*', error: message(e) }] })) : { servers: [], unreadable: [] };
  const ping = (what: string, client: () => Promise<RedisClient>): Promise<{ ok: boolean; error?: string }> =>
    withTimeout(client().then((c) => c.ping()), `PING ${what}`, PING_TIMEOUT_MS).then(
      () => ({ ok: true }),
      (e: unknown) => ({ ok: false, error: message(e) }),
    );
  const listed = new Set(list.servers.map((s) => describeConn(s.spec)));
  const redis = await Promise.all([
    ...list.servers.map(async (s) => ({ server: describeConn(s.spec), names: s.names, ...(await ping(describeConn(s.spec), () => pool!.getClient(s.spec))) })),
    ...server
      .redisServers()
      .filter((r) => !listed.has(r.server))
      .map(async (r) => ({ server: r.server, ...(await ping(r.server, () => Promise.resolve(r.client))) })),
  ]);
  const out: Readiness = { ready: upstream.ok && redis.every((r) => r.ok), upstream, redis };
  if (list.unreadable.length) out.catalog = list.unreadable;
  return out;
}

/** RELOAD: the next /ready reads the catalog's server list again. */
export function flushReadyCache(): void {
  configured?.flush();
}

export async function startMetricsServer(addr: { host: string; port: number }, server: ProxyServer, log: Logger): Promise<{ port: number; close(): Promise<void> }> {
  const srv = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const reply = (code: number, type: string, body: string): void => {
      res.writeHead(code, { 'content-type': type });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'text/plain', 'method not allowed\n');
    if (url === '/metrics') {
      registry.metrics().then(
        (text) => reply(200, registry.contentType, text),
        (e: unknown) => reply(500, 'text/plain', `${String(e)}\n`),
      );
    } else if (url === '/health') reply(200, 'application/json', '{"status":"ok"}\n');
    else if (url === '/ready') {
      readiness(server).then(
        (r) => reply(r.ready ? 200 : 503, 'application/json', `${JSON.stringify(r)}\n`),
        (e: unknown) => reply(500, 'application/json', `${JSON.stringify({ ready: false, error: String(e) })}\n`),
      );
    } else reply(404, 'text/plain', 'not found: try /metrics, /health or /ready\n');
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(addr.port, addr.host, () => resolve());
  });
  const port = (srv.address() as { port: number }).port;
  log.info({ metrics: `http://${addr.host.includes(':') ? `[${addr.host}]` : addr.host}:${port}/metrics` }, 'metrics listening');
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        srv.close(() => r());
        srv.closeAllConnections();
      }),
  };
}
