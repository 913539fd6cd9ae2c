// Foreign-table read benchmark: Redis hashes read through the proxy (the real CLI as a child
// process) vs. the same data read straight from Redis with ioredis, and point lookups vs. a real
// Postgres table — all baselines measured in the same run.
//
//   npm run bench:fdw-read
//   BENCH_SECONDS=5 BENCH_SKIP=B npm run bench:fdw-read
//
// Scenarios:
//   A  SELECT * FROM h100k (100,000-field hash), node-postgres through the proxy, all rows fetched,
//      vs. ioredis HSCAN COUNT 1000 loop and HGETALL. 1 warm-up + BENCH_REPS_A (5), median ms.
//   B  SELECT count(*) FROM h1m (1,000,000-field hash) through the proxy vs. ioredis HSCAN over it
//      (HLEN for reference). Median of BENCH_REPS_B (3); proxy peak RSS sampled during it.
//   C  point lookup `select value from h100k where key = :k` with pgbench -M prepared
//      -c 8 -j 2 -T BENCH_SECONDS through the proxy (pushed down to HMGET), vs. the same pgbench
//      script on a real 100k-row table straight at Postgres, vs. 8 concurrent ioredis HGET loops.
//
// Environment:
//   TEST_PG_URL      upstream Postgres; unset → a throwaway server. A fresh database is created
//                    there (fdw_read_bench_<pid>) and dropped at the end.
//   TEST_REDIS_URL   Redis; unset → a throwaway redis-server. Database BENCH_REDIS_DB (default 15)
//                    is FLUSHDB'd before and after: do not point it at a db holding anything you want.
//   BENCH_SECONDS    duration of each scenario C run (default 10)
//   BENCH_WARMUP     seconds of unrecorded pgbench warm-up per target in C (default 2, 0 = none)
//   BENCH_SKIP       comma list of scenarios to skip: A, B, C
//   BENCH_REPS_A     timed repetitions in A (default 5)       BENCH_REPS_B  in B (default 3)
//   BENCH_CLIENTS    pgbench -c and HGET loops in C (default 8)   BENCH_THREADS  pgbench -j (default 2)
//   BENCH_REDIS_DB   Redis database number (default 15)
//   BENCH_C_CAST=1   scenario C scripts say `key = :k::text` instead of `key = :k`
//   BENCH_C_LITERAL=1 scenario C scripts say `key = '4242'` (a literal key) instead of `key = :k`
//
// Everything shares this machine's cores (Postgres, Redis, the proxy, pgbench, this script), so
// absolute numbers move with machine load; the ratios from the same run are what to compare.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { Redis } from 'ioredis';
import {
  envInt, envList, formatTable, median, onCleanup, parsePgbench, pgbench, ProcSampler, readProc,
  runMain, fdwBenchServers, fdwBenchProxy, fmt, ratio, assertAlive, timed, type PgbenchResult,
  type ProcUsage,
} from './lib.js';

const H100K = 100_000;
const H1M = 1_000_000;
const MB = 1024 * 1024;

/** The value of field `i` of h100k (and of row key=i of the real table t). */
const value100k = (i: number): string => `value-${i}-abcdefghijklmnopqrstuvwxyz`;
const SQL_VALUE_100K = `'value-' || g || '-abcdefghijklmnopqrstuvwxyz'`;
const value1m = (i: number): string => `v${i}`;


/** Problems found in what the proxy returned; printed at the end, and the exit code is 1 if any. */
const problems: string[] = [];
function problem(msg: string): void {
  problems.push(msg);
  console.log(`[bench] PROBLEM: ${msg}`);
}


// ---------------------------------------------------------------------------
// Redis data and raw baselines
// ---------------------------------------------------------------------------

