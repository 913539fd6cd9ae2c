/**
 * The redis_fdw_rs README (shared/seeds/redis_fdw_rs-README.md) through the proxy: its DDL as written
 * (CREATE EXTENSION, a wrapper with HANDLER only, server host_port, user mapping password, table options
 * database/table_type/table_key_prefix), and SELECTs of data loaded straight into Redis (INSERT is not
 * relied upon). Beyond the README's hash and list: set, zset, string, stream, glob prefixes, and
 * declared column types.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { fdwFixture, sortedLines, type FdwFixture } from '../support/fdw.js';
import { bag, connect, pgError, rows } from '../support/fdw-sql.js';
import { startRedis, type RedisInstance } from '../harness/servers.js';
import { Redis } from 'ioredis';
import { REDIS_DB } from '../support/redis-dbs.js';

let f: FdwFixture;
let c: pg.Client;
let secured: RedisInstance | undefined;
const DB = REDIS_DB.seedsRs;

before(async () => {
  f = await fdwFixture('seeds_rs', DB);
  c = await connect(f.url);
  const r = f.redis;
  await r.hset('user:profiles', 'name', 'John Doe');
  await r.hset('user:profiles', 'email', 'john@example.com');
  await r.rpush('tasks:pending', 'Process invoice #123', 'Send welcome email');
});

after(async () => {
  await c?.end().catch(() => {});
  await secured?.stop();
  await f?.close();
});

const ddl = async (sql: string): Promise<void> => {
  await c.query(sql);
};

describe('redis_fdw_rs README examples', () => {
  it('CREATE EXTENSION redis_fdw_rs, a wrapper with HANDLER only, a host_port server', async () => {
    assert.match(await f.psql('CREATE EXTENSION redis_fdw_rs;'), /^CREATE EXTENSION/);
    assert.match(await f.psql('CREATE FOREIGN DATA WRAPPER redis_wrapper HANDLER redis_fdw_handler;'), /^CREATE FOREIGN DATA WRAPPER/);
    assert.match(
      await f.psql(`CREATE SERVER redis_server FOREIGN DATA WRAPPER redis_wrapper OPTIONS (host_port '${f.redisHostPort}');`),
      /^CREATE SERVER/,
    );
    // The wrapper is stored upstream without a handler, marked as ours.
    const w = await rows(c, `select fdwhandler::regproc::text, array_to_string(fdwoptions, ',') from pg_foreign_data_wrapper where fdwname = 'redis_wrapper'`);
    assert.deepEqual(w, [['-', 'handler=redis_fdw_handler']]);
  });

  it('hash table user_profiles reads the hash as (key, value)', async () => {
    const out = await f.psql(`CREATE FOREIGN TABLE user_profiles (key text, value text)
      SERVER redis_server OPTIONS (database '${DB}', table_type 'hash', table_key_prefix 'user:profiles');`);
    assert.match(out, /^CREATE FOREIGN TABLE/, out);
    // HSCAN of a small hash returns fields in insertion order.
    assert.equal(await f.psql('SELECT * FROM user_profiles;', ['-At']), 'name|John Doe\nemail|john@example.com\n');
    assert.equal(
      await f.psql('SELECT * FROM user_profiles;'),
      '  key  |      value       \n-------+------------------\n name  | John Doe\n email | john@example.com\n(2 rows)\n\n',
    );
  });

  it('list table task_queue keeps list order', async () => {
    await ddl(`CREATE FOREIGN TABLE task_queue (element text) SERVER redis_server
      OPTIONS (database '${DB}', table_type 'list', table_key_prefix 'tasks:pending')`);
    assert.equal(
      await f.psql('SELECT * FROM task_queue;'),
      '       element        \n----------------------\n Process invoice #123\n Send welcome email\n(2 rows)\n\n',
    );
  });

  it('Complex Queries: join with a Postgres table, COUNT(*), LIKE filter', async () => {
    await f.redis.hset('user:', 'email:1', 'a@x.org', 'email:2', 'b@x.org', 'name:1', 'Ann', 'user_7', 'seven', 'userX7', 'x');
    await f.redis.rpush('tasks:', 'Task 1', 'Task 2', 'Task 3');
    await ddl(`CREATE FOREIGN TABLE redis_hash_table (key text, value text) SERVER redis_server
      OPTIONS (database '${DB}', table_type 'hash', table_key_prefix 'user:')`);
    await ddl(`CREATE FOREIGN TABLE redis_list_table (element text) SERVER redis_server
      OPTIONS (database '${DB}', table_type 'list', table_key_prefix 'tasks:')`);
    await ddl(`CREATE TABLE users (id int, name text); INSERT INTO users VALUES (1, 'Ann'), (2, 'Bob'), (3, 'Cy')`);
    assert.deepEqual(
      await rows(c, `SELECT u.name, r.value as email FROM users u JOIN redis_hash_table r ON r.key = 'email:' || u.id ORDER BY u.id`),
      [['Ann', 'a@x.org'], ['Bob', 'b@x.org']],
    );
    assert.deepEqual(await rows(c, 'SELECT COUNT(*) as task_count FROM redis_list_table'), [['3']]);
    // LIKE's '_' is a wildcard: user_7 and userX7 both match.
    assert.deepEqual(bag(await rows(c, `SELECT * FROM redis_hash_table WHERE key LIKE 'user_%'`)), bag([['user_7', 'seven'], ['userX7', 'x']]));
  });
});

describe('password-protected Redis through a user mapping', () => {
  it('CREATE USER MAPPING FOR PUBLIC ... OPTIONS (password) is used to log in', async () => {
    secured = await startRedis({ password: 's3cr3t pass' });
    const sr = new Redis({ host: secured.host, port: secured.port, password: secured.password, db: 2 });
    await sr.hset('secure:h', 'k', 'v');
    await sr.rpush('secure:l', 'one', 'two');
    sr.disconnect();
    await ddl(`CREATE SERVER secured_server FOREIGN DATA WRAPPER redis_wrapper OPTIONS (host_port '${secured.host}:${secured.port}')`);
    await ddl(`CREATE FOREIGN TABLE secure_h (key text, value text) SERVER secured_server OPTIONS (database '2', table_type 'hash', table_key_prefix 'secure:h')`);
    await ddl(`CREATE FOREIGN TABLE secure_l (element text) SERVER secured_server OPTIONS (database '2', table_type 'list', table_key_prefix 'secure:l')`);

    // No mapping yet: Redis refuses (NOAUTH) and the proxy says it could not connect.
    const e = await pgError(c.query('SELECT * FROM secure_h'), 'select without a password');
    assert.equal(e.code, 'HV00N', e.all);
    assert.match(e.all, new RegExp(`${secured.host}:${secured.port}`));
    assert.doesNotMatch(e.all, /s3cr3t/, 'messages never contain the password');

    await ddl(`CREATE USER MAPPING FOR PUBLIC SERVER secured_server OPTIONS (password 's3cr3t pass')`);
    assert.deepEqual(await rows(c, 'SELECT * FROM secure_h'), [['k', 'v']]);
    assert.deepEqual(await rows(c, 'SELECT * FROM secure_l'), [['one'], ['two']]);
  });

  it("the current user's own mapping wins over PUBLIC's", async () => {
    await ddl(`ALTER USER MAPPING FOR PUBLIC SERVER secured_server OPTIONS (SET password 'wrong')`);
    const e = await pgError(c.query('SELECT * FROM secure_h'), 'select with a wrong PUBLIC password');
    assert.equal(e.code, 'HV00N', e.all);
    await ddl(`CREATE USER MAPPING FOR CURRENT_USER SERVER secured_server OPTIONS (password 's3cr3t pass')`);
    assert.deepEqual(await rows(c, 'SELECT * FROM secure_h'), [['k', 'v']]);
  });
});

describe('other Redis types and glob prefixes', () => {
  it('set: (member), every member once', async () => {
    await f.redis.sadd('rs:set', 'a', 'b', 'c', 'ü');
    await ddl(`CREATE FOREIGN TABLE rs_set (member text) SERVER redis_server OPTIONS (database '${DB}', table_type 'set', table_key_prefix 'rs:set')`);
    assert.deepEqual(sortedLines(await f.psql('SELECT * FROM rs_set', ['-At'])), ['a', 'b', 'c', 'ü']);
  });

  it('zset: (member, score float8) by ascending score, score is a double', async () => {
    await f.redis.zadd('rs:zset', 3.5, 'c', -1, 'a', 2, 'b', 1e10, 'big', 0.1, 'tenth');
    await ddl(`CREATE FOREIGN TABLE rs_zset (member text, score float8) SERVER redis_server OPTIONS (database '${DB}', table_type 'zset', table_key_prefix 'rs:zset')`);
    assert.deepEqual(await rows(c, 'SELECT member, score, pg_typeof(score)::text FROM rs_zset'), [
      ['a', '-1', 'double precision'],
      ['tenth', '0.1', 'double precision'],
      ['b', '2', 'double precision'],
      ['c', '3.5', 'double precision'],
      ['big', '10000000000', 'double precision'],
    ]);
    assert.deepEqual(await rows(c, 'SELECT sum(score) > 1e10, max(score) * 2 FROM rs_zset'), [['t', '20000000000']]);
    // A member-only zset table also works, still by ascending score.
    await ddl(`CREATE FOREIGN TABLE rs_zset_m (member text) SERVER redis_server OPTIONS (database '${DB}', table_type 'zset', table_key_prefix 'rs:zset')`);
    assert.deepEqual(await rows(c, 'SELECT * FROM rs_zset_m'), [['a'], ['tenth'], ['b'], ['c'], ['big']]);
  });

  it('zset scores inf and -inf become float8 Infinity', async () => {
    await f.redis.zadd('rs:zinf', '+inf', 'top', '-inf', 'bottom', 0, 'mid');
    await ddl(`CREATE FOREIGN TABLE rs_zinf (member text, score float8) SERVER redis_server OPTIONS (database '${DB}', table_type 'zset', table_key_prefix 'rs:zinf')`);
    assert.deepEqual(await rows(c, 'SELECT member, score FROM rs_zinf'), [['bottom', '-Infinity'], ['mid', '0'], ['top', 'Infinity']]);
  });

  it('string: (value); a missing key gives no row', async () => {
    await f.redis.set('rs:string', 'hello world');
    await ddl(`CREATE FOREIGN TABLE rs_string (value text) SERVER redis_server OPTIONS (database '${DB}', table_type 'string', table_key_prefix 'rs:string')`);
    await ddl(`CREATE FOREIGN TABLE rs_nostring (value text) SERVER redis_server OPTIONS (database '${DB}', table_type 'string', table_key_prefix 'rs:no-such-string')`);
    assert.deepEqual(await rows(c, 'SELECT * FROM rs_string'), [['hello world']]);
    assert.deepEqual(await rows(c, 'SELECT * FROM rs_nostring'), []);
  });

  it('stream: (id, one column per field by name); absent fields are NULL; declared types apply', async () => {
    await f.redis.xadd('rs:stream', '1-1', 'name', 'ann', 'age', '31');
    await f.redis.xadd('rs:stream', '2-0', 'age', '40', 'name', 'bob', 'extra', 'ignored');
    await f.redis.xadd('rs:stream', '3-5', 'name', 'cy');
    await ddl(`CREATE FOREIGN TABLE rs_stream (id text, name text, age int) SERVER redis_server OPTIONS (database '${DB}', table_type 'stream', table_key_prefix 'rs:stream')`);
    assert.deepEqual(await rows(c, 'SELECT id, name, age, age + 1, pg_typeof(age)::text FROM rs_stream'), [
      ['1-1', 'ann', '31', '32', 'integer'],
      ['2-0', 'bob', '40', '41', 'integer'],
      ['3-5', 'cy', null, null, 'integer'],
    ]);
  });

  it('list with an index column: (id int, index int), types honoured', async () => {
    await f.redis.rpush('rs:ids', '10', '20', '30', '-5');
    await ddl(`CREATE FOREIGN TABLE rs_ids (id int, index int) SERVER redis_server OPTIONS (database '${DB}', table_type 'list', table_key_prefix 'rs:ids')`);
    assert.deepEqual(await rows(c, 'SELECT id, index FROM rs_ids'), [['10', '0'], ['20', '1'], ['30', '2'], ['-5', '3']]);
    assert.deepEqual(await rows(c, 'SELECT sum(id), max(index), pg_typeof(sum(id))::text FROM rs_ids'), [['55', '3', 'bigint']]);
    // Numeric, not textual, ordering.
    assert.deepEqual(await rows(c, 'SELECT id FROM rs_ids ORDER BY id'), [['-5'], ['10'], ['20'], ['30']]);
    // The index column may come first, too.
    await ddl(`CREATE FOREIGN TABLE rs_ids2 (index bigint, id numeric) SERVER redis_server OPTIONS (database '${DB}', table_type 'list', table_key_prefix 'rs:ids')`);
    assert.deepEqual(await rows(c, 'SELECT * FROM rs_ids2 WHERE id > 0 ORDER BY index DESC'), [['2', '30'], ['1', '20'], ['0', '10']]);
  });

  it('a value that does not fit the declared type fails like a cast would (22P02), the session stays usable', async () => {
    await f.redis.rpush('rs:badint', '1', 'two');
    await ddl(`CREATE FOREIGN TABLE rs_badint (n int) SERVER redis_server OPTIONS (database '${DB}', table_type 'list', table_key_prefix 'rs:badint')`);
    const e = await pgError(c.query('SELECT * FROM rs_badint'));
    assert.equal(e.code, '22P02', e.all);
    assert.match(e.message, /two/);
    assert.deepEqual(await rows(c, 'SELECT 1'), [['1']]);
  });

  it('glob hash prefix: (key, field, value), one row per field of every matching key', async () => {
    await f.redis.hset('g:hash:1', 'a', '1', 'b', '2');
    await f.redis.hset('g:hash:2', 'c', '3');
    await f.redis.set('g:hash:3', 'a string, not a hash');
    await f.redis.hset('g:other:1', 'z', '26');
    await ddl(`CREATE FOREIGN TABLE g_hash (key text, field text, value int) SERVER redis_server OPTIONS (database '${DB}', table_type 'hash', table_key_prefix 'g:hash:*')`);
    assert.deepEqual(bag(await rows(c, 'SELECT * FROM g_hash')), bag([['g:hash:1', 'a', '1'], ['g:hash:1', 'b', '2'], ['g:hash:2', 'c', '3']]));
    assert.deepEqual(await rows(c, 'SELECT key, sum(value) FROM g_hash GROUP BY key ORDER BY key'), [['g:hash:1', '3'], ['g:hash:2', '3']]);
    assert.deepEqual(await rows(c, `SELECT field FROM g_hash WHERE key = 'g:hash:2'`), [['c']]);
    assert.deepEqual(await rows(c, `SELECT field FROM g_hash WHERE key = 'g:other:1'`), [], 'a key outside the pattern is not read');
  });

  it('glob list, set, zset prefixes put the key first', async () => {
    await f.redis.rpush('g:list:a', 'x', 'y');
    await f.redis.rpush('g:list:b', 'z');
    await f.redis.sadd('g:set:a', 'm');
    await f.redis.zadd('g:zset:a', 2, 'two', 1, 'one');
    await f.redis.zadd('g:zset:b', 5, 'five');
    await ddl(`CREATE FOREIGN TABLE g_list (key text, element text, index int) SERVER redis_server OPTIONS (database '${DB}', table_type 'list', table_key_prefix 'g:list:*')`);
    await ddl(`CREATE FOREIGN TABLE g_set (key text, member text) SERVER redis_server OPTIONS (database '${DB}', table_type 'set', table_key_prefix 'g:set:?')`);
    await ddl(`CREATE FOREIGN TABLE g_zset (key text, member text, score float8) SERVER redis_server OPTIONS (database '${DB}', table_type 'zset', table_key_prefix 'g:zset:[ab]')`);
    assert.deepEqual(await rows(c, 'SELECT * FROM g_list ORDER BY key, index'), [['g:list:a', 'x', '0'], ['g:list:a', 'y', '1'], ['g:list:b', 'z', '0']]);
    assert.deepEqual(await rows(c, 'SELECT * FROM g_set'), [['g:set:a', 'm']]);
    // Within each key, ascending score.
    const z = await rows(c, 'SELECT * FROM g_zset');
    assert.deepEqual(z.filter((r) => r[0] === 'g:zset:a'), [['g:zset:a', 'one', '1'], ['g:zset:a', 'two', '2']]);
    assert.deepEqual(z.filter((r) => r[0] === 'g:zset:b'), [['g:zset:b', 'five', '5']]);
    assert.equal(z.length, 3);
  });

  it('a table in another database number reads that db', async () => {
    // database '0' differs from the fixture's db: the key there is absent, so no rows (other files
    // may use db 0, so only a key name unique to this file is read).
    await ddl(`CREATE FOREIGN TABLE rs_db0 (key text, value text) SERVER redis_server OPTIONS (database '0', table_type 'hash', table_key_prefix 'user:profiles:seeds-rs-only')`);
    await f.redis.hset('user:profiles:seeds-rs-only', 'only', 'in db 4');
    assert.deepEqual(await rows(c, 'SELECT * FROM rs_db0'), []);
  });
});
