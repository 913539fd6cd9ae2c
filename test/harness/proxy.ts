/** Starts the proxy for a test: in-process (fast, inspectable) or as the real CLI process. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import pino from 'pino';
import { parseUpstreamUrl, type ProxyConfig } from '../../src/config/config.js';
import { ProxyServer } from '../../src/server/proxy-server.js';
import { createRedisFdw, type RedisFdw } from '../../src/executor/interceptor.js';

export interface RunningProxy {
  port: number;
  url: (user?: string, password?: string, db?: string) => string;
  server: ProxyServer;
  /** The proxy's Redis side (e.g. to run an outbox replay now). */
  fdw: RedisFdw;
  close: () => Promise<void>;
}

export async function startProxy(pgUrl: string, overrides: Partial<ProxyConfig> = {}, fdwOptions: { recheckMs?: number } = {}, logTo?: pino.DestinationStream): Promise<RunningProxy> {
  const config: ProxyConfig = {
    listenHost: '127.0.0.1',
    listenPort: 0,
    upstream: parseUpstreamUrl(pgUrl),
    tls: undefined,
    logLevel: (process.env.TEST_LOG_LEVEL as ProxyConfig['logLevel']) ?? 'silent',
    logFormat: 'json',
    shutdownTimeoutMs: 2000,
    maxConnections: 1000,
    maxValueBytes: 512 * 1024 * 1024,
    redisTimeoutMs: 5000,
    redisConnectTimeoutMs: 2000,
    ...overrides,
  };
  // The test may read the log lines (its own stdout is the test reporter's).
  const log = logTo ? pino({ level: config.logLevel }, logTo) : pino({ level: config.logLevel });
  const fdw = createRedisFdw(config, log, fdwOptions);
  const server = new ProxyServer(config, log, { fdw });
  const addr = await server.listen();
  const up = parseUpstreamUrl(pgUrl);
  return {
    port: addr.port,
    url: (user = up.user, password = up.password, db = up.database) => `postgres://${encodeURIComponent(user)}${password ? `:${encodeURIComponent(password)}` : ''}@127.0.0.1:${addr.port}/${encodeURIComponent(db)}`,
    server,
    fdw,
    close: () => server.close(500),
  };
}

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

export interface SpawnedProxy {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** Runs the built CLI as users run it. Resolves once it logs that it listens (or exits). */
export async function spawnProxy(args: string[], env: NodeJS.ProcessEnv = {}): Promise<SpawnedProxy> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b) => (out += b));
  child.stderr!.on('data', (b) => (out += b));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await Promise.race([
    exited,
    new Promise<void>((resolve) => {
      const check = (): void => (out.includes('redis-fdw-proxy listening') ? resolve() : void setTimeout(check, 20));
      check();
    }),
  ]);
  return { child, output: () => out, exited };
}
