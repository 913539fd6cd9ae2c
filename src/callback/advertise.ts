/**
 * The address upstream's postgres_fdw connects back to. `auto` is safe only when both ends are on this
 * machine: the listen address is loopback and upstream is loopback or a Unix socket, so upstream
 * reaches the proxy at exactly the address it listens on. Anything else needs an explicit HOST:PORT.
 * (An embedded upstream is local by construction, so it can pass 'auto'.)
 */
import type { ProxyConfig } from '../config/config.js';

const isLoopbackHost = (h: string): boolean => h === 'localhost' || h === '::1' || h.startsWith('127.');

export function resolveAdvertise(config: ProxyConfig, boundPort: number): string | undefined {
  const a = config.advertise;
  if (a === undefined || a === '') return undefined;
  if (a !== 'auto') return a;
  const up = config.upstream.host;
  if (!isLoopbackHost(config.listenHost) || !(up.startsWith('/') || isLoopbackHost(up))) return undefined;
  return `${config.listenHost.includes(':') ? `[${config.listenHost}]` : config.listenHost}:${boundPort}`;
}

/** HOST:PORT → the libpq host and port options. */
export function splitAdvertise(a: string): { host: string; port: string } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(a);
  return { host: m?.[1] ?? m?.[2] ?? a, port: m?.[3] ?? '5432' };
}
