// The proxy against the C redis_fdw (pg-redis-fdw/redis_fdw), in the same run, over the same Redis and
// the same data: each workload runs through the C FDW (a client straight at Postgres) and through the
// proxy, alternating, and the table prints proxy / C. Raw Redis baselines (ioredis, redis-cli) are
// measured in the same run too.
//
//   npm run bench:vs-c-fdw
//   BENCH_REPS=3 BENCH_SECONDS=5 BENCH_SKIP=insert100k npm run bench:vs-c-fdw
//
// The C FDW is not packaged by Debian: when `redis_fdw` is not in pg_available_extensions of the
// upstream, its column is skipped with a one-line message and the rest still runs. To measure it, build
// it yourself against the Postgres the bench uses (postgresql-server-dev-NN, libhiredis-dev, then
// `make USE_PGXS=1 install` in its source tree). Nothing in `npm test` needs it.
//
// Workloads (C FDW tables are singleton_key tables over the same keys the proxy's tables read):
//   select100k     SELECT * FROM a 100,000-field hash (node-postgres, rows as arrays, all fetched)
//   psql100k       the same through psql -At (connection included), vs. redis-cli HGETALL
//   count1m        SELECT count(*) FROM a 1,000,000-field hash
//   like1m         SELECT count(*) FROM it WHERE value LIKE '%99' (proxy peak RSS growth sampled)
//   insert10k      INSERT INTO a hash SELECT … FROM generate_series(1, 10000) (key DEL'd before each run)
//   insert100k     the same with 100,000 rows
//   lookupLiteral  pgbench -M prepared -c BENCH_CLIENTS: select value from h where key = '4242'
//   lookupParam    the same with key = :k (a bound $1, random key)
//   list100k       SELECT * FROM a 100,000-element list
//   zset100k       SELECT * FROM a 100,000-member zset (member, score float8)
//
// Environment:
//   TEST_PG_URL / TEST_REDIS_URL   as for the other benches (unset → throwaway servers)
//   BENCH_REPS       timed repetitions per workload and side, after one warm-up each (default 5)
//   BENCH_SECONDS    pgbench -T for the lookups (default 5)    BENCH_CLIENTS  pgbench -c (default 4)
//   BENCH_THREADS    pgbench -j (default 2)                     BENCH_REDIS_DB (default 13)
//   BENCH_SKIP / BENCH_ONLY   comma lists of workload names above
//   BENCH_PROXY_ARGS extra proxy flags, e.g. "--fast-path off"; BENCH_PROXY_NODE_ARGS node flags (--cpu-prof)
//   BENCH_AB_ARGS    flags of a second proxy ("proxy B", e.g. "--redis-fast-scan off") timed in the same rounds
//
// Everything shares this machine's cores, so absolute numbers move with load; compare the ratios.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { Redis } from 'ioredis';
import {
  assertAlive, envInt, envList, fdwBenchProxy, fdwBenchServers, fmt, formatTable, median, onCleanup, parsePgbench,
  pgbench, ProcSampler, readProc, runMain, startProxyCli, timed, withDatabase,
} from './lib.js';

const N100K = 100_000;
const N1M = 1_000_000;
const MB = 1024 * 1024;
const value100k = (i: number): string => `value-${i}-abcdefghijklmnopqrstuvwxyz`;

const WORKLOADS = ['select100k', 'psql100k', 'count1m', 'like1m', 'insert10k', 'insert100k', 'lookupLiteral', 'lookupParam', 'list100k', 'zset100k'] as const;
type Workload = (typeof WORKLOADS)[number];

const problems: string[] = [];
function problem(msg: string): void {
  problems.push(msg);
  console.log(`[bench] PROBLEM: ${msg}`);
}

// ---------------------------------------------------------------------------
// data
// ---------------------------------------------------------------------------

/** Sends `n` items as commands of 1000 items each, 50 commands per pipeline. */
async function load(r: Redis, n: number, cmd: (p: ReturnType<Redis['pipeline']>, from: number, to: number) => void): Promise<void> {
  const perCmd = 1000;
  for (let start = 1; start <= n; start += perCmd * 50) {
    const p = r.pipeline();
    for (let from = start; from < start + perCmd * 50 && from <= n; from += perCmd) cmd(p, from, Math.min(from + perCmd - 1, n));
    for (const [err] of (await p.exec()) ?? []) if (err) throw err;
  }
}

