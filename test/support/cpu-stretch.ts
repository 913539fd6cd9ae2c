/**
 * Two views of whether a statement stalls other sessions. `slowestProbe`: another session's `SELECT 1`
 * round trips while it runs, wall clock, against an idle baseline. `stretchOf`: how long this process's
 * main thread works without letting the event loop turn, while some work runs in it (an in-process
 * proxy's statement). A ticker re-arms itself with setImmediate, so it runs
 * once per turn; between two ticks the loop was held. The stretch is CPU time, not wall time, so the
 * OS descheduling a loaded machine's process doesn't count, and V8's GC pauses are counted out: a
 * pause is the runtime's (it collects the test client's garbage too), not a loop that fails to give way.
 */
import { readFileSync } from 'node:fs';
import { performance, PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';
import type pg from 'pg';

// V8 marks the old generation in steps it runs on the main thread, inside allocations and as tasks
// between turns, and reports none of them as GC: --trace-gc showed 53 ms of such steps (8 ms the
// biggest) in a 100,000-row INSERT, and stretches of 51–54 ms that were half marking. Without
// incremental marking all of it is in the pause the observer reports, so it can be counted out.
v8.setFlagsFromString('--no-incremental-marking');

/** The slowest `select 1` round trip on `other` while `busy` runs, how many ran, and how long `busy` took. */
export async function slowestProbe(other: pg.Client, busy: Promise<unknown>): Promise<{ worst: number; loops: number; ms: number }> {
  let running = true;
  let worst = 0;
  let loops = 0;
  const t0 = performance.now();
  void busy.finally(() => (running = false)).catch(() => {});
  while (running) {
    const t = performance.now();
    await other.query('select 1');
    worst = Math.max(worst, performance.now() - t);
    loops++;
  }
  await busy;
  return { worst, loops, ms: performance.now() - t0 };
}

export interface Stretch {
  /** The longest main-thread CPU stretch between two turns, GC pauses counted out, in ms. */
  worst: number;
  /** GC time inside that stretch (already taken out of `worst`). */
  worstGc: number;
  /** GC pauses seen meanwhile, and the longest of them. */
  gcPauses: number;
  longestPause: number;
  /** Event-loop turns seen: a watch that saw none measured nothing. */
  turns: number;
}

/** Starts watching; `stop` ends it and says what it saw. */
export function watchStretches(): { stop(): Promise<Stretch> } {
  const gcs: { start: number; end: number }[] = [];
  const gcObserver = new PerformanceObserver((l) => {
    for (const e of l.getEntries()) gcs.push({ start: e.startTime, end: e.startTime + e.duration });
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  const stretches: { from: number; to: number; cpu: number }[] = [];
  let lastCpu = mainThreadCpuMs();
  let lastAt = performance.now();
  let on = true;
  const tick = (): void => {
    const now = mainThreadCpuMs();
    const at = performance.now();
    // The kernel brings a running thread's count up to date at its scheduler tick (4 ms here): a turn
    // can read CPU that an earlier one used (22 ms in a 0.14 ms turn was seen). A thread can't use more
    // CPU than the time that passed.
    stretches.push({ from: lastAt, to: at, cpu: Math.min(now - lastCpu, at - lastAt) });
    lastCpu = now;
    lastAt = at;
    if (on) setImmediate(tick);
  };
  setImmediate(tick);
  return {
    async stop() {
      on = false;
      // GC entries are delivered after the pause: wait a turn so the last ones are in.
      await new Promise((r) => setImmediate(r));
      gcObserver.disconnect();
      const gcIn = (from: number, to: number): number => gcs.reduce((sum, g) => sum + Math.max(0, Math.min(to, g.end) - Math.max(from, g.start)), 0);
      let worst = 0;
      let worstGc = 0;
      for (const s of stretches) {
        const gc = gcIn(s.from, s.to);
        if (s.cpu - gc > worst) {
          worst = s.cpu - gc;
          worstGc = gc;
        }
      }
      return { worst, worstGc, gcPauses: gcs.length, longestPause: Math.max(0, ...gcs.map((g) => g.end - g.start)), turns: stretches.length };
    },
  };
}

/** Runs `work` under a watch: its result and the longest stretch while it ran. */
export async function stretchOf<T>(work: () => Promise<T>): Promise<{ result: T; stretch: Stretch }> {
  const w = watchStretches();
  let result: T;
  try {
    result = await work();
  } catch (e) {
    await w.stop();
    throw e;
  }
  return { result, stretch: await w.stop() };
}

/** One line for the test's output. */
export function describeStretch(what: string, s: Stretch): string {
  return `# ${what}: longest main-thread CPU stretch between event-loop turns, GC pauses counted out: ${s.worst.toFixed(1)} ms (${s.worstGc.toFixed(1)} ms of GC inside it); ${s.turns} turns; ${s.gcPauses} GC pauses, the longest ${s.longestPause.toFixed(1)} ms`;
}

/**
 * CPU time of the main thread alone, in ms: what holds the event loop. process.cpuUsage() also counts
 * V8's concurrent GC and compiler threads, which run beside the loop (a loaded run measured 95 ms
 * "stretches" that way). The scheduler's own count (schedstat, in ns) where the kernel keeps one; else
 * the per-thread counters of stat, which tick every 10 ms (USER_HZ 100), so a stretch read 20, 30, 50 ms
 * where it was anything from 10 to 60.
 */
export function mainThreadCpuMs(): number {
  try {
    const ns = readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8');
    return Number(ns.slice(0, ns.indexOf(' '))) / 1e6;
  } catch {
    // no schedstat: the 10 ms ticks
  }
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10; // utime, stime: fields 14 and 15
  } catch {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  }
}
