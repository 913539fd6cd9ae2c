// readTable against the real Redis: every type, empty/missing/small/large keys, raw bytes, text checks,
// wrong types, multi-key tables and each pushdown. MONITOR checks that large keys are read in batches.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { monitorRedis } from '../support/fdw-sql.js';
import { RedisPool } from '../../src/redis/pool.js';
import { fromConnUrl } from '../../src/redis/connection.js';
import { DEFAULT_FIRST_PAGE, DEFAULT_KEY_BATCH, explainRead, readTable, type ReadOptions } from '../../src/redis/read.js';
import { nextStreamId } from '../../src/redis/types/stream.js';
import { toText } from '../../src/redis/text.js';
import type { ColumnRole, Pushdown, RedisType, TableSpec } from '../../src/redis/table-spec.js';
import { PgError } from '../../src/protocol/pg-error.js';
import { testEnv } from '../harness/env.js';

const env = testEnv();
const P = `t:${process.pid}:${Date.now()}:`;
let redis: Redis; // setup/verification client
let client: Redis; // the client under test, from the pool
const pool = new RedisPool();

before(async () => {
  redis = new Redis(env.redisUrl, { protocol: 2 });
  client = await pool.get(fromConnUrl(env.redisUrl));
});
after(async () => {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${P.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 5000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
  redis.disconnect();
  await pool.close();
});

type RoleName = ColumnRole['kind'] | { streamField: string };
function spec(type: RedisType, key: string, roles: RoleName[], multi: TableSpec['multi'] = 'none', table = 'redis.t'): TableSpec {
  const r: ColumnRole[] = roles.map((x) => (typeof x === 'string' ? ({ kind: x } as ColumnRole) : { kind: 'streamField', name: x.streamField }));
  return {
    table,
    type,
    multi,
    key: P + key,
    columns: r.map((role, i) => ({ name: `c${i}_${role.kind}`, type: 'text', typeOid: 25, notNull: false })),
    roles: r,
  };
}

type Raw = Buffer | string | null;
async function readRaw(s: TableSpec, pd: Pushdown = {}, opts: ReadOptions = {}): Promise<{ key: string; values: Raw[] }[]> {
  const rows: { key: string; values: Raw[] }[] = [];
  await readTable(client, s, pd, { row: (key, values) => rows.push({ key, values }) }, opts);
  return rows;
}
/** As the real sink would: Buffers must be valid text. */
async function read(s: TableSpec, pd: Pushdown = {}, opts: ReadOptions = {}): Promise<(string | null)[][]> {
  const rows: (string | null)[][] = [];
  await readTable(
    client,
    s,
    pd,
    { row: (key, values) => rows.push(values.map((v) => (Buffer.isBuffer(v) ? toText(v, key, s.table) : v))) },
    opts,
  );
  return rows;
}
async function readError(s: TableSpec, pd: Pushdown = {}, opts: ReadOptions = {}): Promise<PgError> {
  try {
    await read(s, pd, opts);
  } catch (e) {
    assert.ok(e instanceof PgError, `expected PgError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected an error');
}
const byFirst = (a: (string | null)[], b: (string | null)[]): number => String(a[0]).localeCompare(String(b[0]));

/** Records the commands Redis receives on our db (all clients) while `f` runs. */
async function monitored(f: () => Promise<void>): Promise<string[][]> {
  // A raw-socket MONITOR: ioredis's monitor() mistakes lines arriving with its +OK for replies when
  // other test files flood the server, and fails with "Command queue state error".
  const mon = await monitorRedis(env.redisUrl, Number(new URL(env.redisUrl).pathname.slice(1) || 0));
  const marker = `marker-${randomUUID()}`;
  try {
    await f();
    await redis.echo(marker);
    const deadline = Date.now() + 20_000;
    while (!mon.commands().some((c) => c[0] === 'ECHO' && c[1] === marker)) {
      if (Date.now() > deadline) throw new Error('MONITOR did not see the marker within 20 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    const all = mon.commands();
    return all.slice(0, all.findIndex((c) => c[0] === 'ECHO' && c[1] === marker));
  } finally {
    await mon.stop();
  }
}
const cmdsOn = (log: string[][], name: string, key: string): string[][] =>
  log.filter((a) => a[0]?.toLowerCase() === name && a[1] === key);

// ---------------------------------------------------------------------------------------------------------

describe('Supabase documentation examples', () => {
  before(async () => {
    const k = (s: string): string => P + 'doc:' + s;
    await redis.rpush(k('list'), 'foo', 'bar', '42');
    await redis.sadd(k('set'), 'foo', 'bar', '42');
    await redis.hset(k('hash'), 'foo', 'bar', 'baz', 'qux');
    await redis.zadd(k('zset'), 30, 'foo', 20, 'bar', 10, 'baz');
    await redis.xadd(k('stream'), '*', 'foo', 'bar');
    await redis.xadd(k('stream'), '*', 'aa', '42', 'bb', '43');
    await redis.rpush(k('list:100'), 'foo', 'bar');
    await redis.rpush(k('list:200'), 'baz');
    await redis.sadd(k('set:100'), 'foo');
    await redis.sadd(k('set:200'), 'bar');
    await redis.hset(k('hash:100'), 'foo', 'bar');
    await redis.hset(k('hash:200'), 'baz', 'qux');
    await redis.zadd(k('zset:100'), 10, 'foo', 20, 'bar');
    await redis.zadd(k('zset:200'), 40, 'baz', 30, 'qux');
  });

  test('list', async () => {
    assert.deepEqual(await read(spec('list', 'doc:list', ['element'])), [['foo'], ['bar'], ['42']]);
  });
  test('set', async () => {
    assert.deepEqual((await read(spec('set', 'doc:set', ['element']))).sort(byFirst), [['42'], ['bar'], ['foo']]);
  });
  test('hash (key, value)', async () => {
    assert.deepEqual(await read(spec('hash', 'doc:hash', ['field', 'value'])), [['foo', 'bar'], ['baz', 'qux']]);
  });
  test('zset: ascending score', async () => {
    assert.deepEqual(await read(spec('zset', 'doc:zset', ['element'])), [['baz'], ['bar'], ['foo']]);
  });
  test('stream (id, items)', async () => {
    const rows = await read(spec('stream', 'doc:stream', ['id', 'items']));
    assert.equal(rows.length, 2);
    assert.match(rows[0]![0]!, /^\d+-\d+$/);
    assert.deepEqual(rows.map((r) => r[1]), ['{"foo":"bar"}', '{"aa":"42","bb":"43"}']);
    assert.ok(rows[0]![0]! < rows[1]![0]! || rows[0]![0]!.length < rows[1]![0]!.length);
  });
  test('multi_list', async () => {
    const rows = (await read(spec('list', 'doc:list:*', ['key', 'items'], 'aggregate'))).sort(byFirst);
    assert.deepEqual(rows, [[`${P}doc:list:100`, '["foo","bar"]'], [`${P}doc:list:200`, '["baz"]']]);
  });
  test('multi_set', async () => {
    const rows = (await read(spec('set', 'doc:set:*', ['key', 'items'], 'aggregate'))).sort(byFirst);
    assert.deepEqual(rows, [[`${P}doc:set:100`, '["foo"]'], [`${P}doc:set:200`, '["bar"]']]);
  });
  test('multi_hash', async () => {
    const rows = (await read(spec('hash', 'doc:hash:*', ['key', 'items'], 'aggregate'))).sort(byFirst);
    assert.deepEqual(rows, [[`${P}doc:hash:100`, '{"foo":"bar"}'], [`${P}doc:hash:200`, '{"baz":"qux"}']]);
  });
  test('multi_zset: items in ascending score', async () => {
    const rows = (await read(spec('zset', 'doc:zset:*', ['key', 'items'], 'aggregate'))).sort(byFirst);
    assert.deepEqual(rows, [[`${P}doc:zset:100`, '["foo","bar"]'], [`${P}doc:zset:200`, '["qux","baz"]']]);
  });
  test('columns come out in declared order, roles not applicable are null', async () => {
    assert.deepEqual(await read(spec('hash', 'doc:hash', ['value', 'key', 'field', 'score'])), [
      ['bar', `${P}doc:hash`, 'foo', null],
      ['qux', `${P}doc:hash`, 'baz', null],
    ]);
    assert.deepEqual(await read(spec('zset', 'doc:zset', ['score', 'element', 'index'])), [['10', 'baz', null], ['20', 'bar', null], ['30', 'foo', null]]);
    assert.deepEqual(await read(spec('list', 'doc:list', ['index', 'element'])), [['0', 'foo'], ['1', 'bar'], ['2', '42']]);
  });
  test('redis_fdw_rs stream: one column per stream field', async () => {
    const rows = await read(spec('stream', 'doc:stream', ['id', { streamField: 'aa' }, { streamField: 'foo' }, { streamField: 'bb' }]));
    assert.deepEqual(rows.map((r) => r.slice(1)), [[null, 'bar', null], ['42', null, '43']]);
  });
});

describe('missing and empty keys give no rows', () => {
  const types: RedisType[] = ['hash', 'list', 'set', 'zset', 'stream', 'string'];
  for (const t of types) {
    test(`${t}: missing key`, async () => {
      assert.deepEqual(await read(spec(t, `missing:${t}`, ['key', 'element', 'value'])), []);
    });
  }
  test('missing key with pushdowns', async () => {
    assert.deepEqual(await read(spec('hash', 'missing:h', ['field', 'value']), { fields: ['a', 'b'] }), []);
    assert.deepEqual(await read(spec('zset', 'missing:z', ['element']), { scoreMin: '0', scoreMax: '10' }), []);
    assert.deepEqual(await read(spec('stream', 'missing:s', ['id']), { idMin: '0-1', idMax: '+' }), []);
    assert.deepEqual(await read(spec('list', 'missing:*', ['key', 'items'], 'aggregate')), []);
    assert.deepEqual(await read(spec('list', 'missing:*', ['key', 'element'], 'rows'), { keys: [`${P}missing:1`] }), []);
  });
  test('an existing but empty stream', async () => {
    const k = `${P}empty:stream`;
    const id = await redis.xadd(k, '*', 'a', '1');
    await redis.xdel(k, id!);
    assert.equal(await redis.exists(k), 1);
    assert.deepEqual(await read(spec('stream', 'empty:stream', ['id', 'items'])), []);
  });
  test('string: GET', async () => {
    await redis.set(`${P}str`, 'hello');
    assert.deepEqual(await read(spec('string', 'str', ['key', 'value'])), [[`${P}str`, 'hello']]);
  });
  test('limit 0 reads nothing', async () => {
    await redis.rpush(`${P}lim0`, 'a');
    const log = await monitored(async () => {
      assert.deepEqual(await read(spec('list', 'lim0', ['element']), { limit: 0 }), []);
    });
    assert.equal(cmdsOn(log, 'lrange', `${P}lim0`).length, 0);
  });
});

describe('large keys are read in batches', () => {
  test('hash with 100,000 fields: HSCAN pages, every field once', async () => {
    const k = `${P}big:hash`;
    for (let start = 0; start < 100_000; start += 10_000) {
      const args: string[] = [];
      for (let i = start; i < start + 10_000; i++) args.push(`f${i}`, `v${i}`);
      await redis.hset(k, ...args);
    }
    let rows: (string | null)[][] = [];
    const log = await monitored(async () => {
      rows = await read(spec('hash', 'big:hash', ['field', 'value']), {}, { batchSize: 1000 });
    });
    assert.equal(rows.length, 100_000);
    const fields = new Set(rows.map((r) => r[0]));
    assert.equal(fields.size, 100_000);
    for (const [f, v] of rows) assert.equal(v, `v${f!.slice(1)}`);
    const scans = cmdsOn(log, 'hscan', k);
    assert.ok(scans.length >= 50, `only ${scans.length} HSCAN calls`);
    for (const s of scans) assert.deepEqual(s.slice(3), ['COUNT', '1000']);
    assert.equal(cmdsOn(log, 'hgetall', k).length, 0);
  });

  test('default pages: a first page of DEFAULT_FIRST_PAGE, then DEFAULT_KEY_BATCH', async () => {
    const fits = await monitored(async () => {
      const rows = await read(spec('hash', 'big:hash', ['field', 'value']));
      assert.equal(new Set(rows.map((r) => r[0])).size, 100_000);
      assert.equal(rows.length, 100_000);
    });
    assert.deepEqual(cmdsOn(fits, 'hscan', `${P}big:hash`)[0]!.slice(3), ['COUNT', String(DEFAULT_FIRST_PAGE)]);
    const k = `${P}big:hash130k`;
    for (let start = 0; start < 130_000; start += 10_000) {
      const args: string[] = [];
      for (let i = start; i < start + 10_000; i++) args.push(`f${i}`, `v${i}`);
      await redis.hset(k, ...args);
    }
    let rows: (string | null)[][] = [];
    const log = await monitored(async () => {
      rows = await read(spec('hash', 'big:hash130k', ['field', 'value']));
    });
    await redis.unlink(k);
    assert.equal(new Set(rows.map((r) => r[0])).size, 130_000);
    assert.equal(rows.length, 130_000);
    const scans = cmdsOn(log, 'hscan', k);
    assert.ok(scans.length >= 2, `${scans.length} HSCAN calls`);
    assert.deepEqual(scans[0]!.slice(3), ['COUNT', String(DEFAULT_FIRST_PAGE)]);
    for (const s of scans.slice(1)) assert.deepEqual(s.slice(3), ['COUNT', String(DEFAULT_KEY_BATCH)]);
  });

  test('list with 50,000 elements: LRANGE windows of 1000, list order, indexes', async () => {
    const k = `${P}big:list`;
    for (let start = 0; start < 50_000; start += 10_000) {
      await redis.rpush(k, ...Array.from({ length: 10_000 }, (_, i) => `e${start + i}`));
    }
    let rows: (string | null)[][] = [];
    const log = await monitored(async () => {
      rows = await read(spec('list', 'big:list', ['index', 'element']), {}, { batchSize: 1000 });
    });
    assert.equal(rows.length, 50_000);
    rows.forEach((r, i) => assert.deepEqual(r, [String(i), `e${i}`]));
    const windows = cmdsOn(log, 'lrange', k);
    assert.ok(windows.length === 50 || windows.length === 51, `${windows.length} LRANGE calls`);
    for (const w of windows) assert.equal(Number(w[3]) - Number(w[2]), 999);
  });

  test('set with 20,000 members: SSCAN pages, each member once', async () => {
    const k = `${P}big:set`;
    await redis.sadd(k, ...Array.from({ length: 20_000 }, (_, i) => `m${i}`));
    let rows: (string | null)[][] = [];
    const log = await monitored(async () => {
      rows = await read(spec('set', 'big:set', ['element']), {}, { batchSize: 1000 });
    });
    assert.equal(new Set(rows.map((r) => r[0])).size, 20_000);
    assert.equal(rows.length, 20_000);
    assert.ok(cmdsOn(log, 'sscan', k).length >= 10);
  });

  test('zset with 20,000 members and many ties: ascending (score, member), ZRANGE windows', async () => {
    const k = `${P}big:zset`;
    const args: string[] = [];
    for (let i = 0; i < 20_000; i++) args.push(String(Math.floor(i / 7) / 2), `m${i}`);
    await redis.zadd(k, ...args);
    const expected = await redis.zrange(k, '0', '-1', 'WITHSCORES');
    let rows: (string | null)[][] = [];
    const log = await monitored(async () => {
      rows = await read(spec('zset', 'big:zset', ['element', 'score']), {}, { batchSize: 1000 });
    });
    assert.deepEqual(rows.flat(), expected);
    assert.equal(cmdsOn(log, 'zrange', k).length, 21);
  });

  test('stream with 5,000 entries: XRANGE pages in id order', async () => {
    const k = `${P}big:stream`;
    const pipe = redis.pipeline();
    for (let i = 1; i <= 5000; i++) pipe.xadd(k, `1000-${i}`, 'n', String(i));
    pipe.xadd(k, '1001-0', 'n', 'last');
    await pipe.exec();
    let rows: (string | null)[][] = [];
    const log = await monitored(async () => {
      rows = await read(spec('stream', 'big:stream', ['id', { streamField: 'n' }]), {}, { batchSize: 1000 });
    });
    assert.equal(rows.length, 5001);
    rows.slice(0, 5000).forEach((r, i) => assert.deepEqual(r, [`1000-${i + 1}`, String(i + 1)]));
    assert.deepEqual(rows[5000], ['1001-0', 'last']);
    const pages = cmdsOn(log, 'xrange', k);
    assert.equal(pages.length, 6);
    assert.deepEqual(pages[1]!.slice(2), ['1000-1001', '+', 'COUNT', '1000']);
  });

  test('small batch size pages through everything too', async () => {
    const rows = await read(spec('hash', 'big:hash', ['field']), {}, { batchSize: 7 });
    assert.equal(new Set(rows.map((r) => r[0])).size, 100_000);
  });
});

describe('values come through unchanged', () => {
  const tricky = [
    "it's", 'say "hi"', 'back\\slash', 'line\nbreak\r\n', '$$', '$tag$ x $tag$', '{"a": 1, "b": [true, null]}',
    '[1,2,3]', 'null', '', ' lead and trail ', 'tab\there', 'Ωμέγα', '中文字符', '😀👍🏽', 'e\u0301', '\u2028\u2029',
    "'); DROP TABLE x; --", 'x'.repeat(100_000),
  ];

  test('list elements: raw bytes to the sink', async () => {
    const k = `${P}tricky:list`;
    await redis.rpush(k, ...tricky);
    const rows = await readRaw(spec('list', 'tricky:list', ['element']));
    assert.deepEqual(rows.map((r) => (r.values[0] as Buffer).toString('utf8')), tricky);
    for (const r of rows) assert.ok(Buffer.isBuffer(r.values[0]));
  });

  test('hash fields and values', async () => {
    const k = `${P}tricky:hash`;
    const args: string[] = [];
    tricky.forEach((v, i) => args.push(`${v}#${i}`, v));
    await redis.hset(k, ...args);
    const rows = await read(spec('hash', 'tricky:hash', ['field', 'value']));
    const cmp = (a: (string | null)[], b: (string | null)[]): number => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : 0);
    assert.deepEqual(rows.sort(cmp), tricky.map((v, i) => [`${v}#${i}`, v]).sort(cmp));
  });

  test('multi_list / multi_hash / multi_set / multi_zset JSON items decode to the same strings', async () => {
    await redis.rpush(`${P}tj:list:1`, ...tricky);
    const obj: Record<string, string> = {};
    tricky.forEach((v, i) => (obj[`${v}#${i}`] = v));
    await redis.hset(`${P}tj:hash:1`, obj);
    await redis.sadd(`${P}tj:set:1`, ...tricky);
    await redis.zadd(`${P}tj:zset:1`, ...tricky.flatMap((v, i) => [String(i), v]));
    const listItems = (await read(spec('list', 'tj:list:*', ['key', 'items'], 'aggregate')))[0]![1]!;
    assert.deepEqual(JSON.parse(listItems), tricky);
    const hashItems = (await read(spec('hash', 'tj:hash:*', ['key', 'items'], 'aggregate')))[0]![1]!;
    assert.deepEqual(JSON.parse(hashItems), obj);
    const setItems = (await read(spec('set', 'tj:set:*', ['key', 'items'], 'aggregate')))[0]![1]!;
    assert.deepEqual((JSON.parse(setItems) as string[]).sort(), [...tricky].sort());
    const zsetItems = (await read(spec('zset', 'tj:zset:*', ['key', 'items'], 'aggregate')))[0]![1]!;
    assert.deepEqual(JSON.parse(zsetItems), tricky);
  });

  test('stream items JSON', async () => {
    const k = `${P}tricky:stream`;
    const fields = tricky.slice(0, 10).flatMap((v, i) => [`f${i}${v}`, v]);
    await redis.xadd(k, '1-1', ...fields);
    const items = (await read(spec('stream', 'tricky:stream', ['id', 'items'])))[0]![1]!;
    const expected: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) expected[fields[i]!] = fields[i + 1]!;
    assert.deepEqual(JSON.parse(items), expected);
    assert.deepEqual(Object.keys(JSON.parse(items)), Object.keys(expected));
  });

  test('stream items: numeric-looking field names keep entry order; a repeated field keeps its last value', async () => {
    const k = `${P}order:stream`;
    await redis.xadd(k, '1-1', 'b', '1', '10', '2', '2', '3', 'b', '4');
    const items = (await read(spec('stream', 'order:stream', ['id', 'items'])))[0]![1]!;
    assert.equal(items, '{"b":"4","10":"2","2":"3"}');
  });

  test('Unicode key names and patterns', async () => {
    await redis.rpush(`${P}ключ:один`, 'значение');
    await redis.rpush(`${P}ключ:два`, '值');
    const rows = (await read(spec('list', 'ключ:*', ['key', 'items'], 'aggregate'))).sort(byFirst);
    assert.deepEqual(rows, [[`${P}ключ:два`, '["值"]'], [`${P}ключ:один`, '["значение"]']]);
  });

  test('invalid UTF-8 reaches the sink as raw bytes (the sink decides)', async () => {
    const k = `${P}bin:list`;
    const bin = Buffer.from([0x61, 0xff, 0xfe, 0x00, 0x62]);
    await redis.rpush(k, bin);
    const rows = await readRaw(spec('list', 'bin:list', ['element']));
    assert.ok((rows[0]!.values[0] as Buffer).equals(bin));
    const err = await readError(spec('list', 'bin:list', ['element']));
    assert.equal(err.code, '22021');
    assert.equal(err.message, `invalid byte sequence for encoding "UTF8" in Redis key "${k}" of foreign table redis.t`);
  });

  test('invalid UTF-8 in JSON items: 22021 naming the key', async () => {
    await redis.rpush(`${P}badj:list:1`, 'ok', Buffer.from([0xc3, 0x28]));
    let err = await readError(spec('list', 'badj:list:*', ['key', 'items'], 'aggregate', 'redis.multi_lists'));
    assert.equal(err.code, '22021');
    assert.equal(err.message, `invalid byte sequence for encoding "UTF8" in Redis key "${P}badj:list:1" of foreign table redis.multi_lists`);

    await redis.hset(`${P}badj:hash:1`, Buffer.from([0xff]), 'v');
    err = await readError(spec('hash', 'badj:hash:*', ['key', 'items'], 'aggregate'));
    assert.equal(err.code, '22021');
    assert.match(err.message, new RegExp(`Redis key "${P}badj:hash:1"`));

    await redis.xadd(`${P}badj:stream`, '1-1', 'f', Buffer.from([0xe2, 0x82]));
    err = await readError(spec('stream', 'badj:stream', ['id', 'items']));
    assert.equal(err.code, '22021');
    assert.match(err.message, new RegExp(`Redis key "${P}badj:stream"`));
  });

  test('NUL byte in JSON items: 22021 saying NUL', async () => {
    await redis.sadd(`${P}nul:set:1`, Buffer.from('a\0b'));
    const err = await readError(spec('set', 'nul:set:*', ['key', 'items'], 'aggregate'));
    assert.equal(err.code, '22021');
    assert.match(err.message, /NUL byte/);
    assert.match(err.message, new RegExp(`Redis key "${P}nul:set:1"`));
  });
});

