/**
 * ORM introspection beside a Redis foreign table, as the tools run it (issue 10 §2): knex
 * hasTable/columnInfo, TypeORM's query runner (getTables/hasTable, what synchronize reads), Sequelize's
 * query interface (and its findOrCreate, whose INSERT runs inside a PL/pgSQL function), and SQLAlchemy's inspector. In callback mode information_schema works for the
 * schema holding the foreign table; each answer through the proxy must equal the one straight from
 * upstream, and name both the real table and the foreign one.
 */
import 'reflect-metadata';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import knex from 'knex';
import { DataSource } from 'typeorm';
import { DataTypes, Sequelize } from 'sequelize';
import { fdwFixture, type FdwFixture } from '../support/fdw.js';
import { connect, setupSupabase } from '../support/fdw-sql.js';
import { REDIS_DB } from '../support/redis-dbs.js';

const DB = REDIS_DB.callbackOrm;
const PY = process.env.TEST_SQLALCHEMY_PYTHON ?? '/usr/bin/python3';
const here = path.dirname(fileURLToPath(import.meta.url));
const script = path.resolve(here, '../../../test/callback/python/sqlalchemy_inspect.py');

let f: FdwFixture;
let c: pg.Client;

before(async () => {
  f = await fdwFixture('cb_orm', DB, { advertise: 'auto' });
  c = await connect(f.url);
  await setupSupabase(c, f.redisUrl);
  await c.query(`create table users (id serial primary key, name text not null, email varchar(200));
    create foreign table fh (key text, value text) server redis_server options (src_type 'hash', src_key 'orm:h');
    create view user_names as select name from users`);
});

after(async () => {
  await c?.end().catch(() => {});
  await f?.close();
});

/** Runs the same introspection straight at upstream and through the proxy; they must agree. */
async function both<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const direct = await fn(f.directUrl);
  const proxied = await fn(f.url);
  assert.deepEqual(proxied, direct);
  return proxied;
}

describe('ORM introspection of a schema holding a Redis foreign table', () => {
  it('knex: hasTable and columnInfo', async () => {
    const r = await both(async (url) => {
      const k = knex({ client: 'pg', connection: url });
      try {
        return {
          users: await k.schema.hasTable('users'),
          fh: await k.schema.hasTable('fh'),
          missing: await k.schema.hasTable('nope'),
          usersCols: await k('users').columnInfo(),
          fhCols: await k('fh').columnInfo(),
        };
      } finally {
        await k.destroy();
      }
    });
    assert.equal(r.users, true);
    assert.equal(r.fh, true);
    assert.equal(r.missing, false);
    assert.deepEqual(Object.keys(r.usersCols), ['id', 'name', 'email']);
    assert.equal((r.usersCols as Record<string, { maxLength: number | null }>).email!.maxLength, 200);
    assert.deepEqual(Object.keys(r.fhCols), ['key', 'value']);
  });

  it('TypeORM: the query runner\'s getTables / hasTable (what synchronize reads)', async () => {
    const r = await both(async (url) => {
      const ds = new DataSource({ type: 'postgres', url, synchronize: false, entities: [] });
      await ds.initialize();
      const qr = ds.createQueryRunner();
      try {
        const tables = await qr.getTables(['users']);
        return {
          hasUsers: await qr.hasTable('users'),
          users: tables.map((t) => ({ name: t.name, columns: t.columns.map((col) => [col.name, col.type, col.isNullable, col.isPrimary]) })),
          all: (await qr.getTables()).map((t) => t.name).sort(),
        };
      } finally {
        await qr.release();
        await ds.destroy();
      }
    });
    assert.equal(r.hasUsers, true);
    assert.deepEqual(r.users[0]!.columns.map((x) => x[0]), ['id', 'name', 'email']);
    assert.ok(r.all.includes('users'), JSON.stringify(r.all));
  });

  it('Sequelize: showAllTables and describeTable', async () => {
    const r = await both(async (url) => {
      const s = new Sequelize(url, { logging: false });
      try {
        const qi = s.getQueryInterface();
        return { tables: ((await qi.showAllTables()) as unknown[]).map(String).sort(), users: await qi.describeTable('users'), fh: await qi.describeTable('fh') };
      } finally {
        await s.close();
      }
    });
    assert.ok(r.tables.includes('users'), JSON.stringify(r.tables));
    assert.deepEqual(Object.keys(r.users), ['id', 'name', 'email']);
    assert.deepEqual(Object.keys(r.fh), ['key', 'value']);
  });

  it('Sequelize findOrCreate, which wraps its INSERT in a PL/pgSQL function, creates the row in Redis once', async () => {
    const s = new Sequelize(f.url, { logging: false });
    try {
      const Fh = s.define('Fh', { key: { type: DataTypes.TEXT, primaryKey: true }, value: DataTypes.TEXT }, { tableName: 'fh', timestamps: false });
      const [row, created] = await Fh.findOrCreate({ where: { key: 'made' }, defaults: { value: 'by sequelize' } });
      assert.equal(created, true);
      assert.equal(row.get('value'), 'by sequelize');
      assert.equal(await f.redis.hget('orm:h', 'made'), 'by sequelize');
      const [again, createdAgain] = await Fh.findOrCreate({ where: { key: 'made' }, defaults: { value: 'other' } });
      assert.equal(createdAgain, false);
      assert.equal(again.get('value'), 'by sequelize');
    } finally {
      await s.close();
    }
  });

  const sqlalchemy = new Promise<string | false>((resolve) =>
    execFile(PY, ['-c', 'import sqlalchemy, psycopg2'], (e, _o, stderr) => resolve(e ? `SQLAlchemy (Debian python3-sqlalchemy + python3-psycopg2) not importable by ${PY}: ${stderr.trim().split('\n').pop()}` : false)),
  );

  it('SQLAlchemy\'s inspector', async (t) => {
    const missing = await sqlalchemy;
    if (missing) return t.skip(missing);
    const inspect = (url: string): Promise<unknown> =>
      new Promise((resolve, reject) => execFile(PY, [script, url], { timeout: 60_000, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } }, (e, out, err) => (e ? reject(new Error(`${e.message}\n${err}`)) : resolve(JSON.parse(out)))));
    const r = (await both(inspect)) as { tables: string[]; views: string[]; foreign_tables: string[]; columns: Record<string, [string, string, boolean][]>; has_table: boolean[] };
    assert.deepEqual(r.tables, ['users']);
    assert.deepEqual(r.views, ['user_names']);
    assert.deepEqual(r.foreign_tables, ['fh']);
    assert.deepEqual(r.columns.users!.map((x) => x[0]), ['id', 'name', 'email']);
    assert.deepEqual(r.columns.fh, [['key', 'TEXT', true], ['value', 'TEXT', true]]);
    assert.deepEqual(r.has_table, [true, true]);
  });
});
