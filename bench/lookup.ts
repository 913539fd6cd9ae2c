// Point lookups on a foreign hash table through the proxy's local fast path, against raw ioredis HGET
// loops at the same concurrency, in the same run. Load on this shared machine drifts within seconds,
// so every round runs each side once (the order rotating from round to round) and has its own ratio.
//
//   npm run bench:lookup
//   BENCH_ROUNDS=6 BENCH_SECONDS=3 BENCH_CLIENTS=8 npm run bench:lookup
//
// Fair baseline: `clients` ioredis connections, each awaiting one HGET at a time, as pgbench -c
// `clients` keeps one transaction in flight per connection. Each side also reports CPU per operation:
// the proxy process's (from /proc) per pgbench transaction, and the raw loops' own process's per HGET.
//
// A third side, "floor" (bench/lookup-floor.ts), is the least any Node process between pgbench and Redis
// can do: a bare protocol responder answering each Execute with one HGET. pgbench → Node → Redis costs two
// socket round trips per lookup where the raw loops pay one, so "floor / raw" bounds what the proxy can
// reach on this machine, and "proxy / floor" is the cost of the proxy's own work.
//
// Environment:
//   TEST_PG_URL / TEST_REDIS_URL   as for the other benches (unset → throwaway servers)
//   BENCH_ROUNDS     timed rounds per form (default 4)       BENCH_SECONDS  seconds per side per round (default 5)
//   BENCH_CLIENTS    pgbench -c and HGET loops (default 4)   BENCH_THREADS  pgbench -j (default 2)
//   BENCH_FORMS      comma list of literal, param (default both)
//   BENCH_REDIS_DB   (default 12)
//   BENCH_PROXY_ARGS / BENCH_PROXY_NODE_ARGS   proxy flags / node flags (e.g. --cpu-prof --cpu-prof-dir=/tmp/prof)
//   BENCH_AB_CLI     main.js of another build (e.g. a copy of main's dist), run as "proxy B" in the same rounds
//   BENCH_FLOOR      0 to leave the floor out
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import {
  assertAlive, envInt, envList, fdwBenchProxy, fdwBenchServers, fmt, formatTable, freePort, median, onCleanup, parsePgbench, pgbench,
  ProcSampler, runMain, startListener, withDatabase, type ProxyProcess,
} from './lib.js';

const N = 100_000;
const value = (i: number): string => `value-${i}-abcdefghijklmnopqrstuvwxyz`;
const FORMS = { literal: "key = '4242'", param: 'key = :k' } as const;
type Form = keyof typeof FORMS;

async function load(r: Redis): Promise<void> {
  for (let start = 1; start <= N; start += 50_000) {
    const p = r.pipeline();
    for (let from = start; from < start + 50_000 && from <= N; from += 1000) {
      const args: string[] = [];
      for (let i = from; i < from + 1000 && i <= N; i++) args.push(String(i), value(i));
      p.hset('h100k', ...args);
    }
    for (const [err] of (await p.exec()) ?? []) if (err) throw err;
  }
}

interface Measured {
  /** tps or ops/s */
  rate: number;
  /** CPU µs per transaction (proxy) or per HGET (raw loops' process) */
  cpuUs: number;
  /** read and write syscalls per transaction (the proxy's, from /proc/<pid>/io) */
  syscalls?: number;
}

/** Read (syscr) and write (syscw) syscalls a process made so far. */
async function syscalls(pid: number): Promise<number> {
  const io = await readFile(`/proc/${pid}/io`, 'utf8');
  return Number(/^syscr: (\d+)/m.exec(io)?.[1]) + Number(/^syscw: (\d+)/m.exec(io)?.[1]);
}

/**
 * `clients` ioredis connections, each awaiting one HGET at a time, for `seconds`; this process's CPU
 * per op (the loops are all it runs meanwhile).
 */
async function hgetLoops(clients: Redis[], seconds: number, problems: string[]): Promise<Measured> {
  let ops = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await Promise.all(clients.map(async (c) => {
    while (performance.now() < deadline) {
      const k = 1 + Math.floor(Math.random() * N);
      if ((await c.hget('h100k', String(k))) !== value(k) && problems.length < 5) problems.push(`raw HGET ${k}: unexpected value`);
      ops++;
    }
  }));
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { rate: ops / secs, cpuUs: (cpu.user + cpu.system) / ops };
}

