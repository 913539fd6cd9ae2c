/**
 * INSERT ... ON CONFLICT on Redis foreign tables, differentially: each statement runs on the foreign
 * table and on a real twin table whose primary key is the Redis identity (hash field, set or zset
 * member, string key), both through the proxy; command tags, RETURNING rows, errors and the final
 * contents must agree, and Redis must hold what the twin holds. Then the ORMs' own upserts (Sequelize
 * `Model.upsert`, TypeORM `repository.upsert`, drizzle `onConflictDoUpdate` / `onConflictDoNothing`),
 * as the ORMs write them, against twin tables too. (One file, so one Redis db of the sixteen.)
 */
import 'reflect-metadata';
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { Sequelize, DataTypes } from 'sequelize';
import { DataSource, EntitySchema } from 'typeorm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { pgTable, text } from 'drizzle-orm/pg-core';
import { sql } from 'drizzle-orm';
import { fdwFixture, type FdwFixture } from '../support/fdw.js';
import { bag, connect, pgError, rows } from '../support/fdw-sql.js';
import { REDIS_DB } from '../support/redis-dbs.js';

const DB = REDIS_DB.upsert;
let f: FdwFixture;
let c: pg.Client;

before(async () => {
  f = await fdwFixture('fdw_upsert', DB);
  c = await connect(f.url);
  await c.query('create extension if not exists wrappers with schema extensions');
  await c.query('create foreign data wrapper up_wrapper handler redis_fdw_handler validator redis_fdw_validator');
  await c.query(`create server up_server foreign data wrapper up_wrapper options (conn_url '${f.redisUrl}')`);
  await c.query(`create server up_rs foreign data wrapper up_wrapper options (host_port '${f.redisHostPort}')`);
});

after(async () => {
  await c?.end().catch(() => {});
  await f?.close();
});

interface Outcome {
  tag?: string;
  rows?: (string | null)[][];
  error?: string;
}

async function run(sql: string, params: unknown[] = [], name?: string): Promise<Outcome> {
  try {
    const r = await c.query({ name, text: sql, values: params, rowMode: 'array' });
    return { tag: `${r.command} ${r.command === 'INSERT' ? `${r.oid} ` : ''}${r.rowCount}`, rows: r.rows as (string | null)[][] };
  } catch (e) {
    const x = e as { code?: string; message?: string };
    return { error: `${x.code} ${x.message}` };
  }
}

/**
 * Runs each statement (with `T` standing for the table) on the twin, then on the foreign table; the
 * outcomes and the final contents must be the same.
 */
async function differential(foreign: string, twin: string, statements: [string, unknown[]?][], contents: string): Promise<void> {
  let i = 0;
  for (const [sql, params = []] of statements) {
    i++;
    const want = await run(sql.replaceAll('T', twin), params, params.length ? `${twin}_${i}` : undefined);
    const got = await run(sql.replaceAll('T', foreign), params, params.length ? `${foreign}_${i}` : undefined);
    assert.deepEqual(got, want, `${sql} (${JSON.stringify(params)})`);
  }
  assert.deepEqual(bag(await rows(c, contents.replaceAll('T', foreign))), bag(await rows(c, contents.replaceAll('T', twin))), 'final contents');
}

