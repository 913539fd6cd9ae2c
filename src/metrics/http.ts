/** The operations HTTP endpoint: /metrics (Prometheus text), /health (process up), /ready (upstream and Redis reachable). */
import http from 'node:http';
import type { Logger } from 'pino';
import type { ProxyServer } from '../server/proxy-server.js';
import { probeUpstream } from '../upstream/connect.js';
import { registry } from './metrics.js';

const CHECK_TIMEOUT_MS = 2000;

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS)))]).finally(() => clearTimeout(timer));
}

/** Upstream answers a connection, and each Redis server the proxy has used answers PING. */
export async function readiness(server: ProxyServer): Promise<{ ready: boolean; upstream: { ok: boolean; error?: string }; redis: { server: string; ok: boolean; error?: string }[] }> {
  const upstream = await withTimeout(probeUpstream(server.config.upstream), 'upstream').then(
    () => ({ ok: true }),
    (e: unknown) => ({ ok: false, error: e instanceof Error ? e.message : String(e) }),
  );
  const redis = await Promise.all(
    server.redisServers().map((r) =>
      withTimeout(r.client.ping(), r.server).then(
        () => ({ server: r.server, ok: true }),
        (e: unknown) => ({ server: r.server, ok: false, error: e instanceof Error ? e.message : String(e) }),
      ),
    ),
  );
  return { ready: upstream.ok && redis.every((r) => r.ok), upstream, redis };
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
