/** Small helpers shared by the psql / pgbench / auth / lifecycle integration tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import pg from 'pg';

export interface ProcResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Environment for libpq tools with every inherited PG* variable removed, so only our arguments count. */
export function cleanPgEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  return { ...env, PGCONNECT_TIMEOUT: '10', PGSSLMODE: 'disable', PGGSSENCMODE: 'disable', ...extra };
}

export interface RunOptions {
  input?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Called once the child is spawned (e.g. to signal it later). */
  onSpawn?: (child: ChildProcess) => void;
}

/** Runs a command to completion with a hard timeout (a hang fails the test, it does not stall it). */
export function runProc(cmd: string, args: string[], opts: RunOptions = {}): Promise<ProcResult> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: cleanPgEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin!.on('error', () => {});
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not finish within ${opts.timeoutMs ?? 60_000} ms\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
    opts.onSpawn?.(child);
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
  });
}

/** psql without psqlrc, without a pager, errors not fatal; `input` is the script (fed on stdin). */
export function psql(url: string, input: string, extraArgs: string[] = [], opts: Omit<RunOptions, 'input'> = {}): Promise<ProcResult> {
  return runProc('psql', ['-X', '-v', 'ON_ERROR_STOP=0', '-P', 'pager=off', '-d', url, ...extraArgs], { ...opts, input });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until it returns a truthy value; throws with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** One query on a fresh direct connection (for observing upstream from outside the proxy). */
export async function directQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

/** Waits until a backend with this application_name is running a statement matching `like`; returns its pid. */
export async function waitActive(url: string, appName: string, like = '%pg_sleep%', timeoutMs = 10_000): Promise<number> {
  return waitFor(`an active "${like}" query of application_name=${appName}`, async () => {
    const rows = await directQuery<{ pid: number }>(url, `select pid from pg_stat_activity where application_name = $1 and state = 'active' and query like $2`, [appName, like]);
    return rows[0]?.pid;
  }, timeoutMs);
}

/** pids of backends with this application_name (any state). */
export async function backendsOf(url: string, appName: string): Promise<number[]> {
  const rows = await directQuery<{ pid: number }>(url, 'select pid from pg_stat_activity where application_name = $1', [appName]);
  return rows.map((r) => r.pid);
}

/** URL with user/password/database replaced (host and port kept). */
export function withCredentials(url: string, user: string, password: string | undefined, database?: string): string {
  const u = new URL(url);
  u.username = encodeURIComponent(user);
  u.password = password ? encodeURIComponent(password) : '';
  if (database !== undefined) u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

/** Same URL with one query parameter set (application_name, sslmode, ...). */
export function withParam(url: string, key: string, value: string): string {
  const u = new URL(url);
  u.searchParams.set(key, value);
  return u.toString();
}

/** Process-unique name for tables/schemas/app names in a test file. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
}

/** `p`'s value, or `fallback` if it takes longer than `ms` (the timer never keeps the process alive). */
export async function within<T, F>(p: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<F>((r) => (timer = setTimeout(() => r(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
