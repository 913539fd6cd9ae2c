/** The commander program: flags and env vars → a typed ProxyConfig, nothing else. */
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { ConfigError, LOG_LEVELS, parseDuration, parseHostPort, parseUpstreamUrl, upstreamDefault, type LogLevel, type ProxyConfig, type UpstreamTarget } from '../config/config.js';
import { defaultDataDir } from '../embedded/embedded-postgres.js';

/** package.json's version: dist/src/cli/ and src/cli/ are both three levels below it. */
export const VERSION = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const env = (flag: string): string => `REDIS_FDW_PROXY_${flag.toUpperCase().replace(/-/g, '_')}`;

function opt(flags: string, description: string, name: string): Option {
  return new Option(flags, description).env(env(name));
}

export function buildProgram(): Command {
  return new Command('redis-fdw-proxy')
    .description('PostgreSQL wire-protocol proxy: relays everything to an upstream Postgres and serves Redis foreign tables through ioredis.')
    .version(VERSION, '-V, --version', 'print the version and exit')
    .addOption(opt('--config <file>', 'JSON object of settings keyed by long flag name, e.g. {"log-level": "debug", "max-connections": 500}; flags and env vars win over it. SIGHUP and the console\'s RELOAD re-read it and apply log-level, max-connections, login-timeout, shutdown-timeout, log-min-duration and the TLS files live; other changes are named in a warning and wait for a restart', 'config'))
    .addOption(opt('-l, --listen <host:port>', 'address to accept Postgres clients on', 'listen').default('127.0.0.1:6432'))
    .addOption(opt('-u, --upstream <url>', 'upstream Postgres URL. Clients log in to upstream as themselves; the URL\'s user and password are the proxy\'s own login, for the outbox of committed Redis writes and for callback mode. "embedded" runs a Postgres of our own. Default: PGHOST/PGPORT if set, else embedded', 'upstream'))
    .addOption(opt('--data-dir <dir>', `the embedded Postgres's data directory, created on first start (default: ${defaultDataDir()})`, 'data-dir'))
    .addOption(opt('--tls-cert <file>', 'PEM certificate: answer SSLRequest with TLS (needs --tls-key)', 'tls-cert'))
    .addOption(opt('--tls-key <file>', 'PEM private key for --tls-cert', 'tls-key'))
    .addOption(opt('--tls-required', 'refuse clients that do not use TLS (28000, as a hostssl-only Postgres does); needs --tls-cert', 'tls-required'))
    .addOption(opt('--login-timeout <duration>', 'close connections that have not logged in by then (like authentication_timeout)', 'login-timeout').default('60s'))
    .addOption(opt('--metrics-listen <host:port>', 'serve /metrics (Prometheus), /health and /ready over HTTP here; off unless given', 'metrics-listen'))
    .addOption(opt('--admin-users <roles>', 'comma-separated roles admitted to the admin console (database redis_fdw_proxy) besides upstream superusers', 'admin-users'))
    .addOption(opt('--log-min-duration <duration>', 'log each foreign-table statement slower than this (kind, duration, Redis commands and rows, the client\'s SQL cut short; never parameter values). Passthrough statements are left to upstream\'s log_min_duration_statement', 'log-min-duration'))
    .addOption(opt('--log-level <level>', `one of ${LOG_LEVELS.join(', ')}`, 'log-level').default('info'))
    .addOption(opt('--log-format <format>', 'json or pretty', 'log-format').default('json'))
    .addOption(opt('--shutdown-timeout <duration>', 'on SIGTERM/SIGINT, how long open sessions may finish their transactions', 'shutdown-timeout').default('30s'))
    .addOption(opt('--max-connections <n>', 'client connections accepted at once', 'max-connections').default('1000'))
    .addOption(opt('--max-value-bytes <n>', 'largest value an INSERT/UPDATE may write to Redis (Redis\'s own proto-max-bulk-len is 512 MB)', 'max-value-bytes').default('536870912'))
    .addOption(opt('--redis-timeout <duration>', 'a Redis command with no reply within this long fails with HV00N (0 = no per-command bound; a connection silent for 30 s is still reset)', 'redis-timeout').default('5s'))
    .addOption(opt('--redis-connect-timeout <duration>', 'connecting to a Redis server gives up after this long', 'redis-connect-timeout').default('2s'))
    .addOption(opt('--redis-fast-scan <on|off>', 'read whole single-key hash/set/list/zset tables over a raw Redis connection whose replies are parsed straight into the query parameters (off: through ioredis like every other read)', 'redis-fast-scan').choices(['on', 'off']).default('on'))
    .addOption(opt('--redis-whole-read <members>', 'with --redis-fast-scan, a single-key hash, set, list or zset of at most this many members is read with one command (HGETALL, SMEMBERS, LRANGE/ZRANGE 0 -1): less CPU for Redis, but it serves no other client while it builds the reply (~35 ms per 100,000 fields); a bigger one in pipelined pages of 10,000', 'redis-whole-read').default('100000'))
    .addOption(opt('--redis-fast-lookup <on|off>', 'send the fast path\'s hash point lookups (HMGET of pinned fields) over one raw pipelined Redis connection per server, a turn\'s lookups in one write (off: through ioredis like every other read)', 'redis-fast-lookup').choices(['on', 'off']).default('on'))
    .addOption(opt('--fast-path <on|off>', 'answer single-table reads, and INSERT … VALUES of constants and parameters, from and to Redis without an upstream round trip (off: always through upstream)', 'fast-path').choices(['on', 'off']).default('on'))
    .addOption(opt('--advertise <host:port|auto>', 'address upstream Postgres reaches this proxy at: Redis foreign tables then get postgres_fdw\'s handler and work wherever Postgres evaluates them (views, functions, information_schema); auto = the listen address when it and upstream are local', 'advertise'))
    .addOption(opt('--no-outbox', 'apply committed Redis writes without the transactional outbox (no redis_fdw_proxy schema upstream; a proxy crash between upstream COMMIT and Redis EXEC then loses them)', 'outbox'))
    .addOption(opt('--outbox-replay-interval <duration>', 'how often to apply committed Redis writes left in the outbox (a crashed proxy, Redis down); 0 = only at start', 'outbox-replay-interval').default('10s'))
    .addOption(opt('--outbox-replay-after <duration>', 'leave an outbox row this long to the session that committed it before another replays it', 'outbox-replay-after').default('5s'))
    .addHelpText('after', '\nEvery flag can also be set by the environment variable shown beside it; a flag wins over its variable.')
    .showHelpAfterError(false)
    .allowExcessArguments(false);
}