async function loadData(r: Redis, need: (w: Workload) => boolean): Promise<void> {
  const range = (from: number, to: number, f: (i: number) => string[]): string[] => {
    const out: string[] = [];
    for (let i = from; i <= to; i++) out.push(...f(i));
    return out;
  };
  if (need('select100k') || need('psql100k') || need('lookupLiteral') || need('lookupParam')) {
    await load(r, N100K, (p, a, b) => p.hset('h100k', ...range(a, b, (i) => [String(i), value100k(i)])));
  }
  if (need('count1m') || need('like1m')) await load(r, N1M, (p, a, b) => p.hset('h1m', ...range(a, b, (i) => [String(i), `v${i}`])));
  if (need('list100k')) await load(r, N100K, (p, a, b) => p.rpush('l100k', ...range(a, b, (i) => [`element-${i}`])));
  if (need('zset100k')) await load(r, N100K, (p, a, b) => p.zadd('z100k', ...range(a, b, (i) => [String(i), `member-${i}`])));
}

// ---------------------------------------------------------------------------
// the two sides
// ---------------------------------------------------------------------------

/** Foreign tables over the same keys, declared the same way on both sides. */
const TABLES: { name: string; cols: string; proxy: string; c: string }[] = [
  { name: 'h100k', cols: 'key text, value text', proxy: "src_type 'hash', src_key 'h100k'", c: "tabletype 'hash', singleton_key 'h100k'" },
  { name: 'h1m', cols: 'key text, value text', proxy: "src_type 'hash', src_key 'h1m'", c: "tabletype 'hash', singleton_key 'h1m'" },
  { name: 'ins', cols: 'key text, value text', proxy: "src_type 'hash', src_key 'ins'", c: "tabletype 'hash', singleton_key 'ins'" },
  { name: 'l100k', cols: 'value text', proxy: "src_type 'list', src_key 'l100k'", c: "tabletype 'list', singleton_key 'l100k'" },
  { name: 'z100k', cols: 'value text, score float8', proxy: "src_type 'zset', src_key 'z100k'", c: "tabletype 'zset', singleton_key 'z100k'" },
];

/** Creates the C FDW's server and tables in schema `c` of the bench database, or says why not. */
async function setupCFdw(dbUrl: string, redisUrl: string, redisDb: number): Promise<boolean> {
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    const avail = await c.query(`select default_version from pg_available_extensions where name = 'redis_fdw'`);
    if (avail.rowCount === 0) {
      console.log('[bench] C redis_fdw: not installed in this Postgres (not in pg_available_extensions): its column is skipped');
      return false;
    }
    const u = new URL(redisUrl);
    const lit = (s: string): string => `'${s.replace(/'/g, "''")}'`;
    await c.query(`create extension redis_fdw`);
    await c.query(`create server c_redis foreign data wrapper redis_fdw options (address ${lit(u.hostname)}, port ${lit(u.port || '6379')})`);
    await c.query(`create user mapping for public server c_redis${u.password ? ` options (password ${lit(decodeURIComponent(u.password))})` : ''}`);
    await c.query(`create schema c`);
    for (const t of TABLES) await c.query(`create foreign table c.${t.name} (${t.cols}) server c_redis options (database '${redisDb}', ${t.c})`);
    console.log(`[bench] C redis_fdw ${avail.rows[0].default_version}: tables c.${TABLES.map((t) => t.name).join(', c.')}`);
    return true;
  } finally {
    await c.end();
  }
}

interface Side {
  label: 'C' | 'proxy' | 'proxy B';
  client: pg.Client;
  url: string;
  /** Table name as this side spells it. */
  t(name: string): string;
}

/** Runs `sql` and returns how many rows came back (rows as arrays of strings, all fetched). */
async function fetchAll(client: pg.Client, sql: string): Promise<{ n: number; first: unknown[] | undefined }> {
  const r = await client.query({ text: sql, rowMode: 'array' });
  return { n: r.rows.length, first: r.rows[0] as unknown[] | undefined };
}