describe('wrong type', () => {
  before(async () => {
    await redis.rpush(`${P}wt:list`, 'a');
    await redis.hset(`${P}wt:hash`, 'a', '1');
  });
  const cases: Array<[RedisType, string, string]> = [
    ['hash', 'wt:list', 'list'],
    ['list', 'wt:hash', 'hash'],
    ['set', 'wt:hash', 'hash'],
    ['zset', 'wt:list', 'list'],
    ['stream', 'wt:list', 'list'],
    ['string', 'wt:hash', 'hash'],
  ];
  for (const [type, key, actual] of cases) {
    test(`${type} table over a ${actual}: 42809 naming key, table and actual type`, async () => {
      const err = await readError(spec(type, key, ['element'], 'none', 'redis.wrong'));
      assert.equal(err.code, '42809');
      assert.equal(err.message, `Redis key "${P}${key}" holds a ${actual}, but foreign table redis.wrong reads a ${type}`);
    });
  }
  test('with pushdowns too', async () => {
    assert.equal((await readError(spec('hash', 'wt:list', ['field']), { fields: ['a'] })).code, '42809');
    assert.equal((await readError(spec('zset', 'wt:list', ['element']), { scoreMin: '1' })).code, '42809');
    assert.equal((await readError(spec('stream', 'wt:list', ['id']), { idMin: '1-0' })).code, '42809');
  });
});