interface RawOptions {
  config?: string;
  listen: string;
  upstream?: string;
  dataDir?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsRequired?: boolean | string;
  loginTimeout?: string;
  metricsListen?: string;
  adminUsers?: string;
  logMinDuration?: string;
  logLevel: string;
  logFormat: string;
  shutdownTimeout: string;
  maxConnections: string;
  maxValueBytes: string;
  fastPath?: string;
  advertise?: string;
  outbox?: boolean;
  outboxReplayInterval?: string;
  outboxReplayAfter?: string;
  redisTimeout?: string;
  redisFastScan?: string;
  redisFastLookup?: string;
  redisWholeRead?: string;
  redisConnectTimeout?: string;
}

function positive(ms: number, what: string): number {
  if (ms <= 0) throw new ConfigError(`${what} must be more than 0`);
  return ms;
}

/** No --upstream and no libpq PGHOST/PGPORT means the embedded Postgres, as does --upstream embedded. */
function chooseUpstream(o: RawOptions, env: NodeJS.ProcessEnv): { upstream: UpstreamTarget; embedded: { dataDir: string } | undefined } {
  const given = o.upstream ?? (env.PGHOST !== undefined || env.PGPORT !== undefined ? upstreamDefault(env) : 'embedded');
  if (given === 'embedded') {
    const dataDir = o.dataDir ?? defaultDataDir(env);
    // Filled in by main once the embedded Postgres runs (its socket and password are known then).
    return { upstream: { host: '', port: 0, user: 'postgres', password: undefined, database: 'postgres', sslmode: 'disable', sslrootcert: undefined }, embedded: { dataDir } };
  }
  return { upstream: parseUpstreamUrl(given), embedded: undefined };
}

