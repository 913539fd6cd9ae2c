// Foreign-table write benchmark: INSERTs into a Redis hash foreign table through the proxy (the real
// CLI as a child process) vs. the same writes straight to Redis with ioredis, and single-row prepared
// INSERTs vs. a real Postgres table — all baselines measured in the same run.
//
//   npm run bench:fdw-write
//   BENCH_SECONDS=5 BENCH_SKIP=A npm run bench:fdw-write
//
// Scenarios:
//   A  INSERT INTO bench_bulk SELECT 'f'||g, 'v'||g FROM generate_series(1, 100000) g (Supabase-dialect
//      hash foreign table), node-postgres through the proxy, vs. ioredis writing the same 100,000
//      field/value pairs as single-field HSETs, BENCH_PIPELINE (1000) per pipeline. For reference also
//      multi-field HSETs (1000 fields per command, 50 commands per pipeline). The hash is DEL'd before
//      every run (not timed) and HLEN (and a sample of values) checked after every run.
//      1 warm-up + BENCH_REPS_A (5) alternating repetitions, median ms.
//   B  pgbench -n -M prepared -c 8 -j 2 -T BENCH_SECONDS with the script
//          \set n random(1, 10000000)
//          INSERT INTO <table> VALUES ('f' || :n, 'v' || :n);
//      on bench_h (hash foreign table) through the proxy, vs. the same script on bench_real (an ordinary
//      table `(key text, value text)`, no primary key, since random keys repeat) straight at Postgres
//      and through the proxy. bench_real is truncated and the hash DEL'd before each run; the rows
//      written are checked against pgbench's transaction count. BENCH_ROUNDS (1) rounds, mean.
//
// Environment:
//   TEST_PG_URL      upstream Postgres; unset → a throwaway server. A fresh database is created
//                    there (fdw_write_bench_<pid>) and dropped at the end.
//   TEST_REDIS_URL   Redis; unset → a throwaway redis-server. Database BENCH_REDIS_DB (default 14)
//                    is FLUSHDB'd before and after: do not point it at a db holding anything you want.
//   BENCH_SKIP       comma list of scenarios to skip: A, B
//   BENCH_ROWS       rows per INSERT ... SELECT in A (default 100000)
//   BENCH_REPS_A     timed repetitions in A (default 5)
//   BENCH_PIPELINE   single-field HSETs per ioredis pipeline in A's baseline (default 1000)
//   BENCH_SECONDS    duration of each pgbench run in B (default 10)
//   BENCH_ROUNDS     rounds of the three pgbench runs in B (default 1)
//   BENCH_WARMUP     seconds of unrecorded pgbench warm-up per target in B (default 2, 0 = none)
//   BENCH_CLIENTS    pgbench -c (default 8)       BENCH_THREADS  pgbench -j (default 2)
//   BENCH_REDIS_DB   Redis database number (default 14)
//
// Everything shares this machine's cores (Postgres, Redis, the proxy, pgbench, this script), so
// absolute numbers move with machine load; the ratios from the same run are what to compare.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import {
  envInt, envList, formatTable, mean, median, onCleanup, parsePgbench, pgbench, ProcSampler, runMain,
  fdwBenchServers, fdwBenchProxy, fmt, ratio, assertAlive, timed, type PgbenchResult, type ProcUsage,
  type ProxyProcess,
} from './lib.js';

const MB = 1024 * 1024;
const N_RANGE = 10_000_000;


/** Problems found in what the proxy wrote; printed at the end, and the exit code is 1 if any. */
const problems: string[] = [];
function problem(msg: string): void {
  problems.push(msg);
  console.log(`[bench] PROBLEM: ${msg}`);
}


function pgErrorText(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' ? `${code} ${e.message}` : e.message;
  }
  return String(e);
}

/** A write through the proxy failed: say so plainly (the proxy may not support writes yet). */
function writeFailed(what: string, e: unknown, proxy: ProxyProcess): Error {
  const tail = proxy.output().trim().split('\n').slice(-20).join('\n');
  const text = pgErrorText(e);
  const hint = /has no handler/.test(text)
    ? 'the proxy passed the INSERT through to upstream Postgres instead of writing to Redis: INSERT on Redis foreign tables is not implemented in this build'
    : 'INSERT on Redis foreign tables does not work in this build of the proxy';
  return new Error(
    `${what} failed through the proxy: ${text}\n` +
      `  (${hint}; nothing to benchmark.)` +
      (tail ? `\n  last proxy output:\n${tail}` : ''),
  );
}

