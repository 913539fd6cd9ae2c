// ChunkedMap (the overlay models' map) against a plain Map: the same random sets, deletes and
// re-sets, across the point where it splits into shards, give the same contents in the same order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prng } from '../support/frames.js';
import { ChunkedMap } from '../../src/redis/types/chunked-map.js';

const SEED = Number(process.env.CHUNKED_MAP_SEED ?? Math.floor(Math.random() * 2 ** 31));

test(`behaves as a Map, insertion order included (seed ${SEED})`, () => {
  const rnd = prng(SEED);
  const ours = new ChunkedMap<number>();
  const map = new Map<string, number>();
  // Keys from a range small enough that deletes and re-sets hit existing keys, large enough to split.
  for (let i = 0; i < 60_000; i++) {
    const key = `k${Math.floor(rnd.next() * 20_000)}`;
    const r = rnd.next();
    if (r < 0.7) {
      ours.set(key, i);
      map.set(key, i);
    } else {
      assert.equal(ours.delete(key), map.delete(key));
    }
    assert.equal(ours.has(key), map.has(key));
    assert.equal(ours.get(key), map.get(key));
    assert.equal(ours.size, map.size);
  }
  assert.deepEqual([...ours.entries()], [...map.entries()]);
  assert.deepEqual([...ours.keys()], [...map.keys()]);
});