/** HSET key with fields '1'..'n', 1000 fields per command, 50 commands per pipeline. */
async function loadHash(r: Redis, key: string, n: number, value: (i: number) => string): Promise<void> {
  const perCmd = 1000;
  const perPipeline = 50;
  for (let start = 1; start <= n; start += perCmd * perPipeline) {
    const p = r.pipeline();
    for (let c = 0; c < perPipeline; c++) {
      const from = start + c * perCmd;
      if (from > n) break;
      const args: string[] = [];
      for (let i = from; i < Math.min(from + perCmd, n + 1); i++) args.push(String(i), value(i));
      p.hset(key, ...args);
    }
    const res = await p.exec();
    for (const [err] of res ?? []) if (err) throw err;
  }
  const len = await r.hlen(key);
  if (len !== n) throw new Error(`loading ${key}: HLEN ${len}, expected ${n}`);
}

/** Every field/value pair of a hash by HSCAN COUNT 1000, as rows. */
async function hscanAll(r: Redis, key: string): Promise<[string, string][]> {
  const rows: [string, string][] = [];
  let cursor = '0';
  do {
    const [next, elements] = await r.hscan(key, cursor, 'COUNT', 1000);
    for (let i = 0; i + 1 < elements.length; i += 2) rows.push([elements[i]!, elements[i + 1]!]);
    cursor = next;
  } while (cursor !== '0');
  return rows;
}

/** Number of fields seen by an HSCAN COUNT 1000 loop (no rows kept). */
async function hscanCount(r: Redis, key: string): Promise<number> {
  let n = 0;
  let cursor = '0';
  do {
    const [next, elements] = await r.hscan(key, cursor, 'COUNT', 1000);
    n += elements.length / 2;
    cursor = next;
  } while (cursor !== '0');
  return n;
}