async function main(): Promise<void> {
  const rounds = envInt('BENCH_ROUNDS', 4);
  const seconds = envInt('BENCH_SECONDS', 5);
  const clients = envInt('BENCH_CLIENTS', 4);
  const threads = envInt('BENCH_THREADS', 2);
  const redisDb = envInt('BENCH_REDIS_DB', 12, 0);
  const forms = envList('BENCH_FORMS', Object.keys(FORMS)) as Form[];
  for (const f of forms) if (!(f in FORMS)) throw new Error(`BENCH_FORMS: unknown form ${f} (use ${Object.keys(FORMS).join(', ')})`);
  console.log(`[bench] lookup: ${forms.join(', ')}; ${rounds} rounds of ${seconds} s per side, -c ${clients} -j ${threads} | ${os.cpus().length} cpu(s), load ${fmt(os.loadavg()[0] ?? NaN, 2)}`);

  const { bin, redis, redisTarget, dbName, upstream } = await fdwBenchServers('lookup_bench', redisDb);
  await load(redis);
  const { proxy, proxyUrl, client } = await fdwBenchProxy(upstream.url, dbName, redisTarget.url, ['h100k']);
  const proxies: { label: string; proc: ProxyProcess; url: string }[] = [{ label: 'proxy', proc: proxy, url: proxyUrl }];
  const abCli = process.env.BENCH_AB_CLI;
  if (abCli) {
    const port = await freePort();
    const nodeArgs = (process.env.BENCH_PROXY_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
    const b = await startListener('proxy B', process.execPath, [...nodeArgs, abCli, '--listen', `127.0.0.1:${port}`, '--upstream', upstream.url, '--log-level', 'warn'], port, upstream.url);
    console.log(`[bench] proxy B: pid ${b.pid}, ${abCli}`);
    proxies.push({ label: 'proxy B', proc: b, url: withDatabase(b.url, dbName) });
  }
  const floor = process.env.BENCH_FLOOR === '0' ? undefined : await startFloor(redisTarget.url, upstream.url);
  const check = await client.query('select value from h100k where key = $1', ['4242']);
  if (check.rows[0]?.value !== value(4242)) throw new Error(`proxy returned ${JSON.stringify(check.rows)} for key 4242`);

  const dir = await mkdtemp(path.join(os.tmpdir(), 'lookup-bench-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  const raw = await Promise.all(Array.from({ length: clients }, async () => {
    const c = new Redis(redisTarget.url, { lazyConnect: true });
    await c.connect();
    return c;
  }));
  onCleanup(() => raw.forEach((c) => c.disconnect()));
  const problems: string[] = [];
  const table: string[][] = [];

  for (const form of forms) {
    const script = path.join(dir, `${form}.sql`);
    await writeFile(script, `\\set k random(1, ${N})\nselect value from h100k where ${FORMS[form]};\n`);
    const args = (secs: number): string[] => ['-n', '-M', 'prepared', '-c', String(clients), '-j', String(threads), '-T', String(secs), '-f', script];
    const viaProxy = (p: (typeof proxies)[number]) => async (secs: number): Promise<Measured> => {
      const sampler = await ProcSampler.start(p.proc.pid, 1000);
      const sys0 = await syscalls(p.proc.pid);
      const r = parsePgbench((await pgbench(bin, p.url, args(secs))).output);
      const sys = (await syscalls(p.proc.pid)) - sys0;
      const u = await sampler.stop();
      if (r.failed) problems.push(`${form} through ${p.label}: ${r.failed} failed transactions`);
      assertAlive(p.proc);
      // pgbench's own connection setup is in the count too: a few dozen syscalls per run.
      return { rate: r.tps, cpuUs: (u.cpuSeconds * 1e6) / (r.tps * u.wallSeconds), syscalls: sys / (r.transactions ?? r.tps * secs) };
    };
    const through = floor ? [...proxies, { label: 'floor', proc: floor, url: floor.url }] : proxies;
    const sides: { label: string; run: (secs: number) => Promise<Measured>; got: Measured[] }[] = [
      ...through.map((p) => ({ label: p.label, run: viaProxy(p), got: [] as Measured[] })),
      { label: 'raw', run: (secs: number) => hgetLoops(raw, secs, problems), got: [] },
    ];
    for (const s of sides) await s.run(1); // warm-up
    const ratios = new Map<string, number[]>(through.map((p) => [p.label, []]));
    const overFloor = new Map<string, number[]>(proxies.map((p) => [p.label, []]));
    for (let round = 0; round < rounds; round++) {
      const order = sides.map((_, i) => sides[(i + round) % sides.length]!);
      for (const s of order) s.got.push(await s.run(seconds));
      const rawNow = sides.at(-1)!.got.at(-1)!;
      const parts = sides.map((s) => {
        const g = s.got.at(-1)!;
        return `${s.label} ${fmt(g.rate)}/s (${fmt(g.cpuUs, 1)} µs CPU${g.syscalls === undefined ? '' : `, ${fmt(g.syscalls, 2)} syscalls`})`;
      });
      for (const s of sides.slice(0, -1)) ratios.get(s.label)!.push(s.got.at(-1)!.rate / rawNow.rate);
      const floorNow = floor ? sides.find((s) => s.label === 'floor')!.got.at(-1)!.rate : undefined;
      if (floorNow) for (const p of proxies) overFloor.get(p.label)!.push(sides.find((s) => s.label === p.label)!.got.at(-1)!.rate / floorNow);
      console.log(`[bench] ${form} round ${round + 1}: ${parts.join(', ')}; / raw ${through.map((p) => fmt(ratios.get(p.label)!.at(-1)!, 2)).join(' / ')} | load ${fmt(os.loadavg()[0] ?? NaN, 1)}`);
    }
    const rawSide = sides.at(-1)!;
    for (const s of sides.slice(0, -1)) {
      const r = ratios.get(s.label)!;
      const f = overFloor.get(s.label);
      table.push([`${FORMS[form].replace(':k', '$1')}, ${s.label}`, fmt(median(s.got.map((g) => g.rate))), fmt(median(s.got.map((g) => g.cpuUs)), 1), fmt(median(s.got.map((g) => g.syscalls ?? NaN)), 2),
        fmt(median(rawSide.got.map((g) => g.rate))), fmt(median(rawSide.got.map((g) => g.cpuUs)), 1), `${fmt(median(r), 2)}×`, `${fmt(Math.min(...r), 2)}–${fmt(Math.max(...r), 2)}`,
        f && f.length > 0 ? `${fmt(median(f), 2)}×` : '']);
    }
  }

  console.log('');
  console.log(`Point lookups (pgbench -M prepared -c ${clients}) vs. ${clients} raw ioredis HGET loops, rounds alternating (medians; ratio = tps / raw ops/s of the same round; / floor = tps / the floor's tps of the same round)`);
  console.log(formatTable(['lookup', 'tps', 'µs CPU/tx', 'syscalls/tx', 'raw ops/s', 'raw µs CPU/op', 'ratio', 'range', '/ floor'], table));
  console.log(`load average at end: ${fmt(os.loadavg()[0] ?? NaN, 2)} on ${os.cpus().length} cpu(s)`);
  if (problems.length > 0) throw new Error(`problems:\n  ${problems.join('\n  ')}`);
}

/** bench/lookup-floor.js beside the proxy, over the same Redis key; undefined (said once) where it can't log in. */
async function startFloor(redisUrl: string, upstreamUrl: string): Promise<ProxyProcess | undefined> {
  const u = new URL(redisUrl);
  if (u.protocol !== 'redis:' || u.password !== '' || u.username !== '') {
    console.log(`[bench] floor: skipped (it speaks plain RESP with no AUTH; ${u.protocol}//${u.host} needs more)`);
    return undefined;
  }
  const port = await freePort();
  const db = u.pathname.slice(1) || '0';
  const floorJs = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lookup-floor.js');
  const proc = await startListener('lookup floor', process.execPath, [floorJs, String(port), `${u.hostname}:${u.port || '6379'}`, db, 'h100k', '4242'], port, upstreamUrl);
  console.log(`[bench] floor: pid ${proc.pid} on 127.0.0.1:${port} (bench/lookup-floor.ts)`);
  return proc;
}

runMain(main);
