/**
 * Nothing hangs (issue 11), on a Redis Cluster: a big autocommit write to one key is queued on the
 * master that serves its slot in slices, giving way between them, as on a standalone server (it used
 * to go to the cluster client's MULTI in one piece). A statement that spans slots is still the
 * cluster's to refuse (CROSSSLOT), and refuses whole. The proxy runs in this process, so a ticker on
 * its event loop sees every stretch (test/support/cpu-stretch.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { Cluster } from 'ioredis';
import { connect, setupSupabase } from '../support/fdw-sql.js';
import { haveRedisCli, startRedisCluster, type RedisClusterInstance } from '../harness/servers.js';
import { startProxy } from '../harness/proxy.js';
import { testEnv } from '../harness/env.js';
import { withDb } from '../support/fdw.js';
import { directQuery } from '../support/proto-tools.js';
import { describeStretch, stretchOf } from '../support/cpu-stretch.js';

const ROWS = 100_000;
const STRETCH_BOUND_MS = 50;

let rc: RedisClusterInstance;
let cluster: Cluster;
let proxy: Awaited<ReturnType<typeof startProxy>>;
let c: pg.Client;
const db = `fdw_give_way_cluster_${process.pid}`;

before(async () => {
  if (!haveRedisCli()) return;
  rc = await startRedisCluster(3);
  cluster = new Cluster([{ host: rc.host, port: rc.ports[0]! }]);
  const env = testEnv();
  await directQuery(env.pgUrl, `drop database if exists ${db}`);
  await directQuery(env.pgUrl, `create database ${db}`);
  proxy = await startProxy(withDb(env.pgUrl, db));
  c = await connect(withDb(proxy.url(), db));
  await setupSupabase(c, rc.url);
  await c.query(`
    create foreign table gwc_hash (key text, value text) server redis_server options (src_type 'hash', src_key 'gwc:hash');
    create foreign table gwc_keys (key text, items jsonb) server redis_server options (src_type 'multi_hash', src_key 'gwc:k:*');`);
});

after(async () => {
  await c?.end().catch(() => {});
  await proxy?.close();
  cluster?.disconnect();
  await rc?.stop();
  if (haveRedisCli()) await directQuery(testEnv().pgUrl, `drop database if exists ${db} with (force)`);
});

describe('a big autocommit write on a Redis Cluster gives way', { skip: !haveRedisCli() && 'redis-cli not installed', timeout: 300_000 }, () => {
  it(`INSERT … SELECT of ${ROWS.toLocaleString('en')} fields into one hash: sliced on its master, all applied`, async () => {
    const { result, stretch } = await stretchOf(() => c.query(`insert into gwc_hash select 'f' || g, 'v' || g from generate_series(1, ${ROWS}) g`));
    console.log(describeStretch(`cluster hash INSERT … SELECT ${ROWS}`, stretch));
    assert.equal(result.rowCount, ROWS);
    assert.ok(stretch.turns > 1, `the watch saw ${stretch.turns} turns`);
    assert.ok(stretch.worst < STRETCH_BOUND_MS, `a stretch of ${stretch.worst.toFixed(1)} ms of CPU without giving way (GC pauses counted out)`);
    assert.equal(await cluster.hlen('gwc:hash'), ROWS);
    assert.equal(await cluster.hget('gwc:hash', `f${ROWS}`), `v${ROWS}`);
  });

  it('DELETE of all of them: sliced too', async () => {
    const { result, stretch } = await stretchOf(() => c.query(`delete from gwc_hash`));
    console.log(describeStretch(`cluster hash DELETE ${ROWS}`, stretch));
    assert.equal(result.rowCount, ROWS);
    assert.ok(stretch.worst < STRETCH_BOUND_MS, `a stretch of ${stretch.worst.toFixed(1)} ms of CPU without giving way (GC pauses counted out)`);
    assert.equal(await cluster.exists('gwc:hash'), 0);
  });

  it('a big write across slots is refused whole, as before: nothing applied', async () => {
    // 5,000 keys of their own (past the sliced threshold) land in many slots: one MULTI can't hold them.
    await assert.rejects(c.query(`insert into gwc_keys select 'gwc:k:' || g, '{"a": "1"}' from generate_series(1, 5000) g`), (e: { code?: string; message?: string }) => {
      assert.ok(e.code?.startsWith('HV'), `${e.code}: ${e.message}`);
      return true;
    });
    const left: string[] = [];
    for (const node of cluster.nodes('master')) left.push(...(await node.keys('gwc:k:*')));
    assert.deepEqual(left, []);
  });
});
