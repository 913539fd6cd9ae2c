/**
 * Every example of Supabase Wrappers' Redis doc (shared/seeds/supabase-wrappers-redis.md), run through
 * the proxy with psql, compared with the documented output. Set and multi_* order is Redis's own
 * (the doc says so), so those are compared as sets of rows.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fdwFixture, sortedLines, type FdwFixture } from '../support/fdw.js';
import { REDIS_DB } from '../support/redis-dbs.js';

let f: FdwFixture;

before(async () => {
  f = await fdwFixture('seeds_supabase', REDIS_DB.seedsSupabase);
  const r = f.redis;
  await r.rpush('list', 'foo', 'bar', '42');
  await r.sadd('set', 'foo', 'bar', '42');
  await r.hset('hash', 'foo', 'bar', 'baz', 'qux');
  await r.zadd('zset', 30, 'foo', 20, 'bar', 10, 'baz');
  await r.xadd('stream', '1704343825989-0', 'foo', 'bar');
  await r.xadd('stream', '1704343829799-0', 'aa', '42', 'bb', '43');
  await r.rpush('list:100', 'foo', 'bar');
  await r.rpush('list:200', 'baz');
  await r.sadd('set:100', 'foo');
  await r.sadd('set:200', 'bar');
  await r.hset('hash:100', 'foo', 'bar');
  await r.hset('hash:200', 'baz', 'qux');
  await r.zadd('zset:100', 10, 'foo', 20, 'bar');
  await r.zadd('zset:200', 40, 'baz', 30, 'qux');
  const setup = await f.psql(
    `create extension if not exists wrappers with schema extensions;
     create foreign data wrapper redis_wrapper handler redis_fdw_handler validator redis_fdw_validator;
     create server redis_server foreign data wrapper redis_wrapper options (conn_url '${f.redisUrl}');
     create schema if not exists redis;`,
  );
  assert.doesNotMatch(setup, /ERROR/, setup);
});

after(() => f?.close());

const table = (name: string, cols: string, type: string, key: string): string =>
  `create foreign table redis.${name} (${cols}) server redis_server options (src_type '${type}', src_key '${key}');`;

describe('Supabase redis_fdw doc examples', () => {
  it('list', async () => {
    assert.match(await f.psql(table('list', 'element text', 'list', 'list')), /CREATE FOREIGN TABLE/);
    assert.equal(await f.psql('select * from redis.list;'), ' element \n---------\n foo\n bar\n 42\n(3 rows)\n\n');
  });

  it('set', async () => {
    await f.psql(table('set', 'element text', 'set', 'set'));
    const out = await f.psql('select * from redis.set;');
    assert.match(out, /^ element \n---------\n/);
    assert.match(out, /\(3 rows\)/);
    assert.deepEqual(sortedLines(await f.psql('select * from redis.set;', ['-At'])), ['42', 'bar', 'foo']);
  });

  it('hash', async () => {
    await f.psql(table('hash', 'key text, value text', 'hash', 'hash'));
    assert.equal(await f.psql('select * from redis.hash;'), ' key | value \n-----+-------\n foo | bar\n baz | qux\n(2 rows)\n\n');
  });

  it('sorted set', async () => {
    await f.psql(table('zset', 'element text', 'zset', 'zset'));
    assert.equal(await f.psql('select * from redis.zset;'), ' element \n---------\n baz\n bar\n foo\n(3 rows)\n\n');
  });

  it('stream', async () => {
    await f.psql(table('stream', 'id text, items jsonb', 'stream', 'stream'));
    assert.equal(
      await f.psql('select * from redis.stream;'),
      '       id        |          items           \n' +
        '-----------------+--------------------------\n' +
        ' 1704343825989-0 | {"foo": "bar"}\n' +
        ' 1704343829799-0 | {"aa": "42", "bb": "43"}\n' +
        '(2 rows)\n\n',
    );
  });

  it('multi_list', async () => {
    await f.psql(table('multi_lists', 'key text, items jsonb', 'multi_list', 'list:*'));
    assert.deepEqual(sortedLines(await f.psql('select * from redis.multi_lists;', ['-At'])), ['list:100|["foo", "bar"]', 'list:200|["baz"]']);
  });

  it('multi_set', async () => {
    await f.psql(table('multi_sets', 'key text, items jsonb', 'multi_set', 'set:*'));
    assert.deepEqual(sortedLines(await f.psql('select * from redis.multi_sets;', ['-At'])), ['set:100|["foo"]', 'set:200|["bar"]']);
  });

  it('multi_hash', async () => {
    await f.psql(table('multi_hashes', 'key text, items jsonb', 'multi_hash', 'hash:*'));
    assert.deepEqual(sortedLines(await f.psql('select * from redis.multi_hashes;', ['-At'])), ['hash:100|{"foo": "bar"}', 'hash:200|{"baz": "qux"}']);
  });

  it('multi_zset', async () => {
    await f.psql(table('multi_zsets', 'key text, items jsonb', 'multi_zset', 'zset:*'));
    assert.deepEqual(sortedLines(await f.psql('select * from redis.multi_zsets;', ['-At'])), ['zset:100|["foo", "bar"]', 'zset:200|["qux", "baz"]']);
  });

  it('psql \\det and \\des show the objects', async () => {
    const det = await f.psql('\\det redis.*');
    for (const t of ['list', 'set', 'hash', 'zset', 'stream']) assert.match(det, new RegExp(`redis +\\| ${t} +\\| redis_server`));
    assert.match(await f.psql('\\des+'), /redis_server .*redis_wrapper/);
  });

  it('a client that bypasses the proxy gets a clear error, never wrong data', async () => {
    const { psql } = await import('../support/fdw.js');
    assert.match(await psql(f.directUrl, 'select * from redis.hash'), /has no handler/);
  });
});

describe('COPY from a query over foreign tables', () => {
  it('COPY (SELECT ...) TO STDOUT and \\copy return the rows (COPY takes no parameters)', async () => {
    assert.equal(await f.psql("copy (select key, value from redis.hash order by key) to stdout"), 'baz\tqux\nfoo\tbar\n');
    assert.equal(await f.psql("\\copy (select element from redis.list) to stdout with (format csv)"), 'foo\nbar\n42\n');
  });

  it('the rows travel in transaction-local settings that do not outlive the statement', async () => {
    // Two -c options are two queries, so two transactions, on one connection.
    const out = await f.psql("select coalesce(current_setting('redis_fdw_proxy.rows1', true), '') = '' as gone", ['-c', 'copy (select count(*) from redis.zset) to stdout']);
    assert.match(out, /^3\n/);
    assert.match(out, /\bt\n/);
  });
});