describe('INSERT ... ON CONFLICT against a real twin table', () => {
  it('hash: DO UPDATE SET value = EXCLUDED.value is HSET, DO NOTHING is HSETNX; tags, RETURNING, duplicates', async () => {
    await c.query(`create foreign table up_h (key text, value text) server up_server options (src_type 'hash', src_key 'up:h')`);
    await c.query('create table up_h_twin (key text primary key, value text)');
    await differential(
      'up_h',
      'up_h_twin',
      [
        [`insert into T values ('a', '1'), ('b', '2') on conflict (key) do update set value = excluded.value returning *`],
        [`insert into T values ('a', '9'), ('c', '3') on conflict (key) do nothing returning key, value`],
        [`insert into T values ('a', '10') on conflict do nothing`],
        [`insert into T as t values ('b', '20'), ('d', '4') on conflict (key) do update set value = EXCLUDED.value, key = excluded.key returning t.value, upper(t.key)`],
        [`insert into T (key, value) select 'e', 'x' union all select 'e', 'y' on conflict (key) do nothing returning *`],
        [`insert into T values ($1, $2) on conflict (key) do update set value = excluded.value returning value`, ['a', 'p']],
        [`insert into T values ($1, $2) on conflict (key) do nothing`, ['f', 'q']],
        // Postgres refuses to update one row twice in one statement; nothing is written.
        [`insert into T values ('g', '1'), ('g', '2') on conflict (key) do update set value = excluded.value`],
        [`insert into T values ('h', '1') on conflict do update set value = excluded.value`],
        [`insert into T values ('b', '30') on conflict (nope) do nothing`],
      ],
      'select key, value from T',
    );
    assert.deepEqual({ ...(await f.redis.hgetall('up:h')) }, { a: 'p', b: '20', c: '3', d: '4', e: 'x', f: 'q' });
  });

  it('set (DO NOTHING = SADD), zset (DO UPDATE SET score = EXCLUDED.score = ZADD, DO NOTHING = ZADD NX), glob strings (SET / SET NX)', async () => {
    await c.query(`create foreign table up_s (element text) server up_server options (src_type 'set', src_key 'up:s')`);
    await c.query('create table up_s_twin (element text primary key)');
    await differential(
      'up_s',
      'up_s_twin',
      [
        [`insert into T values ('a'), ('b'), ('a') on conflict do nothing returning element`],
        [`insert into T values ('b'), ('c') on conflict (element) do nothing returning *`],
        [`insert into T values ('c'), ('d') on conflict (element) do update set element = excluded.element returning *`],
      ],
      'select element from T',
    );
    await c.query(`create foreign table up_z (element text, score float8) server up_server options (src_type 'zset', src_key 'up:z')`);
    await c.query('create table up_z_twin (element text primary key, score float8)');
    await differential(
      'up_z',
      'up_z_twin',
      [
        [`insert into T values ('a', 1), ('b', 2) on conflict (element) do update set score = excluded.score returning *`],
        [`insert into T values ('a', 5), ('c', 3) on conflict (element) do nothing returning score`],
        [`insert into T values ('b', 7.5), ('d', -1) on conflict (element) do update set score = excluded.score returning element, score * 2`],
      ],
      'select element, score from T',
    );
    assert.deepEqual(await f.redis.zrange('up:z', '0', '-1', 'WITHSCORES'), ['d', '-1', 'a', '1', 'c', '3', 'b', '7.5']);
    await c.query(`create foreign table up_str (key text, value text) server up_rs options (database '${DB}', table_type 'string', table_key_prefix 'up:str:*')`);
    await c.query('create table up_str_twin (key text primary key, value text)');
    await differential(
      'up_str',
      'up_str_twin',
      [
        [`insert into T values ('up:str:1', 'a') on conflict (key) do nothing returning *`],
        [`insert into T values ('up:str:1', 'b'), ('up:str:2', 'c') on conflict (key) do nothing returning *`],
        [`insert into T values ('up:str:2', 'd') on conflict (key) do update set value = excluded.value returning *`],
      ],
      'select key, value from T',
    );
    assert.deepEqual(await f.redis.mget('up:str:1', 'up:str:2'), ['a', 'd']);
  });

  it('a single-key string table: ON CONFLICT DO NOTHING is SET NX', async () => {
    await c.query(`create foreign table up_one (value text) server up_rs options (database '${DB}', table_type 'string', table_key_prefix 'up:one')`);
    assert.deepEqual(await run(`insert into up_one values ('a') on conflict do nothing returning *`), { tag: 'INSERT 0 1', rows: [['a']] });
    assert.deepEqual(await run(`insert into up_one values ('b') on conflict do nothing returning *`), { tag: 'INSERT 0 0', rows: [] });
    assert.equal(await f.redis.get('up:one'), 'a');
    assert.match((await run(`insert into up_one values ('b') on conflict (value) do nothing`)).error ?? '', /^0A000 /);
  });

  it('inside a transaction the statement sees its own pending writes, and Redis gets NX at COMMIT', async () => {
    await c.query(`create foreign table up_tx (key text, value text) server up_server options (src_type 'hash', src_key 'up:tx')`);
    await f.redis.hset('up:tx', 'a', 'old');
    await c.query('begin');
    assert.deepEqual(await run(`insert into up_tx values ('b', '1') on conflict do nothing`), { tag: 'INSERT 0 1', rows: [] });
    assert.deepEqual(await run(`insert into up_tx values ('a', '2'), ('b', '2'), ('c', '2') on conflict do nothing returning key`), { tag: 'INSERT 0 1', rows: [['c']] });
    assert.deepEqual(bag(await rows(c, 'select key, value from up_tx')), bag([['a', 'old'], ['b', '1'], ['c', '2']]));
    // Another client creates c before COMMIT: DO NOTHING's HSETNX leaves its value alone.
    await f.redis.hset('up:tx', 'c', 'concurrent');
    await c.query('commit');
    assert.deepEqual({ ...(await f.redis.hgetall('up:tx')) }, { a: 'old', b: '1', c: 'concurrent' });
  });

  it('shapes Redis cannot honour exactly: 0A000 with a hint, Redis unchanged, connection usable', async () => {
    await c.query(`create foreign table up_e (key text, value text) server up_server options (src_type 'hash', src_key 'up:e')`);
    await c.query(`create foreign table up_l (element text) server up_server options (src_type 'list', src_key 'up:l')`);
    await f.redis.hset('up:e', 'a', '1');
    const refused = [
      `insert into up_e values ('a', 'x') on conflict (value) do nothing`,
      `insert into up_e as h values ('a', 'x') on conflict (key) do update set value = excluded.value || h.value`,
      `insert into up_e values ('a', 'x') on conflict (key) do update set value = 'const'`,
      `insert into up_e as h values ('a', 'x') on conflict (key) do update set value = excluded.value where h.value <> 'z'`,
      `insert into up_e values ('a', 'x') on conflict (key) do update set key = excluded.key`,
      `insert into up_e values ('a', 'x') on conflict on constraint up_e_pkey do nothing`,
      `insert into up_e values ('a', 'x') on conflict (key) where key <> '' do nothing`,
      `insert into up_l values ('x') on conflict do nothing`,
    ];
    for (const sql of refused) {
      const e = await pgError(c.query(sql), sql);
      assert.equal(e.code, '0A000', `${sql} → ${e.all}`);
      assert.ok(e.hint, `${sql}: a hint says what works`);
      assert.doesNotMatch(e.all, /bound parameter|redis_fdw_proxy|__redis_fdw/, sql);
    }
    assert.deepEqual({ ...(await f.redis.hgetall('up:e')) }, { a: '1' });
    assert.equal(await f.redis.exists('up:l'), 0);
    assert.deepEqual(await rows(c, 'select 1'), [['1']]);
  });
});