// ---------------------------------------------------------------------------
// Raw Redis baselines
// ---------------------------------------------------------------------------

/** HSET key f<i> v<i> for i in 1..n, one field per command, `perPipeline` commands per pipeline. */
async function hsetPipelined(r: Redis, key: string, n: number, perPipeline: number): Promise<void> {
  for (let start = 1; start <= n; start += perPipeline) {
    const p = r.pipeline();
    const end = Math.min(start + perPipeline - 1, n);
    for (let i = start; i <= end; i++) p.hset(key, `f${i}`, `v${i}`);
    const res = await p.exec();
    for (const [err] of res ?? []) if (err) throw err;
  }
}

/** HSET key with 1000 fields per command, 50 commands per pipeline (the fastest plain-client load). */
async function hsetMultiField(r: Redis, key: string, n: number): Promise<void> {
  const perCmd = 1000;
  const perPipeline = 50;
  for (let start = 1; start <= n; start += perCmd * perPipeline) {
    const p = r.pipeline();
    for (let c = 0; c < perPipeline; c++) {
      const from = start + c * perCmd;
      if (from > n) break;
      const args: string[] = [];
      for (let i = from; i < Math.min(from + perCmd, n + 1); i++) args.push(`f${i}`, `v${i}`);
      p.hset(key, ...args);
    }
    const res = await p.exec();
    for (const [err] of res ?? []) if (err) throw err;
  }
}