describe('multi-key tables', () => {
  const N = 20_000;
  before(async () => {
    for (let start = 0; start < N; start += 5000) {
      const pipe = redis.pipeline();
      for (let i = start; i < start + 5000; i++) pipe.rpush(`${P}many:${i}`, `x${i}`, `y${i}`);
      await pipe.exec();
    }
    const pipe = redis.pipeline();
    for (let i = 0; i < 300; i++) pipe.hset(`${P}many:h${i}`, 'f', 'v');
    for (let i = 0; i < 200; i++) pipe.set(`${P}many:s${i}`, 'v');
    await pipe.exec();
  });

  test(`aggregate over ${N} lists, other types under the pattern skipped`, async () => {
    const t0 = Date.now();
    const rows = await read(spec('list', 'many:*', ['key', 'items'], 'aggregate'));
    const ms = Date.now() - t0;
    assert.equal(rows.length, N);
    const byKey = new Map(rows.map((r) => [r[0], r[1]]));
    assert.equal(byKey.size, N);
    for (let i = 0; i < N; i += 997) assert.equal(byKey.get(`${P}many:${i}`), `["x${i}","y${i}"]`);
    assert.ok(ms < 15_000, `took ${ms} ms`);
  });

  test('rows mode: one row per element with its key', async () => {
    const rows = await read(spec('list', 'many:*', ['key', 'element', 'index'], 'rows'));
    assert.equal(rows.length, 2 * N);
    const one = rows.filter((r) => r[0] === `${P}many:123`);
    assert.deepEqual(one, [[`${P}many:123`, 'x123', '0'], [`${P}many:123`, 'y123', '1']]);
  });

  test('hash aggregate picks only the hashes', async () => {
    const rows = await read(spec('hash', 'many:*', ['key', 'items'], 'aggregate'));
    assert.equal(rows.length, 300);
    for (const r of rows) assert.equal(r[1], '{"f":"v"}');
  });

  test('keys pushdown: only existing keys of the type that match the pattern, in the order given, once', async () => {
    await redis.rpush(`${P}other:1`, 'z');
    const keys = [`${P}many:5`, `${P}many:5`, `${P}many:h1`, `${P}many:missing`, `${P}other:1`, `${P}many:3`];
    let rows: (string | null)[][] = [];
    const log = await monitored(async () => {
      rows = await read(spec('list', 'many:*', ['key', 'items'], 'aggregate'), { keys });
    });
    assert.deepEqual(rows, [[`${P}many:5`, '["x5","y5"]'], [`${P}many:3`, '["x3","y3"]']]);
    assert.equal(log.filter((a) => a[0]?.toLowerCase() === 'scan').length, 0, 'no SCAN');
    assert.equal(cmdsOn(log, 'lrange', `${P}other:1`).length, 0, 'non-matching key not even read');
    assert.deepEqual(await read(spec('list', 'many:*', ['key', 'element'], 'rows'), { keys: [`${P}many:7`] }), [
      [`${P}many:7`, 'x7'], [`${P}many:7`, 'y7'],
    ]);
    assert.deepEqual(await read(spec('list', 'many:*', ['key', 'items'], 'aggregate'), { keys: [] }), []);
  });

  test('a pattern with no glob characters reads that one key without SCAN', async () => {
    let rows: (string | null)[][] = [];
    const log = await monitored(async () => {
      rows = await read(spec('list', 'many:42', ['key', 'items'], 'aggregate'));
    });
    assert.deepEqual(rows, [[`${P}many:42`, '["x42","y42"]']]);
    assert.equal(log.filter((a) => a[0]?.toLowerCase() === 'scan').length, 0);
  });

  test('glob classes: many:1[0-2]? matches 100..129', async () => {
    const rows = await read(spec('list', 'many:1[0-2]?', ['key'], 'aggregate'));
    assert.deepEqual(rows.map((r) => r[0]).sort(), Array.from({ length: 30 }, (_, i) => `${P}many:${100 + i}`).sort());
  });

  test('limit stops the SCAN early', async () => {
    let rows: (string | null)[][] = [];
    const log = await monitored(async () => {
      rows = await read(spec('list', 'many:*', ['key', 'items'], 'aggregate'), { limit: 10 });
    });
    assert.equal(rows.length, 10);
    assert.ok(log.filter((a) => a[0]?.toLowerCase() === 'scan' && a[3] === `${P}many:*`).length <= 2);
    const r2 = await read(spec('list', 'many:*', ['key', 'element'], 'rows'), { limit: 3 });
    assert.equal(r2.length, 3);
  });

  test('rows mode for hashes and zsets, with per-key pushdowns', async () => {
    await redis.hset(`${P}mh:1`, 'a', '1', 'b', '2', 'c', '3');
    await redis.hset(`${P}mh:2`, 'b', '20');
    await redis.zadd(`${P}mz:1`, 1, 'one', 2, 'two', 3, 'three');
    await redis.zadd(`${P}mz:2`, 2, 'deux');
    const h = (await read(spec('hash', 'mh:*', ['key', 'field', 'value'], 'rows'), { fields: ['b', 'c'] })).sort(byFirst);
    assert.deepEqual(h, [[`${P}mh:1`, 'b', '2'], [`${P}mh:1`, 'c', '3'], [`${P}mh:2`, 'b', '20']]);
    const z = (await read(spec('zset', 'mz:*', ['key', 'element', 'score'], 'rows'), { scoreMin: '2', scoreMax: '2' })).sort(byFirst);
    assert.deepEqual(z, [[`${P}mz:1`, 'two', '2'], [`${P}mz:2`, 'deux', '2']]);
  });

  test('a big key inside a multi table is paged too', async () => {
    await redis.rpush(`${P}mbig:1`, ...Array.from({ length: 2500 }, (_, i) => String(i)));
    await redis.rpush(`${P}mbig:2`, 'a');
    const rows = (await read(spec('list', 'mbig:*', ['key', 'items'], 'aggregate'))).sort(byFirst);
    assert.deepEqual(JSON.parse(rows[0]![1]!), Array.from({ length: 2500 }, (_, i) => String(i)));
    assert.equal(rows[1]![1], '["a"]');
    const r = await read(spec('list', 'mbig:*', ['key', 'element'], 'rows'));
    assert.equal(r.length, 2501);
  });

  test('stream and string rows mode', async () => {
    await redis.xadd(`${P}ms:1`, '5-1', 'a', '1');
    await redis.xadd(`${P}ms:2`, '6-1', 'a', '2');
    const s = (await read(spec('stream', 'ms:*', ['key', 'id', { streamField: 'a' }], 'rows'))).sort(byFirst);
    assert.deepEqual(s, [[`${P}ms:1`, '5-1', '1'], [`${P}ms:2`, '6-1', '2']]);
    await redis.set(`${P}mstr:1`, 'one');
    await redis.set(`${P}mstr:2`, 'two');
    const t = (await read(spec('string', 'mstr:*', ['key', 'value'], 'rows'))).sort(byFirst);
    assert.deepEqual(t, [[`${P}mstr:1`, 'one'], [`${P}mstr:2`, 'two']]);
  });

  test('aggregate over streams or strings is refused (0A000)', async () => {
    assert.equal((await readError(spec('stream', 'ms:*', ['key', 'items'], 'aggregate'))).code, '0A000');
  });
});

