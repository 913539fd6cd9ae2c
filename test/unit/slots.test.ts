// Hash tags for outbox markers on a Redis Cluster: every slot gets a short tag that hashes to it, so a
// slot's marker lives in the same slot as the writes it guards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SLOT_COUNT, slotOf, slotTags } from '../../src/redis/slots.js';

test('every one of the 16384 slots has a tag; a key ending in {tag} is in that slot', async () => {
  const tags = await slotTags();
  assert.equal(tags.length, SLOT_COUNT);
  const bad: string[] = [];
  for (let slot = 0; slot < SLOT_COUNT; slot++) {
    const tag = tags[slot];
    if (tag === undefined || /[{}]/.test(tag) || tag.length > 6 || slotOf(`redis-fdw-proxy:tx:0b7c:0:{${tag}}`) !== slot) bad.push(`${slot}: ${tag}`);
  }
  assert.deepEqual(bad, []);
  assert.equal(await slotTags(), tags, 'built once');
});

test('slotOf honours hash tags as Redis does', () => {
  assert.equal(slotOf('foo'), 12182);
  assert.equal(slotOf('{user1000}.following'), slotOf('{user1000}.followers'));
  assert.equal(slotOf('foo{bar}{zap}'), slotOf('bar'), 'the first tag counts');
  assert.equal(slotOf('foo{{bar}}zap'), slotOf('{bar'));
  assert.notEqual(slotOf('foo{}{bar}'), slotOf('bar'), 'an empty first tag: the whole key is hashed');
});
