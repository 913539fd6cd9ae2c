/**
 * SeenSet: the dedupe of multi-page HSCAN/SSCAN walks. It compares bytes (not decoded text), survives its own
 * growth, and is a no-op until enabled. Checked against a plain Set of the same bytes.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SeenSet } from '../../src/redis/types/cursor.js';

describe('SeenSet', () => {
  test('disabled: everything is new', () => {
    const s = new SeenSet();
    assert.equal(s.add(Buffer.from('a')), true);
    assert.equal(s.add(Buffer.from('a')), true);
  });

  test('held members count once a later page brings members', () => {
    const s = new SeenSet();
    s.hold([Buffer.from('a'), Buffer.from('b')]);
    assert.equal(s.add(Buffer.from('b')), false);
    assert.equal(s.add(Buffer.from('c')), true);
    assert.equal(s.add(Buffer.from('a')), false);
    assert.equal(s.add(Buffer.from('c')), false);
  });

  test('agrees with a Set over 200,000 values with repeats, empty, binary and long ones', () => {
    const s = new SeenSet();
    s.enable();
    const oracle = new Set<string>();
    let seed = 42;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    for (let i = 0; i < 200_000; i++) {
      const kind = rand(4);
      const b =
        kind === 0 ? Buffer.from(String(rand(50_000)))
        : kind === 1 ? Buffer.from([rand(256), rand(256), 0, rand(256)])
        : kind === 2 ? Buffer.alloc(rand(3), rand(2) * 0xff)
        : Buffer.from(`${'é'.repeat(20)}-${rand(1000)}`);
      const id = b.toString('hex');
      const expectNew = !oracle.has(id);
      oracle.add(id);
      assert.equal(s.add(b), expectNew, `value ${id} (#${i})`);
    }
  });

  test('bytes are compared, not text: a value and its prefix, and values differing in one byte, are distinct', () => {
    const s = new SeenSet();
    s.enable();
    assert.equal(s.add(Buffer.from('abc')), true);
    assert.equal(s.add(Buffer.from('ab')), true);
    assert.equal(s.add(Buffer.from('abd')), true);
    assert.equal(s.add(Buffer.from([0xc3])), true);
    assert.equal(s.add(Buffer.from([0xc4])), true);
    assert.equal(s.add(Buffer.from('abc')), false);
    assert.equal(s.add(Buffer.alloc(0)), true);
    assert.equal(s.add(Buffer.alloc(0)), false);
  });
});