/** The twin's rows as the hash Redis should hold. */
async function twinHash(table: string): Promise<Record<string, string>> {
  const c = new pg.Client({ connectionString: f.directUrl });
  await c.connect();
  try {
    const r = await c.query<{ key: string; value: string }>(`select key, value from ${table}`);
    return Object.fromEntries(r.rows.map((x) => [x.key, x.value]));
  } finally {
    await c.end();
  }
}

const hash = async (k: string): Promise<Record<string, string>> => ({ ...(await f.redis.hgetall(k)) });


describe('ORM upserts on a hash foreign table', () => {
  before(async () => {
    for (const t of ['seq', 'typeorm', 'drizzle']) {
      await c.query(`create foreign table ${t}_kv (key text, value text) server up_server options (src_type 'hash', src_key 'orm:${t}')`);
      await c.query(`create table ${t}_twin (key text primary key, value text)`);
    }
  });
  test('Sequelize Model.upsert', async () => {
    const sent: string[] = [];
    const s = new Sequelize(f.url, { logging: (q) => sent.push(q), dialect: 'postgres' });
    try {
      for (const table of ['seq_kv', 'seq_twin']) {
        const Kv = s.define(table, { key: { type: DataTypes.TEXT, primaryKey: true }, value: DataTypes.TEXT }, { tableName: table, timestamps: false });
        const [first] = await Kv.upsert({ key: 'a', value: '1' });
        assert.equal(first.get('value'), '1');
        const [second] = await Kv.upsert({ key: 'a', value: '2' });
        assert.equal(second.get('value'), '2');
        await Kv.upsert({ key: 'b', value: '3' });
      }
    } finally {
      await s.close();
    }
    assert.ok(sent.some((q) => /seq_kv.*ON CONFLICT/s.test(q)), `Sequelize sent ON CONFLICT: ${sent.join('\n')}`);
    assert.deepEqual(await hash('orm:seq'), await twinHash('seq_twin'));
    assert.deepEqual(await hash('orm:seq'), { a: '2', b: '3' });
  });

  test('TypeORM repository.upsert', async () => {
    const sent: string[] = [];
    const schema = (table: string): EntitySchema => new EntitySchema({ name: table, tableName: table, columns: { key: { type: 'text', primary: true }, value: { type: 'text' } } });
    const ds = new DataSource({ type: 'postgres', url: f.url, entities: [schema('typeorm_kv'), schema('typeorm_twin')], synchronize: false, logging: ['query'], logger: { logQuery: (q: string) => void sent.push(q), logQueryError: () => {}, logQuerySlow: () => {}, logSchemaBuild: () => {}, logMigration: () => {}, log: () => {} } });
    await ds.initialize();
    try {
      for (const table of ['typeorm_kv', 'typeorm_twin']) {
        const repo = ds.getRepository(table);
        await repo.upsert([{ key: 'a', value: '1' }, { key: 'b', value: '2' }], ['key']);
        await repo.upsert([{ key: 'a', value: '10' }], { conflictPaths: ['key'] });
      }
    } finally {
      await ds.destroy();
    }
    assert.ok(sent.some((q) => /typeorm_kv.*ON CONFLICT/s.test(q)), `TypeORM sent ON CONFLICT: ${sent.join('\n')}`);
    assert.deepEqual(await hash('orm:typeorm'), await twinHash('typeorm_twin'));
    assert.deepEqual(await hash('orm:typeorm'), { a: '10', b: '2' });
  });

  test('drizzle onConflictDoUpdate and onConflictDoNothing', async () => {
    const client = new pg.Client({ connectionString: f.url });
    await client.connect();
    try {
      const sent: string[] = [];
      const db = drizzle({ client, logger: { logQuery: (q) => void sent.push(q) } });
      const results: unknown[] = [];
      for (const name of ['drizzle_kv', 'drizzle_twin']) {
        const t = pgTable(name, { key: text('key').primaryKey(), value: text('value') });
        const out: unknown[] = [];
        out.push(await db.insert(t).values([{ key: 'a', value: '1' }, { key: 'b', value: '2' }]).onConflictDoUpdate({ target: t.key, set: { value: sql`excluded.value` } }).returning());
        out.push(await db.insert(t).values({ key: 'a', value: '5' }).onConflictDoUpdate({ target: t.key, set: { value: sql`excluded.value` } }).returning({ v: t.value }));
        out.push(await db.insert(t).values([{ key: 'b', value: 'x' }, { key: 'c', value: '3' }]).onConflictDoNothing().returning());
        results.push(out);
      }
      assert.ok(sent.some((q) => /drizzle_kv.*on conflict/is.test(q)), `drizzle sent ON CONFLICT: ${sent.join('\n')}`);
      assert.deepEqual(results[0], results[1], 'RETURNING as from the twin table');
    } finally {
      await client.end();
    }
    assert.deepEqual(await hash('orm:drizzle'), await twinHash('drizzle_twin'));
    assert.deepEqual(await hash('orm:drizzle'), { a: '5', b: '2', c: '3' });
  });
});
