// applyOps merges a statement's variadic commands (write.ts `batched`): runs on one key, and a key's
// removals and additions in two lanes, removals first. Redis is the oracle: seeded random sequences of
// ops over a few keys, with members drawn from small and large alphabets (so the same member is added
// and removed within one window, and windows fill past 1,000), are applied through applyOps to one set
// of keys and one command at a time to another; the keys must end up equal.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { RedisPool } from '../../src/redis/pool.js';
import { fromConnUrl } from '../../src/redis/connection.js';
import { applyOps, type RedisOp } from '../../src/redis/write.js';
import { prng } from '../support/frames.js';
import { testEnv } from '../harness/env.js';

const env = testEnv();
const P = `wb:${process.pid}:${Date.now()}:`;
const SEED = Number(process.env.BATCHING_SEED ?? Date.now() % 1_000_000_007);
let redis: Redis;
let client: Redis;
const pool = new RedisPool();

before(async () => {
  redis = new Redis(env.redisUrl);
  client = await pool.get(fromConnUrl(env.redisUrl));
});
after(async () => {
  const keys = await redis.keys(`${P.replace(/[*?[\]\\]/g, '\\$&')}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await pool.close();
});

type Family = 'hash' | 'zset' | 'set' | 'list';

/** One random op on `key` of `family`; `wide` draws members from thousands, else from five. */
function randomOp(rnd: ReturnType<typeof prng>, family: Family, key: string, wide: boolean): RedisOp {
  const m = wide ? `m${rnd.int(0, 5000)}` : rnd.pick(['a', 'b', 'c', 'd', 'e']);
  const add = rnd.next() < 0.6;
  const nx = rnd.next() < 0.15;
  switch (family) {
    case 'hash':
      return add ? { op: 'hset', key, field: m, value: `v${rnd.int(0, 99)}`, ...(nx ? { nx } : {}) } : { op: 'hdel', key, field: m };
    case 'zset':
      return add ? { op: 'zadd', key, member: m, score: String(rnd.int(-50, 50)), ...(nx ? { nx } : {}) } : { op: 'zrem', key, member: m };
    case 'set':
      return add ? { op: 'sadd', key, member: m } : { op: 'srem', key, member: m };
    case 'list':
      return { op: 'rpush', key, value: m };
  }
}

/** The op as Redis runs it alone. */
function single(o: RedisOp): [string, string, ...string[]] {
  switch (o.op) {
    case 'hset':
      return o.nx ? ['hsetnx', o.key, o.field, o.value] : ['hset', o.key, o.field, o.value];
    case 'hdel':
      return ['hdel', o.key, o.field];
    case 'zadd':
      return o.nx ? ['zadd', o.key, 'NX', o.score, o.member] : ['zadd', o.key, o.score, o.member];
    case 'zrem':
      return ['zrem', o.key, o.member];
    case 'sadd':
      return ['sadd', o.key, o.member];
    case 'srem':
      return ['srem', o.key, o.member];
    case 'rpush':
      return ['rpush', o.key, o.value];
    default:
      throw new Error(`not generated: ${o.op}`);
  }
}

async function contents(family: Family, key: string): Promise<unknown> {
  switch (family) {
    case 'hash':
      return redis.hgetall(key);
    case 'zset':
      return redis.zrange(key, '0', '-1', 'WITHSCORES');
    case 'set':
      return (await redis.smembers(key)).sort();
    case 'list':
      return redis.lrange(key, 0, -1);
  }
}

describe('batched commands apply as the same commands one at a time', () => {
  for (const [n, wide] of [
    [400, false],
    [6000, false],
    [6000, true],
  ] as const) {
    test(`${n} random ops over 6 keys of 4 types, members from ${wide ? 'thousands' : 'five'} (seed ${SEED})`, async () => {
      const rnd = prng(SEED + n + (wide ? 1 : 0));
      const families: Family[] = ['hash', 'zset', 'set', 'list', 'hash', 'zset'];
      const tag = `${n}:${wide}:`;
      const ops: RedisOp[] = [];
      // Runs on one key, as a statement's rows give them, broken now and then by another key.
      let k = 0;
      for (let i = 0; i < n; i++) {
        if (rnd.next() < 0.02) k = rnd.int(0, families.length - 1);
        ops.push(randomOp(rnd, families[k]!, `${P}${tag}b:${k}`, wide));
      }
      const r = await applyOps(client, ops.map((op) => ({ op, table: 't' })));
      assert.deepEqual(r.failures, []);
      const pipe = redis.pipeline();
      for (const o of ops) {
        const [name, key, ...args] = single(o);
        pipe.call(name, key.replace(`${tag}b:`, `${tag}s:`), ...args);
      }
      await pipe.exec();
      for (let i = 0; i < families.length; i++) {
        assert.deepEqual(await contents(families[i]!, `${P}${tag}b:${i}`), await contents(families[i]!, `${P}${tag}s:${i}`), `key ${i} (${families[i]}), seed ${SEED}`);
      }
    });
  }
});

describe('HSETNX of many fields (one script call per window)', () => {
  test('on a key of another type: Redis\'s own WRONGTYPE, and nothing set', async () => {
    const key = `${P}nx:wrongtype`;
    await redis.set(key, 'a string');
    const ops: RedisOp[] = Array.from({ length: 2500 }, (_, i) => ({ op: 'hset', key, field: `f${i}`, value: `v${i}`, nx: true }));
    const r = await applyOps(client, ops.map((op) => ({ op, table: 't' })));
    assert.ok(r.failures.length > 0);
    assert.match(r.failures[0]!.error.message, /WRONGTYPE|wrong kind of value/i, r.failures[0]!.error.message);
    assert.equal(await redis.get(key), 'a string');
  });
  test('replies: one per window of fields, not one per field', async () => {
    const key = `${P}nx:count`;
    await redis.hset(key, 'f1', 'old');
    const ops: RedisOp[] = Array.from({ length: 2500 }, (_, i) => ({ op: 'hset', key, field: `f${i}`, value: `v${i}`, nx: true }));
    const r = await applyOps(client, ops.map((op) => ({ op, table: 't' })));
    assert.deepEqual(r.failures, []);
    assert.equal(r.applied, 3); // 1,000 fields a command
    assert.equal(await redis.hlen(key), 2500);
    assert.equal(await redis.hget(key, 'f1'), 'old');
  });
});
