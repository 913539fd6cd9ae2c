/**
 * Without an advertise address the wrapper stays handler-less (DESIGN §1's fallback): CREATE FOREIGN
 * TABLE into a schema holding other tables warns about the information_schema landmine, a
 * materialized view gets a clear 0A000 (never the rewrite's "bound parameters"), and the one
 * documented statement upgrades the wrapper, its servers and mappings to callback mode once a proxy
 * knows its address; a pg_dump --include-foreign-data of the result restores through the proxy.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fdwFixture, psql, psqlScript, withDb, type FdwFixture } from '../support/fdw.js';
import { connect, pgError, rows, setupSupabase } from '../support/fdw-sql.js';
import { startProxy } from '../harness/proxy.js';
import { REDIS_DB } from '../support/redis-dbs.js';

const DB = REDIS_DB.callbackFallback;
const run = promisify(execFile);

let f: FdwFixture;
let c: pg.Client;
let d: pg.Client;

before(async () => {
  f = await fdwFixture('cb_fallback', DB);
  c = await connect(f.url);
  d = await connect(f.directUrl);
  await setupSupabase(c, f.redisUrl);
  await f.redis.hset('fb:h', 'a', '1', 'b', '2');
  await c.query('create table real_t (id int)');
});

after(async () => {
  await c?.end().catch(() => {});
  await d?.end().catch(() => {});
  await f?.close();
});

describe('handler-less mode', () => {
  it('the wrapper has no handler', async () => {
    assert.deepEqual(await rows(d, "select fdwhandler from pg_foreign_data_wrapper where fdwname = 'redis_wrapper'"), [['0']]);
  });

  it('CREATE FOREIGN TABLE into a schema holding other tables warns about information_schema; a dedicated schema does not', async () => {
    const out = await psql(f.url, "create foreign table fh (key text, value text) server redis_server options (src_type 'hash', src_key 'fb:h')");
    assert.match(out, /WARNING: {2}foreign table "fh" goes into schema "public", which holds other tables/);
    assert.match(out, /DETAIL: .*information_schema\.tables/);
    assert.match(out, /HINT: .*schema of their own/);
    assert.match(out, /CREATE FOREIGN TABLE/);
    await c.query('create schema redis');
    const alone = await psql(f.url, "create foreign table redis.h (key text, value text) server redis_server options (src_type 'hash', src_key 'fb:h')");
    assert.equal(alone.trim(), 'CREATE FOREIGN TABLE');
    // The landmine itself, and the dedicated schema that avoids it.
    assert.match((await pgError(d.query("select * from information_schema.tables where table_schema = 'public'"))).message, /has no handler/);
    await c.query('create schema app; create table app.t (id int)');
    assert.deepEqual(await rows(d, "select table_name, is_insertable_into from information_schema.tables where table_schema = 'app'"), [['t', 'YES']]);
    // The proxy's own statements keep working.
    assert.deepEqual(await rows(c, 'select * from fh order by key'), [['a', '1'], ['b', '2']]);
  });

  it('a materialized view gets a clear 0A000 that names what to do, not the rewrite', async () => {
    const e = await pgError(c.query('create materialized view mv as select * from fh'));
    assert.equal(e.code, '0A000');
    assert.doesNotMatch(e.all, /bound parameters|json_to_recordset|unnest|__redis/);
    assert.match(e.hint ?? '', /--advertise/);
  });

  it('the upgrade statement needs a proxy that knows its address', async () => {
    const e = await pgError(c.query('alter foreign data wrapper redis_wrapper handler redis_fdw_handler'));
    assert.equal(e.code, '0A000');
    assert.match(e.hint ?? '', /--advertise/);
  });
});

describe('migration to callback mode', () => {
  it('ALTER FOREIGN DATA WRAPPER ... HANDLER redis_fdw_handler through a proxy with --advertise upgrades wrapper, servers and mappings', async () => {
    const p = await startProxy(f.directUrl, { advertise: 'auto' });
    try {
      const c2 = await connect(withDb(p.url(), f.db));
      const r = await c2.query('alter foreign data wrapper redis_wrapper handler redis_fdw_handler');
      assert.equal(r.command, 'ALTER');
      await c2.end();
      assert.deepEqual(await rows(d, "select fdwhandler::regproc::text like '%postgres_fdw_handler' from pg_foreign_data_wrapper where fdwname = 'redis_wrapper'"), [['t']]);
      assert.deepEqual(await rows(d, "select count(*) from pg_user_mappings where srvname = 'redis_server' and umoptions @> array['callback_secret=true']"), [['1']]);
      // What failed before works now, straight at upstream.
      assert.deepEqual(await rows(d, "select table_name, is_insertable_into from (select * from information_schema.tables where table_schema = 'public') t order by 1"), [['fh', 'YES'], ['real_t', 'YES']]);
      await d.query('create view v as select * from fh');
      assert.deepEqual(await rows(d, 'select * from v order by key'), [['a', '1'], ['b', '2']]);
      assert.deepEqual(await rows(d, 'select * from redis.h order by key'), [['a', '1'], ['b', '2']]);

      // pg_dump --include-foreign-data reads the rows through the callback; restored through the
      // proxy into another database, the COPYs write them back to Redis.
      const { stdout: dump } = await run('pg_dump', ['--include-foreign-data=redis_server', '-d', f.directUrl], { maxBuffer: 64 * 1024 * 1024 });
      assert.match(dump, /COPY public\.fh \(key, value\) FROM stdin;\na\t1\nb\t2\n\\\./);
      const before = await f.redis.hgetall('fb:h');
      await f.redis.del('fb:h');
      const restoreDb = `${f.db}_restore`;
      await d.query(`create database ${restoreDb}`);
      try {
        const out = await psqlScript(withDb(p.url(), restoreDb), `\\set ON_ERROR_STOP 1\n${dump}`);
        assert.doesNotMatch(out, /ERROR/, out);
        assert.deepEqual(await f.redis.hgetall('fb:h'), before);
        const r2 = await connect(withDb(f.directUrl, restoreDb));
        try {
          assert.match((await rows(r2, "select array_to_string(srvoptions, ' ') from pg_foreign_server where srvname = 'redis_server'"))[0]![0]!, new RegExp(`dbname=redis_fdw_proxy_callback:${restoreDb}`));
          assert.deepEqual(await rows(r2, 'select * from v order by key'), [['a', '1'], ['b', '2']]);
        } finally {
          await r2.end();
        }
      } finally {
        await d.query(`drop database if exists ${restoreDb} with (force)`);
      }
    } finally {
      await p.close();
    }
  });
});