/** Spawns a command with stdout to /dev/null and resolves with its wall time in ms. */
function timeCommand(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => reject(new Error(`cannot run ${cmd}: ${e.message}`)));
    child.on('close', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

interface Line {
  workload: string;
  unit: 'ms' | 'tps';
  c: number | undefined;
  proxy: number;
  raw: number | undefined;
  rawLabel: string;
  note?: string;
}

async function main(): Promise<void> {
  const reps = envInt('BENCH_REPS', 5);
  const seconds = envInt('BENCH_SECONDS', 5);
  const clients = envInt('BENCH_CLIENTS', 4);
  const threads = envInt('BENCH_THREADS', 2);
  const redisDb = envInt('BENCH_REDIS_DB', 13, 0);
  const only = new Set(envList('BENCH_ONLY', [...WORKLOADS]));
  for (const s of envList('BENCH_SKIP', [])) only.delete(s);
  for (const s of only) if (!(WORKLOADS as readonly string[]).includes(s)) throw new Error(`unknown workload ${s} (use ${WORKLOADS.join(', ')})`);
  const need = (w: Workload): boolean => only.has(w);
  console.log(`[bench] vs-c-fdw: ${[...only].join(', ')}; ${reps} reps | ${os.cpus().length} cpu(s), load ${fmt(os.loadavg()[0] ?? NaN, 2)}`);

  const { upstream, bin, redis, redisTarget, dbName, dbUrl } = await fdwBenchServers('vs_c_fdw', redisDb);
  const t0 = performance.now();
  await loadData(redis, need);
  console.log(`[bench] redis data loaded: ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const haveC = await setupCFdw(dbUrl, redisTarget.url, redisDb);
  const { proxy, proxyUrl, client: proxyClient } = await fdwBenchProxy(upstream.url, dbName, redisTarget.url, []);
  for (const t of TABLES) await proxyClient.query(`create foreign table ${t.name} (${t.cols}) server s options (${t.proxy})`);
  const cClient = new pg.Client({ connectionString: dbUrl });
  await cClient.connect();
  onCleanup(() => cClient.end().catch(() => {}));

  const sides: Side[] = [{ label: 'proxy', client: proxyClient, url: proxyUrl, t: (n) => n }];
  if (haveC) sides.unshift({ label: 'C', client: cClient, url: dbUrl, t: (n) => `c.${n}` });
  const abArgs = (process.env.BENCH_AB_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
  if (abArgs.length > 0) {
    const b = await startProxyCli(upstream.url, ['--log-level', 'warn', ...abArgs]);
    const url = withDatabase(b.url, dbName);
    const client = new pg.Client({ connectionString: url });
    client.on('error', () => {});
    await client.connect();
    onCleanup(() => client.end().catch(() => {}));
    console.log(`[bench] proxy B: pid ${b.pid}, ${abArgs.join(' ')}`);
    sides.push({ label: 'proxy B', client, url, t: (n) => n });
  }

  const lines: Line[] = [];
  const redisCli = new URL(redisTarget.url);

  /**
   * One warm-up, then `reps` rounds in which every side (and the raw baseline) runs once; the order of
   * the sides alternates from round to round. `check` sees each side's result; `before` runs untimed.
   */
  const compare = async <T>(
    name: string,
    run: (s: Side) => Promise<T>,
    check: (s: Side, r: T) => void,
    raw?: { label: string; run: () => Promise<unknown> },
    before?: () => Promise<unknown>,
    note?: () => string,
  ): Promise<void> => {
    const ms = new Map<string, number[]>(sides.map((s) => [s.label, []]));
    // Redis's own CPU per run (INFO cpu before and after): says when a side waits on Redis rather than on itself.
    const redisMs = new Map<string, number[]>(sides.map((s) => [s.label, []]));
    const rawMs: number[] = [];
    for (let rep = 0; rep <= reps; rep++) {
      const order = rep % 2 === 0 ? sides : [...sides].reverse();
      for (const s of order) {
        await before?.();
        const cpu0 = await redisCpuMs(redis);
        const r = await timed(() => run(s));
        const cpu = (await redisCpuMs(redis)) - cpu0;
        check(s, r.result);
        if (rep > 0) {
          ms.get(s.label)!.push(r.ms);
          redisMs.get(s.label)!.push(cpu);
        }
      }
      if (raw) {
        await before?.();
        const r = await timed(raw.run);
        if (rep > 0) rawMs.push(r.ms);
      }
      assertAlive(proxy);
    }
    const med = (l: string): number | undefined => (ms.has(l) ? median(ms.get(l)!) : undefined);
    const b = med('proxy B');
    const redisCpu = `Redis CPU ${sides.map((s) => `${s.label} ${fmt(median(redisMs.get(s.label)!), 0)}`).join(', ')} ms`;
    const notes = [note?.(), b === undefined ? undefined : `proxy B ${fmt(b, 1)} ms`, redisCpu].filter((x) => x !== undefined);
    const line: Line = { workload: name, unit: 'ms', c: med('C'), proxy: med('proxy')!, raw: raw ? median(rawMs) : undefined, rawLabel: raw?.label ?? '', note: notes.length ? notes.join('; ') : undefined };
    console.log(`[bench] ${name}: C ${fmt(line.c ?? NaN, 1)} ms, proxy ${fmt(line.proxy, 1)} ms${raw ? `, ${raw.label} ${fmt(line.raw!, 1)} ms` : ''}${line.note ? ` (${line.note})` : ''}`);
    lines.push(line);
  };
  const rowsCheck = (what: string, n: number) => (s: Side, r: { n: number }): void => {
    if (r.n !== n) problem(`${what} through ${s.label}: ${r.n} rows, expected ${n}`);
  };
  const countCheck = (what: string, n: number) => (s: Side, r: { n: number; first: unknown[] | undefined }): void => {
    if (String(r.first?.[0]) !== String(n)) problem(`${what} through ${s.label}: count ${JSON.stringify(r.first)}, expected ${n}`);
  };

  if (need('select100k')) {
    await compare('SELECT * FROM a 100k-field hash', (s) => fetchAll(s.client, `select * from ${s.t('h100k')}`), rowsCheck('select100k', N100K),
      { label: 'ioredis hgetallBuffer', run: () => redis.hgetallBuffer('h100k') });
  }
  if (need('psql100k')) {
    const psql = upstream.bindir ? path.join(upstream.bindir, 'psql') : 'psql';
    await compare('  the same via psql -At (incl. connect)', async (s) => timeCommand(psql, ['-X', '-At', '-c', `select * from ${s.t('h100k')}`, s.url]), () => {},
      { label: 'redis-cli HGETALL', run: () => timeCommand('redis-cli', ['-h', redisCli.hostname, '-p', redisCli.port || '6379', '-n', String(redisDb), ...(redisCli.password ? ['-a', decodeURIComponent(redisCli.password), '--no-auth-warning'] : []), 'hgetall', 'h100k']) });
  }
  if (need('count1m')) {
    await compare('count(*) FROM a 1M-field hash', (s) => fetchAll(s.client, `select count(*) from ${s.t('h1m')}`), countCheck('count1m', N1M),
      { label: 'ioredis hgetallBuffer', run: () => redis.hgetallBuffer('h1m') });
  }
  if (need('like1m')) {
    let peakGrowth = 0;
    await compare("count(*) … WHERE value LIKE '%99' over 1M", async (s) => {
      if (s.label !== 'proxy') return fetchAll(s.client, `select count(*) from ${s.t('h1m')} where value like '%99'`);
      const base = (await readProc(proxy.pid)).rssBytes;
      const sampler = await ProcSampler.start(proxy.pid, 20);
      try {
        return await fetchAll(s.client, `select count(*) from ${s.t('h1m')} where value like '%99'`);
      } finally {
        const u = await sampler.stop().catch(() => undefined);
        if (u) peakGrowth = Math.max(peakGrowth, u.peakRssBytes - base);
      }
    }, countCheck('like1m', N1M / 100), undefined, undefined, () => `proxy peak RSS growth ${fmt(peakGrowth / MB, 0)} MB`);
  }
  for (const [w, n] of [['insert10k', 10_000], ['insert100k', 100_000]] as const) {
    if (!need(w)) continue;
    await redis.del('ins'); // the previous workload's rows
    await compare(`INSERT … SELECT ${n / 1000}k rows into a hash`, (s) => s.client.query(`insert into ${s.t('ins')} select g::text, 'value-' || g from generate_series(1, ${n}) g`),
      (s, r) => {
        if (r.rowCount !== n) problem(`${w} through ${s.label}: INSERT ${r.rowCount}, expected ${n}`);
      },
      { label: 'ioredis HSET, 1000 fields/cmd', run: () => load(redis, n, (p, a, b) => {
        const args: string[] = [];
        for (let i = a; i <= b; i++) args.push(String(i), `value-${i}`);
        p.hset('ins', ...args);
      }) },
      async () => {
        const len = await redis.hlen('ins');
        if (len !== 0 && len !== n) problem(`${w}: HLEN ins ${len} after a run, expected ${n}`);
        await redis.del('ins');
      });
  }

  // --- point lookups: pgbench, sides alternating per round, vs. HGET loops at the same concurrency --
  const lookups = (['lookupLiteral', 'lookupParam'] as const).filter(need);
  if (lookups.length > 0) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vs-c-fdw-'));
    onCleanup(() => rm(dir, { recursive: true, force: true }));
    for (const w of lookups) {
      const tps = new Map<string, number[]>(sides.map((s) => [s.label, []]));
      const scripts = new Map<string, string>();
      for (const s of sides) {
        const file = path.join(dir, `${w}-${s.label}.sql`);
        const where = w === 'lookupLiteral' ? `key = '4242'` : 'key = :k';
        await writeFile(file, `\\set k random(1, ${N100K})\nselect value from ${s.t('h100k')} where ${where};\n`);
        scripts.set(s.label, file);
      }
      const args = (file: string, secs: number): string[] => ['-n', '-M', 'prepared', '-c', String(clients), '-j', String(threads), '-T', String(secs), '-f', file];
      const rounds = Math.max(1, Math.min(reps, 2));
      for (const s of sides) await pgbench(bin, s.url, args(scripts.get(s.label)!, 1)); // warm-up
      for (let round = 0; round < rounds; round++) {
        for (const s of round % 2 === 0 ? sides : [...sides].reverse()) {
          const r = parsePgbench((await pgbench(bin, s.url, args(scripts.get(s.label)!, seconds))).output);
          if (r.failed) problem(`${w} through ${s.label}: ${r.failed} failed transactions`);
          tps.get(s.label)!.push(r.tps);
        }
      }
      assertAlive(proxy);
      const raw = await hgetLoops(redisTarget.url, clients, seconds);
      const line: Line = { workload: `point lookup ${w === 'lookupLiteral' ? "key = '4242'" : 'key = $1'}, pgbench -M prepared -c ${clients}`, unit: 'tps', c: tps.has('C') ? median(tps.get('C')!) : undefined, proxy: median(tps.get('proxy')!), raw, rawLabel: `ioredis HGET ×${clients} loops` };
      console.log(`[bench] ${line.workload}: C ${fmt(line.c ?? NaN)} tps, proxy ${fmt(line.proxy)} tps, raw ${fmt(raw)} ops/s`);
      lines.push(line);
    }
  }

  if (need('list100k')) {
    await compare('SELECT * FROM a 100k-element list', (s) => fetchAll(s.client, `select * from ${s.t('l100k')}`), rowsCheck('list100k', N100K),
      { label: 'ioredis lrangeBuffer 0 -1', run: () => redis.lrangeBuffer('l100k', 0, -1) });
  }
  if (need('zset100k')) {
    await compare('SELECT * FROM a 100k-member zset', (s) => fetchAll(s.client, `select * from ${s.t('z100k')}`), rowsCheck('zset100k', N100K),
      { label: 'ioredis zrangeBuffer WITHSCORES', run: () => redis.zrangeBuffer('z100k', '0', '-1', 'WITHSCORES') });
  }

  // --- report ------------------------------------------------------------------------------------
  const r2 = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined ? '' : `${fmt(a / b, 2)}×`);
  console.log('');
  console.log('The proxy vs. the C redis_fdw and raw Redis, same run (ms: lower is better, proxy/C ≤ 1 means the proxy is faster; tps: higher is better)');
  console.log(formatTable(
    ['workload', 'unit', 'C FDW', 'proxy', 'proxy/C', 'raw baseline', 'raw', 'proxy/raw'],
    lines.map((l) => [l.workload + (l.note ? ` [${l.note}]` : ''), l.unit, l.c === undefined ? 'n/a' : fmt(l.c, l.unit === 'ms' ? 1 : 0), fmt(l.proxy, l.unit === 'ms' ? 1 : 0), r2(l.proxy, l.c),
      l.rawLabel, l.raw === undefined ? '' : fmt(l.raw, l.unit === 'ms' ? 1 : 0), r2(l.proxy, l.raw)]),
  ));
  console.log(`load average at end: ${fmt(os.loadavg()[0] ?? NaN, 2)} on ${os.cpus().length} cpu(s)${haveC ? '' : ' | C redis_fdw not installed: no C column'}`);
  if (problems.length > 0) throw new Error(`${problems.length} problem(s) (listed above)`);
}

/** `loops` concurrent ioredis HGET loops on random fields of h100k for `seconds`; ops per second. */
async function hgetLoops(url: string, loops: number, seconds: number): Promise<number> {
  const cs = await Promise.all(Array.from({ length: loops }, async () => {
    const c = new Redis(url, { lazyConnect: true });
    await c.connect();
    return c;
  }));
  try {
    let ops = 0;
    const t0 = performance.now();
    const deadline = t0 + seconds * 1000;
    await Promise.all(cs.map(async (c) => {
      while (performance.now() < deadline) {
        const k = 1 + Math.floor(Math.random() * N100K);
        if ((await c.hget('h100k', String(k))) !== value100k(k)) problem(`raw HGET ${k}: unexpected value`);
        ops++;
      }
    }));
    return ops / ((performance.now() - t0) / 1000);
  } finally {
    for (const c of cs) c.disconnect();
  }
}

/** Redis's CPU time so far (user + system, from INFO cpu), in ms. */
async function redisCpuMs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
}

runMain(main);
