/** SIGHUP and the console's RELOAD: re-read what can change live; one log line says what changed. */
import type { Logger } from 'pino';
import type { ProxyServer } from '../server/proxy-server.js';
import { reloadsTotal } from '../metrics/metrics.js';

export interface Reloadable {
  server: ProxyServer;
  /** The foreign-table name indexes; bumping makes every session read them again. */
  catalog?: { bump(): void };
}

export async function reload(target: Reloadable, log: Logger, source: string): Promise<string> {
  const changed: string[] = [];
  const failed: string[] = [];
  try {
    if (target.server.reloadTls()) changed.push('TLS certificate and key re-read');
  } catch (e) {
    failed.push(`TLS certificate and key not reloaded (the old ones stay): ${e instanceof Error ? e.message : String(e)}`);
  }
  target.server.hook.cache.clear();
  changed.push('parse cache flushed');
  if (target.catalog) {
    target.catalog.bump();
    changed.push('catalog cache flushed');
  }
  reloadsTotal.inc();
  const summary = [...changed, ...failed].join('; ');
  if (failed.length) log.warn({ source, changed, failed }, `reload: ${summary}`);
  else log.info({ source, changed }, `reload: ${summary}`);
  return summary;
}