/** `loops` concurrent HGET loops (one ioredis connection each) on random fields for `seconds`. */
async function hgetLoops(url: string, loops: number, seconds: number): Promise<{ ops: number; opsPerSec: number; misses: number }> {
  const clients = await Promise.all(
    Array.from({ length: loops }, async () => {
      const c = new Redis(url, { lazyConnect: true });
      await c.connect();
      return c;
    }),
  );
  try {
    let ops = 0;
    let misses = 0;
    const t0 = performance.now();
    const deadline = t0 + seconds * 1000;
    await Promise.all(
      clients.map(async (c) => {
        while (performance.now() < deadline) {
          const k = 1 + Math.floor(Math.random() * H100K);
          const v = await c.hget('h100k', String(k));
          if (v !== value100k(k)) misses++;
          ops++;
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    return { ops, opsPerSec: ops / secs, misses };
  } finally {
    for (const c of clients) c.disconnect();
  }
}

// ---------------------------------------------------------------------------
// Checks of what the proxy returns (correctness, pushdown)
// ---------------------------------------------------------------------------

function checkH100kRows(rows: { key: string; value: string }[], what: string): void {
  if (rows.length !== H100K) {
    problem(`${what}: ${rows.length} rows, expected ${H100K}`);
  }
  const seen = new Set<string>();
  let bad = 0;
  let firstBad: string | undefined;
  for (const r of rows) {
    const i = Number(r.key);
    const ok = Number.isInteger(i) && i >= 1 && i <= H100K && String(i) === r.key && r.value === value100k(i) && !seen.has(r.key);
    seen.add(r.key);
    if (!ok) {
      bad++;
      firstBad ??= JSON.stringify(r);
    }
  }
  if (bad > 0) problem(`${what}: ${bad} row(s) wrong, duplicated or unknown; first: ${firstBad}`);
}

async function checkProxy(client: pg.Client, doB: boolean): Promise<void> {
  const expect = async (what: string, sql: string, params: unknown[], want: unknown, get: (r: pg.QueryResult) => unknown): Promise<void> => {
    try {
      const got = get(await client.query(sql, params));
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        problem(`${what}: ${sql} ${params.length ? JSON.stringify(params) + ' ' : ''}returned ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
      }
    } catch (e) {
      problem(`${what}: ${sql} ${params.length ? JSON.stringify(params) + ' ' : ''}failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  const plan = (r: pg.QueryResult): string => r.rows.map((x: Record<string, string>) => x['QUERY PLAN']).join('\n');
  const hasRedisLine = (needle: string) => (r: pg.QueryResult): string => {
    const text = plan(r);
    const line = text.split('\n').find((l) => l.includes('Redis')) ?? `(no Redis line in: ${text.replace(/\n/g, ' | ')})`;
    return line.includes(needle) ? needle : line.trim();
  };

  await expect('count h100k', 'select count(*) from h100k', [], String(H100K), (r) => r.rows[0]?.count);
  if (doB) await expect('count h1m', 'select count(*) from h1m', [], String(H1M), (r) => r.rows[0]?.count);
  await expect('point lookup, literal', "select value from h100k where key = '4242'", [], [value100k(4242)], (r) => r.rows.map((x) => x.value));
  await expect('point lookup, $1', 'select value from h100k where key = $1', ['4242'], [value100k(4242)], (r) => r.rows.map((x) => x.value));
  await expect('point lookup, $1::text', 'select value from h100k where key = $1::text', ['4242'], [value100k(4242)], (r) => r.rows.map((x) => x.value));
  await expect('point lookup, missing field', 'select value from h100k where key = $1::text', ['0'], [], (r) => r.rows.map((x) => x.value));
  for (const k of ['1', '99999', '50000']) {
    await expect(`unnamed prepared lookup key=${k}`, 'select value from h100k where key = $1::text', [k], [value100k(Number(k))],
      (r) => r.rows.map((x) => x.value));
  }
  // A named prepared statement: every Bind must read Redis again with its own parameter.
  try {
    for (const k of ['7', '77777']) {
      const r = await client.query({ name: 'bench_lookup', text: 'select value from h100k where key = $1::text', values: [k] });
      const got = r.rows.map((x: { value: string }) => x.value);
      if (JSON.stringify(got) !== JSON.stringify([value100k(Number(k))])) {
        problem(`named prepared statement "bench_lookup" with $1='${k}': got ${JSON.stringify(got)}, expected ${JSON.stringify([value100k(Number(k))])}`);
      }
    }
  } catch (e) {
    problem(`named prepared statement "bench_lookup" failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  await expect('EXPLAIN full scan', 'explain select * from h100k', [], 'HSCAN h100k', hasRedisLine('HSCAN h100k'));
  await expect('EXPLAIN pushdown, literal', "explain select value from h100k where key = '42'", [], 'HMGET h100k 42', hasRedisLine('HMGET h100k 42'));
  // The form scenario C runs (pgbench -M prepared sends :k as $1 of unspecified type, inferred as text).
  await expect('EXPLAIN pushdown, $1', 'explain select value from h100k where key = $1', ['42'], 'HMGET h100k 42', hasRedisLine('HMGET h100k 42'));
  // Explicit casts to text of a parameter or literal are just as exact and should push down too.
  await expect('EXPLAIN pushdown, $1::text', 'explain select value from h100k where key = $1::text', ['42'], 'HMGET h100k 42', hasRedisLine('HMGET h100k 42'));
  await expect("EXPLAIN pushdown, '42'::text", "explain select value from h100k where key = '42'::text", [], 'HMGET h100k 42', hasRedisLine('HMGET h100k 42'));
}

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

interface Row {
  scenario: string;
  metric: string;
  proxy: string;
  baseline: string;
  ratio: string;
}

async function main(): Promise<void> {
  const seconds = envInt('BENCH_SECONDS', 10);
  const warmup = envInt('BENCH_WARMUP', 2, 0);
  const repsA = envInt('BENCH_REPS_A', 5);
  const repsB = envInt('BENCH_REPS_B', 3);
  const clients = envInt('BENCH_CLIENTS', 8);
  const threads = envInt('BENCH_THREADS', 2);
  const redisDb = envInt('BENCH_REDIS_DB', 15, 0);
  const skip = new Set(envList('BENCH_SKIP', []).map((s) => s.toUpperCase()));
  for (const s of skip) if (!['A', 'B', 'C'].includes(s)) throw new Error(`BENCH_SKIP: unknown scenario ${JSON.stringify(s)} (use A, B, C)`);
  const doA = !skip.has('A');
  const doB = !skip.has('B');
  const doC = !skip.has('C');
  if (process.platform !== 'linux') throw new Error('this benchmark samples /proc and needs Linux');

  const [l1, l5] = os.loadavg();
  console.log(
    `[bench] fdw-read: scenarios ${[doA && 'A', doB && 'B', doC && 'C'].filter(Boolean).join(',') || 'none'}; ` +
      `A ${repsA} reps, B ${repsB} reps, C ${seconds} s -c ${clients} -j ${threads} | ${os.cpus().length} cpu(s), load ${fmt(l1 ?? NaN, 2)}/${fmt(l5 ?? NaN, 2)}`,
  );

  // --- servers -----------------------------------------------------------------------------------
  const { upstream, bin, redis, redisTarget, dbName, dbUrl } = await fdwBenchServers('fdw_read_bench', redisDb);

  // --- data --------------------------------------------------------------------------------------
  let t0 = performance.now();
  if (doA || doC) await loadHash(redis, 'h100k', H100K, value100k);
  if (doB) await loadHash(redis, 'h1m', H1M, value1m);
  console.log(`[bench] redis data loaded (${[(doA || doC) && 'h100k', doB && 'h1m'].filter(Boolean).join(', ')}): ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (doC) {
    t0 = performance.now();
    const c = new pg.Client({ connectionString: dbUrl });
    await c.connect();
    await c.query(`create table t (key text primary key, value text not null)`);
    await c.query(`insert into t select g::text, ${SQL_VALUE_100K} from generate_series(1, ${H100K}) g`);
    await c.query(`vacuum analyze t`);
    const check = await c.query(`select value from t where key = '4242'`);
    if (check.rows[0]?.value !== value100k(4242)) throw new Error(`real table t: unexpected value ${JSON.stringify(check.rows[0])}`);
    await c.end();
    console.log(`[bench] real table t (100k rows, primary key) created: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }

  // --- proxy + foreign tables --------------------------------------------------------------------
  const { proxy, proxyUrl, client } = await fdwBenchProxy(upstream.url, dbName, redisTarget.url, ['h100k', 'h1m']);
  await checkProxy(client, doB);
  assertAlive(proxy);
  console.log(`[bench] proxy checks done (${problems.length} problem(s))`);

  const rows: Row[] = [];

  // --- A -----------------------------------------------------------------------------------------
  if (doA) {
    const proxyMs: number[] = [];
    const hscanMs: number[] = [];
    const hgetallMs: number[] = [];
    const sampler = await ProcSampler.start(proxy.pid, 100);
    let usage: ProcUsage | undefined;
    try {
      // Interleaved (proxy, HSCAN, HGETALL) per repetition so load drift hits all three alike.
      for (let rep = 0; rep <= repsA; rep++) {
        const label = rep === 0 ? 'warm-up' : `#${rep}`;
        const p = await timed(() => client.query<{ key: string; value: string }>('SELECT * FROM h100k'));
        if (rep === 0) checkH100kRows(p.result.rows, 'A: SELECT * FROM h100k through the proxy');
        else if (p.result.rows.length !== H100K) problem(`A ${label}: SELECT * FROM h100k returned ${p.result.rows.length} rows, expected ${H100K}`);
        const s = await timed(() => hscanAll(redis, 'h100k'));
        if (s.result.length !== H100K) problem(`A ${label}: raw HSCAN returned ${s.result.length} pairs (bench bug?)`);
        const g = await timed(() => redis.hgetall('h100k'));
        if (Object.keys(g.result).length !== H100K) problem(`A ${label}: raw HGETALL returned ${Object.keys(g.result).length} fields (bench bug?)`);
        console.log(`[bench] A ${label}: proxy ${fmt(p.ms, 1)} ms, HSCAN ${fmt(s.ms, 1)} ms, HGETALL ${fmt(g.ms, 1)} ms`);
        if (rep > 0) {
          proxyMs.push(p.ms);
          hscanMs.push(s.ms);
          hgetallMs.push(g.ms);
        }
      }
    } finally {
      usage = await sampler.stop().catch(() => undefined);
    }
    assertAlive(proxy);
    const p = median(proxyMs);
    rows.push(
      { scenario: 'A', metric: `SELECT * FROM h100k, median ms (n=${repsA})`, proxy: fmt(p, 1), baseline: `${fmt(median(hscanMs), 1)} (HSCAN)`, ratio: ratio(p, median(hscanMs)) },
      { scenario: 'A', metric: '', proxy: '', baseline: `${fmt(median(hgetallMs), 1)} (HGETALL)`, ratio: ratio(p, median(hgetallMs)) },
      { scenario: 'A', metric: 'proxy peak RSS MB during A', proxy: fmt((usage?.peakRssBytes ?? NaN) / MB, 1), baseline: '', ratio: '' },
    );
  }

  // --- B -----------------------------------------------------------------------------------------
  if (doB) {
    const proxyMs: number[] = [];
    const hscanMs: number[] = [];
    const hlenMs: number[] = [];
    const before = await readProc(proxy.pid);
    let peakRss = before.rssBytes;
    for (let rep = 1; rep <= repsB; rep++) {
      const sampler = await ProcSampler.start(proxy.pid, 50);
      let p: { ms: number; result: pg.QueryResult } | undefined;
      try {
        p = await timed(() => client.query('SELECT count(*) FROM h1m'));
      } finally {
        const u = await sampler.stop().catch(() => undefined);
        if (u) peakRss = Math.max(peakRss, u.peakRssBytes);
      }
      const got = p.result.rows[0]?.count;
      if (got !== String(H1M)) problem(`B #${rep}: SELECT count(*) FROM h1m returned ${JSON.stringify(got)}, expected "${H1M}"`);
      const s = await timed(() => hscanCount(redis, 'h1m'));
      if (s.result !== H1M) problem(`B #${rep}: raw HSCAN counted ${s.result} (bench bug?)`);
      const h = await timed(() => redis.hlen('h1m'));
      console.log(`[bench] B #${rep}: proxy ${fmt(p.ms, 1)} ms, HSCAN ${fmt(s.ms, 1)} ms, HLEN ${fmt(h.ms, 2)} ms`);
      proxyMs.push(p.ms);
      hscanMs.push(s.ms);
      hlenMs.push(h.ms);
    }
    assertAlive(proxy);
    const p = median(proxyMs);
    rows.push(
      { scenario: 'B', metric: `SELECT count(*) FROM h1m, median ms (n=${repsB})`, proxy: fmt(p, 1), baseline: `${fmt(median(hscanMs), 1)} (HSCAN)`, ratio: ratio(p, median(hscanMs)) },
      { scenario: 'B', metric: '', proxy: '', baseline: `${fmt(median(hlenMs), 2)} (HLEN)`, ratio: ratio(p, median(hlenMs)) },
      { scenario: 'B', metric: 'proxy peak RSS MB during B', proxy: fmt(peakRss / MB, 1), baseline: `${fmt(before.rssBytes / MB, 1)} (before)`, ratio: ratio(peakRss, before.rssBytes) },
    );
  }

  // --- C -----------------------------------------------------------------------------------------
  if (doC) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'fdw-read-bench-'));
    onCleanup(() => rm(dir, { recursive: true, force: true }));
    // `:k` alone: with -M prepared pgbench sends it as $1 of unspecified type, which Postgres infers as
    // text from `key`, and the proxy pushes `key = $1` down to HMGET (checked by EXPLAIN above).
    // BENCH_C_CAST=1 writes `:k::text` instead (an explicit text parameter).
    const keyExpr = process.env.BENCH_C_LITERAL === '1' ? "'4242'" : process.env.BENCH_C_CAST === '1' ? ':k::text' : ':k';
    const fdwScript = path.join(dir, 'fdw-lookup.sql');
    const realScript = path.join(dir, 'real-lookup.sql');
    await writeFile(fdwScript, `\\set k random(1, ${H100K})\nselect value from h100k where key = ${keyExpr};\n`);
    await writeFile(realScript, `\\set k random(1, ${H100K})\nselect value from t where key = ${keyExpr};\n`);
    const args = (script: string, secs: number): string[] =>
      ['-n', '-M', 'prepared', '-c', String(clients), '-j', String(threads), '-T', String(secs), '-f', script];
    const failed = (r: PgbenchResult): string => (r.failed ? `, ${r.failed} failed` : '');

    if (warmup > 0) {
      await pgbench(bin, dbUrl, args(realScript, warmup));
      await pgbench(bin, proxyUrl, args(fdwScript, warmup));
      assertAlive(proxy);
      console.log(`[bench] C warm-up: ${warmup} s direct + ${warmup} s proxy, not recorded`);
    }
    const direct = parsePgbench((await pgbench(bin, dbUrl, args(realScript, seconds))).output);
    console.log(`[bench] C real table direct: ${fmt(direct.tps)} tps, ${fmt(direct.latencyMs, 3)} ms${failed(direct)}`);

    const sampler = await ProcSampler.start(proxy.pid, 500);
    let out: string;
    let usage: ProcUsage | undefined;
    try {
      out = (await pgbench(bin, proxyUrl, args(fdwScript, seconds))).output;
    } finally {
      usage = await sampler.stop().catch(() => undefined);
    }
    assertAlive(proxy);
    const viaProxy = parsePgbench(out);
    if (viaProxy.failed) problem(`C: pgbench through the proxy reported ${viaProxy.failed} failed transaction(s):\n${out}`);
    console.log(
      `[bench] C proxy (foreign table): ${fmt(viaProxy.tps)} tps, ${fmt(viaProxy.latencyMs, 3)} ms${failed(viaProxy)}` +
        ` | proxy cpu ${fmt(usage?.cpuPercent ?? NaN)}%, rss ${fmt((usage?.peakRssBytes ?? NaN) / MB, 1)} MB`,
    );

    const raw = await hgetLoops(redisTarget.url, clients, seconds);
    if (raw.misses > 0) problem(`C: raw HGET got ${raw.misses} unexpected values (bench bug?)`);
    console.log(`[bench] C raw HGET x${clients}: ${fmt(raw.opsPerSec)} ops/s (${fmt(raw.ops)} ops)`);

    rows.push(
      { scenario: 'C', metric: `key = ${keyExpr}, pgbench -M prepared -c ${clients} -j ${threads} -T ${seconds}, tps`, proxy: fmt(viaProxy.tps), baseline: `${fmt(direct.tps)} (real table, direct)`, ratio: ratio(viaProxy.tps, direct.tps) },
      { scenario: 'C', metric: '', proxy: '', baseline: `${fmt(raw.opsPerSec)} (HGET ops/s, ${clients} loops)`, ratio: ratio(viaProxy.tps, raw.opsPerSec) },
      { scenario: 'C', metric: 'latency avg ms', proxy: fmt(viaProxy.latencyMs, 3), baseline: `${fmt(direct.latencyMs, 3)} (real table, direct)`, ratio: ratio(viaProxy.latencyMs, direct.latencyMs) },
      { scenario: 'C', metric: 'proxy CPU% / peak RSS MB during C', proxy: `${fmt(usage?.cpuPercent ?? NaN)}% / ${fmt((usage?.peakRssBytes ?? NaN) / MB, 1)}`, baseline: '', ratio: '' },
    );
  }

  // --- report ------------------------------------------------------------------------------------
  console.log('');
  console.log('Foreign-table reads through the proxy vs. baselines from the same run (ratio = proxy / baseline; for time lower is better, for tps higher)');
  console.log(formatTable(['', 'metric', 'proxy', 'baseline', 'ratio'], rows.map((r) => [r.scenario, r.metric, r.proxy, r.baseline, r.ratio])));
  const [e1] = os.loadavg();
  console.log(`load average at end: ${fmt(e1 ?? NaN, 2)} on ${os.cpus().length} cpu(s)`);
  if (problems.length > 0) {
    console.log(`\n${problems.length} PROBLEM(S) with what the proxy returned:`);
    for (const p of problems) console.log(`  - ${p}`);
    throw new Error(`${problems.length} problem(s) with what the proxy returned (listed above)`);
  }
}

runMain(main);
