/**
 * Scale: a 1,000,000-field hash counted through the proxy with bounded proxy memory (the proxy runs in
 * this process, so process RSS is sampled while the query runs), a multi_hash over 100,000 keys, and a
 * 200,000-element list read in order.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { fdwFixture, type FdwFixture } from '../support/fdw.js';
import { connect, rows, setupSupabase } from '../support/fdw-sql.js';
import { REDIS_DB } from '../support/redis-dbs.js';

let f: FdwFixture;
let c: pg.Client;
const DB = REDIS_DB.scale;
const MB = 1024 * 1024;
/**
 * The proxy may grow by at most this much while reading the 1 M-field hash (its data is ~14 MB in Redis; the
 * two text[] parameters are ~22 MB, and the Bind message carrying them copies them once more).
 */
const RSS_BOUND_MB = 150;
/** 100,000 keys each read by its own command: the per-key objects cost more than one key's pages. */
const MULTI_RSS_BOUND_MB = 300;

before(async () => {
  f = await fdwFixture('fdw_scale', DB);
  c = await connect(f.url);
  await setupSupabase(c, f.redisUrl);
  await c.query(`
    create foreign table big_hash (key text, value text) server redis_server options (src_type 'hash', src_key 'big:hash');
    create foreign table many (key text, items jsonb) server redis_server options (src_type 'multi_hash', src_key 'many:*');
    create foreign table long_list (element text, index int) server redis_server options (src_type 'list', src_key 'long:list');`);
});

after(async () => {
  await f?.redis.flushdb().catch(() => {});
  await c?.end().catch(() => {});
  await f?.close();
});

/** Runs `fn` while sampling RSS every 20 ms; returns its result and the peak growth in MB. */
async function withPeakRss<T>(fn: () => Promise<T>): Promise<{ value: T; growthMb: number; ms: number }> {
  global.gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 20);
  const t0 = Date.now();
  try {
    const value = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { value, growthMb: (peak - base) / MB, ms: Date.now() - t0 };
  } finally {
    clearInterval(timer);
  }
}

describe('large keys', () => {
  it('count(*) over a 1,000,000-field hash, with bounded proxy memory', async () => {
    const N = 1_000_000;
    const t0 = Date.now();
    for (let start = 0; start < N; start += 10_000) {
      const p = f.redis.pipeline();
      for (let i = start; i < start + 10_000; i += 1000) {
        const args: string[] = [];
        for (let j = i; j < i + 1000; j++) args.push(`f${j}`, `v${j}`);
        p.hset('big:hash', ...args);
      }
      await p.exec();
    }
    assert.equal(await f.redis.hlen('big:hash'), N);
    const loadMs = Date.now() - t0;
    // count(*) … WHERE: the WHERE is upstream's, so every field is read; 'v%' keeps them all, so the
    // distinct count also proves each field came once.
    const r = await withPeakRss(() => rows(c, `select count(*), count(distinct key), min(value), max(value) from big_hash where value like 'v%'`));
    console.log(`[scale] 1M-field hash: loaded in ${loadMs} ms, count(*) … where in ${r.ms} ms, proxy RSS growth ${r.growthMb.toFixed(0)} MB (bound ${RSS_BOUND_MB} MB)`);
    assert.deepEqual(r.value, [[String(N), String(N), 'v0', 'v999999']]);
    assert.ok(r.growthMb < RSS_BOUND_MB, `RSS grew by ${r.growthMb.toFixed(0)} MB`);
    // A second read of the same key does not keep growing (nothing is retained between statements).
    const again = await withPeakRss(() => rows(c, 'select count(*) from big_hash'));
    assert.deepEqual(again.value, [[String(N)]]);
    assert.ok(again.growthMb < RSS_BOUND_MB, `second read: RSS grew by ${again.growthMb.toFixed(0)} MB`);
    // A point lookup on it is immediate.
    const t1 = Date.now();
    assert.deepEqual(await rows(c, `select value from big_hash where key = 'f765432'`), [['v765432']]);
    assert.ok(Date.now() - t1 < 1000, `point lookup took ${Date.now() - t1} ms`);
    await f.redis.unlink('big:hash');
  });

  it('multi_hash over 100,000 keys', async () => {
    const N = 100_000;
    for (let start = 0; start < N; start += 10_000) {
      const p = f.redis.pipeline();
      for (let i = start; i < start + 10_000; i++) p.hset(`many:${i}`, 'n', String(i));
      await p.exec();
    }
    const r = await withPeakRss(() => rows(c, `select count(*), count(distinct key), sum((items->>'n')::bigint) from many`));
    console.log(`[scale] multi_hash over ${N} keys: ${r.ms} ms, proxy RSS growth ${r.growthMb.toFixed(0)} MB`);
    assert.deepEqual(r.value, [[String(N), String(N), String((N * (N - 1)) / 2)]]);
    assert.ok(r.growthMb < MULTI_RSS_BOUND_MB, `RSS grew by ${r.growthMb.toFixed(0)} MB`);
    // Every row pairs a key with its own contents.
    assert.deepEqual(await rows(c, `select count(*) from many where key <> 'many:' || (items->>'n')`), [['0']]);
  });

  it('a 200,000-element list keeps its order', async () => {
    const N = 200_000;
    for (let start = 0; start < N; start += 10_000) {
      const els: string[] = [];
      for (let i = start; i < start + 10_000; i++) els.push(`e${i}`);
      await f.redis.rpush('long:list', ...els);
    }
    const t0 = Date.now();
    assert.deepEqual(await rows(c, 'select count(*), min(index), max(index) from long_list'), [[String(N), '0', String(N - 1)]]);
    assert.deepEqual(await rows(c, `select element from long_list where index in (0, ${N - 1})  order by index`), [['e0'], [`e${N - 1}`]]);
    // Every element sits at its own index, i.e. the whole order is Redis's.
    assert.deepEqual(await rows(c, `select count(*) from long_list where element <> 'e' || index`), [['0']]);
    // And the rows arrive in list order without ORDER BY (a plain scan of the list).
    const all = await rows(c, 'select element from long_list');
    assert.equal(all.length, N);
    assert.equal(all[0]![0], 'e0');
    assert.equal(all[N - 1]![0], `e${N - 1}`);
    assert.ok(all.every((r, i) => r[0] === `e${i}`), 'rows in list order');
    console.log(`[scale] 200k list: ${Date.now() - t0} ms for four reads`);
  });
});
