/** What the admin console shows and changes, wired to the running server. */
import type { Logger } from 'pino';
import { LOG_LEVELS, parseDuration, type LogLevel, type ProxyConfig } from '../config/config.js';
import type { ProxyServer } from '../server/proxy-server.js';
import type { AdminContext } from './commands.js';
import { reload, type Reloadable } from './reload.js';
import { PgError } from '../protocol/pg-error.js';

const mask = (v: string | undefined): string => (v === undefined ? '' : '********');

export function adminContext(getServer: () => ProxyServer, config: ProxyConfig, log: Logger, version: string, extra: { catalog?: Reloadable['catalog'] & { currentGeneration: number; ttlMs: number }; embeddedDataDir?: string; rereadConfig?: Reloadable['config'] }): AdminContext {
  const live: Record<string, (v: string) => void> = {
    log_level: (v) => {
      if (!LOG_LEVELS.includes(v as LogLevel)) throw new PgError('22023', `log_level must be one of ${LOG_LEVELS.join(', ')}`);
      config.logLevel = v as LogLevel;
      getServer().setLogLevel(v);
    },
    max_connections: (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new PgError('22023', 'max_connections must be a positive integer');
      config.maxConnections = n;
    },
    login_timeout: (v) => (config.loginTimeoutMs = parseDuration(v, 'login_timeout')),
    shutdown_timeout: (v) => (config.shutdownTimeoutMs = parseDuration(v, 'shutdown_timeout')),
    log_min_duration: (v) => (config.logMinDurationMs = v === '' || v === '-1' || v === 'off' ? undefined : parseDuration(v, 'log_min_duration')),
  };
  return {
    clients: () => getServer().clients(),
    servers: () => getServer().redisServers(),
    cache: () => {
      const p = getServer().hook.cache.snapshot();
      return [
        ['parse_cache_entries', String(p.entries)],
        ['parse_cache_bytes', String(p.bytes)],
        ['parse_cache_hits', String(p.hits)],
        ['parse_cache_misses', String(p.misses)],
        ['parse_cache_parse_ms', (p.parseMicros / 1000).toFixed(1)],
        // Each foreign-table DDL through the proxy (and RELOAD) bumps the generation; every database's name index is then re-read.
        ['catalog_generation', String(extra.catalog?.currentGeneration ?? 0)],
        ['catalog_ttl_ms', String(extra.catalog?.ttlMs ?? 0)],
      ];
    },
    config: () => {
      const u = config.upstream;
      return [
        { name: 'listen', value: `${config.listenHost}:${config.listenPort}`, reload: 'restart' },
        { name: 'upstream', value: config.embedded ? `embedded (${config.embedded.dataDir})` : `postgres://${u.user}${u.password === undefined ? '' : `:${mask(u.password)}`}@${u.host}:${u.port}/${u.database}?sslmode=${u.sslmode}`, reload: 'restart' },
        { name: 'tls_cert', value: config.tls?.cert ?? '', reload: 'live' },
        { name: 'tls_key', value: config.tls?.key ?? '', reload: 'live' },
        { name: 'tls_required', value: String(config.tlsRequired ?? false), reload: 'restart' },
        { name: 'log_level', value: config.logLevel, reload: 'live' },
        { name: 'log_format', value: config.logFormat, reload: 'restart' },
        { name: 'log_min_duration', value: config.logMinDurationMs === undefined ? 'off' : `${config.logMinDurationMs}ms`, reload: 'live' },
        { name: 'max_connections', value: String(config.maxConnections), reload: 'live' },
        { name: 'login_timeout', value: `${config.loginTimeoutMs ?? 60_000}ms`, reload: 'live' },
        { name: 'shutdown_timeout', value: `${config.shutdownTimeoutMs}ms`, reload: 'live' },
        { name: 'max_value_bytes', value: String(config.maxValueBytes), reload: 'restart' },
        { name: 'metrics_listen', value: config.metricsListen ? `${config.metricsListen.host}:${config.metricsListen.port}` : '', reload: 'restart' },
        { name: 'admin_users', value: (config.adminUsers ?? []).join(','), reload: 'restart' },
      ];
    },
    set: (name, value) => {
      const apply = live[name];
      if (!apply) {
        log.warn({ setting: name }, `setting ${name} can only change with a restart`);
        throw new PgError('55P02', `parameter "${name}" cannot be changed without restarting the proxy`, { hint: 'SHOW CONFIG lists which settings change live.' });
      }
      apply(value);
      log.info({ setting: name, value }, `setting ${name} changed`);
      return `${name} set to ${value}`;
    },
    reload: (source) => reload({ server: getServer(), catalog: extra.catalog, config: extra.rereadConfig }, log, source),
    version: () => [
      ['redis-fdw-proxy', version],
      ['node', process.version],
      ['upstream', extra.embeddedDataDir ? `embedded Postgres (${extra.embeddedDataDir})` : 'external'],
    ],
  };
}
