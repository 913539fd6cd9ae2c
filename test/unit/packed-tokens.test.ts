// A big statement's tokens come from the parse worker packed (issue 11: a 100,000-row INSERT … VALUES
// held the event loop 370 ms just to receive them as token objects). Unpacked, they must be exactly
// what scanning on the event loop gives, including where the scanner needs its control-character
// fallback, and for texts of several statements.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initParser } from '../../src/sql/parser.js';
import { forgetUnpacked, packedTokensOf, rememberTokens, tokensOf, unpackAhead, unpackTokens } from '../../src/sql/text-builder.js';
import { OffThreadClassifier } from '../../src/sql/off-thread.js';

before(() => initParser());

const TEXTS = [
  'SELECT 1',
  `INSERT INTO "Hash" (key, value) VALUES ('k1', 'v1'), ($1, DEFAULT) RETURNING *;`,
  `update h set value = 'a\nb' -- trailing comment\nwhere key = E'\\t' ;`,
  `insert into h values ('${'x'.repeat(300)}', 'ÄÖü ☃ 𝄞') returning value`,
  `select a[1], (b) from h for update; ; delete from h where key in (select 'k')`,
];

test('unpacked tokens are tokensOf’s, whatever the text', () => {
  for (const text of TEXTS) assert.deepEqual(unpackTokens(packedTokensOf(text)), tokensOf(text), text);
});

let worker: OffThreadClassifier;
before(() => (worker = new OffThreadClassifier()));
after(() => worker.close());

test('the worker replies with packed tokens, moved rather than cloned token by token', async () => {
  const text = `insert into h values ${Array.from({ length: 5000 }, (_, i) => `('f${i}', $${(i % 3) + 1})`).join(', ')}; select * from h`;
  const r = await worker.classify(Buffer.from(text), { encoding: 'UTF8', lowerNames: ['h'], watchDdl: false, all: false });
  assert.equal(r.kind, 'inspect');
  if (r.kind !== 'inspect') return;
  assert.equal(r.scans.length, 2);
  for (const s of r.scans) {
    assert.ok(s.tokens.spans instanceof Int32Array, 'token spans as an Int32Array');
    assert.equal(typeof s.tokens.texts, 'string');
    const own: string = s.text ?? r.text;
    assert.deepEqual(unpackTokens(s.tokens), tokensOf(own));
  }
});

test('tokens unpacked ahead, giving way, are tokensOf’s, for one use only', async () => {
  const big = `insert into h values ${Array.from({ length: 3000 }, (_, i) => `('f${i}', $${(i % 3) + 1})`).join(', ')}`;
  for (const text of [...TEXTS, big]) {
    const scanned = tokensOf(text);
    rememberTokens(text, packedTokensOf(text));
    let pauses = 0;
    await unpackAhead(text, () => {
      pauses++;
      return undefined;
    });
    if (text === big) assert.ok(pauses > 0, 'paused between slices');
    const ahead = tokensOf(text);
    assert.deepEqual(ahead, scanned, text);
    // A second call unpacks again: 600,000 token objects are not kept past their use.
    const again = tokensOf(text);
    assert.notEqual(again, ahead);
    assert.deepEqual(again, scanned);
    await unpackAhead(text, () => undefined);
    forgetUnpacked(text);
    assert.deepEqual(tokensOf(text), scanned);
  }
});
