// Passthrough overhead benchmark: pgbench select-only straight at Postgres and through the proxy
// (the real CLI as a child process), in the same run, beside reference relays that show what any
// relay costs on this machine:
//   direct        pgbench → Postgres
//   proxy         pgbench → proxy → Postgres over TCP (the URL as given)
//   proxy-unix    the same, with the proxy reaching Postgres over its Unix socket (when one is found)
//   node-relay    bench/node-relay.ts: a 20-line Node socket pipe, the floor under any Node proxy
//   pgbouncer     pgbouncer in session mode (C, libevent), when installed
//
//   npm run bench:passthrough
//   BENCH_SECONDS=5 BENCH_MODES=prepared,simple BENCH_TARGETS=direct,proxy npm run bench:passthrough
//
// Environment:
//   TEST_PG_URL     upstream Postgres URL; unset → a throwaway server (test/harness/servers.ts).
//                   NB: pgbench -i (re)creates the pgbench_* tables in that database.
//   BENCH_SECONDS   duration of each pgbench run (default 20)
//   BENCH_MODES     comma list of pgbench -M modes: simple, extended, prepared (default prepared)
//   BENCH_TARGETS   comma list of the targets above (default: all that this machine can run)
//   BENCH_ROUNDS    rounds per mode; a round runs every target once, in order (default 2)
//   BENCH_CLIENTS   pgbench -c (default 8)
//   BENCH_THREADS   pgbench -j (default 2)
//   BENCH_SCALE     pgbench -i -s (default 10)
//   BENCH_WARMUP    seconds of unrecorded warm-up per target before the first mode (default 2, 0 = none)
//   BENCH_SKIP_INIT=1  skip pgbench -i (the tables already exist at the wanted scale)
//   BENCH_UPSTREAM_SOCKET_DIR  the upstream's Unix socket directory, if not a usual one
//
// While pgbench runs through a relay, the relay's /proc/<pid>/stat (user and kernel CPU time) and
// /proc/<pid>/status (VmRSS) are sampled every 500 ms. pgbench, Postgres and the relay share this
// machine's cores, so absolute numbers move with machine load; ratios from the same run are the
// numbers to compare.
import os from 'node:os';
import path from 'node:path';
import {
  assertAlive, envInt, envList, fmt, formatTable, getUpstream, mean, parsePgbench, pgbench, pgbenchPath,
  ProcSampler, redact, runMain, startProxyCli, withSocketDir,
  type PgbenchResult, type ProcUsage, type ProxyProcess,
} from './lib.js';
import { findPgbouncer, startNodeRelay, startPgbouncer } from './relays.js';

const MODES = ['simple', 'extended', 'prepared'] as const;
type Mode = (typeof MODES)[number];
const TARGETS = ['direct', 'proxy', 'proxy-unix', 'node-relay', 'pgbouncer'] as const;
type Target = (typeof TARGETS)[number];

interface Run {
  result: PgbenchResult;
  /** Undefined for `direct`: there is no relay to sample. */
  usage: ProcUsage | undefined;
}

const MB = 1024 * 1024;
const NO_USAGE: ProcUsage = { wallSeconds: 0, cpuSeconds: 0, systemSeconds: 0, cpuPercent: NaN, peakRssBytes: NaN, samples: 0 };

