#!/usr/bin/env node
/** Entry point: parse flags, start or check upstream, serve until SIGTERM/SIGINT; SIGHUP reloads. */
import { VERSION } from './program.js';
import { applyLive, loadConfig } from './config-file.js';
import { ConfigError, type ProxyConfig } from '../config/config.js';
import { createLogger, routeStrayOutput } from '../server/logger.js';
import { ProxyServer } from '../server/proxy-server.js';
import { probeUpstream } from '../upstream/connect.js';
import { createRedisFdw } from '../executor/interceptor.js';
import { EmbeddedError, startEmbeddedPostgres, type EmbeddedPostgres } from '../embedded/embedded-postgres.js';
import { startMetricsServer } from '../metrics/http.js';
import { reload } from '../admin/reload.js';
import { adminContext } from '../admin/context.js';
import { configureSlowLog } from '../metrics/statement-kind.js';

function die(message: string): never {
  try {
    process.stderr.write(`redis-fdw-proxy: ${message}\n`);
  } catch {
    /* stderr closed: the exit code still says it */
  }
  process.exit(1);
}

function unreachableHint(e: unknown): string {
  const why = e instanceof Error ? e.message : String(e);
  return `${why}. Point --upstream (or REDIS_FDW_PROXY_UPSTREAM, or libpq's PGHOST/PGPORT) at a running Postgres, or leave all of them unset (or give --upstream embedded) to start the embedded Postgres`;
}

async function main(): Promise<void> {
  let config: ProxyConfig;
  let configFile: string | undefined;
  try {
    ({ config, file: configFile } = loadConfig(process.argv));
  } catch (e) {
    if (e instanceof ConfigError) die(e.message);
    throw e;
  }
  const log = createLogger(config.logLevel, config.logFormat);
  routeStrayOutput(log);

  let embedded: EmbeddedPostgres | undefined;
  if (config.embedded) {
    try {
      embedded = await startEmbeddedPostgres(config.embedded.dataDir, log);
    } catch (e) {
      die(e instanceof EmbeddedError ? e.message : `cannot start the embedded Postgres: ${e instanceof Error ? e.message : String(e)}`);
    }
    config.upstream = embedded.upstream;
    // Local by construction, and its binaries include postgres_fdw: callback mode needs no flag.
    config.advertise ??= 'auto';
    log.info({ dataDir: embedded.dataDir, osUser: embedded.osUser, binaries: embedded.binaries, socket: embedded.upstream.host }, 'embedded Postgres running');
  } else {
    try {
      await probeUpstream(config.upstream);
    } catch (e) {
      die(unreachableHint(e));
    }
  }

  configureSlowLog(config, log);
  const fdw = createRedisFdw(config, log);
  // Without --config there is nothing to re-read: flags and env vars can't change in a running process.
  const rereadConfig = configFile === undefined ? undefined : () => applyLive(config, loadConfig(process.argv).config);
  const admin = adminContext(() => server, config, log, VERSION, { catalog: fdw.catalog, embeddedDataDir: embedded?.dataDir, rereadConfig });
  const server: ProxyServer = new ProxyServer(config, log, { fdw, admin });
  // Committed Redis writes a crashed proxy left in the outbox are applied now, then periodically.
  fdw.outbox.start();
  // Installed before listening: whoever starts us may signal as soon as the "listening" line is out.
  let signals = 0;
  let metrics: { close(): Promise<void> } | undefined;
  const stop = (sig: string): void => {
    if (++signals > 1) process.exit(1); // a second signal means "now"
    log.info({ signal: sig }, 'signal received');
    server
      .close()
      .then(() => metrics?.close())
      .then(() => embedded?.stop())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    void reload({ server, catalog: fdw.catalog, config: rereadConfig }, log, 'SIGHUP');
  });
  let addr;
  try {
    addr = await server.listen();
  } catch (e) {
    die(`cannot listen on ${config.listenHost}:${config.listenPort}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (config.metricsListen) {
    try {
      metrics = await startMetricsServer(config.metricsListen, server, log);
    } catch (e) {
      die(`cannot listen for metrics on ${config.metricsListen.host}:${config.metricsListen.port}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (embedded) {
    const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address === '0.0.0.0' ? '127.0.0.1' : addr.address;
    const psql = `PGPASSWORD="$(cat ${embedded.passwordFile})" psql "postgres://postgres@${host}:${addr.port}/postgres"`;
    log.info({ dataDir: embedded.dataDir, psql }, `embedded Postgres data in ${embedded.dataDir}; connect with: ${psql}`);
  }
}

main().catch((e: unknown) => die(e instanceof Error ? (e.stack ?? e.message) : String(e)));