export function toConfig(o: RawOptions, env: NodeJS.ProcessEnv = process.env): ProxyConfig {
  const listen = parseHostPort(o.listen, '--listen');
  if (!LOG_LEVELS.includes(o.logLevel as LogLevel)) throw new ConfigError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(o.logLevel)}`);
  if (o.logFormat !== 'json' && o.logFormat !== 'pretty') throw new ConfigError(`--log-format must be json or pretty, got ${JSON.stringify(o.logFormat)}`);
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new ConfigError('--tls-cert and --tls-key must be given together');
  const tlsRequired = o.tlsRequired === true || (typeof o.tlsRequired === 'string' && !/^(0|false|no|off|)$/i.test(o.tlsRequired));
  if (tlsRequired && o.tlsCert === undefined) throw new ConfigError('--tls-required needs --tls-cert and --tls-key');
  for (const [flag, file] of [['--tls-cert', o.tlsCert], ['--tls-key', o.tlsKey]] as const) {
    if (file === undefined) continue;
    try {
      readFileSync(file);
    } catch (e) {
      throw new ConfigError(`${flag} ${JSON.stringify(file)} cannot be read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  }
  const metricsListen = o.metricsListen === undefined ? undefined : parseHostPort(o.metricsListen, '--metrics-listen');
  const adminUsers = (o.adminUsers ?? '').split(',').map((r) => r.trim()).filter((r) => r !== '');
  const { upstream, embedded } = chooseUpstream(o, env);
  const maxConnections = Number(o.maxConnections);
  if (!Number.isInteger(maxConnections) || maxConnections < 1) throw new ConfigError(`--max-connections must be a positive integer, got ${JSON.stringify(o.maxConnections)}`);
  const redisWholeRead = Number(o.redisWholeRead ?? '100000');
  if (!Number.isInteger(redisWholeRead) || redisWholeRead < 1) throw new ConfigError(`--redis-whole-read must be a positive integer, got ${JSON.stringify(o.redisWholeRead)}`);
  const maxValueBytes = Number(o.maxValueBytes);
  if (!Number.isInteger(maxValueBytes) || maxValueBytes < 1) throw new ConfigError(`--max-value-bytes must be a positive integer, got ${JSON.stringify(o.maxValueBytes)}`);
  if (o.advertise !== undefined && o.advertise !== 'auto') parseHostPort(o.advertise, '--advertise');
  return {
    advertise: o.advertise,
    listenHost: listen.host,
    listenPort: listen.port,
    upstream,
    embedded,
    tls: o.tlsCert && o.tlsKey ? { cert: o.tlsCert, key: o.tlsKey } : undefined,
    logLevel: o.logLevel as LogLevel,
    logFormat: o.logFormat,
    shutdownTimeoutMs: parseDuration(o.shutdownTimeout, '--shutdown-timeout'),
    maxConnections,
    maxValueBytes,
    fastPath: o.fastPath !== 'off',
    outbox: {
      enabled: o.outbox !== false,
      replayIntervalMs: parseDuration(o.outboxReplayInterval ?? '10s', '--outbox-replay-interval'),
      replayAfterMs: parseDuration(o.outboxReplayAfter ?? '5s', '--outbox-replay-after'),
      markerTtlS: 7 * 24 * 3600,
    },
    tlsRequired,
    loginTimeoutMs: parseDuration(o.loginTimeout ?? '60s', '--login-timeout'),
    metricsListen,
    adminUsers,
    logMinDurationMs: o.logMinDuration === undefined ? undefined : parseDuration(o.logMinDuration, '--log-min-duration'),
    redisTimeoutMs: parseDuration(o.redisTimeout ?? '5s', '--redis-timeout'),
    redisFastScan: (o.redisFastScan ?? 'on') === 'on',
    redisFastLookup: (o.redisFastLookup ?? 'on') === 'on',
    redisWholeRead,
    redisConnectTimeoutMs: positive(parseDuration(o.redisConnectTimeout ?? '2s', '--redis-connect-timeout'), '--redis-connect-timeout'),
  };
}
