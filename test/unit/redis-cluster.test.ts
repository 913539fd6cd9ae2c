// Redis Cluster: the pool detects a cluster node and hands out an ioredis Cluster client; readTable SCANs
// every master for multi-key tables and lets the cluster route single keys. Uses a real 3-master cluster
// started here (skipped when redis-cli is not installed).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster } from 'ioredis';
import { RedisPool } from '../../src/redis/pool.js';
import { readTable } from '../../src/redis/read.js';
import type { ColumnRole, Pushdown, RedisType, TableSpec } from '../../src/redis/table-spec.js';
import { toText } from '../../src/redis/text.js';
import { PgError } from '../../src/protocol/pg-error.js';
import { SLOT_COUNT, slotTags } from '../../src/redis/slots.js';
import { haveRedisCli, startRedisCluster, type RedisClusterInstance } from '../harness/servers.js';

const HOST = '127.0.0.1';

describe('Redis Cluster', { skip: !haveRedisCli() && 'redis-cli not installed' }, () => {
  let rc: RedisClusterInstance;
  let pool: RedisPool;
  let cluster: Cluster;

  before(async () => {
    rc = await startRedisCluster(3);
    pool = new RedisPool();
    const c = await pool.getClient({ host: HOST, port: rc.ports[0]!, db: 0, tls: false });
    assert.ok(c instanceof Cluster, 'a cluster node gives a Cluster client');
    cluster = c;
  });

  after(async () => {
    await pool?.close();
    await rc?.stop();
  });

  function spec(type: RedisType, key: string, roles: ColumnRole['kind'][], multi: TableSpec['multi'] = 'none'): TableSpec {
    const r = roles.map((k) => ({ kind: k }) as ColumnRole);
    return { table: 'redis.c', type, multi, key, columns: r.map((x, i) => ({ name: `c${i}`, type: 'text', typeOid: 25, notNull: false })), roles: r };
  }
  async function read(s: TableSpec, pd: Pushdown = {}): Promise<(string | null)[][]> {
    const rows: (string | null)[][] = [];
    await readTable(cluster, s, pd, { row: (k, v) => rows.push(v.map((x) => (Buffer.isBuffer(x) ? toText(x, k, s.table) : x))) });
    return rows;
  }

  test('get() refuses a cluster (0A000); the same spec via getClient() is the pooled Cluster', async () => {
    const spec0 = { host: HOST, port: rc.ports[0]!, db: 0, tls: false };
    await assert.rejects(pool.get(spec0), (e: unknown) => e instanceof PgError && e.code === '0A000');
    assert.equal(await pool.getClient(spec0), cluster);
  });

  test('a database other than 0 on a cluster: HV00N saying SELECT is not allowed', async () => {
    const p = new RedisPool();
    try {
      await assert.rejects(p.getClient({ host: HOST, port: rc.ports[1]!, db: 3, tls: false }), (e: unknown) => {
        assert.ok(e instanceof PgError);
        assert.equal(e.code, 'HV00N');
        assert.match(e.message, /SELECT is not allowed in cluster mode/);
        return true;
      });
    } finally {
      await p.close();
    }
  });

  test('multi-key tables SCAN every master', async () => {
    const N = 3000;
    for (let i = 0; i < N; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => cluster.rpush(`ck:${i + j}`, `a${i + j}`, `b${i + j}`)));
    }
    await Promise.all(Array.from({ length: 50 }, (_, j) => cluster.hset(`ck:h${j}`, 'f', 'v')));
    // the keys really are spread over the masters
    const perMaster = await Promise.all(cluster.nodes('master').map((n) => n.dbsize()));
    assert.equal(perMaster.length, 3);
    for (const n of perMaster) assert.ok(n > 500, `keys per master: ${perMaster.join(', ')}`);

    const rows = await read(spec('list', 'ck:*', ['key', 'items'], 'aggregate'));
    assert.equal(rows.length, N);
    const byKey = new Map(rows.map((r) => [r[0], r[1]]));
    for (let i = 0; i < N; i += 101) assert.equal(byKey.get(`ck:${i}`), `["a${i}","b${i}"]`);

    const elems = await read(spec('list', 'ck:*', ['key', 'element'], 'rows'));
    assert.equal(elems.length, 2 * N);
    assert.equal((await read(spec('hash', 'ck:*', ['key', 'items'], 'aggregate'))).length, 50);
    assert.equal((await read(spec('list', 'ck:*', ['key', 'items'], 'aggregate'), { limit: 7 })).length, 7);
  });

  test("the outbox markers' hash tags land where the server says (CLUSTER KEYSLOT)", async () => {
    const tags = await slotTags();
    for (let slot = 0; slot < SLOT_COUNT; slot += 97) {
      assert.equal(await cluster.cluster('KEYSLOT', `redis-fdw-proxy:tx:0b7c:0:{${tags[slot]!}}`), slot);
    }
  });

  test('keys pushdown across slots', async () => {
    const rows = await read(spec('list', 'ck:*', ['key', 'items'], 'aggregate'), { keys: ['ck:1', 'ck:2', 'ck:h1', 'ck:nope', 'ck:3'] });
    assert.deepEqual(rows, [['ck:1', '["a1","b1"]'], ['ck:2', '["a2","b2"]'], ['ck:3', '["a3","b3"]']]);
  });

  test('single keys are routed to their node, large ones paged', async () => {
    const args: string[] = [];
    for (let i = 0; i < 5000; i++) args.push(`f${i}`, `v${i}`);
    await cluster.hset('cbig', ...args);
    const rows = await read(spec('hash', 'cbig', ['field', 'value']));
    assert.equal(new Set(rows.map((r) => r[0])).size, 5000);
    await cluster.zadd('cz', 3, 'c', 1, 'a', 2, 'b');
    assert.deepEqual(await read(spec('zset', 'cz', ['element', 'score']), { scoreMin: '2' }), [['b', '2'], ['c', '3']]);
    const err = await read(spec('list', 'cz', ['element'])).catch((e: unknown) => e);
    assert.ok(err instanceof PgError && err.code === '42809', String(err));
  });
});
