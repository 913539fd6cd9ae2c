/**
 * Values and failures: every value comes back byte for byte (any UTF-8, quotes, backslashes, `$$`,
 * newlines, JSON-looking text, emoji); invalid UTF-8 → 22021 naming the key; Redis down → HV00N naming
 * host:port, and recovery; wrong password → HV00N; a key of another type → 42809; multi_* skipping other
 * types; privileges (42501) for a login role through the proxy; missing and empty keys → no rows.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { Redis } from 'ioredis';
import { fdwFixture, withDb, type FdwFixture } from '../support/fdw.js';
import { bag, connect, pgError, rows, setupSupabase, sleep } from '../support/fdw-sql.js';
import { startRedis, type RedisInstance } from '../harness/servers.js';
import { REDIS_DB } from '../support/redis-dbs.js';

let f: FdwFixture;
let c: pg.Client;
const DB = REDIS_DB.valuesErrors;
const extra: RedisInstance[] = [];

const NASTY: string[] = [
  '',
  ' ',
  'plain',
  "it's",
  "''; drop table rh; --",
  '"double" quotes',
  'back\\slash \\\\ \\x00 \\n',
  '$$ dollar $$ $1 $tag$',
  'line1\nline2\r\nline3\ttab',
  '{"json": [1, 2, {"x": null}], "s": "\\"q\\""}',
  '[1,2,3]',
  '{a,b,"c d"}',
  'NULL',
  'null',
  '\\N',
  'Ünïcödé ÅÄÖ ß 中文 日本語 한국어 العربية עברית',
  'emoji 😀 👩‍👩‍👧 🏳️‍🌈 𝄞',
  'combining e\u0301 and zero\u200bwidth',
  '\u007f del \u0001 ctrl',
  'x'.repeat(70_000),
];

before(async () => {
  f = await fdwFixture('fdw_values_errors', DB);
  c = await connect(f.url);
  await setupSupabase(c, f.redisUrl);
});

after(async () => {
  await c?.end().catch(() => {});
  for (const r of extra) await r.stop().catch(() => {});
  await f?.close();
});

const ft = (name: string, cols: string, type: string, key: string, server = 'redis_server'): Promise<unknown> =>
  c.query(`create foreign table ${name} (${cols}) server ${server} options (src_type '${type}', src_key '${key.replace(/'/g, "''")}')`);

describe('values are binary-safe', () => {
  it('hash fields and values', async () => {
    const r = f.redis;
    for (const [i, v] of NASTY.entries()) await r.hset('nasty:h', `f${i}:${v.slice(0, 100)}`, v);
    await ft('nh', 'key text, value text', 'hash', 'nasty:h');
    const got = await rows(c, 'select key, value from nh');
    assert.deepEqual(bag(got), bag(NASTY.map((v, i) => [`f${i}:${v.slice(0, 100)}`, v])));
    // Pushdown by a nasty field name finds it.
    for (const [i, v] of NASTY.entries()) {
      assert.deepEqual(await rows(c, 'select value from nh where key = $1', [`f${i}:${v.slice(0, 100)}`]), [[v]], `field ${i}`);
    }
    // As a literal in a simple query too.
    assert.deepEqual(await rows(c, `select value from nh where key = 'f3:it''s'`), [["it's"]]);
  });

  it('list elements keep order and bytes; set and zset members', async () => {
    await f.redis.rpush('nasty:l', ...NASTY);
    await f.redis.sadd('nasty:s', ...NASTY);
    for (const [i, v] of NASTY.entries()) await f.redis.zadd('nasty:z', i, v);
    await ft('nl', 'element text', 'list', 'nasty:l');
    await ft('ns', 'element text', 'set', 'nasty:s');
    await ft('nz', 'element text, score int', 'zset', 'nasty:z');
    assert.deepEqual(await rows(c, 'select element from nl'), NASTY.map((v) => [v]));
    assert.deepEqual(bag(await rows(c, 'select element from ns')), bag(NASTY.map((v) => [v])));
    assert.deepEqual(await rows(c, 'select element, score from nz'), NASTY.map((v, i) => [v, String(i)]));
    assert.deepEqual(await rows(c, 'select octet_length(element) from nl'), NASTY.map((v) => [String(Buffer.byteLength(v))]));
  });

  it('string keys, stream fields and multi_* JSON items', async () => {
    for (const [i, v] of NASTY.entries()) {
      await f.redis.set(`nasty:str:${i}`, v);
      await f.redis.xadd('nasty:x', '*', 'v', v, 'i', String(i));
    }
    await f.redis.hset('nasty:mh:1', Object.fromEntries(NASTY.map((v, i) => [`k${i}`, v])));
    await f.redis.rpush('nasty:ml:1', ...NASTY);
    await ft('nx', 'id text, items jsonb', 'stream', 'nasty:x');
    await ft('nmh', 'key text, items jsonb', 'multi_hash', 'nasty:mh:*');
    await ft('nml', 'key text, items jsonb', 'multi_list', 'nasty:ml:*');
    assert.deepEqual(await rows(c, `select items->>'v' from nx order by (items->>'i')::int`), NASTY.map((v) => [v]));
    assert.deepEqual(await rows(c, `select e.value from nmh, jsonb_each_text(items) e order by substr(e.key, 2)::int`), NASTY.map((v) => [v]));
    assert.deepEqual(await rows(c, `select e from nml, jsonb_array_elements_text(items) with ordinality as t(e, n) order by n`), NASTY.map((v) => [v]));
    await c.query(`create server rs_server foreign data wrapper redis_wrapper options (host_port '${f.redisHostPort}')`);
    await c.query(`create foreign table nstr (key text, value text) server rs_server options (database '${DB}', table_type 'string', table_key_prefix 'nasty:str:*')`);
    assert.deepEqual(await rows(c, `select value from nstr order by substr(key, 11)::int`), NASTY.map((v) => [v]));
  });

  it('a key name with quotes, spaces and unicode', async () => {
    const key = "it's a \"key\" with ключ 🔑 and $$";
    await f.redis.hset(key, 'f', 'v');
    await ft('nkey', 'key text, value text', 'hash', key);
    assert.deepEqual(await rows(c, 'select * from nkey'), [['f', 'v']]);
  });
});

describe('invalid UTF-8 and NUL bytes', () => {
  const bad = Buffer.from([0x61, 0xc3, 0x28, 0x62]); // 'a', a broken 2-byte sequence, 'b'

  it('an invalid value → 22021 naming the key and table; the session stays usable', async () => {
    await f.redis.hset('bad:h', 'good', 'fine');
    await f.redis.hset('bad:h', Buffer.from('broken'), bad);
    await ft('badh', 'key text, value text', 'hash', 'bad:h');
    const e = await pgError(c.query('select * from badh'));
    assert.equal(e.code, '22021', e.all);
    assert.match(e.message, /bad:h/);
    assert.match(e.message, /badh/);
    assert.deepEqual(await rows(c, 'select 1'), [['1']]);
    // Inside a transaction, it aborts the transaction like any error, and ROLLBACK recovers.
    await c.query('begin');
    assert.equal((await pgError(c.query('select * from badh'))).code, '22021');
    assert.equal((await pgError(c.query('select 1'))).code, '25P02');
    await c.query('rollback');
    assert.deepEqual(await rows(c, 'select 1'), [['1']]);
  });

  it('an invalid field name, list element, multi_* key name, stream value', async () => {
    await f.redis.hset('bad:hf', bad, 'v');
    await f.redis.rpush('bad:l', 'ok', bad);
    await f.redis.hset(Buffer.concat([Buffer.from('badkey:'), bad]), 'f', 'v');
    await f.redis.xadd('bad:x', '*', 'f', bad);
    await ft('badhf', 'key text, value text', 'hash', 'bad:hf');
    await ft('badl', 'element text', 'list', 'bad:l');
    await ft('badmk', 'key text, items jsonb', 'multi_hash', 'badkey:*');
    await ft('badx', 'id text, items jsonb', 'stream', 'bad:x');
    for (const [t, key] of [['badhf', 'bad:hf'], ['badl', 'bad:l'], ['badmk', 'badkey:'], ['badx', 'bad:x']] as const) {
      const e = await pgError(c.query(`select * from ${t}`), t);
      assert.equal(e.code, '22021', `${t}: ${e.all}`);
      assert.ok(e.message.includes(key), `${t}: message should name the key: ${e.message}`);
      assert.deepEqual(await rows(c, 'select 2'), [['2']]);
    }
  });

  it('a NUL byte → 22021 (Postgres text cannot hold it)', async () => {
    await f.redis.rpush('bad:nul', Buffer.from('a\u0000b'));
    await ft('badnul', 'element text', 'list', 'bad:nul');
    const e = await pgError(c.query('select * from badnul'));
    assert.equal(e.code, '22021', e.all);
    assert.match(e.message, /bad:nul/);
  });
});

describe('Redis unreachable or refusing', () => {
  it('Redis down → HV00N naming host:port; ordinary SQL still works; after restart the table works again', async () => {
    const own = await startRedis();
    extra.push(own);
    const r = new Redis(own.url);
    await r.rpush('l', 'alive');
    r.disconnect();
    await c.query(`create server down_srv foreign data wrapper redis_wrapper options (conn_url '${own.url}')`);
    await ft('downl', 'element text', 'list', 'l', 'down_srv');
    assert.deepEqual(await rows(c, 'select * from downl'), [['alive']]);

    await own.kill();
    const t0 = Date.now();
    const e = await pgError(c.query('select * from downl'), 'select with Redis down');
    assert.equal(e.code, 'HV00N', e.all);
    assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${own.port}`));
    assert.ok(Date.now() - t0 < 10_000, `failed within 10 s (took ${Date.now() - t0} ms)`);
    assert.deepEqual(await rows(c, 'select 40 + 2'), [['42']]);
    // Twice in a row, and inside a transaction (which it aborts).
    assert.equal((await pgError(c.query('select count(*) from downl'))).code, 'HV00N');
    await c.query('begin');
    assert.equal((await pgError(c.query('select count(*) from downl'))).code, 'HV00N');
    await c.query('rollback');

    await own.restart(); // an empty Redis again, on the same port
    const r2 = new Redis(own.url);
    await r2.rpush('l', 'back again');
    r2.disconnect();
    const t1 = Date.now();
    for (;;) {
      try {
        assert.deepEqual(await rows(c, 'select * from downl'), [['back again']]);
        break;
      } catch (err) {
        if (Date.now() - t1 > 8000) throw err;
        await sleep(200);
      }
    }
  });

  it('nothing listening at all → HV00N naming host:port', async () => {
    const gone = await startRedis();
    await gone.stop();
    await c.query(`create server nobody_srv foreign data wrapper redis_wrapper options (conn_url 'redis://127.0.0.1:${gone.port}/0')`);
    await ft('nobody', 'key text, value text', 'hash', 'h', 'nobody_srv');
    const e = await pgError(c.query('select * from nobody'));
    assert.equal(e.code, 'HV00N', e.all);
    assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${gone.port}`));
  });

  it('a wrong Redis password → HV00N, the password is not shown; the right one works', async () => {
    const sec = await startRedis({ password: 'right-pw' });
    extra.push(sec);
    const r = new Redis(sec.url);
    await r.hset('h', 'k', 'v');
    r.disconnect();
    await c.query(`create server wrongpw_srv foreign data wrapper redis_wrapper options (conn_url 'redis://:wrong-pw@127.0.0.1:${sec.port}/0')`);
    await c.query(`create server nopw_srv foreign data wrapper redis_wrapper options (conn_url 'redis://127.0.0.1:${sec.port}/0')`);
    await c.query(`create server rightpw_srv foreign data wrapper redis_wrapper options (conn_url 'redis://:right-pw@127.0.0.1:${sec.port}/0')`);
    await ft('wrongpw', 'key text, value text', 'hash', 'h', 'wrongpw_srv');
    await ft('nopw', 'key text, value text', 'hash', 'h', 'nopw_srv');
    await ft('rightpw', 'key text, value text', 'hash', 'h', 'rightpw_srv');
    for (const t of ['wrongpw', 'nopw']) {
      const e = await pgError(c.query(`select * from ${t}`), t);
      assert.equal(e.code, 'HV00N', `${t}: ${e.all}`);
      assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${sec.port}`));
      assert.doesNotMatch(e.all, /wrong-pw|right-pw/);
    }
    assert.deepEqual(await rows(c, 'select * from rightpw'), [['k', 'v']]);
  });
});

describe('keys of other types', () => {
  it('a key holding the wrong type → 42809 naming key and table', async () => {
    const r = f.redis;
    await r.set('wt:string', 'x');
    await r.hset('wt:hash', 'a', 'b');
    await r.sadd('wt:set', 'a');
    await r.rpush('wt:list', 'a');
    await r.xadd('wt:stream', '*', 'a', 'b');
    const cases: [string, string, string, string][] = [
      ['wt1', 'key text, value text', 'hash', 'wt:string'],
      ['wt2', 'element text', 'list', 'wt:hash'],
      ['wt3', 'element text', 'zset', 'wt:set'],
      ['wt4', 'element text', 'set', 'wt:list'],
      ['wt5', 'id text, items jsonb', 'stream', 'wt:list'],
      ['wt6', 'element text', 'list', 'wt:stream'],
    ];
    for (const [name, cols, type, key] of cases) {
      await ft(name, cols, type, key);
      const e = await pgError(c.query(`select * from ${name}`), name);
      assert.equal(e.code, '42809', `${name}: ${e.all}`);
      assert.ok(e.message.includes(key), `${name}: ${e.message}`);
      assert.ok(e.message.includes(name), `${name}: ${e.message}`);
    }
    await c.query(`create foreign table wt7 (value text) server rs_server options (database '${DB}', table_type 'string', table_key_prefix 'wt:hash')`);
    const e = await pgError(c.query('select * from wt7'));
    assert.equal(e.code, '42809', e.all);
    // A point lookup (HMGET) on a non-hash is the same error.
    const p = await pgError(c.query(`select * from wt1 where key = 'a'`));
    assert.equal(p.code, '42809', p.all);
    assert.deepEqual(await rows(c, 'select 3'), [['3']]);
  });

  it('multi_* and glob tables skip keys of other types', async () => {
    const r = f.redis;
    await r.hset('mix:1', 'a', '1');
    await r.set('mix:2', 'a string');
    await r.rpush('mix:3', 'x', 'y');
    await r.sadd('mix:4', 'm');
    await r.zadd('mix:5', 1, 'z');
    await r.xadd('mix:6', '*', 'f', 'v');
    await ft('mix_h', 'key text, items jsonb', 'multi_hash', 'mix:*');
    await ft('mix_l', 'key text, items jsonb', 'multi_list', 'mix:*');
    await ft('mix_s', 'key text, items jsonb', 'multi_set', 'mix:*');
    await ft('mix_z', 'key text, items jsonb', 'multi_zset', 'mix:*');
    assert.deepEqual(await rows(c, 'select key, items::text from mix_h'), [['mix:1', '{"a": "1"}']]);
    assert.deepEqual(await rows(c, 'select key, items::text from mix_l'), [['mix:3', '["x", "y"]']]);
    assert.deepEqual(await rows(c, 'select key, items::text from mix_s'), [['mix:4', '["m"]']]);
    assert.deepEqual(await rows(c, 'select key, items::text from mix_z'), [['mix:5', '["z"]']]);
    // An exact key of another type is skipped too (no error: it's "not one of this table's keys").
    assert.deepEqual(await rows(c, `select key from mix_h where key in ('mix:1', 'mix:2', 'mix:3')`), [['mix:1']]);
    await c.query(`create foreign table mix_rs (key text, field text, value text) server rs_server options (database '${DB}', table_type 'hash', table_key_prefix 'mix:*')`);
    assert.deepEqual(await rows(c, 'select * from mix_rs'), [['mix:1', 'a', '1']]);
  });
});

describe('missing and empty keys', () => {
  it('each type: a missing key gives 0 rows; an emptied stream gives 0 rows', async () => {
    const tables: [string, string, string][] = [
      ['m_list', 'element text', 'list'],
      ['m_set', 'element text', 'set'],
      ['m_hash', 'key text, value text', 'hash'],
      ['m_zset', 'element text, score float8', 'zset'],
      ['m_stream', 'id text, items jsonb', 'stream'],
      ['m_mlist', 'key text, items jsonb', 'multi_list'],
      ['m_mset', 'key text, items jsonb', 'multi_set'],
      ['m_mhash', 'key text, items jsonb', 'multi_hash'],
      ['m_mzset', 'key text, items jsonb', 'multi_zset'],
    ];
    for (const [name, cols, type] of tables) {
      await ft(name, cols, type, type.startsWith('multi') ? 'missing:nothing:*' : 'missing:nothing');
      assert.deepEqual(await rows(c, `select * from ${name}`), [], name);
      assert.deepEqual(await rows(c, `select count(*) from ${name}`), [['0']], name);
    }
    await c.query(`create foreign table m_string (value text) server rs_server options (database '${DB}', table_type 'string', table_key_prefix 'missing:nothing')`);
    assert.deepEqual(await rows(c, 'select * from m_string'), []);
    const id = await f.redis.xadd('empty:stream', '*', 'f', 'v');
    await f.redis.xdel('empty:stream', id!);
    assert.equal(await f.redis.type('empty:stream'), 'stream');
    await ft('e_stream', 'id text, items jsonb', 'stream', 'empty:stream');
    assert.deepEqual(await rows(c, 'select * from e_stream'), []);
    // A hash point lookup on a missing key or field.
    assert.deepEqual(await rows(c, `select * from m_hash where key = 'x'`), []);
    // An empty string value is a row with '' (not NULL, not missing).
    await f.redis.hset('emptyval', 'f', '');
    await ft('e_val', 'key text, value text', 'hash', 'emptyval');
    assert.deepEqual(await rows(c, 'select key, value, value is null from e_val'), [['f', '', 'f']]);
  });
});

describe('privileges', () => {
  const role = `fdw_reader_${process.pid}`;
  let rc: pg.Client | undefined;

  after(async () => {
    await rc?.end().catch(() => {});
    await c.query(`drop owned by ${role}`).catch(() => {});
    await c.query(`drop role if exists ${role}`).catch(() => {});
  });

  it('a role without SELECT gets 42501 "permission denied for foreign table <name>"; GRANT and REVOKE apply', async () => {
    await f.redis.hset('priv:h', 'k', 'v', 'k2', 'v2');
    await ft('priv_h', 'key text, value text', 'hash', 'priv:h');
    await c.query(`drop role if exists ${role}; create role ${role} login password 'reader-pw'`);
    const u = new URL(f.url);
    u.username = role;
    u.password = 'reader-pw';
    rc = await connect(withDb(u.toString(), f.db));
    const e = await pgError(rc.query('select * from priv_h'));
    assert.equal(e.code, '42501', e.all);
    assert.equal(e.message, 'permission denied for foreign table priv_h');
    // Also through a join and a subquery.
    assert.equal((await pgError(rc.query('select 1 where exists (select 1 from priv_h)'))).code, '42501');

    await c.query(`grant select on priv_h to ${role}`);
    assert.deepEqual(bag(await rows(rc, 'select * from priv_h')), bag([['k', 'v'], ['k2', 'v2']]));

    // A statement prepared while allowed is checked again at execution after a REVOKE.
    assert.deepEqual(await rows(rc, 'select value from priv_h where key = $1', ['k']), [['v']]);
    const prep = (): Promise<pg.QueryResult> => rc!.query({ name: 'priv_prep', text: 'select value from priv_h where key = $1', values: ['k2'], rowMode: 'array' });
    assert.deepEqual((await prep()).rows, [['v2']]);
    await c.query(`revoke select on priv_h from ${role}`);
    await sleep(1100);
    const e2 = await pgError(prep(), 'prepared statement after REVOKE');
    assert.equal(e2.code, '42501', e2.all);
    assert.deepEqual(await rows(rc, 'select 1'), [['1']]);
  });

  // Differential: the same statements, as the same role, on a real table with the same columns and the
  // same column-level GRANTs; each must succeed or fail (42501) as it does there.
  it('column privileges: what a role may read and write is what it may on a real table with the same GRANTs', async () => {
    await c.query(`create table priv_real (key text primary key, value text not null); insert into priv_real values ('k', 'v'), ('k2', 'v2')`);
    const outcome = async (sql: string, params?: unknown[]): Promise<string> => {
      try {
        await rc!.query({ text: sql, values: params, rowMode: 'array' });
        return 'ok';
      } catch (e) {
        return (e as { code?: string }).code ?? String(e);
      }
    };
    const statements: [string, unknown[]?][] = [
      ['select key from T'],
      ['select T.key from T'],
      ['select value from T'],
      ['select * from T'],
      ['select T.* from T'],
      ['select T from T'],
      ['select count(*) from T'],
      ['select 1 from T'],
      ['select key from T where value = $1', ['v']],
      ['select key from T where key = $1', ['k']],
      ['select x.key from T x'],
      ['select * from (select key from T) s'],
      ['select key from T order by value'],
      ['select key, count(*) from T group by key'],
      ['insert into T (key) values ($1)', ['n1']],
      ['insert into T (key, value) values ($1, $2)', ['n2', 'v']],
      ['insert into T values ($1, $2)', ['n3', 'v']],
      ['insert into T (key) values ($1) returning key', ['n4']],
      ['insert into T (key) values ($1) returning *', ['n5']],
      ['update T set value = $1 where key = $2', ['u', 'k']],
      ['update T set value = $1', ['u']],
      ['update T set value = value', []],
      ['update T set key = key', []],
      ['delete from T where key = $1', ['nope']],
    ];
    const grants = [
      'select (key)',
      'insert (key)',
      'update (value)',
      'select (value)',
    ];
    for (const g of grants) {
      await c.query(`grant ${g} on priv_h to ${role}; grant ${g} on priv_real to ${role}`);
      for (const [sql, params] of statements) {
        const real = await outcome(sql.replace(/\bT\b/g, 'priv_real'), params);
        const ours = await outcome(sql.replace(/\bT\b/g, 'priv_h'), params);
        assert.equal(ours, real, `after GRANT ${g}: ${sql}`);
      }
    }
    // A prepared statement planned while allowed: checked again at execution.
    assert.deepEqual((await rc!.query({ name: 'priv_col', text: 'select key from priv_h where key = $1', values: ['k'], rowMode: 'array' })).rows, [['k']]);
    await c.query(`revoke select on priv_h from ${role}; revoke select on priv_real from ${role}`);
    await sleep(1100);
    const e = await pgError(rc!.query({ name: 'priv_col', text: 'select key from priv_h where key = $1', values: ['k'], rowMode: 'array' }));
    assert.equal(e.code, '42501', e.all);
    assert.equal(e.message, 'permission denied for foreign table priv_h');
    await c.query('drop table priv_real');
  });
});
