// Test runner: provides real Postgres + Redis (own throwaway ones unless
// TEST_PG_URL / TEST_REDIS_URL are given), then hands over to `node --test`.
// Usage: node dist/test/run.js [path-substring ...]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPostgres, startRedis } from './harness/servers.js';

const testDir = path.dirname(fileURLToPath(import.meta.url)); // dist/test

function findTests(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.test.js'))
    .map((e) => path.join(e.parentPath ?? e.path, e.name))
    .sort();
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

let interrupted: NodeJS.Signals | undefined;
const signalExitCode = (sig: NodeJS.Signals): number => 128 + (os.constants.signals[sig] ?? 0);

async function main(): Promise<number> {
  const owned: Array<{ stop(): Promise<void> }> = [];
  let child: ChildProcess | undefined;
  // Keep the process alive on a signal so the finally block can stop the servers.
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupted = sig;
    child?.kill(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'fdwproxy-run-'));

  try {
    const filters = process.argv.slice(2);
    const files = findTests(testDir).filter(
      (f) => filters.length === 0 || filters.some((s) => path.relative(testDir, f).includes(s)),
    );
    if (files.length === 0) {
      console.error(`no *.test.js files under ${testDir}${filters.length ? ` matching ${filters.join(', ')}` : ''}`);
      return 1;
    }

    const env = { ...process.env };
    let pgSource = 'external';
    let redisSource = 'external';
    if (!env.TEST_PG_URL) {
      const pg = await startPostgres();
      owned.push(pg);
      env.TEST_PG_URL = pg.url;
      env.TEST_PG_OWNED = '1';
      env.TEST_PG_AUTH_USERS = '1';
      pgSource = `throwaway (${pg.bindir})`;
    }
    if (interrupted) return signalExitCode(interrupted);
    if (!env.TEST_REDIS_URL) {
      const redis = await startRedis();
      owned.push(redis);
      env.TEST_REDIS_URL = redis.url;
      redisSource = 'throwaway';
    }
    if (interrupted) return signalExitCode(interrupted);
    console.log(
      `[test] postgres: ${pgSource} ${redact(env.TEST_PG_URL)} | redis: ${redisSource} ${redact(env.TEST_REDIS_URL)} | ${files.length} file(s)`,
    );

    // The spec reporter for humans, teed through us so the run ends with one plain
    // "N passed, N failed" line (the TAP file of a forced exit may be cut short).
    child = spawn(process.execPath, [
      // A hung test fails after 3 minutes instead of hanging the run; a file whose tests are done
      // but that holds a socket open is ended rather than waited for.
      '--test', '--test-concurrency=2', '--test-timeout=180000', '--test-force-exit',
      '--test-reporter=spec', '--test-reporter-destination=stdout',
      ...files,
    ], { stdio: ['inherit', 'pipe', 'inherit'], env });
    let tail = '';
    child.stdout!.on('data', (b: Buffer) => {
      process.stdout.write(b);
      tail = (tail + b.toString('utf8')).slice(-8192);
    });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child!.on('error', reject);
      child!.on('close', (c, s) => resolve([c, s]));
    });
    const count = (what: string): number | undefined => {
      const m = [...tail.matchAll(new RegExp(`^\\S* ?${what} (\\d+)$`, 'gm'))].pop();
      return m ? Number(m[1]) : undefined;
    };
    const passed = count('pass');
    const failed = count('fail');
    if (passed !== undefined && failed !== undefined) console.log(`\n${passed} passed, ${failed} failed, ${(count('skipped') ?? 0) + (count('todo') ?? 0)} skipped`);
    return code ?? (signal ? signalExitCode(signal) : 1);
  } finally {
    // Stop in reverse start order; one failing stop must not leak the others.
    for (const s of owned.reverse()) await s.stop().catch((e: unknown) => console.error('[test] stop failed:', e));
    rmSync(tmp, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

// On a signal, report it as the cause: whatever failed meanwhile (e.g. initdb hit by Ctrl-C) is a consequence.
main().then(
  (code) => process.exit(interrupted ? signalExitCode(interrupted) : code),
  (err: unknown) => {
    if (!interrupted) console.error(err);
    process.exit(interrupted ? signalExitCode(interrupted) : 1);
  },
);
