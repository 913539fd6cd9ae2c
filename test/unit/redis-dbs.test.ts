/** Each test file's Redis db is its own (see test/support/redis-dbs.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REDIS_DB } from '../support/redis-dbs.js';

test('no two test files share a Redis db, and none takes db 0 or one past the runner\'s 32', () => {
  const byDb = new Map<number, string[]>();
  for (const [file, db] of Object.entries(REDIS_DB)) byDb.set(db, [...(byDb.get(db) ?? []), file]);
  const shared = [...byDb].filter(([, files]) => files.length > 1);
  assert.deepEqual(shared, []);
  for (const db of byDb.keys()) assert.ok(db > 0 && db < 32, `db ${db}`);
});
