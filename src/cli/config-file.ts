/**
 * `--config FILE`: a JSON object of settings keyed by long flag name (`{"log-level": "debug",
 * "max-connections": 500}`), below flags and environment variables in precedence, above defaults.
 * SIGHUP and the console's RELOAD read it again (with argv and the environment as they were at
 * start) and apply what can change live; a changed setting that needs a restart is named, not
 * silently ignored. JSON because Node parses it without a dependency and its errors carry positions.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ConfigError, type ProxyConfig } from '../config/config.js';
import { buildProgram, toConfig } from './program.js';

/** The settings in FILE, as commander option values (strings, or booleans for switches). */
export function readConfigFile(file: string, program: Command): Map<string, string | boolean> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`--config ${JSON.stringify(file)} cannot be read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`--config ${JSON.stringify(file)} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`--config ${JSON.stringify(file)} must hold a JSON object of settings, e.g. {"log-level": "debug"}`);
  const out = new Map<string, string | boolean>();
  for (const [name, value] of Object.entries(doc as Record<string, unknown>)) {
    const opt = program.options.find((o) => o.long === `--${name}` || (o.negate && o.long === `--no-${name}`));
    if (!opt || name === 'config' || name === 'version') throw new ConfigError(`--config ${JSON.stringify(file)}: unknown setting ${JSON.stringify(name)} (settings are the long flag names, without "--")`);
    if (typeof value === 'boolean') out.set(opt.attributeName(), value);
    else if (typeof value === 'string' || typeof value === 'number') out.set(opt.attributeName(), String(value));
    else throw new ConfigError(`--config ${JSON.stringify(file)}: setting ${JSON.stringify(name)} must be a string, number or boolean`);
  }
  return out;
}

/** Flags and environment variables, then the config file under them: the whole ProxyConfig. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): { config: ProxyConfig; file: string | undefined } {
  const program = buildProgram();
  program.exitOverride((e) => process.exit(e.exitCode));
  program.parse([...argv]);
  const file = program.opts<{ config?: string }>().config;
  if (file !== undefined) {
    for (const [key, value] of readConfigFile(file, program)) {
      const source = program.getOptionValueSource(key);
      if (source === undefined || source === 'default') program.setOptionValueWithSource(key, value, 'config');
    }
  }
  return { config: toConfig(program.opts(), env), file };
}

/** One setting's change between two configs: its console name, and its old and new values as shown. */
interface Change {
  name: string;
  from: string;
  to: string;
}

const show = (v: unknown): string => (v === undefined ? 'off' : typeof v === 'string' ? v : JSON.stringify(v));

/** Settings a reload applies to the running proxy; everything else in ProxyConfig needs a restart. */
const LIVE: { name: string; get: (c: ProxyConfig) => unknown; set: (into: ProxyConfig, from: ProxyConfig) => void }[] = [
  { name: 'log_level', get: (c) => c.logLevel, set: (i, f) => (i.logLevel = f.logLevel) },
  { name: 'max_connections', get: (c) => c.maxConnections, set: (i, f) => (i.maxConnections = f.maxConnections) },
  { name: 'login_timeout', get: (c) => c.loginTimeoutMs, set: (i, f) => (i.loginTimeoutMs = f.loginTimeoutMs) },
  { name: 'shutdown_timeout', get: (c) => c.shutdownTimeoutMs, set: (i, f) => (i.shutdownTimeoutMs = f.shutdownTimeoutMs) },
  { name: 'log_min_duration', get: (c) => c.logMinDurationMs, set: (i, f) => (i.logMinDurationMs = f.logMinDurationMs) },
];

const RESTART: { name: string; get: (c: ProxyConfig) => unknown }[] = [
  { name: 'listen', get: (c) => `${c.listenHost}:${c.listenPort}` },
  // The embedded Postgres's address is only known once it runs: compare what was asked for.
  { name: 'upstream', get: (c) => (c.embedded ? `embedded ${c.embedded.dataDir}` : `${c.upstream.user}@${c.upstream.host}:${c.upstream.port}/${c.upstream.database}?sslmode=${c.upstream.sslmode}`) },
  { name: 'tls_required', get: (c) => c.tlsRequired ?? false },
  { name: 'log_format', get: (c) => c.logFormat },
  { name: 'max_value_bytes', get: (c) => c.maxValueBytes },
  { name: 'fast_path', get: (c) => c.fastPath },
  // The embedded Postgres turns callback mode on by itself (advertise auto) once it runs.
  { name: 'advertise', get: (c) => c.advertise ?? (c.embedded ? 'auto' : undefined) },
  { name: 'outbox', get: (c) => c.outbox },
  { name: 'metrics_listen', get: (c) => c.metricsListen },
  { name: 'admin_users', get: (c) => (c.adminUsers ?? []).join(',') },
];

export interface ConfigDiff {
  /** Applied to the running config. */
  changed: Change[];
  /** Changed in the file (or flags) but kept until a restart. */
  restart: Change[];
  /** TLS certificate/key paths changed: the caller re-reads them. */
  tls: boolean;
}

/**
 * Applies `next`'s live settings to `current` in place (everything reads `current`), and names the
 * others that differ. TLS paths are live while TLS stays on; turning it on or off needs a restart.
 */
export function applyLive(current: ProxyConfig, next: ProxyConfig): ConfigDiff {
  const diff: ConfigDiff = { changed: [], restart: [], tls: false };
  for (const s of LIVE) {
    const from = show(s.get(current));
    const to = show(s.get(next));
    if (from === to) continue;
    s.set(current, next);
    diff.changed.push({ name: s.name, from, to });
  }
  for (const s of RESTART) {
    const from = show(s.get(current));
    const to = show(s.get(next));
    if (from !== to) diff.restart.push({ name: s.name, from, to });
  }
  const tlsFrom = show(current.tls);
  const tlsTo = show(next.tls);
  if (tlsFrom !== tlsTo) {
    if (current.tls && next.tls) {
      current.tls = next.tls;
      diff.tls = true;
      diff.changed.push({ name: 'tls_cert/tls_key', from: tlsFrom, to: tlsTo });
    } else diff.restart.push({ name: 'tls_cert/tls_key', from: tlsFrom, to: tlsTo });
  }
  return diff;
}
