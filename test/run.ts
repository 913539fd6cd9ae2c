// Test runner: provides real Postgres + Redis (own throwaway ones unless
// TEST_PG_URL / TEST_REDIS_URL are given), then hands over to `node --test`.
// Usage: node dist/test/run.js [path-substring | /absolute/file.js ...]
// An absolute path to an existing file runs that file even if it is not a *.test.js (the runner's own
// tests use this for fixtures). TEST_FILE_TIMEOUT_MS overrides the per-file limit (default 3 minutes).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startPostgres, startRedis } from './harness/servers.js';
import { foldOutcomes, type FileOutcome } from './harness/outcome-reporter.js';

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
    const args = process.argv.slice(2);
    const explicit = args.filter((a) => path.isAbsolute(a) && existsSync(a));
    const filters = args.filter((a) => !explicit.includes(a));
    const files = [
      ...explicit,
      ...(filters.length === 0 && explicit.length > 0 ? [] : findTests(testDir).filter(
        (f) => filters.length === 0 || filters.some((s) => path.relative(testDir, f).includes(s)),
      )),
    ];
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

    // The spec reporter for humans; the outcome reporter for the closing line, because the spec
    // totals count a file ended by the time limit as "cancelled" and forget tests of a file that
    // exited half-way (see harness/outcome-reporter.ts).
    const outcomeFile = path.join(tmp, 'outcome.jsonl');
    env.TEST_OUTCOME_FILE = outcomeFile;
    const timeoutMs = Number(process.env.TEST_FILE_TIMEOUT_MS) || 180_000;
    child = spawn(process.execPath, [
      // A hung file fails after the limit instead of hanging the run; a file whose tests are done
      // but that holds a socket open is ended rather than waited for.
      // Before --test, so every test file's process preloads it too (harness/blocking-stdout.ts).
      '--import', pathToFileURL(path.join(testDir, 'harness', 'blocking-stdout.js')).href,
      '--test', '--test-concurrency=2', `--test-timeout=${timeoutMs}`, '--test-force-exit',
      '--test-reporter=spec', '--test-reporter-destination=stdout',
      `--test-reporter=${path.join(testDir, 'harness', 'outcome-reporter.js')}`, '--test-reporter-destination=/dev/null',
      ...files,
    ], { stdio: ['inherit', 'inherit', 'inherit'], env });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child!.on('error', reject);
      child!.on('close', (c, s) => resolve([c, s]));
    });
    return closingLine(outcomeFile, files, code, signal);
  } finally {
    // Stop in reverse start order; one failing stop must not leak the others.
    for (const s of owned.reverse()) await s.stop().catch((e: unknown) => console.error('[test] stop failed:', e));
    rmSync(tmp, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * Prints "N passed, N failed, N skipped" counting a file that timed out, crashed or ended with tests
 * unfinished as failed (at least one failure each), and a file that never reported at all too.
 * Returns the exit code: non-zero whenever anything failed, whatever node --test's own code says.
 */
function closingLine(outcomeFile: string, files: string[], code: number | null, signal: NodeJS.Signals | null): number {
  let outcomes: FileOutcome[] = [];
  try {
    outcomes = foldOutcomes(readFileSync(outcomeFile, 'utf8'));
  } catch {
    /* nothing recorded: every file counts as failed below */
  }
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const broken: string[] = [];
  for (const file of files) {
    const f = outcomes.find((o) => path.resolve(o.file) === path.resolve(file));
    const rel = path.relative(testDir, file);
    if (!f) {
      failed++;
      broken.push(`${rel}: reported nothing`);
      continue;
    }
    passed += f.passed;
    skipped += f.skipped;
    let fileFailed = f.failed;
    if (f.unfinished.length > 0) {
      fileFailed += f.unfinished.length;
      broken.push(`${rel}: ended before ${f.unfinished.map((n) => JSON.stringify(n)).join(', ')} finished${f.fileFailure ? ` (${f.fileFailure})` : ''}`);
    } else if (f.fileFailure && f.failed === 0) {
      fileFailed = 1;
      broken.push(`${rel}: ${f.fileFailure}`);
    }
    failed += fileFailed;
  }
  if (broken.length) console.log(`\nfiles that timed out, crashed or ended early:\n${broken.map((b) => `  ${b}`).join('\n')}`);
  const exit = code ?? (signal ? signalExitCode(signal) : 1);
  if (failed === 0 && exit !== 0) {
    failed = 1;
    console.log(`\nnode --test exited with ${code ?? signal} although no test reported a failure`);
  }
  console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
  return failed > 0 ? exit || 1 : exit;
}

// On a signal, report it as the cause: whatever failed meanwhile (e.g. initdb hit by Ctrl-C) is a consequence.
main().then(
  (code) => process.exit(interrupted ? signalExitCode(interrupted) : code),
  (err: unknown) => {
    if (!interrupted) console.error(err);
    process.exit(interrupted ? signalExitCode(interrupted) : 1);
  },
);
