// The test runner's closing line and exit code: a file ended by the per-file limit, or one whose
// process exits half-way, must count as failed (node --test calls the first "cancelled" and forgets
// the second's unfinished tests). Runs dist/test/run.js on fixture files against the servers this
// run already has, with a 15 s per-file limit (long enough for a fixture to start on a loaded machine).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const testDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixture = (name: string): string => path.join(testDir, 'fixtures', 'runner', `${name}.fixture.js`);

function runRunner(files: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(testDir, 'run.js'), ...files], {
      // NODE_TEST_CONTEXT would make the inner node --test believe it runs inside this test file.
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, TEST_FILE_TIMEOUT_MS: '15000' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

const closing = (out: string): string => out.trimEnd().split('\n').pop() ?? '';

test('all passing: exit 0 and the counts', async () => {
  const r = await runRunner([fixture('passes')]);
  assert.equal(closing(r.out), '2 passed, 0 failed, 2 skipped', r.out);
  assert.equal(r.code, 0, r.out);
});

test('a file ended by the per-file time limit counts as failed and fails the run', async () => {
  const r = await runRunner([fixture('hangs'), fixture('passes')]);
  assert.equal(closing(r.out), '3 passed, 1 failed, 2 skipped', r.out);
  assert.match(r.out, /hangs\.fixture\.js: ended before "never ends" finished/);
  assert.notEqual(r.code, 0, r.out);
});

test('a file whose process exits half-way counts as failed and fails the run', async () => {
  const r = await runRunner([fixture('exits')]);
  assert.equal(closing(r.out), '1 passed, 1 failed, 0 skipped', r.out);
  assert.match(r.out, /exits\.fixture\.js: ended before "exits half-way" finished/);
  assert.notEqual(r.code, 0, r.out);
});
