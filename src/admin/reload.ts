/** SIGHUP and the console's RELOAD: re-read what can change live; one log line says what changed. */
import type { Logger } from 'pino';
import type { ProxyServer } from '../server/proxy-server.js';
import { reloadsTotal } from '../metrics/metrics.js';
import { flushReadyCache } from '../metrics/http.js';
import type { ConfigDiff } from '../cli/config-file.js';

export interface Reloadable {
  server: ProxyServer;
  /** The foreign-table name indexes; bumping makes every session read them again. */
  catalog?: { bump(): void };
  /** Re-reads --config (and flags) and applies the live settings to the running config; throws if it doesn't load. */
  config?: () => ConfigDiff;
}

export async function reload(target: Reloadable, log: Logger, source: string): Promise<string> {
  const changed: string[] = [];
  const failed: string[] = [];
  let diff: ConfigDiff | undefined;
  if (target.config) {
    try {
      diff = target.config();
      for (const c of diff.changed) changed.push(`${c.name} ${c.from} -> ${c.to}`);
      if (diff.changed.some((c) => c.name === 'log_level')) target.server.setLogLevel(target.server.config.logLevel);
    } catch (e) {
      failed.push(`configuration not reloaded (the running one stays): ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (diff?.restart.length) {
    const names = diff.restart.map((c) => c.name);
    log.warn({ source, restart: diff.restart }, `reload: ${names.join(', ')} changed but can only change with a restart; the running value${names.length > 1 ? 's stay' : ' stays'}`);
  }
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
  flushReadyCache();
  reloadsTotal.inc();
  const summary = [...changed, ...failed].join('; ');
  if (failed.length) log.warn({ source, changed, failed }, `reload: ${summary}`);
  else log.info({ source, changed }, `reload: ${summary}`);
  return diff?.restart.length ? `${summary}; needs a restart: ${diff.restart.map((c) => c.name).join(', ')}` : summary;
}
