// Shared helpers for the benchmarks in bench/: an upstream Postgres, the proxy
// started as the real CLI, pgbench runs with parsed results, /proc sampling of
// a child process, and cleanup that also runs on Ctrl-C.
// Benchmarks are not tests: nothing here is used by `npm test`.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startPostgres, startRedis } from '../test/harness/servers.js';
import pg from 'pg';
import { Redis } from 'ioredis';

export { freePort };

const HOST = '127.0.0.1';

// ---------------------------------------------------------------------------
// Environment knobs
// ---------------------------------------------------------------------------

export function envInt(name: string, def: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

export function envList(name: string, def: string[]): string[] {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return def;
  return raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

// ---------------------------------------------------------------------------
// Cleanup: a LIFO stack run once, on normal end, error, or SIGINT/SIGTERM.
// ---------------------------------------------------------------------------

type CleanupFn = () => Promise<void> | void;
const cleanups: CleanupFn[] = [];
const liveChildren = new Set<ChildProcess>();
let cleaning: Promise<void> | undefined;

export function onCleanup(fn: CleanupFn): void {
  cleanups.push(fn);
}

export function runCleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const child of liveChildren) child.kill('SIGTERM');
    while (cleanups.length > 0) {
      const fn = cleanups.pop()!;
      try {
        await fn();
      } catch (e) {
        console.error(`[bench] cleanup step failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  })();
  return cleaning;
}

let handlersInstalled = false;
let interrupted = false;
/** Run `main` with cleanup guaranteed on success, failure and SIGINT/SIGTERM; exits the process. */
export function runMain(main: () => Promise<void>): void {
  if (!handlersInstalled) {
    handlersInstalled = true;
    const onSignal = (sig: NodeJS.Signals): void => {
      interrupted = true;
      console.error(`\n[bench] ${sig}: cleaning up`);
      void runCleanup().finally(() => process.exit(128 + (os.constants.signals[sig] ?? 0)));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // Last resort: never leave a child behind, even on a sync exit.
    process.on('exit', () => {
      for (const child of liveChildren) child.kill('SIGKILL');
    });
  }
  main().then(
    () => runCleanup().then(() => process.exit(0)),
    (e: unknown) => {
      if (interrupted) return; // the signal handler cleans up and exits; killed children make main() fail
      console.error(`[bench] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      void runCleanup().finally(() => process.exit(1));
    },
  );
}

function track(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  child.once('error', () => liveChildren.delete(child));
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

// ---------------------------------------------------------------------------
// Upstream Postgres
// ---------------------------------------------------------------------------

export interface Upstream {
  url: string;
  /** Directory holding pgbench, or undefined to use PATH. */
  bindir: string | undefined;
  /** Directory of the server's Unix socket, when one was found on this machine. */
  socketDir: string | undefined;
  /** Human description of where it came from. */
  source: string;
}

/** TEST_PG_URL if set, else a throwaway server from the test harness (stopped by runCleanup). */
export async function getUpstream(): Promise<Upstream> {
  const given = process.env.TEST_PG_URL;
  if (given) return { url: given, bindir: undefined, socketDir: findSocketDir(given), source: 'external (TEST_PG_URL)' };
  const pg = await startPostgres();
  onCleanup(() => pg.stop());
  return { url: pg.url, bindir: pg.bindir, socketDir: pg.socketDir, source: `throwaway (${pg.bindir})` };
}

/**
 * Where a local server's Unix socket lives: BENCH_UPSTREAM_SOCKET_DIR, else the usual directories,
 * checked for `.s.PGSQL.<port>`. Only for a loopback URL: a remote server's port says nothing here.
 */
function findSocketDir(url: string): string | undefined {
  const u = new URL(url);
  const port = u.port || '5432';
  if (!['127.0.0.1', 'localhost', '[::1]', ''].includes(u.hostname)) return undefined;
  const dirs = [process.env.BENCH_UPSTREAM_SOCKET_DIR, u.searchParams.get('host'), '/var/run/postgresql', '/tmp'];
  return dirs.find((d): d is string => !!d && existsSync(path.join(d, `.s.PGSQL.${port}`)));
}

/** The same URL reaching the server through its Unix socket directory (libpq's `host=/dir`). */
export function withSocketDir(url: string, dir: string): string {
  const u = new URL(url);
  u.searchParams.set('host', dir);
  return u.toString();
}

/** The same URL pointing at another host:port (for "the same database, through the proxy"). */
export function withHostPort(url: string, host: string, port: number): string {
  const u = new URL(url);
  u.hostname = host;
  u.port = String(port);
  u.searchParams.delete('host'); // a unix-socket dir would override the TCP address
  return u.toString();
}

export interface RedisTarget {
  /** redis://... selecting the requested database number. */
  url: string;
  /** Human description of where it came from. */
  source: string;
}

/** TEST_REDIS_URL if set, else a throwaway redis-server (stopped by runCleanup); the URL selects database `db`. */
export async function getRedis(db: number): Promise<RedisTarget> {
  const given = process.env.TEST_REDIS_URL;
  let base: string;
  let source: string;
  if (given) {
    base = given;
    source = 'external (TEST_REDIS_URL)';
  } else {
    const r = await startRedis();
    onCleanup(() => r.stop());
    base = r.url;
    source = `throwaway (redis-server on port ${r.port})`;
  }
  const u = new URL(base);
  u.pathname = `/${db}`;
  return { url: u.toString(), source };
}

/** The same URL naming another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

// ---------------------------------------------------------------------------
// pgbench
// ---------------------------------------------------------------------------

export function pgbenchPath(bindir: string | undefined): string {
  if (bindir && existsSync(path.join(bindir, 'pgbench'))) return path.join(bindir, 'pgbench');
  return 'pgbench';
}

export interface PgbenchResult {
  tps: number;
  latencyMs: number;
  transactions: number | undefined;
  failed: number | undefined;
  output: string;
}

/** Parse the summary pgbench prints (formats of pgbench 13–17). */
export function parsePgbench(output: string): PgbenchResult {
  const num = (re: RegExp): number | undefined => {
    const m = re.exec(output);
    return m?.[1] !== undefined ? Number(m[1]) : undefined;
  };
  // 14+: "tps = N (without initial connection time)"; ≤13: "... (excluding connections establishing)".
  const tps =
    num(/^tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/m) ??
    num(/^tps = ([\d.]+)/m);
  const latencyMs = num(/^latency average = ([\d.]+) ms/m);
  if (tps === undefined || latencyMs === undefined) {
    throw new Error(`could not find tps / latency average in pgbench output:\n${output}`);
  }
  return {
    tps,
    latencyMs,
    transactions: num(/^number of transactions actually processed: (\d+)/m),
    failed: num(/^number of failed transactions: (\d+)/m),
    output,
  };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** Run a command to completion, collecting stdout+stderr; tracked for cleanup. */
export function runCommand(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    track(child);
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (e) => reject(new Error(`cannot run ${cmd}: ${e.message}`)));
    child.on('close', (code, signal) => resolve({ code, signal, output }));
  });
}

