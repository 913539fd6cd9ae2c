// The fast path's double precision against Postgres's own float8in and float8out: random doubles of
// every magnitude (and integers past 2^53, where shortest strings can sit halfway between doubles),
// and random decimal text, each read and printed by Postgres in one statement.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { testEnv } from '../harness/env.js';
import { prng } from '../support/frames.js';
import { fastType, float8Out, parseFloat8 } from '../../src/executor/fast-types.js';

const SEED = Number(process.env.FAST_TYPES_SEED ?? Math.floor(Math.random() * 2 ** 31));

let c: pg.Client;
before(async () => {
  c = new pg.Client(testEnv().pgUrl);
  await c.connect();
  await c.query('set extra_float_digits = 1');
  await c.query(`create or replace function pg_temp.try_float8(t text) returns text language plpgsql as $$
    begin return t::float8::text; exception when others then return 'E' || sqlstate; end $$`);
});
after(async () => {
  await c.end();
});

/** Postgres's text output of each text, read as float8 ('E…' with the SQLSTATE when it refuses). */
async function postgres(texts: string[]): Promise<string[]> {
  const r = await c.query<{ out: string }>('select pg_temp.try_float8(t) as out from unnest($1::text[]) with ordinality as x(t, i) order by i', [texts]);
  return r.rows.map((x) => x.out);
}

describe(`fast-types double precision against Postgres (seed ${SEED}, FAST_TYPES_SEED to repeat)`, () => {
  test('float8out of 20,000 random doubles, half of them large integers', async () => {
    const rand = prng(SEED);
    const buf = Buffer.alloc(8);
    const values: number[] = [];
    while (values.length < 20_000) {
      if (values.length % 2) {
        // 2^53 .. 2^80, where round-half-even makes some shortest strings halfway points.
        values.push(Math.floor(2 ** (53 + rand.next() * 27) * (rand.next() < 0.5 ? -1 : 1)));
        continue;
      }
      rand.bytes(8).copy(buf);
      const d = buf.readDoubleBE(0);
      if (Number.isFinite(d)) values.push(d);
    }
    // %.17g-style text reads back exactly as this double in both.
    const pgOut = await postgres(values.map((v) => v.toPrecision(17)));
    let bad = 0;
    values.forEach((v, i) => {
      if (float8Out(v) !== pgOut[i]) {
        bad++;
        if (bad <= 5) assert.fail(`${v.toPrecision(17)}: Postgres ${pgOut[i]}, fast path ${float8Out(v)}`);
      }
    });
  });

  test('float8in of random decimal text: the same double, or left to Postgres', async () => {
    const rand = prng(SEED ^ 0x1f);
    const texts: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      const int = Array.from({ length: rand.int(0, 20) }, () => String(rand.int(0, 9))).join('');
      const frac = rand.next() < 0.5 ? `.${Array.from({ length: rand.int(0, 20) }, () => String(rand.int(0, 9))).join('')}` : '';
      const exp = rand.next() < 0.4 ? `${rand.pick(['e', 'E'])}${rand.pick(['', '-', '+'])}${rand.int(0, 330)}` : '';
      texts.push(`${rand.next() < 0.3 ? '-' : ''}${int}${frac}${exp}`);
    }
    texts.push('inf', '-inf', 'Infinity', '-INFINITY', '1e309', '1e-324', '2e-324', '0e-999', '-0', 'nan', ' 1', '0x1p3', '1_000');
    // Short decimals, most of which float8out prints unchanged (the fast path's shortcut for them).
    for (let i = 0; i < 5_000; i++) {
      const int = rand.next() < 0.3 ? '0' : String(rand.int(1, 10 ** rand.int(0, 9)));
      const frac = rand.next() < 0.6 ? `.${'0'.repeat(rand.int(0, 5))}${rand.int(0, 99999)}` : '';
      texts.push(`${rand.next() < 0.3 ? '-' : ''}${int}${frac}`);
    }
    texts.push('.5', '5.', '0.0', '-0', '0', '00', '0.0001', '0.00001', '123456789012345', '1234567890123456', '1.50', '-0.5');
    const pgOut = await postgres(texts);
    const float8 = fastType(701, 'double precision')!;
    let local = 0;
    texts.forEach((t, i) => {
      const label = `text ${JSON.stringify(t)}`;
      const out = float8.text(Buffer.from(t, 'latin1'));
      const v = parseFloat8(t);
      if (v === undefined) {
        assert.equal(out, undefined, label);
        return;
      }
      local++;
      assert.equal(float8Out(v), pgOut[i], label);
      assert.equal(out?.toString('latin1'), pgOut[i], label);
    });
    assert.ok(local > 5000, `most plain decimals are read locally (${local})`);
  });
});