/** HLEN == n and a few sample fields hold v<i>; reports a problem otherwise. */
async function checkBulkHash(r: Redis, key: string, n: number, what: string): Promise<void> {
  const len = await r.hlen(key);
  if (len !== n) problem(`${what}: HLEN ${key} = ${len}, expected ${n}`);
  const sample = [1, 2, Math.floor(n / 2), n - 1, n].filter((i, k, a) => i >= 1 && a.indexOf(i) === k);
  const got = await r.hmget(key, ...sample.map((i) => `f${i}`));
  const bad = sample.filter((i, k) => got[k] !== `v${i}`);
  if (bad.length > 0) problem(`${what}: ${key} fields ${bad.map((i) => `f${i}`).join(', ')} hold ${JSON.stringify(bad.map((i) => got[sample.indexOf(i)]))}, expected v<i>`);
  const type = await r.type(key);
  if (type !== 'hash') problem(`${what}: TYPE ${key} = ${type}, expected hash`);
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
  const nRows = envInt('BENCH_ROWS', 100_000);
  const repsA = envInt('BENCH_REPS_A', 5);
  const perPipeline = envInt('BENCH_PIPELINE', 1000);
  const seconds = envInt('BENCH_SECONDS', 10);
  const rounds = envInt('BENCH_ROUNDS', 1);
  const warmup = envInt('BENCH_WARMUP', 2, 0);
  const clients = envInt('BENCH_CLIENTS', 8);
  const threads = envInt('BENCH_THREADS', 2);
  const redisDb = envInt('BENCH_REDIS_DB', 14, 0);
  const skip = new Set(envList('BENCH_SKIP', []).map((s) => s.toUpperCase()));
  for (const s of skip) if (!['A', 'B'].includes(s)) throw new Error(`BENCH_SKIP: unknown scenario ${JSON.stringify(s)} (use A, B)`);
  const doA = !skip.has('A');
  const doB = !skip.has('B');
  if (process.platform !== 'linux') throw new Error('this benchmark samples /proc and needs Linux');

  const [l1, l5] = os.loadavg();
  console.log(
    `[bench] fdw-write: scenarios ${[doA && 'A', doB && 'B'].filter(Boolean).join(',') || 'none'}; ` +
      `A ${fmt(nRows)} rows x ${repsA} reps, B ${rounds} round(s) of ${seconds} s -c ${clients} -j ${threads} | ` +
      `${os.cpus().length} cpu(s), load ${fmt(l1 ?? NaN, 2)}/${fmt(l5 ?? NaN, 2)}`,
  );

  // --- servers -----------------------------------------------------------------------------------
  const { upstream, bin, redis, redisTarget, dbName, dbUrl } = await fdwBenchServers('fdw_write_bench', redisDb);
  const direct = new pg.Client({ connectionString: dbUrl });
  await direct.connect();
  onCleanup(() => direct.end().catch(() => {}));
  await direct.query(`create table bench_real (key text, value text)`);

  // --- proxy + foreign tables --------------------------------------------------------------------
  const { proxy, proxyUrl, client } = await fdwBenchProxy(upstream.url, dbName, redisTarget.url, ['bench_bulk', 'bench_h']);

  // Probe: one INSERT of each shape the scenarios use, checked in Redis. A failure here means the
  // proxy does not (yet) support INSERT on foreign tables: stop with that message.
  try {
    const r1 = await client.query(`insert into bench_h values ('probe1', 'x1')`);
    if (r1.command !== 'INSERT' || r1.rowCount !== 1) problem(`probe INSERT VALUES: tag ${r1.command} ${r1.rowCount}, expected INSERT 0 1`);
    const r2 = await client.query(`insert into bench_h values ('f' || $1, 'v' || $1)`, ['42']);
    if (r2.rowCount !== 1) problem(`probe INSERT with $1: rowCount ${r2.rowCount}, expected 1`);
    const r3 = await client.query(`insert into bench_h select 'f'||g, 'v'||g from generate_series(100, 102) g`);
    if (r3.rowCount !== 3) problem(`probe INSERT ... SELECT of 3 rows: rowCount ${r3.rowCount}, expected 3`);
  } catch (e) {
    throw writeFailed('probe INSERT INTO bench_h (hash foreign table)', e, proxy);
  }
  const probe = await redis.hgetall('bench_h');
  const wantProbe = { probe1: 'x1', f42: 'v42', f100: 'v100', f101: 'v101', f102: 'v102' };
  if (JSON.stringify(Object.fromEntries(Object.entries(probe).sort())) !== JSON.stringify(Object.fromEntries(Object.entries(wantProbe).sort()))) {
    problem(`probe INSERTs: HGETALL bench_h = ${JSON.stringify(probe)}, expected ${JSON.stringify(wantProbe)}`);
  }
  await redis.del('bench_h');
  assertAlive(proxy);
  console.log(`[bench] proxy write probe done (${problems.length} problem(s))`);

  const rows: Row[] = [];

  // --- A -----------------------------------------------------------------------------------------
  if (doA) {
    const sql = `INSERT INTO bench_bulk SELECT 'f'||g, 'v'||g FROM generate_series(1,${nRows}) g`;
    const proxyMs: number[] = [];
    const rawMs: number[] = [];
    const multiMs: number[] = [];
    const sampler = await ProcSampler.start(proxy.pid, 100);
    let usage: ProcUsage | undefined;
    try {
      // Interleaved (proxy, raw pipelined, raw multi-field) per repetition so load drift hits all alike.
      for (let rep = 0; rep <= repsA; rep++) {
        const label = rep === 0 ? 'warm-up' : `#${rep}`;

        await redis.del('bench_bulk');
        let p: { ms: number; result: pg.QueryResult };
        try {
          p = await timed(() => client.query(sql));
        } catch (e) {
          throw writeFailed(`A ${label}: ${sql}`, e, proxy);
        }
        if (p.result.rowCount !== nRows) problem(`A ${label}: proxy INSERT tag said ${p.result.command} ${p.result.rowCount}, expected INSERT 0 ${nRows}`);
        await checkBulkHash(redis, 'bench_bulk', nRows, `A ${label} proxy`);

        await redis.del('bench_bulk');
        const s = await timed(() => hsetPipelined(redis, 'bench_bulk', nRows, perPipeline));
        await checkBulkHash(redis, 'bench_bulk', nRows, `A ${label} raw pipelined HSET (bench bug?)`);

        await redis.del('bench_bulk');
        const m = await timed(() => hsetMultiField(redis, 'bench_bulk', nRows));
        await checkBulkHash(redis, 'bench_bulk', nRows, `A ${label} raw multi-field HSET (bench bug?)`);

        console.log(
          `[bench] A ${label}: proxy ${fmt(p.ms, 1)} ms, raw HSET x${perPipeline}/pipeline ${fmt(s.ms, 1)} ms, ` +
            `raw HSET 1000 fields/cmd ${fmt(m.ms, 1)} ms | proxy/raw ${ratio(p.ms, s.ms)}`,
        );
        if (rep > 0) {
          proxyMs.push(p.ms);
          rawMs.push(s.ms);
          multiMs.push(m.ms);
        }
      }
    } finally {
      usage = await sampler.stop().catch(() => undefined);
    }
    await redis.del('bench_bulk');
    assertAlive(proxy);
    const p = median(proxyMs);
    rows.push(
      { scenario: 'A', metric: `INSERT ... SELECT ${fmt(nRows)} rows, median ms (n=${repsA})`, proxy: fmt(p, 1), baseline: `${fmt(median(rawMs), 1)} (HSET, ${perPipeline}/pipeline)`, ratio: ratio(p, median(rawMs)) },
      { scenario: 'A', metric: '', proxy: '', baseline: `${fmt(median(multiMs), 1)} (HSET 1000 fields/cmd)`, ratio: ratio(p, median(multiMs)) },
      { scenario: 'A', metric: 'proxy rows/s', proxy: fmt(nRows / (p / 1000)), baseline: `${fmt(nRows / (median(rawMs) / 1000))} (HSET, ${perPipeline}/pipeline)`, ratio: ratio(median(rawMs), p) },
      { scenario: 'A', metric: 'proxy peak RSS MB during A', proxy: fmt((usage?.peakRssBytes ?? NaN) / MB, 1), baseline: '', ratio: '' },
    );
  }

  // --- B -----------------------------------------------------------------------------------------
  if (doB) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'fdw-write-bench-'));
    onCleanup(() => rm(dir, { recursive: true, force: true }));
    const fdwScript = path.join(dir, 'fdw-insert.sql');
    const realScript = path.join(dir, 'real-insert.sql');
    await writeFile(fdwScript, `\\set n random(1, ${N_RANGE})\nINSERT INTO bench_h VALUES ('f' || :n, 'v' || :n);\n`);
    await writeFile(realScript, `\\set n random(1, ${N_RANGE})\nINSERT INTO bench_real VALUES ('f' || :n, 'v' || :n);\n`);
    const args = (script: string, secs: number): string[] =>
      ['-n', '-M', 'prepared', '-c', String(clients), '-j', String(threads), '-T', String(secs), '-f', script];
    const failed = (r: PgbenchResult): string => (r.failed ? `, ${r.failed} failed` : '');

    const reset = async (): Promise<void> => {
      await direct.query('truncate bench_real');
      await redis.del('bench_h');
    };
    /** Rows written vs. pgbench's count: transactions in flight at the -T deadline may commit uncounted. */
    const checkWritten = (what: string, written: number, r: PgbenchResult, distinct: boolean): void => {
      const tx = r.transactions;
      if (tx === undefined) return;
      // Random keys repeat (HSET overwrites), so the hash may hold fewer fields than rows inserted.
      const lo = distinct ? Math.floor(tx * 0.9) : tx;
      if (written < lo || written > tx + clients) problem(`B ${what}: ${written} row(s)/field(s) written, pgbench counted ${tx} transactions`);
    };
    const fdwRun = async (secs: number): Promise<string> => {
      try {
        return (await pgbench(bin, proxyUrl, args(fdwScript, secs))).output;
      } catch (e) {
        throw writeFailed(`B: pgbench INSERT INTO bench_h (hash foreign table)`, e, proxy);
      }
    };

    if (warmup > 0) {
      await reset();
      await pgbench(bin, dbUrl, args(realScript, warmup));
      await pgbench(bin, proxyUrl, args(realScript, warmup));
      await fdwRun(warmup);
      assertAlive(proxy);
      console.log(`[bench] B warm-up: ${warmup} s each (real direct, real via proxy, foreign via proxy), not recorded`);
    }

    const realDirect: PgbenchResult[] = [];
    const realProxy: PgbenchResult[] = [];
    const fdwProxy: PgbenchResult[] = [];
    const usages: ProcUsage[] = [];
    for (let round = 1; round <= rounds; round++) {
      await reset();
      const d = parsePgbench((await pgbench(bin, dbUrl, args(realScript, seconds))).output);
      realDirect.push(d);
      checkWritten(`#${round} real direct`, Number((await direct.query('select count(*) from bench_real')).rows[0].count), d, false);
      console.log(`[bench] B #${round} real table, direct:        ${fmt(d.tps)} tps, ${fmt(d.latencyMs, 3)} ms${failed(d)}`);

      await reset();
      const rp = parsePgbench((await pgbench(bin, proxyUrl, args(realScript, seconds))).output);
      realProxy.push(rp);
      checkWritten(`#${round} real via proxy`, Number((await direct.query('select count(*) from bench_real')).rows[0].count), rp, false);
      console.log(`[bench] B #${round} real table, via proxy:     ${fmt(rp.tps)} tps, ${fmt(rp.latencyMs, 3)} ms${failed(rp)}`);

      await reset();
      const sampler = await ProcSampler.start(proxy.pid, 500);
      let out: string;
      try {
        out = await fdwRun(seconds);
      } finally {
        const u = await sampler.stop().catch(() => undefined);
        if (u) usages.push(u);
      }
      assertAlive(proxy);
      const f = parsePgbench(out);
      fdwProxy.push(f);
      if (f.failed) problem(`B #${round}: pgbench on the foreign table reported ${f.failed} failed transaction(s)`);
      checkWritten(`#${round} foreign table`, await redis.hlen('bench_h'), f, true);
      const u = usages[usages.length - 1];
      console.log(
        `[bench] B #${round} foreign table, via proxy:  ${fmt(f.tps)} tps, ${fmt(f.latencyMs, 3)} ms${failed(f)}` +
          ` | HLEN ${fmt(await redis.hlen('bench_h'))}, proxy cpu ${fmt(u?.cpuPercent ?? NaN)}%, rss ${fmt((u?.peakRssBytes ?? NaN) / MB, 1)} MB`,
      );
    }
    await reset();

    const tps = (xs: PgbenchResult[]): number => mean(xs.map((x) => x.tps));
    const lat = (xs: PgbenchResult[]): number => mean(xs.map((x) => x.latencyMs));
    const fT = tps(fdwProxy), dT = tps(realDirect), pT = tps(realProxy);
    const fL = lat(fdwProxy), dL = lat(realDirect), pL = lat(realProxy);
    const cpu = usages.reduce((a, u) => a + u.cpuSeconds, 0);
    const wall = usages.reduce((a, u) => a + u.wallSeconds, 0);
    const n = rounds > 1 ? `, mean of ${rounds}` : '';
    rows.push(
      { scenario: 'B', metric: `INSERT 1 row, pgbench -M prepared -c ${clients} -j ${threads} -T ${seconds}, tps${n}`, proxy: fmt(fT), baseline: `${fmt(dT)} (real table, direct)`, ratio: ratio(fT, dT) },
      { scenario: 'B', metric: '', proxy: '', baseline: `${fmt(pT)} (real table, via proxy)`, ratio: ratio(fT, pT) },
      { scenario: 'B', metric: 'latency avg ms', proxy: fmt(fL, 3), baseline: `${fmt(dL, 3)} (real table, direct)`, ratio: ratio(fL, dL) },
      { scenario: 'B', metric: '', proxy: '', baseline: `${fmt(pL, 3)} (real table, via proxy)`, ratio: ratio(fL, pL) },
      { scenario: 'B', metric: 'real table via proxy vs direct: tps / latency', proxy: `${fmt(pT)} / ${fmt(pL, 3)}`, baseline: `${fmt(dT)} / ${fmt(dL, 3)} (direct)`, ratio: `${ratio(pT, dT)} / ${ratio(pL, dL)}` },
      { scenario: 'B', metric: 'proxy CPU% / peak RSS MB (foreign-table runs)', proxy: `${fmt(wall > 0 ? (cpu / wall) * 100 : NaN)}% / ${fmt(Math.max(...usages.map((u) => u.peakRssBytes)) / MB, 1)}`, baseline: '', ratio: '' },
    );
  }

  // --- report ------------------------------------------------------------------------------------
  console.log('');
  console.log('Foreign-table writes through the proxy vs. baselines from the same run (ratio = proxy / baseline; for time lower is better, for tps and rows/s higher)');
  console.log(formatTable(['', 'metric', 'proxy (foreign table)', 'baseline', 'ratio'], rows.map((r) => [r.scenario, r.metric, r.proxy, r.baseline, r.ratio])));
  const [e1] = os.loadavg();
  console.log(`load average at end: ${fmt(e1 ?? NaN, 2)} on ${os.cpus().length} cpu(s)`);
  if (problems.length > 0) {
    console.log(`\n${problems.length} PROBLEM(S) with what the proxy wrote:`);
    for (const p of problems) console.log(`  - ${p}`);
    throw new Error(`${problems.length} problem(s) with what the proxy wrote (listed above)`);
  }
}

runMain(main);
