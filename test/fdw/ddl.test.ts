/**
 * Foreign-data DDL through the proxy: the validator's errors (SQLSTATE class HV, messages naming the
 * option/type/columns), ALTER / DROP ... CASCADE / COMMENT, psql's \det+ and \des+, transactional DDL,
 * DDL made straight on upstream being noticed (catalog TTL), and name resolution by search_path.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { fdwFixture, psql, type FdwFixture } from '../support/fdw.js';
import { bag, connect, pgError, rows, setupSupabase, sleep, type PgErr } from '../support/fdw-sql.js';
import { freePort } from '../harness/servers.js';
import { REDIS_DB } from '../support/redis-dbs.js';

let f: FdwFixture;
let c: pg.Client;
const DB = REDIS_DB.ddl;

before(async () => {
  f = await fdwFixture('fdw_ddl', DB);
  c = await connect(f.url);
  await setupSupabase(c, f.redisUrl);
  await f.redis.hset('h1', 'a', '1', 'b', '2');
  await f.redis.hset('h2', 'x', '24');
  await f.redis.rpush('sp:a', 'from schema sa');
  await f.redis.rpush('sp:b', 'from schema sb');
});

after(async () => {
  await c?.end().catch(() => {});
  await f?.close();
});

const q = (sql: string): Promise<pg.QueryResult> => c.query(sql);

function assertHv(e: PgErr, code: string | RegExp, ...mentions: (string | RegExp)[]): void {
  if (typeof code === 'string') assert.equal(e.code, code, e.all);
  else assert.match(e.code ?? '', code, e.all);
  for (const m of mentions) assert.match(e.all, typeof m === 'string' ? new RegExp(m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : m);
}

async function foreignTableCount(): Promise<number> {
  return Number((await rows(c, 'select count(*) from pg_foreign_table'))[0]![0]);
}

describe('validation errors', () => {
  it('an unknown option name → HV00D naming it (server, user mapping, table)', async () => {
    assertHv(await pgError(q(`create server s_bad foreign data wrapper redis_wrapper options (conn_url '${f.redisUrl}', bogus_opt 'x')`)), 'HV00D', 'bogus_opt');
    assertHv(await pgError(q(`create user mapping for public server redis_server options (bogus_map 'x')`)), 'HV00D', 'bogus_map');
    assertHv(await pgError(q(`create foreign table t_bad (key text, value text) server redis_server options (src_type 'hash', src_key 'h1', bogus_tbl 'x')`)), 'HV00D', 'bogus_tbl');
    assert.deepEqual(await rows(c, `select count(*) from pg_foreign_server where srvname = 's_bad'`), [['0']]);
    assert.deepEqual(await rows(c, `select count(*) from pg_user_mappings where srvname = 'redis_server'`), [['0']]);
    assert.equal(await foreignTableCount(), 0);
  });

  it('the same validation applies to a statement prepared through the extended protocol', async () => {
    const e = await pgError(c.query({ name: 'ddl_ext', text: `create foreign table t_bad2 (key text, value text) server redis_server options (src_type 'hash', src_key 'h1', bogus_ext 'x')` }));
    assertHv(e, 'HV00D', 'bogus_ext');
    assert.equal(await foreignTableCount(), 0);
  });

  it('a missing required option → class HV, the message names it', async () => {
    assertHv(await pgError(q(`create server s_none foreign data wrapper redis_wrapper`)), /^HV00[JD]$/, 'conn_url', 'host_port');
    assertHv(await pgError(q(`create foreign table t_nt (key text, value text) server redis_server options (src_key 'h1')`)), /^HV00[JD]$/, 'src_type');
    assertHv(await pgError(q(`create foreign table t_nk (key text, value text) server redis_server options (src_type 'hash')`)), /^HV00[JD]$/, 'src_key');
    assertHv(await pgError(q(`create foreign table t_np (key text, value text) server redis_server options (table_type 'hash')`)), /^HV00[JD]$/, 'table_key_prefix');
    assertHv(await pgError(q(`create foreign table t_ntt (key text, value text) server redis_server options (table_key_prefix 'h1')`)), /^HV00[JD]$/, 'table_type');
    assertHv(await pgError(q(`create foreign table t_none (key text, value text) server redis_server`)), /^HV00[JD]$/, 'src_type');
    assert.equal(await foreignTableCount(), 0);
  });

  it('an unknown Redis type → class HV naming it', async () => {
    assertHv(await pgError(q(`create foreign table t_ty (key text, value text) server redis_server options (src_type 'hashmap', src_key 'h1')`)), /^HV/, 'hashmap');
    assertHv(await pgError(q(`create foreign table t_ty2 (key text, value text) server redis_server options (table_type 'multi_hash', table_key_prefix 'h1')`)), /^HV/, 'multi_hash');
    // Mixing the dialects is refused rather than guessed.
    assertHv(await pgError(q(`create foreign table t_mix (key text, value text) server redis_server options (src_type 'hash', src_key 'h1', table_type 'hash')`)), /^HV/, 'src_type', 'table_type');
    // A column type Postgres doesn't know is Postgres's own error.
    const e = await pgError(q(`create foreign table t_nt2 (key text, value no_such_type) server redis_server options (src_type 'hash', src_key 'h1')`));
    assert.equal(e.code, '42704', e.all);
    assert.match(e.message, /no_such_type/);
    assert.equal(await foreignTableCount(), 0);
  });

  it('a malformed conn_url / host_port / database → HV024 naming the option', async () => {
    // Checked at DDL time, not first at query time: each URL below must be refused by CREATE SERVER.
    const accepted: string[] = [];
    for (const url of ['not-a-url', 'http://127.0.0.1:6379/0', 'redis://127.0.0.1:notaport/0', 'redis://127.0.0.1:6379/notadb', 'redis://127.0.0.1:99999/0']) {
      try {
        await q(`create server s_url foreign data wrapper redis_wrapper options (conn_url '${url}')`);
        accepted.push(url);
        await q('drop server s_url');
      } catch (e) {
        assertHv(await pgError(Promise.reject(e)), 'HV024', 'conn_url');
      }
    }
    assert.deepEqual(accepted, [], 'malformed conn_url values accepted by CREATE SERVER');
    assertHv(await pgError(q(`create server s_hp foreign data wrapper redis_wrapper options (host_port 'localhost')`)), 'HV024', 'host_port');
    assertHv(await pgError(q(`create foreign table t_db (key text, value text) server redis_server options (table_type 'hash', table_key_prefix 'h1', database 'zero')`)), 'HV024', 'database');
    // The password in a bad URL is not echoed.
    const e = await pgError(q(`create server s_pw foreign data wrapper redis_wrapper options (conn_url 'redis://u:hunter2@127.0.0.1:xx/0')`));
    assert.doesNotMatch(e.all, /hunter2/);
    assert.deepEqual(await rows(c, `select count(*) from pg_foreign_server where srvname like 's\\_%'`), [['0']]);
  });

  it('a malformed conn_url that reached the catalog some other way fails the SELECT with HV024', async () => {
    // Created straight on upstream, so no validator ran.
    const out = await psql(f.directUrl, `create server s_direct_bad foreign data wrapper redis_wrapper options (conn_url 'redis://u:hunter2@127.0.0.1:notaport/0');
      create foreign table t_direct_bad (key text, value text) server s_direct_bad options (src_type 'hash', src_key 'h1')`);
    assert.match(out, /CREATE FOREIGN TABLE/, out);
    await sleep(1100); // catalog TTL
    const e = await pgError(q('select * from t_direct_bad'));
    assertHv(e, 'HV024', 'conn_url');
    assert.doesNotMatch(e.all, /hunter2/);
    assert.deepEqual(await rows(c, 'select 1'), [['1']]);
    await q('drop server s_direct_bad cascade');
  });

  it('a column shape that does not fit the type → HV004 naming the type and the columns', async () => {
    assertHv(await pgError(q(`create foreign table t_s1 (key text, value text, extra text) server redis_server options (src_type 'hash', src_key 'h1')`)), 'HV004', 'hash', 'extra');
    assertHv(await pgError(q(`create foreign table t_s2 (a text, b text) server redis_server options (src_type 'set', src_key 's')`)), 'HV004', 'set', /\ba text\b/, /\bb text\b/);
    assertHv(await pgError(q(`create foreign table t_s3 (key text) server redis_server options (src_type 'multi_hash', src_key 'h*')`)), 'HV004', 'multi_hash', 'key text');
    assertHv(await pgError(q(`create foreign table t_s4 (m text, s float8, extra int) server redis_server options (table_type 'zset', table_key_prefix 'z')`)), 'HV004', 'zset', 'extra');
    assertHv(await pgError(q(`create foreign table t_s5 (a text, b text) server redis_server options (src_type 'list', src_key 'l')`)), 'HV004', 'list');
    assertHv(await pgError(q(`create foreign table t_s6 () server redis_server options (src_type 'stream', src_key 'st')`)), 'HV004', 'stream');
    assert.equal(await foreignTableCount(), 0);
  });

  it('wrappers that are not ours are left alone', async () => {
    await q('create foreign data wrapper other_fdw');
    await q(`create server other_srv foreign data wrapper other_fdw options (anything 'goes')`);
    await q(`create foreign table other_t (a int) server other_srv options (whatever '1')`);
    const e = await pgError(q('select * from other_t'));
    assert.match(e.message, /has no handler/);
    await q('drop foreign data wrapper other_fdw cascade');
  });

  it('IMPORT FOREIGN SCHEMA on a Redis server is refused clearly', async () => {
    await q('create schema imp');
    const e = await pgError(q('import foreign schema public from server redis_server into imp'));
    assert.equal(e.code, '0A000', e.all);
    assert.match(e.message, /IMPORT FOREIGN SCHEMA/);
  });
});

describe('ALTER, DROP, COMMENT', () => {
  it('ALTER SERVER OPTIONS is validated, and a changed conn_url is used at once', async () => {
    const dead = await freePort();
    await q(`create server s_alter foreign data wrapper redis_wrapper options (conn_url 'redis://127.0.0.1:${dead}/${DB}')`);
    await q(`create foreign table t_alter (key text, value text) server s_alter options (src_type 'hash', src_key 'h1')`);
    const down = await pgError(q('select * from t_alter'), 'select from a server with nothing listening');
    assertHv(down, 'HV00N', `127.0.0.1:${dead}`);

    assertHv(await pgError(q(`alter server s_alter options (add bogus_alt 'x')`)), 'HV00D', 'bogus_alt');
    assertHv(await pgError(q(`alter server s_alter options (set conn_url 'nope')`)), 'HV024', 'conn_url');
    assertHv(await pgError(q(`alter server s_alter options (drop conn_url)`)), /^HV00[JD]$/, 'conn_url');
    await q(`alter server s_alter options (set conn_url '${f.redisUrl}')`);
    assert.deepEqual(bag(await rows(c, 'select * from t_alter')), bag([['a', '1'], ['b', '2']]));
  });

  it('ALTER FOREIGN TABLE OPTIONS (SET src_key) reads the new key', async () => {
    await q(`alter foreign table t_alter options (set src_key 'h2')`);
    assert.deepEqual(await rows(c, 'select * from t_alter'), [['x', '24']]);
  });

  it('ALTER FOREIGN TABLE OPTIONS with an unknown option → HV00D, the table is unchanged', async () => {
    await q(`create foreign table t_opt (key text, value text) server redis_server options (src_type 'hash', src_key 'h2')`);
    try {
      assertHv(await pgError(q(`alter foreign table t_opt options (add bogus_ft 'x')`)), 'HV00D', 'bogus_ft');
      assertHv(await pgError(q(`alter foreign table t_opt options (set src_type 'hashmap')`)), /^HV/, 'hashmap');
      assertHv(await pgError(q(`alter foreign table t_opt options (drop src_key)`)), /^HV00[JD]$/, 'src_key');
      assert.deepEqual(await rows(c, `select array_to_string(ftoptions, ',') from pg_foreign_table where ftrelid = 't_opt'::regclass`), [['src_type=hash,src_key=h2']]);
      assert.deepEqual(await rows(c, 'select * from t_opt'), [['x', '24']]);
    } finally {
      await q('drop foreign table t_opt');
    }
  });

  it('ALTER FOREIGN TABLE ADD / DROP COLUMN that breaks the shape → HV004', async () => {
    await q(`create foreign table t_cols (key text, value text) server redis_server options (src_type 'hash', src_key 'h2')`);
    try {
      assertHv(await pgError(q(`alter foreign table t_cols add column extra text`)), 'HV004', 'hash', 'extra');
      assertHv(await pgError(q(`alter foreign table t_cols drop column value`)), 'HV004', 'hash');
      assert.deepEqual(await rows(c, 'select * from t_cols'), [['x', '24']]);
    } finally {
      await q('drop foreign table t_cols');
    }
  });

  it('ALTER FOREIGN TABLE ... TYPE changes how values are cast', async () => {
    await q(`alter foreign table t_alter alter column value type int`);
    assert.deepEqual(await rows(c, 'select value + 1, pg_typeof(value)::text from t_alter'), [['25', 'integer']]);
  });

  it('RENAME TO: the new name reads Redis at once (same session), the old one is gone', async () => {
    await q('alter foreign table t_alter rename to t_renamed');
    assert.deepEqual(await rows(c, 'select * from t_renamed'), [['x', '24']]);
    assert.equal((await pgError(q('select * from t_alter'))).code, '42P01');
  });

  it('RENAME COLUMN and SET SCHEMA', async () => {
    await sleep(1100); // independent of the RENAME TO case above: the catalog TTL has passed
    await q('alter foreign table t_renamed rename column key to field');
    assert.deepEqual(await rows(c, 'select field from t_renamed'), [['x']]);
    await q('create schema moved; alter foreign table t_renamed set schema moved');
    assert.deepEqual(await rows(c, 'select field, value from moved.t_renamed'), [['x', '24']]);
    assert.equal((await pgError(q('select * from public.t_renamed'))).code, '42P01');
    await q('alter foreign table moved.t_renamed set schema public');
  });

  it('COMMENT ON FOREIGN TABLE shows in \\det+; \\des+ shows servers and their options', async () => {
    await q(`create foreign table t_comment (key text, value text) server s_alter options (src_type 'hash', src_key 'h2')`);
    await q(`comment on foreign table t_comment is 'a commented hash'`);
    const det = await f.psql('\\det+');
    assert.match(det, /public +\| t_comment +\| s_alter +\| \(src_type 'hash', src_key 'h2'\) +\| a commented hash/, det);
    const des = await f.psql('\\des+');
    assert.match(des, /redis_server +\| postgres +\| redis_wrapper/, des);
    assert.match(des, /s_alter +\|.*\| redis_wrapper .*conn_url/, des);
    const dew = await f.psql('\\dew+');
    assert.match(dew, /redis_wrapper .*handler 'redis_fdw_handler'/, dew);
  });

  it('DROP SERVER ... CASCADE drops its tables', async () => {
    await q(`create foreign table t_second (element text) server s_alter options (src_type 'list', src_key 'sp:a')`);
    assert.deepEqual(await rows(c, 'select * from t_second'), [['from schema sa']]);
    const res = await q('drop server s_alter cascade');
    assert.equal(res.command, 'DROP');
    for (const t of ['t_renamed', 't_second', 't_comment']) assert.equal((await pgError(q(`select * from ${t}`))).code, '42P01', t);
    assert.doesNotMatch(await f.psql('\\det'), /t_renamed|t_second|t_comment/);
  });

  it('DROP FOREIGN TABLE, then a new table with the same name on another key', async () => {
    await q(`create foreign table t_again (key text, value text) server redis_server options (src_type 'hash', src_key 'h1')`);
    assert.equal((await rows(c, 'select * from t_again')).length, 2);
    await q('drop foreign table t_again');
    await q(`create foreign table t_again (key text, value text) server redis_server options (src_type 'hash', src_key 'h2')`);
    assert.deepEqual(await rows(c, 'select * from t_again'), [['x', '24']]);
  });
});

describe('transactions, other clients, search_path', () => {
  it('DDL inside a transaction is usable there, and ROLLBACK leaves nothing', async () => {
    await q('begin');
    await q(`create server tx_srv foreign data wrapper redis_wrapper options (conn_url '${f.redisUrl}')`);
    await q(`create foreign table tx_t (key text, value text) server tx_srv options (src_type 'hash', src_key 'h2')`);
    assert.deepEqual(await rows(c, 'select * from tx_t'), [['x', '24']]);
    await q('rollback');
    assert.equal((await pgError(q('select * from tx_t'))).code, '42P01');
    assert.deepEqual(await rows(c, `select count(*) from pg_foreign_server where srvname = 'tx_srv'`), [['0']]);
    assert.doesNotMatch(await f.psql('\\des'), /tx_srv/);
  });

  it('a validation error inside a transaction aborts it like any error (25P02 until ROLLBACK)', async () => {
    await q('begin');
    await q(`create foreign table tx_ok (key text, value text) server redis_server options (src_type 'hash', src_key 'h2')`);
    assert.equal((await pgError(q(`create foreign table tx_bad (key text) server redis_server options (src_type 'hash', src_key 'h2')`))).code, 'HV004');
    assert.equal((await pgError(q('select 1'))).code, '25P02');
    await q('rollback');
    assert.equal((await pgError(q('select * from tx_ok'))).code, '42P01');
  });

  it('a foreign table created straight on upstream becomes queryable through the proxy within ~2 s', async () => {
    // This session has already read the catalog; the new name must still be noticed.
    assert.deepEqual(await rows(c, 'select * from t_again'), [['x', '24']]);
    const out = await psql(f.directUrl, `create foreign table direct_t (key text, value text) server redis_server options (src_type 'hash', src_key 'h1')`);
    assert.match(out, /CREATE FOREIGN TABLE/);
    const t0 = Date.now();
    let last: unknown;
    for (;;) {
      try {
        const r = await rows(c, 'select * from direct_t order by key');
        assert.deepEqual(r, [['a', '1'], ['b', '2']]);
        break;
      } catch (e) {
        last = e;
        if (Date.now() - t0 > 3000) assert.fail(`not queryable after 3 s: ${String(last)}`);
        await sleep(100);
      }
    }
    // And a drop straight on upstream, followed by a non-foreign table of that name, is noticed as well.
    await psql(f.directUrl, `drop foreign table direct_t; create table direct_t (key text, value text); insert into direct_t values ('real', 'table')`);
    const t1 = Date.now();
    for (;;) {
      const r = await rows(c, 'select * from direct_t').catch((e: Error) => [[e.message]]);
      if (JSON.stringify(r) === JSON.stringify([['real', 'table']])) break;
      if (Date.now() - t1 > 3000) assert.fail(`the ordinary table was not read after 3 s: ${JSON.stringify(r)}`);
      await sleep(100);
    }
  });

  it('an unqualified name resolves by search_path', async () => {
    await q('create schema sa; create schema sb; create schema sc');
    await q(`create foreign table sa.t_sp (element text) server redis_server options (src_type 'list', src_key 'sp:a')`);
    await q(`create foreign table sb.t_sp (element text) server redis_server options (src_type 'list', src_key 'sp:b')`);
    await q(`create table sc.t_sp (element text); insert into sc.t_sp values ('ordinary table in sc')`);
    await q('set search_path = sa, public');
    assert.deepEqual(await rows(c, 'select * from t_sp'), [['from schema sa']]);
    await q('set search_path = sb, public');
    assert.deepEqual(await rows(c, 'select * from t_sp'), [['from schema sb']]);
    assert.deepEqual(await rows(c, 'select * from sa.t_sp'), [['from schema sa']]);
    await q('set search_path = sc, sa');
    assert.deepEqual(await rows(c, 'select * from t_sp'), [['ordinary table in sc']]);
    await q('set search_path = public');
    assert.equal((await pgError(q('select * from t_sp'))).code, '42P01');
    // Both in one statement, qualified.
    assert.deepEqual(await rows(c, 'select a.element, b.element from sa.t_sp a, sb.t_sp b'), [['from schema sa', 'from schema sb']]);
  });

  it('a temporary table shadows a foreign table of the same name', async () => {
    await q('set search_path = sa, public');
    await q(`create temp table t_sp (element text); insert into t_sp values ('temp')`);
    assert.deepEqual(await rows(c, 'select * from t_sp'), [['temp']]);
    await q('drop table pg_temp.t_sp');
    assert.deepEqual(await rows(c, 'select * from t_sp'), [['from schema sa']]);
    await q('reset search_path');
  });

  it('quoted, mixed-case schema, table and column names', async () => {
    await q(`create schema "My Schema"`);
    await q(`create foreign table "My Schema"."Odd Table" ("Field Name" text, "Value" int) server redis_server options (src_type 'hash', src_key 'h1')`);
    assert.deepEqual(await rows(c, `select "Field Name", "Value" * 10 from "My Schema"."Odd Table" order by 1`), [['a', '10'], ['b', '20']]);
    assert.deepEqual(await rows(c, `select t."Value" from "My Schema"."Odd Table" t where t."Field Name" = 'b'`), [['2']]);
  });
});
