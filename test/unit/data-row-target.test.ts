/**
 * DataRowTarget against the reference encoder: whatever the chunk size, split values, dropped rows and
 * fixed (replaced) values, the chunks joined are the DataRows encodeDataRow writes for the same rows.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DataRowTarget, type ValueFix } from '../../src/protocol/data-row-target.js';
import { encodeDataRow } from '../../src/protocol/backend.js';
import { RespReader, type RespHandler } from '../../src/redis/resp-scan.js';

/** A seeded generator, so a failure can be repeated. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Doubles written as Redis writes some scores, and the float8out text the fix turns them into. */
const scoreFix: ValueFix = (buf, start, end) => {
  const s = buf.toString('latin1', start, end);
  if (s === 'bad') return undefined;
  if (s.startsWith('+')) return Buffer.from(s.slice(1).repeat(3), 'latin1'); // longer
  if (s.endsWith('.0')) return Buffer.from(s.slice(0, -2), 'latin1'); // shorter
  return true;
};

describe('DataRowTarget', () => {
  for (const chunk of [8, 16, 64, 1024, 128 * 1024]) {
    it(`chunks of ${chunk} bytes: the same DataRows as encodeDataRow, with split values, drops and fixes`, () => {
      const rnd = prng(chunk);
      const t = new DataRowTarget(2, [undefined, scoreFix], chunk);
      const want: Buffer[] = [];
      for (let i = 0; i < 2000; i++) {
        const member = Buffer.from(`m${i}-${'x'.repeat(Math.floor(rnd() * 40))}`, 'latin1');
        const r = rnd();
        const score = r < 0.2 ? `+${i}` : r < 0.4 ? `${i}.0` : `${i}.5`;
        const drop = rnd() < 0.05;
        // The member as a whole value or split in parts, as the RESP reader hands them on.
        let at: number;
        if (rnd() < 0.5) at = t.pushRange(member, 0, member.length);
        else {
          at = t.begin(member.length);
          const cut = Math.floor(rnd() * member.length);
          t.append(member, 0, cut);
          t.append(member, cut, member.length);
        }
        assert.equal(t.buffer.toString('latin1', at, t.bytes), member.toString('latin1'), 'the value is where begin/pushRange said');
        if (drop) {
          t.dropLast(at);
          continue;
        }
        const sb = Buffer.from(score, 'latin1');
        const sat = t.pushRange(sb, 0, sb.length);
        const moved = t.settle(sat, 1);
        const out = scoreFix(sb, 0, sb.length);
        const shown = out === true ? sb : out!;
        assert.equal(t.buffer.toString('latin1', moved, t.bytes), shown.toString('latin1'), 'the fixed value is where settle said');
        want.push(encodeDataRow([member, shown]));
      }
      assert.equal(t.odd, false);
      assert.equal(t.length, want.length);
      assert.deepEqual(Buffer.concat(t.finish()), Buffer.concat(want));
    });
  }

  it('a value its fix cannot vouch for marks the target odd', () => {
    const t = new DataRowTarget(2, [undefined, scoreFix]);
    const m = Buffer.from('m');
    const b = Buffer.from('bad');
    t.pushRange(m, 0, 1);
    t.settle(t.pushRange(b, 0, 3), 1);
    assert.equal(t.odd, true);
  });

  it('takeBulks, fed by the reader: the rows pushRange and settle write, however the reply is cut', () => {
    // A zset page as ZRANGE … WITHSCORES sends it, then the same pairs nested as a SCAN reply's
    // [cursor, [elements]]: takeBulks may take only what the inner array has left, and the reader
    // must count what it took to close both arrays (and end the reply) where they end.
    const rnd = prng(7);
    const pairs: [Buffer, Buffer][] = [];
    for (let i = 0; i < 60; i++) {
      const r = rnd();
      const score = r < 0.2 ? `+${i}` : r < 0.4 ? `${i}.0` : `${i}.5`;
      pairs.push([Buffer.from(`m${i}-${'y'.repeat(Math.floor(rnd() * 200))}`, 'latin1'), Buffer.from(score, 'latin1')]);
    }
    const bulk = (b: Buffer): string => `$${b.length}\r\n${b.toString('latin1')}\r\n`;
    const flat = pairs.flatMap(([m, sc]) => [bulk(m), bulk(sc)]).join('');
    const replies = [`*${pairs.length * 2}\r\n${flat}`, `*2\r\n$2\r\n17\r\n*${pairs.length * 2}\r\n${flat}`].map((x) => Buffer.from(x, 'latin1'));
    const want = Buffer.concat(pairs.map(([m, sc]) => {
      const out = scoreFix(sc, 0, sc.length);
      return encodeDataRow([m, out === true ? sc : out!]);
    }));
    for (const [r, reply] of replies.entries()) {
      const depth = r + 1;
      for (let cut = 1; cut < reply.length; cut += 7) {
        for (const fast of [true, false]) {
          const t = new DataRowTarget(2, [undefined, scoreFix], 256);
          let col = 0;
          let done = 0;
          const put = (at: number): void => {
            t.settle(at, col);
            col ^= 1;
          };
          let split = -1;
          const handler: RespHandler & { taken: number } = {
            taken: 0,
            array: () => {},
            bulk: (src, a, b, d) => {
              if (d === depth) put(t.pushRange(src, a, b));
            },
            begin: (len, d) => void (split = d === depth ? t.begin(len) : -1),
            part: (src, a, b) => {
              if (split >= 0) t.append(src, a, b);
            },
            end: () => {
              if (split >= 0) put(split);
            },
            nil: () => assert.fail('nil'),
            simple: () => {},
            error: () => assert.fail('error'),
            done: () => void done++,
          };
          if (fast) {
            handler.bulks = (src, i, n, d, max) => {
              if (d !== depth) {
                handler.taken = 0;
                return i;
              }
              const j = t.takeBulks(src, i, n, max);
              handler.taken = t.taken;
              col ^= t.taken & 1;
              return j;
            };
          }
          const reader = new RespReader();
          reader.handler = handler;
          reader.feed(reply.subarray(0, cut));
          reader.feed(reply.subarray(cut));
          assert.equal(done, 1, `one reply, cut at ${cut}`);
          assert.ok(reader.idle);
          assert.deepEqual(Buffer.concat(t.finish()), want, `reply ${r} cut at ${cut}, ${fast ? 'takeBulks' : 'pushRange'}`);
        }
      }
    }
  });
});
