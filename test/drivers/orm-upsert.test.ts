// ORM upserts on a Redis hash foreign table, as the ORMs write them: Sequelize `Model.upsert`,
// TypeORM `repository.upsert`, drizzle `onConflictDoUpdate` / `onConflictDoNothing`. Each must send
// INSERT ... ON CONFLICT (that is what is under test), and Redis must then hold what a real table
// with the same primary key holds after the same calls.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { Sequelize, DataTypes } from 'sequelize';
import { DataSource, EntitySchema } from 'typeorm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { pgTable, text } from 'drizzle-orm/pg-core';
import { sql } from 'drizzle-orm';
import { fdwFixture, type FdwFixture } from '../support/fdw.js';

const DB = 15; // each test file that writes Redis has its own db
let f: FdwFixture;

before(async () => {
  f = await fdwFixture('drv_orm_upsert', DB);
  const c = new pg.Client({ connectionString: f.url });
  await c.connect();
  try {
    await c.query('create foreign data wrapper redis_wrapper handler redis_fdw_handler validator redis_fdw_validator');
    await c.query(`create server orm_rs foreign data wrapper redis_wrapper options (conn_url '${f.redisUrl}')`);
    for (const t of ['seq', 'typeorm', 'drizzle']) {
      await c.query(`create foreign table ${t}_kv (key text, value text) server orm_rs options (src_type 'hash', src_key 'orm:${t}')`);
      await c.query(`create table ${t}_twin (key text primary key, value text)`);
    }
  } finally {
    await c.end();
  }
});

after(async () => {
  await f?.close();
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
