// Passthrough overhead benchmark: pgbench select-only straight at Postgres vs.
// through the proxy (the real CLI as a child process), in the same run.
//
//   npm run bench:passthrough
//   BENCH_SECONDS=5 BENCH_MODES=prepared,simple npm run bench:passthrough
//
// Environment:
//   TEST_PG_URL     upstream Postgres URL; unset → a throwaway server (test/harness/servers.ts).
//                   NB: pgbench -i (re)creates the pgbench_* tables in that database.
//   BENCH_SECONDS   duration of each pgbench run (default 20)
//   BENCH_MODES     comma list of pgbench -M modes: simple, extended, prepared (default prepared)
//   BENCH_ROUNDS    direct/proxy pairs per mode, alternating (default 2: direct, proxy, direct, proxy)
//   BENCH_CLIENTS   pgbench -c (default 8)
//   BENCH_THREADS   pgbench -j (default 2)
//   BENCH_SCALE     pgbench -i -s (default 10)
//   BENCH_WARMUP    seconds of unrecorded warm-up per target before the first mode (default 2, 0 = none)
//   BENCH_SKIP_INIT=1  skip pgbench -i (the tables already exist at the wanted scale)
//
// While pgbench runs through the proxy, the proxy's /proc/<pid>/stat (CPU time) and
// /proc/<pid>/status (VmRSS) are sampled every 500 ms. pgbench, Postgres and the proxy
// share this machine's cores, so absolute numbers move with machine load; the
// ratio from the same run is the number to compare.
import os from 'node:os';
import {
  envInt, envList, formatTable, getUpstream, mean, parsePgbench, pgbench, pgbenchPath,
  ProcSampler, redact, runMain, startProxyCli,
  type PgbenchResult, type ProcUsage, type ProxyProcess,
} from './lib.js';

const MODES = ['simple', 'extended', 'prepared'] as const;
type Mode = (typeof MODES)[number];

interface ModeResult {
  mode: Mode;
  direct: PgbenchResult[];
  proxy: PgbenchResult[];
  usage: ProcUsage[];
}

const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a';
const MB = 1024 * 1024;

function assertAlive(proxy: ProxyProcess): void {
  if (proxy.child.exitCode !== null || proxy.child.signalCode !== null) {
    throw new Error(`proxy exited (${proxy.child.exitCode ?? proxy.child.signalCode}) during the benchmark:\n${proxy.output()}`);
  }
}

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
  if (process.platform !== 'linux') throw new Error('this benchmark samples /proc and needs Linux');

  const [l1, l5] = os.loadavg();
  console.log(
    `[bench] passthrough: pgbench -S -c ${clients} -j ${threads} -T ${seconds}, modes ${modes.join(',')}, ` +
      `${rounds} round(s), scale ${scale} | ${os.cpus().length} cpu(s), load ${fmt(l1 ?? NaN, 2)}/${fmt(l5 ?? NaN, 2)}`,
  );

  const upstream = await getUpstream();
  const bin = pgbenchPath(upstream.bindir);
  console.log(`[bench] upstream: ${upstream.source} ${redact(upstream.url)}`);

  if (process.env.BENCH_SKIP_INIT === '1') {
    console.log('[bench] BENCH_SKIP_INIT=1: using the existing pgbench tables');
  } else {
    const t0 = Date.now();
    await pgbench(bin, upstream.url, ['-i', '-s', String(scale), '-q']);
    console.log(`[bench] pgbench -i -s ${scale}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }

  const proxy = await startProxyCli(upstream.url, ['--log-level', 'warn']);
  console.log(`[bench] proxy: pid ${proxy.pid} on 127.0.0.1:${proxy.port}`);

  const common = (mode: Mode, secs: number): string[] =>
    ['-n', '-S', '-M', mode, '-c', String(clients), '-j', String(threads), '-T', String(secs)];

  if (warmup > 0) {
    const mode = modes[0]!;
    await pgbench(bin, upstream.url, common(mode, warmup));
    await pgbench(bin, proxy.url, common(mode, warmup));
    assertAlive(proxy);
    console.log(`[bench] warm-up: ${warmup} s direct + ${warmup} s proxy (-M ${mode}), not recorded`);
  }

  const results: ModeResult[] = [];
  for (const mode of modes) {
    const r: ModeResult = { mode, direct: [], proxy: [], usage: [] };
    results.push(r);
    for (let round = 1; round <= rounds; round++) {
      const d = parsePgbench((await pgbench(bin, upstream.url, common(mode, seconds))).output);
      r.direct.push(d);
      console.log(`[bench] ${mode} #${round} direct: ${fmt(d.tps)} tps, ${fmt(d.latencyMs, 3)} ms${d.failed ? `, ${d.failed} failed` : ''}`);

      const sampler = await ProcSampler.start(proxy.pid, 500);
      let out: string;
      try {
        out = (await pgbench(bin, proxy.url, common(mode, seconds))).output;
      } finally {
        r.usage.push(await sampler.stop().catch(() => ({ wallSeconds: 0, cpuSeconds: 0, cpuPercent: NaN, peakRssBytes: NaN, samples: 0 })));
      }
      assertAlive(proxy);
      const p = parsePgbench(out);
      const u = r.usage[r.usage.length - 1]!;
      r.proxy.push(p);
      console.log(
        `[bench] ${mode} #${round} proxy:  ${fmt(p.tps)} tps, ${fmt(p.latencyMs, 3)} ms${p.failed ? `, ${p.failed} failed` : ''}` +
          ` | proxy cpu ${fmt(u.cpuPercent)}%, rss ${fmt(u.peakRssBytes / MB, 1)} MB (${u.samples} samples)`,
      );
    }
  }

  const rows = results.map((r) => {
    const dTps = mean(r.direct.map((x) => x.tps));
    const pTps = mean(r.proxy.map((x) => x.tps));
    const cpu = r.usage.reduce((a, u) => a + u.cpuSeconds, 0);
    const wall = r.usage.reduce((a, u) => a + u.wallSeconds, 0);
    return [
      r.mode,
      fmt(dTps),
      fmt(pTps),
      fmt(pTps / dTps, 3),
      fmt(mean(r.direct.map((x) => x.latencyMs)), 3),
      fmt(mean(r.proxy.map((x) => x.latencyMs)), 3),
      fmt(Math.max(...r.usage.map((u) => u.peakRssBytes)) / MB, 1),
      fmt(wall > 0 ? (cpu / wall) * 100 : NaN),
    ];
  });
  console.log('');
  console.log(`pgbench -S -c ${clients} -j ${threads} -T ${seconds} (mean of ${rounds} round(s) each, alternating direct/proxy)`);
  console.log(
    formatTable(
      ['mode', 'direct tps', 'proxy tps', 'proxy/direct', 'direct lat ms', 'proxy lat ms', 'proxy peak RSS MB', 'proxy CPU%'],
      rows,
    ),
  );
}

runMain(main);