async function main(): Promise<void> {
  const seconds = envInt('BENCH_SECONDS', 20);
  const rounds = envInt('BENCH_ROUNDS', 2);
  const clients = envInt('BENCH_CLIENTS', 8);
  const threads = envInt('BENCH_THREADS', 2);
  const scale = envInt('BENCH_SCALE', 10);
  const warmup = envInt('BENCH_WARMUP', 2, 0);
  const modes = envList('BENCH_MODES', ['prepared']).map((m) => {
    if (!(MODES as readonly string[]).includes(m)) throw new Error(`BENCH_MODES: unknown pgbench mode ${JSON.stringify(m)} (use ${MODES.join(', ')})`);
    return m as Mode;
  });
  const asked = envList('BENCH_TARGETS', [...TARGETS]).map((t) => {
    if (!(TARGETS as readonly string[]).includes(t)) throw new Error(`BENCH_TARGETS: unknown target ${JSON.stringify(t)} (use ${TARGETS.join(', ')})`);
    return t as Target;
  });
  if (process.platform !== 'linux') throw new Error('this benchmark samples /proc and needs Linux');

  const [l1, l5] = os.loadavg();
  console.log(
    `[bench] passthrough: pgbench -S -c ${clients} -j ${threads} -T ${seconds}, modes ${modes.join(',')}, ` +
      `${rounds} round(s), scale ${scale} | ${os.cpus().length} cpu(s), load ${fmt(l1 ?? NaN, 2)}/${fmt(l5 ?? NaN, 2)}`,
  );

  const upstream = await getUpstream();
  const bin = pgbenchPath(upstream.bindir);
  console.log(`[bench] upstream: ${upstream.source} ${redact(upstream.url)}${upstream.socketDir ? `, Unix socket in ${upstream.socketDir}` : ''}`);

  if (process.env.BENCH_SKIP_INIT === '1') {
    console.log('[bench] BENCH_SKIP_INIT=1: using the existing pgbench tables');
  } else {
    const t0 = Date.now();
    await pgbench(bin, upstream.url, ['-i', '-s', String(scale), '-q']);
    console.log(`[bench] pgbench -i -s ${scale}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }

  const relays = new Map<Target, ProxyProcess>();
  const pgbouncerBin = findPgbouncer();
  for (const t of asked) {
    if (t === 'direct') continue;
    if (t === 'proxy') relays.set(t, await startProxyCli(upstream.url));
    if (t === 'proxy-unix') {
      if (!upstream.socketDir) console.log('[bench] proxy-unix skipped: no Unix socket found for the upstream (set BENCH_UPSTREAM_SOCKET_DIR)');
      else relays.set(t, await startProxyCli(withSocketDir(upstream.url, upstream.socketDir)));
    }
    if (t === 'node-relay') relays.set(t, await startNodeRelay(upstream.url));
    if (t === 'pgbouncer') {
      if (!pgbouncerBin) console.log('[bench] pgbouncer skipped: not installed (Debian: apt-get install pgbouncer)');
      else relays.set(t, await startPgbouncer(pgbouncerBin, upstream.url, clients + 2));
    }
  }
  const targets = asked.filter((t) => t === 'direct' || relays.has(t));
  for (const [t, r] of relays) console.log(`[bench] ${t}: pid ${r.pid} on 127.0.0.1:${r.port}`);
  const urlOf = (t: Target): string => (t === 'direct' ? upstream.url : relays.get(t)!.url);

  const common = (mode: Mode, secs: number): string[] =>
    ['-n', '-S', '-M', mode, '-c', String(clients), '-j', String(threads), '-T', String(secs)];

  if (warmup > 0) {
    const mode = modes[0]!;
    for (const t of targets) await pgbench(bin, urlOf(t), common(mode, warmup));
    for (const r of relays.values()) assertAlive(r);
    console.log(`[bench] warm-up: ${warmup} s per target (-M ${mode}), not recorded`);
  }

  const results = new Map<Mode, Map<Target, Run[]>>();
  for (const mode of modes) {
    const byTarget = new Map<Target, Run[]>(targets.map((t) => [t, []]));
    results.set(mode, byTarget);
    for (let round = 1; round <= rounds; round++) {
      for (const t of targets) {
        const relay = relays.get(t);
        const sampler = relay ? await ProcSampler.start(relay.pid, 500) : undefined;
        let out: string;
        let usage: ProcUsage | undefined;
        try {
          out = (await pgbench(bin, urlOf(t), common(mode, seconds))).output;
        } finally {
          usage = await sampler?.stop().catch(() => NO_USAGE);
        }
        if (relay) assertAlive(relay);
        const result = parsePgbench(out);
        byTarget.get(t)!.push({ result, usage });
        console.log(
          `[bench] ${mode} #${round} ${t.padEnd(10)} ${fmt(result.tps).padStart(7)} tps, ${fmt(result.latencyMs, 3)} ms` +
            `${result.failed ? `, ${result.failed} failed` : ''}` +
            (usage ? ` | cpu ${fmt(usage.cpuPercent)}%, rss ${fmt(usage.peakRssBytes / MB, 1)} MB` : ''),
        );
      }
    }
  }

  for (const [mode, byTarget] of results) {
    const directTps = mean(byTarget.get('direct')?.map((r) => r.result.tps) ?? []);
    const tpsOf = (t: Target): number => mean(byTarget.get(t)?.map((r) => r.result.tps) ?? []);
    const rows = [...byTarget].map(([t, runs]) => {
      const tps = tpsOf(t);
      const usages = runs.flatMap((r) => (r.usage ? [r.usage] : []));
      const cpu = usages.reduce((a, u) => a + u.cpuSeconds, 0);
      const sys = usages.reduce((a, u) => a + u.systemSeconds, 0);
      const wall = usages.reduce((a, u) => a + u.wallSeconds, 0);
      // Transactions inside the sampled windows, at the run's own rate.
      const txns = runs.reduce((a, r) => a + (r.usage ? r.result.tps * r.usage.wallSeconds : 0), 0);
      const some = usages.length > 0;
      return [
        t,
        fmt(tps),
        fmt(tps / directTps, 3),
        fmt(mean(runs.map((r) => r.result.latencyMs)), 3),
        some ? fmt(wall > 0 ? (cpu / wall) * 100 : NaN) : '',
        some ? fmt((cpu / txns) * 1e6, 1) : '',
        some ? fmt(cpu > 0 ? (sys / cpu) * 100 : NaN) : '',
        some ? fmt(Math.max(...usages.map((u) => u.peakRssBytes)) / MB, 1) : '',
      ];
    });
    console.log('');
    console.log(`pgbench -S -M ${mode} -c ${clients} -j ${threads} -T ${seconds}, mean of ${rounds} round(s), targets in turn`);
    console.log(formatTable(['target', 'tps', '/direct', 'lat ms', 'relay CPU%', 'relay CPU µs/txn', 'of it kernel %', 'peak RSS MB'], rows));
    if (byTarget.has('proxy') && byTarget.has('node-relay')) {
      console.log(`proxy / node-relay tps: ${fmt(tpsOf('proxy') / tpsOf('node-relay'), 3)} (what the proxy's own work costs over a bare Node pipe)`);
    }
  }
  console.log(`\n[bench] node-relay is ${path.join('bench', 'node-relay.ts')}; see ARCHITECTURE.md "Passthrough cost" for how to read these.`);
}

runMain(main);