/** pgbench with the connection given as a URL (libpq expands a URI passed as dbname). */
export async function pgbench(bin: string, url: string, args: string[]): Promise<RunResult> {
  const r = await runCommand(bin, [...args, url], { PGAPPNAME: 'redis-fdw-proxy-bench' });
  if (r.code !== 0) {
    throw new Error(`pgbench ${args.join(' ')} ${redact(url)} failed (${r.code ?? r.signal}):\n${r.output}`);
  }
  return r;
}

// ---------------------------------------------------------------------------
// The proxy, as the real CLI
// ---------------------------------------------------------------------------

/** dist/src/cli/main.js, resolved from this compiled file (dist/bench/lib.js). */
export const CLI_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');

export interface ProxyProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  url: string;
  /** Last 64 KiB of its stdout+stderr. */
  output(): string;
  stop(): Promise<void>;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, HOST);
    s.setTimeout(1000);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Start `node [BENCH_PROXY_NODE_ARGS] dist/src/cli/main.js --listen 127.0.0.1:<free> --upstream <url> ...`;
 * resolves once it accepts TCP.
 */
export async function startProxyCli(upstreamUrl: string, extraArgs: string[] = ['--log-level', 'warn']): Promise<ProxyProcess> {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} not found: run npm run build first`);
  const port = await freePort();
  // e.g. BENCH_PROXY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the proxy under load.
  const nodeArgs = (process.env.BENCH_PROXY_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
  return startListener('proxy', process.execPath, [...nodeArgs, CLI_PATH, '--listen', `${HOST}:${port}`, '--upstream', upstreamUrl, ...extraArgs], port, upstreamUrl);
}

/**
 * Spawns a server that will listen on 127.0.0.1:`port` and resolves once it accepts TCP. Its `url` is
 * `upstreamUrl` re-pointed at that port. Stopped by runCleanup; `as` runs it as another OS user.
 */
export async function startListener(
  label: string,
  cmd: string,
  args: string[],
  port: number,
  upstreamUrl: string,
  as?: { uid: number; gid: number },
): Promise<ProxyProcess> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(as ?? {}) });
  track(child);
  let out = '';
  const keep = (d: Buffer): void => {
    out += d.toString();
    if (out.length > 65536) out = out.slice(-65536);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (e) => reject(new Error(`cannot run ${cmd}: ${e.message}`)));
  });

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await waitExit(child);
      clearTimeout(timer);
    }
  };
  onCleanup(stop);

  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${label} exited (${child.exitCode ?? child.signalCode}) before listening:\n${out}`);
    }
    if (await canConnect(port)) break;
    if (Date.now() > deadline) throw new Error(`${label} did not accept connections on ${HOST}:${port} within 20s:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    pid: child.pid!,
    port,
    url: withHostPort(upstreamUrl, HOST, port),
    output: () => out,
    stop,
  };
}

// ---------------------------------------------------------------------------
// /proc sampling (Linux)
// ---------------------------------------------------------------------------

let clkTck: number | undefined;
function clockTicks(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

export interface ProcSample {
  /** ms since epoch */
  at: number;
  /** user+system CPU seconds consumed so far (whole process, all threads) */
  cpuSeconds: number;
  /** the kernel's share of cpuSeconds (syscalls: for a relay, mostly socket reads and writes) */
  systemSeconds: number;
  /** resident set size, bytes */
  rssBytes: number;
}

/** One reading of /proc/<pid>/stat (utime+stime) and /proc/<pid>/status (VmRSS). */
export async function readProc(pid: number): Promise<ProcSample> {
  const at = Date.now();
  const [stat, status] = await Promise.all([
    readFile(`/proc/${pid}/stat`, 'utf8'),
    readFile(`/proc/${pid}/status`, 'utf8'),
  ]);
  // The command name (field 2) may contain spaces and ')': fields resume after the last ')'.
  // After it: [0]=state (field 3) … [11]=utime (field 14), [12]=stime (field 15).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const rssKb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? NaN);
  if (!Number.isFinite(utime) || !Number.isFinite(stime) || !Number.isFinite(rssKb)) {
    throw new Error(`cannot parse /proc/${pid}/stat or status`);
  }
  return { at, cpuSeconds: (utime + stime) / clockTicks(), systemSeconds: stime / clockTicks(), rssBytes: rssKb * 1024 };
}

export interface ProcUsage {
  wallSeconds: number;
  cpuSeconds: number;
  systemSeconds: number;
  /** cpuSeconds / wallSeconds × 100 (can exceed 100 with several busy threads) */
  cpuPercent: number;
  peakRssBytes: number;
  samples: number;
}

/** Samples a process every `intervalMs` until stop(); stop() returns usage over the window. */
export class ProcSampler {
  private readonly samples: ProcSample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private pending: Promise<void> = Promise.resolve();

  private constructor(private readonly pid: number) {}

  static async start(pid: number, intervalMs = 500): Promise<ProcSampler> {
    const s = new ProcSampler(pid);
    await s.sample();
    s.timer = setInterval(() => {
      s.pending = s.sample();
    }, intervalMs);
    return s;
  }

  private async sample(): Promise<void> {
    try {
      this.samples.push(await readProc(this.pid));
    } catch {
      /* process gone: the window simply ends at the last good sample */
    }
  }

  async stop(): Promise<ProcUsage> {
    clearInterval(this.timer);
    await this.pending;
    await this.sample();
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last) throw new Error(`no /proc samples for pid ${this.pid}`);
    const wallSeconds = (last.at - first.at) / 1000;
    const cpuSeconds = last.cpuSeconds - first.cpuSeconds;
    return {
      wallSeconds,
      cpuSeconds,
      systemSeconds: last.systemSeconds - first.systemSeconds,
      cpuPercent: wallSeconds > 0 ? (cpuSeconds / wallSeconds) * 100 : 0,
      peakRssBytes: Math.max(...this.samples.map((s) => s.rssBytes)),
      samples: this.samples.length,
    };
  }
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

/** A plain, aligned text table (first column left-aligned, the rest right-aligned). */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const mean = (xs: number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

export const median = (xs: number[]): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/**
 * Upstream and Redis for a foreign-table bench: a fresh database (dropped at the end) and a dedicated,
 * emptied Redis db (emptied again at the end).
 */
export async function fdwBenchServers(name: string, redisDb: number): Promise<{ upstream: Upstream; bin: string; redis: Redis; redisTarget: RedisTarget; dbName: string; dbUrl: string }> {
  const upstream = await getUpstream();
  const bin = pgbenchPath(upstream.bindir);
  console.log(`[bench] upstream: ${upstream.source} ${redact(upstream.url)}`);
  const redisTarget = await getRedis(redisDb);
  console.log(`[bench] redis: ${redisTarget.source} ${redact(redisTarget.url)}`);
  const redis = new Redis(redisTarget.url, { lazyConnect: true });
  await redis.connect();
  onCleanup(() => void redis.disconnect());
  await redis.flushdb();
  // Registered after the disconnect above, so it runs first (LIFO): leave the dedicated db empty.
  onCleanup(async () => {
    await redis.flushdb();
  });
  const dbName = `${name}_${process.pid}`;
  const admin = new pg.Client({ connectionString: upstream.url });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  await admin.end();
  onCleanup(async () => {
    const c = new pg.Client({ connectionString: upstream.url });
    await c.connect();
    try {
      await c.query(`drop database if exists ${dbName} with (force)`);
    } finally {
      await c.end();
    }
  });
  return { upstream, bin, redis, redisTarget, dbName, dbUrl: withDatabase(upstream.url, dbName) };
}

/**
 * The proxy CLI in front of `dbName`, with a node-postgres session on it that has created a server on
 * `redisUrl` and one hash foreign table (key text, value text) per name, each over the Redis key of
 * the same name.
 */
export async function fdwBenchProxy(upstreamUrl: string, dbName: string, redisUrl: string, hashTables: string[]): Promise<{ proxy: ProxyProcess; proxyUrl: string; client: pg.Client }> {
  // e.g. BENCH_PROXY_ARGS="--fast-path off" to measure the proxy with one of its features turned off.
  const extra = (process.env.BENCH_PROXY_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
  const proxy = await startProxyCli(upstreamUrl, ['--log-level', 'warn', ...extra]);
  const proxyUrl = withDatabase(proxy.url, dbName);
  console.log(`[bench] proxy: pid ${proxy.pid} on 127.0.0.1:${proxy.port}, database ${dbName}`);
  const client = new pg.Client({ connectionString: proxyUrl });
  // Cleanup stops the proxy first (SIGTERM), which ends this idle session with 57P01: expected then.
  client.on('error', (e) => console.error(`[bench] proxy session error: ${e.message}`));
  await client.connect();
  onCleanup(() => client.end().catch(() => {}));
  await client.query(
    [
      'create foreign data wrapper redis_wrapper handler redis_fdw_handler;',
      `create server s foreign data wrapper redis_wrapper options (conn_url '${redisUrl.replace(/'/g, "''")}');`,
      ...hashTables.map((t) => `create foreign table ${t} (key text, value text) server s options (src_type 'hash', src_key '${t}');`),
    ].join('\n'),
  );
  return { proxy, proxyUrl, client };
}

export const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a';
export const ratio = (a: number, b: number): string => fmt(a / b, 2) + '×';

export function assertAlive(proxy: ProxyProcess): void {
  if (proxy.child.exitCode !== null || proxy.child.signalCode !== null) {
    throw new Error(`proxy exited (${proxy.child.exitCode ?? proxy.child.signalCode}) during the benchmark:\n${proxy.output()}`);
  }
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const t0 = performance.now();
  const result = await fn();
  return { ms: performance.now() - t0, result };
}
