// ChunkedMap (the overlay models' map) against a plain Map: the same random sets, deletes and
// re-sets, across the point where it splits into shards, give the same contents in the same order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prng } from '../support/frames.js';
import { ChunkedMap, ChunkedSet } from '../../src/redis/types/chunked-map.js';

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

test(`ChunkedSet behaves as a Set of strings and of numbers, across its split (seed ${SEED})`, () => {
  const rnd = prng(SEED + 1);
  const strings = new ChunkedSet<string>();
  const numbers = new ChunkedSet<number>();
  const s = new Set<string>();
  const n = new Set<number>();
  for (let i = 0; i < 40_000; i++) {
    const x = Math.floor(rnd.next() * 20_000) - 100; // negatives too
    const key = JSON.stringify(['k', `m${x}`]);
    // Ask before adding: a miss and a hit both.
    assert.equal(strings.has(key), s.has(key));
    assert.equal(numbers.has(x), n.has(x));
    strings.add(key);
    s.add(key);
    numbers.add(x);
    n.add(x);
    assert.equal(strings.size, s.size);
    assert.equal(numbers.size, n.size);
  }
  assert.ok(s.size > 8192, 'past the split');
  for (let x = -200; x < 20_100; x++) {
    assert.equal(numbers.has(x), n.has(x));
    assert.equal(strings.has(JSON.stringify(['k', `m${x}`])), s.has(JSON.stringify(['k', `m${x}`])));
  }
});
