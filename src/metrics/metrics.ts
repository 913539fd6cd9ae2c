/**
 * The proxy's Prometheus metrics (prom-client), one registry per process, prefix `redis_fdw_proxy_`.
 *
 * Hot-path cost is kept at a counter increment: gauges and byte totals are read from the live objects
 * when /metrics is scraped (collect callbacks), not maintained per message.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from './hot-metrics.js';

export const PREFIX = 'redis_fdw_proxy_';
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: PREFIX });

/** What /metrics reads from the running server at scrape time. */
export interface MetricsSource {
  clients(): number;
  upstreams(): number;
  bytes(): { in: number; out: number };
  parseCache(): { hits: number; misses: number; size: number };
  redisClients(): number;
}

let source: MetricsSource | undefined;
export function setMetricsSource(s: MetricsSource): void {
  source = s;
}

const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const clientConnectionsTotal = new Counter({ name: `${PREFIX}client_connections_total`, help: 'Client connections accepted', registers: [registry] });
export const clientConnectionsRefused = new Counter({ name: `${PREFIX}client_connections_refused_total`, help: 'Client connections refused, by reason', labelNames: ['reason'] as const, registers: [registry] });
new Gauge({
  name: `${PREFIX}client_connections`,
  help: 'Client connections open now',
  registers: [registry],
  collect() {
    this.set(source?.clients() ?? 0);
  },
});
new Gauge({
  name: `${PREFIX}upstream_connections`,
  help: 'Upstream Postgres connections open now',
  registers: [registry],
  collect() {
    this.set(source?.upstreams() ?? 0);
  },
});
export const upstreamConnectionsTotal = new Counter({ name: `${PREFIX}upstream_connections_total`, help: 'Upstream Postgres connections opened', registers: [registry] });

new Counter({
  name: `${PREFIX}client_bytes_received_total`,
  help: 'Bytes received from clients',
  registers: [registry],
  collect() {
    const b = source?.bytes();
    if (b) this.reset(), this.inc(b.in);
  },
});
new Counter({
  name: `${PREFIX}client_bytes_sent_total`,
  help: 'Bytes sent to clients',
  registers: [registry],
  collect() {
    const b = source?.bytes();
    if (b) this.reset(), this.inc(b.out);
  },
});

export type StatementKind = 'passthrough' | 'foreign_read_fast' | 'foreign_read_upstream' | 'foreign_write' | 'ddl' | 'admin';
/** Passthrough statements are counted with a bare increment on the session's hot path, read at scrape time. */
export const hotCounts = { passthrough: 0 };
let passthroughReported = 0;
// Recorded for every foreign-table statement and Redis command: cheap children (hot-metrics.ts).
export const statementsTotal = new HotCounter(`${PREFIX}statements_total`, 'Statements (Query and Parse messages) handled, by kind', ['kind'], registry, () => {
  statementsTotal.labels('passthrough').inc(hotCounts.passthrough - passthroughReported);
  passthroughReported = hotCounts.passthrough;
});
export const statementSeconds = new HotHistogram(`${PREFIX}statement_duration_seconds`, 'Foreign-table statement latency, by kind', ['kind'], buckets, registry);

export const redisCommandsTotal = new HotCounter(`${PREFIX}redis_commands_total`, 'Redis commands sent, by server', ['server'], registry);
export const redisErrorsTotal = new HotCounter(`${PREFIX}redis_errors_total`, 'Redis command and connection errors, by server', ['server'], registry);
export const redisSeconds = new HotHistogram(`${PREFIX}redis_roundtrip_seconds`, 'Redis round-trip latency, by server', ['server'], buckets, registry);
new Gauge({
  name: `${PREFIX}redis_clients`,
  help: 'Pooled Redis clients (one per server, database and login)',
  registers: [registry],
  collect() {
    this.set(source?.redisClients() ?? 0);
  },
});

new Counter({
  name: `${PREFIX}parse_cache_hits_total`,
  help: 'Parse cache hits',
  registers: [registry],
  collect() {
    const p = source?.parseCache();
    if (p) this.reset(), this.inc(p.hits);
  },
});
new Counter({
  name: `${PREFIX}parse_cache_misses_total`,
  help: 'Parse cache misses',
  registers: [registry],
  collect() {
    const p = source?.parseCache();
    if (p) this.reset(), this.inc(p.misses);
  },
});
new Gauge({
  name: `${PREFIX}parse_cache_entries`,
  help: 'Parse cache entries',
  registers: [registry],
  collect() {
    this.set(source?.parseCache().size ?? 0);
  },
});
export const catalogReloadsTotal = new Counter({ name: `${PREFIX}catalog_reloads_total`, help: 'Foreign-table name index reloads from upstream', registers: [registry] });
export const stagedWritesTotal = new Counter({ name: `${PREFIX}staged_writes_total`, help: 'Redis writes staged inside transactions', registers: [registry] });
export const commitApplyFailuresTotal = new Counter({ name: `${PREFIX}commit_apply_failures_total`, help: 'Commits whose Redis apply failed (the WARNING case)', labelNames: [] as const, registers: [registry] });
export const reloadsTotal = new Counter({ name: `${PREFIX}reloads_total`, help: 'Configuration reloads (SIGHUP or RELOAD)', registers: [registry] });

// Label children are looked up once and kept: a labelled inc() hashes its labels on every call.
const statementChildren = new Map<StatementKind, { count: { inc(): void }; seconds: { observe(v: number): void } }>();

/** For a statement that finished: one count, and its latency for foreign reads and writes. */
export function recordStatement(kind: StatementKind, seconds?: number): void {
  let c = statementChildren.get(kind);
  if (!c) statementChildren.set(kind, (c = { count: statementsTotal.labels(kind), seconds: statementSeconds.labels(kind) }));
  c.count.inc();
  if (seconds !== undefined) c.seconds.observe(seconds);
}

export interface RedisRecorder {
  (seconds: number, failed: boolean): void;
}

/** A recorder for one Redis server's round trips (one command each). */
export function redisRecorder(server: string): RedisRecorder {
  const commands = redisCommandsTotal.labels(server);
  const latency = redisSeconds.labels(server);
  const errors = redisErrorsTotal.labels(server);
  return (seconds, failed) => {
    commands.inc();
    latency.observe(seconds);
    if (failed) errors.inc();
  };
}
