/**
 * A node:test reporter (loaded by test/run.ts next to the spec reporter) that records what happened to
 * each test, so the runner's closing line can be trusted. The spec reporter's own totals can't be:
 * a file ended by the per-file time limit counts as "cancelled", not failed, and a file whose process
 * exits half-way (process.exit, a fatal signal) simply stops reporting, so its unfinished tests
 * vanish from every total. Here a test that started and never finished counts as failed, and so does
 * a file-level failure.
 *
 * Each event is appended synchronously to $TEST_OUTCOME_FILE as one JSON line: with --test-force-exit
 * the reporter stream is never ended, so anything written at its end (or left in a stream buffer)
 * would be lost.
 */
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';

interface TestEventData {
  name: string;
  nesting: number;
  file?: string;
  skip?: boolean | string;
  todo?: boolean | string;
  details?: { type?: string; error?: { message?: string; failureType?: string; cause?: unknown } };
}

type OutcomeEvent =
  | { e: 'start' | 'pass' | 'skip' | 'fail' | 'suite-fail' | 'suite-done'; file: string; name: string; nesting: number }
  | { e: 'file-fail'; file: string; why: string };

export interface FileOutcome {
  file: string;
  passed: number;
  failed: number;
  skipped: number;
  /** Why the file as a whole failed (time limit, crash), when it did. */
  fileFailure?: string;
  /** Tests that were dequeued (started) but never reported an outcome. */
  unfinished: string[];
}

/**
 * A Transform rather than an async generator: the test runner writes each event into it synchronously,
 * while a generator lags behind by a tick per event and loses the last ones when --test-force-exit ends
 * the process.
 */
export default class OutcomeReporter extends Transform {
  private readonly out = process.env.TEST_OUTCOME_FILE;

  constructor() {
    super({ writableObjectMode: true });
  }

  override _transform(event: { type: string; data: TestEventData }, _enc: BufferEncoding, done: TransformCallback): void {
    const ev = toOutcome(event.type, event.data);
    if (ev && this.out) appendFileSync(this.out, `${JSON.stringify(ev)}\n`);
    done();
  }
}

function toOutcome(type: string, data: TestEventData): OutcomeEvent | undefined {
  const file = data.file;
  if (!file || (type !== 'test:dequeue' && type !== 'test:pass' && type !== 'test:fail')) return undefined;
  const base = { file, name: data.name, nesting: data.nesting };
  if (data.nesting === 0 && path.resolve(data.name) === path.resolve(file)) {
    if (type !== 'test:fail') return undefined;
    const err = data.details?.error;
    const cause = err?.cause;
    return { e: 'file-fail', file, why: typeof cause === 'string' ? cause : cause instanceof Error ? cause.message : (err?.message ?? 'the file failed') };
  }
  if (type === 'test:dequeue') return { e: 'start', ...base };
  if (data.details?.type === 'suite') {
    // A suite fails when a test in it did (already counted), or on its own (a hook threw).
    return { e: type === 'test:fail' && data.details.error?.failureType !== 'subtestsFailed' ? 'suite-fail' : 'suite-done', ...base };
  }
  // A todo test's failure is expected (node reports it as test:fail); it counts as skipped, as in spec's totals.
  const todo = data.todo !== undefined && data.todo !== false;
  if (type === 'test:fail' && !todo) return { e: 'fail', ...base };
  const skipped = todo || (data.skip !== undefined && data.skip !== false);
  return { e: skipped ? 'skip' : 'pass', ...base };
}

/**
 * Folds the recorded events into one outcome per file (the runner's side). A test that started and
 * never reported is unfinished. A suite is different: node sometimes reports a suite's start again
 * after its end, or loses its end, though every test in it finished; so a suite (an entry with
 * children reported after its start) counts as unfinished only when something deeper is too.
 */
export function foldOutcomes(lines: string): FileOutcome[] {
  const files = new Map<string, FileOutcome & { open: Map<string, number>; hasChildren: Set<string>; ended: Set<string> }>();
  for (const line of lines.split('\n')) {
    if (!line) continue;
    const ev = JSON.parse(line) as OutcomeEvent;
    let f = files.get(ev.file);
    if (!f) {
      f = { file: ev.file, passed: 0, failed: 0, skipped: 0, unfinished: [], open: new Map(), hasChildren: new Set(), ended: new Set() };
      files.set(ev.file, f);
    }
    if (ev.e === 'file-fail') {
      f.fileFailure = ev.why;
      continue;
    }
    const id = `${ev.nesting}\u0000${ev.name}`;
    for (const o of f.open.keys()) if (Number(o.split('\u0000')[0]) === ev.nesting - 1) f.hasChildren.add(o);
    if (ev.e === 'start') {
      f.open.set(id, (f.open.get(id) ?? 0) + 1);
      continue;
    }
    const n = f.open.get(id) ?? 0;
    if (n <= 1) f.open.delete(id);
    else f.open.set(id, n - 1);
    if (ev.e === 'suite-done' || ev.e === 'suite-fail') f.ended.add(id);
    if (ev.e === 'pass') f.passed++;
    else if (ev.e === 'skip') f.skipped++;
    else if (ev.e === 'fail' || ev.e === 'suite-fail') f.failed++;
  }
  return [...files.values()].map(({ open, hasChildren, ended, ...f }) => {
    const leaves = [...open.keys()].filter((k) => !hasChildren.has(k) && !ended.has(k));
    const unfinished = leaves.length > 0 ? [...open.keys()] : [];
    return { ...f, unfinished: unfinished.map((k) => k.split('\u0000')[1]!) };
  });
}
