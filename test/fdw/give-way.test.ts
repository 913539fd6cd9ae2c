/**
 * Nothing hangs (issue 11): a big autocommit write's work gives way to other sessions. INSERT … SELECT
 * of 100,000 rows, then UPDATE and DELETE of all of them, into a hash, a list and a zset table: no
 * stretch of the proxy's work (building parameters, turning rows into commands, grouping, queueing the
 * MULTI/EXEC) holds the event loop for 50 ms of CPU. The proxy runs in this process, so a ticker on
 * the same event loop sees every stretch (test/support/cpu-stretch.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { fdwFixture, type FdwFixture } from '../support/fdw.js';
import { connect, setupSupabase } from '../support/fdw-sql.js';
import { REDIS_DB } from '../support/redis-dbs.js';
import { describeStretch, stretchOf } from '../support/cpu-stretch.js';

const ROWS = 100_000;
/** The issue asks for "a few milliseconds"; CPU is counted in 10 ms ticks, and a loaded machine gets slack. */
const STRETCH_BOUND_MS = 50;

let f: FdwFixture;
let c: pg.Client;

before(async () => {
  f = await fdwFixture('fdw_give_way', REDIS_DB.giveWay);
  c = await connect(f.url);
  await setupSupabase(c, f.redisUrl);
  await c.query(`
    create foreign table gw_hash (key text, value text) server redis_server options (src_type 'hash', src_key 'gw:hash');
    create foreign table gw_list (element text) server redis_server options (src_type 'list', src_key 'gw:list');
    create foreign table gw_zset (element text, score float8) server redis_server options (src_type 'zset', src_key 'gw:zset');`);
});

after(async () => {
  await c?.end().catch(() => {});
  await f?.close();
});

/** Runs `sql` on the proxy under a watch; fails when a stretch reaches the bound. Returns the command tag. */
async function givesWay(what: string, sql: string): Promise<string> {
  // A failed statement's stretch is printed too: it says how long the failure held the loop.
  const { result, stretch } = await stretchOf(() => c.query(sql).catch((e: Error) => e));
  console.log(describeStretch(what, stretch));
  if (result instanceof Error) throw result;
  assert.ok(stretch.turns > 1, `the watch saw ${stretch.turns} turns`);
  assert.ok(stretch.worst < STRETCH_BOUND_MS, `${what}: a stretch of ${stretch.worst.toFixed(1)} ms of CPU without giving way (GC pauses counted out)`);
  return `${result.command} ${result.rowCount}`;
}

const n = ROWS.toLocaleString('en');

describe('a big autocommit write gives way: CPU time between event-loop turns', { timeout: 300_000 }, () => {
  describe('hash', () => {
    it(`INSERT … SELECT of ${n} rows`, async () => {
      assert.equal(await givesWay(`hash INSERT … SELECT ${ROWS}`, `insert into gw_hash select 'f' || g, 'v' || g from generate_series(1, ${ROWS}) g`), `INSERT ${ROWS}`);
      assert.equal(await f.redis.hlen('gw:hash'), ROWS);
      assert.equal(await f.redis.hget('gw:hash', `f${ROWS}`), `v${ROWS}`);
    });
    it(`UPDATE of ${n} fields`, async () => {
      assert.equal(await givesWay(`hash UPDATE ${ROWS}`, `update gw_hash set value = value || 'x'`), `UPDATE ${ROWS}`);
      assert.equal(await f.redis.hget('gw:hash', 'f77'), 'v77x');
    });
    it(`DELETE of ${n} fields`, async () => {
      assert.equal(await givesWay(`hash DELETE ${ROWS}`, `delete from gw_hash`), `DELETE ${ROWS}`);
      assert.equal(await f.redis.exists('gw:hash'), 0);
    });
  });

  describe('list', () => {
    it(`INSERT … SELECT of ${n} rows`, async () => {
      assert.equal(await givesWay(`list INSERT … SELECT ${ROWS}`, `insert into gw_list select 'e' || g from generate_series(1, ${ROWS}) g`), `INSERT ${ROWS}`);
      assert.equal(await f.redis.llen('gw:list'), ROWS);
      assert.equal(await f.redis.lindex('gw:list', -1), `e${ROWS}`);
    });
    it(`UPDATE of ${n} elements (one checked position edit)`, async () => {
      assert.equal(await givesWay(`list UPDATE ${ROWS}`, `update gw_list set element = element || 'x'`), `UPDATE ${ROWS}`);
      assert.equal(await f.redis.lindex('gw:list', 76), 'e77x');
    });
    it(`DELETE of ${n} elements`, async () => {
      assert.equal(await givesWay(`list DELETE ${ROWS}`, `delete from gw_list`), `DELETE ${ROWS}`);
      assert.equal(await f.redis.exists('gw:list'), 0);
    });
  });

  describe('zset', () => {
    it(`INSERT … SELECT of ${n} rows`, async () => {
      assert.equal(await givesWay(`zset INSERT … SELECT ${ROWS}`, `insert into gw_zset select 'm' || g, g from generate_series(1, ${ROWS}) g`), `INSERT ${ROWS}`);
      assert.equal(await f.redis.zcard('gw:zset'), ROWS);
    });
    it(`UPDATE of ${n} members (renamed: ZREM and ZADD each)`, async () => {
      assert.equal(await givesWay(`zset UPDATE ${ROWS}`, `update gw_zset set element = element || 'x'`), `UPDATE ${ROWS}`);
      assert.equal(await f.redis.zscore('gw:zset', 'm77x'), '77');
      assert.equal(await f.redis.zcard('gw:zset'), ROWS);
    });
    it(`DELETE of ${n} members`, async () => {
      assert.equal(await givesWay(`zset DELETE ${ROWS}`, `delete from gw_zset`), `DELETE ${ROWS}`);
      assert.equal(await f.redis.exists('gw:zset'), 0);
    });
  });
});
