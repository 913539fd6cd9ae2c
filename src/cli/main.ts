#!/usr/bin/env node
/** Entry point: parse flags, check upstream answers, serve until SIGTERM/SIGINT. */
import { buildProgram, toConfig } from './program.js';
import { ConfigError } from '../config/config.js';
import { createLogger } from '../server/logger.js';
import { ProxyServer } from '../server/proxy-server.js';
import { probeUpstream } from '../upstream/connect.js';
import { createRedisFdw } from '../executor/interceptor.js';

function die(message: string): never {
  process.stderr.write(`redis-fdw-proxy: ${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const program = buildProgram();
  program.exitOverride((e) => process.exit(e.exitCode));
  program.parse();
  let config;
  try {
    config = toConfig(program.opts());
  } catch (e) {
    if (e instanceof ConfigError) die(e.message);
    throw e;
  }
  try {
    await probeUpstream(config.upstream);
  } catch (e) {
    die(e instanceof Error ? e.message : String(e));
  }
  const log = createLogger(config.logLevel, config.logFormat);
  const fdw = createRedisFdw(config, log);
  const server = new ProxyServer(config, log, { fdw });
  // Committed Redis writes a crashed proxy left in the outbox are applied now, then periodically.
  fdw.outbox.start();
  // Installed before listening: whoever starts us may signal as soon as the "listening" line is out.
  let signals = 0;
  const stop = (sig: string): void => {
    if (++signals > 1) process.exit(1); // a second signal means "now"
    log.info({ signal: sig }, 'signal received');
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await server.listen();
  } catch (e) {
    die(`cannot listen on ${config.listenHost}:${config.listenPort}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

main().catch((e: unknown) => die(e instanceof Error ? (e.stack ?? e.message) : String(e)));