describe('pushdown', () => {
  before(async () => {
    const args: string[] = [];
    for (let i = 0; i < 2500; i++) args.push(`f${i}`, `v${i}`);
    await redis.hset(`${P}pd:hash`, ...args);
    await redis.zadd(`${P}pd:zset`, 10, 'a', 20, 'b', 20, 'b2', 30, 'c', '+inf', 'top', '-inf', 'bottom', 1.5, 'x');
    const pipe = redis.pipeline();
    for (let i = 1; i <= 20; i++) pipe.xadd(`${P}pd:stream`, `${i}-0`, 'i', String(i));
    await pipe.exec();
    await redis.rpush(`${P}pd:list`, ...Array.from({ length: 50 }, (_, i) => `e${i}`));
  });

  test('hash fields: HMGET of just those, in the order given, deduplicated, missing skipped', async () => {
    let rows: (string | null)[][] = [];
    const log = await monitored(async () => {
      rows = await read(spec('hash', 'pd:hash', ['field', 'value']), { fields: ['f7', 'nope', 'f3', 'f7', 'f2499'] });
    });
    assert.deepEqual(rows, [['f7', 'v7'], ['f3', 'v3'], ['f2499', 'v2499']]);
    assert.equal(cmdsOn(log, 'hscan', `${P}pd:hash`).length, 0);
    assert.deepEqual(cmdsOn(log, 'hmget', `${P}pd:hash`).map((a) => a.slice(2)), [['f7', 'nope', 'f3', 'f2499']]);
  });

  test('hash fields: many fields go in batches', async () => {
    const fields = Array.from({ length: 2600 }, (_, i) => `f${i}`);
    let rows: (string | null)[][] = [];
    const log = await monitored(async () => {
      rows = await read(spec('hash', 'pd:hash', ['field', 'value']), { fields });
    });
    assert.equal(rows.length, 2500);
    assert.deepEqual(rows[2499], ['f2499', 'v2499']);
    assert.equal(cmdsOn(log, 'hmget', `${P}pd:hash`).length, 3);
  });

  test('hash fields: an empty list reads nothing', async () => {
    assert.deepEqual(await read(spec('hash', 'pd:hash', ['field', 'value']), { fields: [] }), []);
  });

  test('zset score ranges', async () => {
    const z = spec('zset', 'pd:zset', ['element', 'score']);
    assert.deepEqual(await read(z, { scoreMin: '-inf', scoreMax: '+inf' }), [
      ['bottom', '-inf'], ['x', '1.5'], ['a', '10'], ['b', '20'], ['b2', '20'], ['c', '30'], ['top', 'inf'],
    ]);
    assert.deepEqual(await read(z, { scoreMin: '(10', scoreMax: '30' }), [['b', '20'], ['b2', '20'], ['c', '30']]);
    assert.deepEqual(await read(z, { scoreMin: '20', scoreMax: '(30' }), [['b', '20'], ['b2', '20']]);
    assert.deepEqual(await read(z, { scoreMin: '25' }), [['c', '30'], ['top', 'inf']]);
    assert.deepEqual(await read(z, { scoreMax: '1.5' }), [['bottom', '-inf'], ['x', '1.5']]);
    assert.deepEqual(await read(z, { scoreMin: '40', scoreMax: '50' }), []);
    assert.deepEqual(await read(z, { scoreMin: '20', scoreMax: '20' }, { batchSize: 1 }), [['b', '20'], ['b2', '20']]);
  });

  test('zset score range paged across long runs of equal scores', async () => {
    const k = `${P}pd:ties`;
    const args: string[] = [];
    for (let i = 0; i < 95; i++) args.push(i < 35 ? '1' : i < 80 ? '2' : '3', `m${String(i).padStart(3, '0')}`);
    await redis.zadd(k, ...args);
    const expected = await redis.zrangebyscore(k, '1', '3', 'WITHSCORES');
    for (const batch of [1, 7, 10, 35, 1000]) {
      const rows = await read(spec('zset', 'pd:ties', ['element', 'score']), { scoreMin: '1', scoreMax: '3' }, { batchSize: batch });
      assert.deepEqual(rows.flat(), expected, `batch ${batch}`);
    }
    const rows = await read(spec('zset', 'pd:ties', ['element']), { scoreMin: '(1', scoreMax: '2' }, { batchSize: 10 });
    assert.equal(rows.length, 45);
  });

  test('stream id ranges', async () => {
    const s = spec('stream', 'pd:stream', ['id', { streamField: 'i' }]);
    const ids = async (pd: Pushdown, opts?: ReadOptions): Promise<string[]> => (await read(s, pd, opts)).map((r) => r[0]!);
    assert.deepEqual(await ids({ idMin: '5-0', idMax: '8-0' }), ['5-0', '6-0', '7-0', '8-0']);
    assert.deepEqual(await ids({ idMin: '18' }), ['18-0', '19-0', '20-0']);
    assert.deepEqual(await ids({ idMax: '2-0' }), ['1-0', '2-0']);
    assert.deepEqual(await ids({ idMin: '5-0', idMax: '12-0' }, { batchSize: 3 }), ['5-0', '6-0', '7-0', '8-0', '9-0', '10-0', '11-0', '12-0']);
    assert.deepEqual(await ids({ idMin: '(5-0', idMax: '(8-0' }), ['6-0', '7-0']);
    assert.deepEqual(await ids({ idMin: '30-0' }), []);
    assert.deepEqual(await ids({}, { batchSize: 6 }), Array.from({ length: 20 }, (_, i) => `${i + 1}-0`));
  });

  test('nextStreamId', () => {
    assert.equal(nextStreamId('5-0'), '5-1');
    assert.equal(nextStreamId('5-18446744073709551615'), '6-0');
    assert.equal(nextStreamId('18446744073709551615-18446744073709551615'), undefined);
  });

  test('limit stops reading: one small window only', async () => {
    let rows: (string | null)[][] = [];
    const log = await monitored(async () => {
      rows = await read(spec('list', 'pd:list', ['element']), { limit: 5 });
    });
    assert.deepEqual(rows, [['e0'], ['e1'], ['e2'], ['e3'], ['e4']]);
    assert.deepEqual(cmdsOn(log, 'lrange', `${P}pd:list`).map((a) => a.slice(2)), [['0', '4']]);

    assert.equal((await read(spec('hash', 'pd:hash', ['field']), { limit: 10 })).length, 10);
    assert.deepEqual(await read(spec('zset', 'pd:zset', ['element']), { limit: 2 }), [['bottom'], ['x']]);
    assert.deepEqual(await read(spec('zset', 'pd:zset', ['element']), { limit: 1, scoreMin: '15' }), [['b']]);
    assert.deepEqual(await read(spec('stream', 'pd:stream', ['id']), { limit: 2, idMin: '10-0' }), [['10-0'], ['11-0']]);
    assert.equal((await read(spec('set', 'big:set', ['element']), { limit: 1 })).length, 1);
  });
});

describe('explainRead and cancellation', () => {
  test('explain lists the commands', () => {
    assert.deepEqual(explainRead(spec('hash', 'h', ['field', 'value']), { fields: ['a', 'b'] }), [`HMGET ${P}h a b (1000 fields per command)`]);
    assert.deepEqual(explainRead(spec('list', 'l', ['element']), { limit: 5 }), [`LRANGE ${P}l 0 4 (repeated page by page)`, 'stops after 5 row(s)']);
    const multi = explainRead(spec('set', 's:*', ['key', 'items'], 'aggregate'), {});
    assert.match(multi[0]!, new RegExp(`^SCAN 0 MATCH ${P}s:\\* COUNT 1000 TYPE set`));
    assert.match(multi[1]!, /SSCAN <key> 0 COUNT 1000/);
  });

  test('an aborted signal stops the read with 57014', async () => {
    const ac = new AbortController();
    ac.abort();
    const err = await readError(spec('list', 'pd:list', ['element']), {}, { signal: ac.signal });
    assert.equal(err.code, '57014');
  });
});
