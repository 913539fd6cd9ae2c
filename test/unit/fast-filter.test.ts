// The fast path's LIKE and = against Postgres's own: thousands of random (value, pattern) pairs over
// multi-byte text, wildcards and escapes, each evaluated by Postgres in one statement and by
// fast-filter.ts, must agree — including which patterns Postgres rejects.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { testEnv } from '../harness/env.js';
import { prng } from '../support/frames.js';
import { likeMatcher } from '../../src/executor/fast-filter.js';

const SEED = Number(process.env.FAST_FILTER_SEED ?? Math.floor(Math.random() * 2 ** 31));
const PIECES = ['a', 'b', 'ab', '%', '%', '_', '_', '\\', '\\%', '\\_', '\\\\', 'é', '日本', '🙂', 'e\u0301', ' ', 'x\ny', '.*', '[a]'];
const CHARS = ['a', 'b', 'é', '日', '🙂', '\u0301', ' ', '%', '_', '\\', '\n', 'x'];

let c: pg.Client;
before(async () => {
  c = new pg.Client(testEnv().pgUrl);
  await c.connect();
});
after(async () => {
  await c.end();
});

describe(`fast-filter LIKE against Postgres (seed ${SEED}, FAST_FILTER_SEED to repeat)`, () => {
  test('4,000 random pairs: same match, and the same patterns refused', async () => {
    const rand = prng(SEED);
    const values: string[] = [];
    const patterns: string[] = [];
    for (let i = 0; i < 4000; i++) {
      const v = Array.from({ length: rand.int(0, 6) }, () => rand.pick(CHARS)).join('');
      // Half the patterns are built from the value, so matches are common.
      let p = rand.next() < 0.5 ? Array.from({ length: rand.int(0, 5) }, () => rand.pick(PIECES)).join('') : mutate(v, rand);
      if (rand.next() < 0.1) p = `%${p}`;
      values.push(v);
      patterns.push(p);
    }
    // Postgres's answer per pair, or its SQLSTATE when it refuses the pattern, in one round trip.
    await c.query(`create or replace function pg_temp.try_like(v text, p text) returns text language plpgsql as $$
      begin return (v like p)::text; exception when others then return 'E' || sqlstate; end $$`);
    const r = await c.query<{ i: string; a: string }>(`select i, pg_temp.try_like(v, p) as a from unnest($1::text[], $2::text[]) with ordinality as t(v, p, i) order by i`, [values, patterns]);
    assert.equal(r.rows.length, values.length);
    let matches = 0;
    for (const row of r.rows) {
      const i = Number(row.i) - 1;
      const m = likeMatcher(Buffer.from(patterns[i]!, 'utf8'));
      const label = `value ${JSON.stringify(values[i])} pattern ${JSON.stringify(patterns[i])}`;
      if (row.a.startsWith('E')) {
        assert.equal(row.a, 'E22025', label);
        assert.equal(m, undefined, `Postgres refuses ${label}`);
        continue;
      }
      // A pattern ending in a lone escape is refused only when matching reaches it: Postgres decides those.
      if (m === undefined) continue;
      const v = Buffer.from(values[i]!, 'utf8');
      const got = m(v, 0, v.length);
      assert.equal(got, row.a === 'true', label);
      if (got) matches++;
    }
    assert.ok(matches > 400, `enough pairs match to mean something (${matches})`);
  });

  test('Postgres refuses a pattern ending in a lone backslash once matching reaches it, so the matcher leaves those to it', async () => {
    await assert.rejects(c.query(`select 'ab' like 'a\\'`), (e: { code?: string }) => e.code === '22025');
    assert.equal((await c.query(`select 'a' like 'a\\' as m`)).rows[0].m, false);
    assert.equal(likeMatcher(Buffer.from('a\\')), undefined);
    assert.ok(likeMatcher(Buffer.from('a\\\\')));
  });
});

/** A pattern derived from a value: some characters become `_` or `%`, some get escaped. */
function mutate(v: string, rand: ReturnType<typeof prng>): string {
  let out = '';
  for (const ch of v) {
    const r = rand.next();
    if (r < 0.15) out += '_';
    else if (r < 0.25) out += '%';
    else if (ch === '%' || ch === '_' || ch === '\\') out += rand.next() < 0.7 ? `\\${ch}` : ch;
    else out += ch;
  }
  return out;
}
