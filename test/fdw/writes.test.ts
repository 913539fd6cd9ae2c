/**
 * Writes through the proxy (issue 4, .tmp/writes-spec.md): INSERT, UPDATE, DELETE and TRUNCATE on every
 * Redis foreign-table type — hash, list, set, zset, stream, string (redis_fdw_rs), multi_hash/list/set/
 * zset, and redis_fdw_rs glob tables — checked against what raw ioredis then sees, and the other way
 * round (data written with ioredis is what SELECT returns and what UPDATE/DELETE act on). Also: the
 * redis_fdw_rs README INSERT examples exactly as written (psql), command tags (node-postgres and psql),
 * RETURNING, INSERT ... SELECT, DEFAULT, $n parameters in named prepared statements, expressions, each
 * error's SQLSTATE with Redis unchanged and the connection still usable, privileges, and one MULTI/EXEC
 * per statement.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type pg from 'pg';
import postgres from 'postgres';
import { fdwFixture, psqlScript, withDb, type FdwFixture } from '../support/fdw.js';
import { bag, connect, monitorRedis, pgError, rows, settle, type PgErr } from '../support/fdw-sql.js';
import { spawnProxy } from '../harness/proxy.js';
import { sleep } from '../support/proto-tools.js';
import { msg, normalize, ProtoConn } from '../support/proto-client.js';
import { REDIS_DB } from '../support/redis-dbs.js';

const DB = REDIS_DB.writes;
let f: FdwFixture;
let c: pg.Client;

before(async () => {
  f = await fdwFixture('fdw_writes', DB);
  c = await connect(f.url);
  // Our own wrapper and server names: the README test below creates redis_wrapper/redis_server as written.
  await c.query('create extension if not exists wrappers with schema extensions');
  await c.query('create foreign data wrapper sb_wrapper handler redis_fdw_handler validator redis_fdw_validator');
  await c.query(`create server sb_server foreign data wrapper sb_wrapper options (conn_url '${f.redisUrl}')`);
  await c.query(`create server rs_server foreign data wrapper sb_wrapper options (host_port '${f.redisHostPort}')`);
});

after(async () => {
  await c?.end().catch(() => {});
  await f?.close();
});

// ---------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------

const rawTypes = { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig;

interface Res {
  command: string;
  rowCount: number | null;
  oid: number;
  rows: (string | null)[][];
  fields: string[];
}

/** Runs a statement; every value as the raw text Postgres sent. */
async function q(sql: string, params: unknown[] = [], client: pg.Client = c): Promise<Res> {
  const r = await client.query({ text: sql, values: params, rowMode: 'array', types: rawTypes });
  return { command: r.command, rowCount: r.rowCount, oid: r.oid, rows: r.rows as (string | null)[][], fields: r.fields.map((x) => x.name) };
}

/** Named (prepared) statement through node-postgres. */
async function qn(name: string, sql: string, params: unknown[], client: pg.Client = c): Promise<Res> {
  const r = await client.query({ name, text: sql, values: params, rowMode: 'array', types: rawTypes });
  return { command: r.command, rowCount: r.rowCount, oid: r.oid, rows: r.rows as (string | null)[][], fields: r.fields.map((x) => x.name) };
}

/** The command tag as node-postgres parsed it: `INSERT 0 n`, `UPDATE n`, `DELETE n`, `TRUNCATE TABLE`. */
function tag(r: Res, command: 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE', n: number | null, what = ''): void {
  assert.equal(r.command, command, `${what} command`);
  assert.equal(r.rowCount, n, `${what} row count in the ${command} tag`);
  if (command === 'INSERT') assert.equal(r.oid, 0, `${what} INSERT tag is "INSERT 0 n"`);
}

/** Runs `sql` and checks its tag; returns the RETURNING rows. */
async function expectTag(sql: string, command: 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE', n: number | null, params: unknown[] = []): Promise<(string | null)[][]> {
  const r = await q(sql, params);
  tag(r, command, n, sql);
  return r.rows;
}

/** Supabase-dialect table (src_type/src_key). */
async function sb(name: string, cols: string, type: string, key: string): Promise<void> {
  await c.query(`create foreign table ${name} (${cols}) server sb_server options (src_type '${type}', src_key '${key}')`);
}

/** redis_fdw_rs-dialect table (database/table_type/table_key_prefix). */
async function rs(name: string, cols: string, type: string, prefix: string): Promise<void> {
  await c.query(`create foreign table ${name} (${cols}) server rs_server options (database '${DB}', table_type '${type}', table_key_prefix '${prefix}')`);
}

const r = () => f.redis;
const hash = async (k: string): Promise<Record<string, string>> => ({ ...(await r().hgetall(k)) });
const list = (k: string): Promise<string[]> => r().lrange(k, 0, -1);
const members = async (k: string): Promise<string[]> => (await r().smembers(k)).sort();
const zset = (k: string): Promise<string[]> => r().zrange(k, '0', '-1', 'WITHSCORES') as Promise<string[]>;
const exists = (k: string): Promise<number> => r().exists(k);
/** A stream as [id, {field: value}] pairs. */
async function stream(k: string): Promise<[string, Record<string, string>][]> {
  const entries = (await r().xrange(k, '-', '+')) as [string, string[]][];
  return entries.map(([id, fv]) => {
    const o: Record<string, string> = {};
    for (let i = 0; i < fv.length; i += 2) o[fv[i]!] = fv[i + 1]!;
    return [id, o];
  });
}

/** The keys of this file's Redis db matching `pattern`, by key: type and full contents. */
async function snapshot(pattern = '*'): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const k of (await r().keys(pattern)).sort()) {
    const t = await r().type(k);
    if (t === 'hash') out[k] = { hash: Object.entries(await hash(k)).sort() };
    else if (t === 'list') out[k] = { list: await list(k) };
    else if (t === 'set') out[k] = { set: await members(k) };
    else if (t === 'zset') out[k] = { zset: await zset(k) };
    else if (t === 'stream') out[k] = { stream: await stream(k) };
    else if (t === 'string') out[k] = { string: await r().get(k) };
    else out[k] = { type: t };
  }
  return out;
}

/**
 * `sql` fails with `code`; Redis is exactly as before (every key matching `scope`, by default the whole
 * db; a narrower scope keeps a concurrent run of another file's keys out of the comparison); the same
 * connection still works.
 */
async function expectError(sql: string, code: string, opts: { params?: unknown[]; message?: RegExp; client?: pg.Client; scope?: string; name?: string } = {}): Promise<PgErr> {
  const client = opts.client ?? c;
  const scope = opts.scope ?? '*';
  const before = await snapshot(scope);
  const e = await pgError(client.query({ name: opts.name, text: sql, values: opts.params ?? [] }), sql);
  assert.equal(e.code, code, `${sql}\n  → ${e.all}`);
  if (opts.message) assert.match(e.message, opts.message, sql);
  await settle(50);
  assert.deepEqual(await snapshot(scope), before, `Redis must be unchanged after the failing statement: ${sql}`);
  assert.deepEqual(await rows(client, 'select 1 as still_usable'), [['1']], `connection usable after: ${sql}`);
  return e;
}

// ---------------------------------------------------------------------------------------------------
// redis_fdw_rs README examples, through psql, exactly as written
// ---------------------------------------------------------------------------------------------------

describe('redis_fdw_rs README INSERT examples, as written, through psql', () => {
  it('Quick Example: INSERT into the hash and list tables one row at a time, then SELECT shows them', async () => {
    // The README's text; only host_port and database name this test's Redis.
    const script = `CREATE EXTENSION redis_fdw_rs;
-- 1. Create the foreign data wrapper
CREATE FOREIGN DATA WRAPPER redis_wrapper 
HANDLER redis_fdw_handler;

-- 2. Create a server pointing to your Redis instance
CREATE SERVER redis_server 
FOREIGN DATA WRAPPER redis_wrapper
OPTIONS (host_port '${f.redisHostPort}');

-- 3. Create a foreign table for Redis hash
CREATE FOREIGN TABLE user_profiles (key text, value text) 
SERVER redis_server
OPTIONS (
    database '${DB}',
    table_type 'hash',
    table_key_prefix 'user:profiles'
);

-- 4. Create a foreign table for Redis list  
CREATE FOREIGN TABLE task_queue (element text) 
SERVER redis_server
OPTIONS (
    database '${DB}',
    table_type 'list',
    table_key_prefix 'tasks:pending'
);

-- 5. Use the tables
INSERT INTO user_profiles VALUES ('name', 'John Doe');
INSERT INTO user_profiles VALUES ('email', 'john@example.com');
SELECT * FROM user_profiles;

INSERT INTO task_queue VALUES ('Process invoice #123');
INSERT INTO task_queue VALUES ('Send welcome email');
SELECT * FROM task_queue;
`;
    const out = await psqlScript(f.url, script);
    assert.equal(
      out,
      [
        'CREATE EXTENSION',
        'CREATE FOREIGN DATA WRAPPER',
        'CREATE SERVER',
        'CREATE FOREIGN TABLE',
        'CREATE FOREIGN TABLE',
        'INSERT 0 1',
        'INSERT 0 1',
        '  key  |      value       ',
        '-------+------------------',
        ' name  | John Doe',
        ' email | john@example.com',
        '(2 rows)',
        '',
        'INSERT 0 1',
        'INSERT 0 1',
        '       element        ',
        '----------------------',
        ' Process invoice #123',
        ' Send welcome email',
        '(2 rows)',
        '',
        '',
      ].join('\n'),
    );
    assert.deepEqual(await hash('user:profiles'), { name: 'John Doe', email: 'john@example.com' });
    assert.deepEqual(Object.keys(await r().hgetall('user:profiles')), ['name', 'email'], 'HSET in statement order');
    assert.deepEqual(await list('tasks:pending'), ['Process invoice #123', 'Send welcome email']);
  });

  it('Hash and List usage examples and Bulk Operations: single-row and multi-row INSERTs, then SELECT', async () => {
    const script = `CREATE FOREIGN TABLE redis_hash_table (key text, value text) 
SERVER redis_server
OPTIONS (
    database '${DB}',
    table_type 'hash',
    table_key_prefix 'user:'
);

-- Usage examples
SELECT * FROM redis_hash_table;
INSERT INTO redis_hash_table VALUES ('name', 'John Doe');
INSERT INTO redis_hash_table VALUES ('email', 'john@example.com');
CREATE FOREIGN TABLE redis_list_table (element text) 
SERVER redis_server
OPTIONS (
    database '${DB}',
    table_type 'list',
    table_key_prefix 'tasks:'
);

-- Usage examples
SELECT * FROM redis_list_table;
INSERT INTO redis_list_table VALUES ('Task 1');
INSERT INTO redis_list_table VALUES ('Task 2');
-- Bulk insert hash data
INSERT INTO redis_hash_table VALUES 
  ('user:1', 'John Doe'),
  ('user:2', 'Jane Smith'),
  ('user:3', 'Bob Wilson');

-- Bulk insert list data
INSERT INTO redis_list_table VALUES 
  ('Task 1'),
  ('Task 2'), 
  ('Task 3');
SELECT * FROM redis_hash_table;
SELECT * FROM redis_list_table;
`;
    const out = await psqlScript(f.url, script);
    assert.equal(
      out,
      [
        'CREATE FOREIGN TABLE',
        ' key | value ',
        '-----+-------',
        '(0 rows)',
        '',
        'INSERT 0 1',
        'INSERT 0 1',
        'CREATE FOREIGN TABLE',
        ' element ',
        '---------',
        '(0 rows)',
        '',
        'INSERT 0 1',
        'INSERT 0 1',
        'INSERT 0 3',
        'INSERT 0 3',
        '  key   |      value       ',
        '--------+------------------',
        ' name   | John Doe',
        ' email  | john@example.com',
        ' user:1 | John Doe',
        ' user:2 | Jane Smith',
        ' user:3 | Bob Wilson',
        '(5 rows)',
        '',
        ' element ',
        '---------',
        ' Task 1',
        ' Task 2',
        ' Task 1',
        ' Task 2',
        ' Task 3',
        '(5 rows)',
        '',
        '',
      ].join('\n'),
    );
    assert.deepEqual(await hash('user:'), { name: 'John Doe', email: 'john@example.com', 'user:1': 'John Doe', 'user:2': 'Jane Smith', 'user:3': 'Bob Wilson' });
    assert.deepEqual(await list('tasks:'), ['Task 1', 'Task 2', 'Task 1', 'Task 2', 'Task 3']);
    // The README's Complex Queries over the rows just inserted, through node-postgres.
    assert.deepEqual(await rows(c, 'SELECT COUNT(*) as task_count FROM redis_list_table'), [['5']]);
    assert.deepEqual(bag(await rows(c, `SELECT * FROM redis_hash_table WHERE key LIKE 'user_%'`)), bag([['user:1', 'John Doe'], ['user:2', 'Jane Smith'], ['user:3', 'Bob Wilson']]));
  });
});

// ---------------------------------------------------------------------------------------------------
// psql: tags and RETURNING as psql prints them
// ---------------------------------------------------------------------------------------------------

describe('psql prints the tags and RETURNING rows', () => {
  before(async () => {
    await sb('ph', 'key text, value text', 'hash', 'p:hash');
    await sb('pl', 'element text, index bigint', 'list', 'p:list');
    await sb('pz', 'element text, score float8', 'zset', 'p:zset');
  });

  it('hash: INSERT 0 n, RETURNING, UPDATE n, DELETE n, DELETE 0, TRUNCATE TABLE; ioredis sees each step', async () => {
    await r().del('p:hash');
    assert.equal(await f.psql(`INSERT INTO ph VALUES ('a', '1'), ('b', '2')`), 'INSERT 0 2\n');
    assert.deepEqual(await hash('p:hash'), { a: '1', b: '2' });
    assert.equal(await f.psql(`INSERT INTO ph VALUES ('c', '3') RETURNING *`), ' key | value \n-----+-------\n c   | 3\n(1 row)\n\nINSERT 0 1\n');
    assert.deepEqual(await hash('p:hash'), { a: '1', b: '2', c: '3' });
    assert.equal(
      await f.psql(`UPDATE ph SET value = value || '!' WHERE key IN ('a', 'c') RETURNING key, value`),
      ' key | value \n-----+-------\n a   | 1!\n c   | 3!\n(2 rows)\n\nUPDATE 2\n',
    );
    assert.deepEqual(await hash('p:hash'), { a: '1!', b: '2', c: '3!' });
    assert.equal(await f.psql(`DELETE FROM ph WHERE key = 'b' RETURNING *`), ' key | value \n-----+-------\n b   | 2\n(1 row)\n\nDELETE 1\n');
    assert.deepEqual(await hash('p:hash'), { a: '1!', c: '3!' });
    assert.equal(await f.psql(`DELETE FROM ph WHERE key = 'nope'`), 'DELETE 0\n');
    assert.equal(await f.psql(`UPDATE ph SET value = 'x' WHERE false`), 'UPDATE 0\n');
    assert.equal(await f.psql('SELECT * FROM ph ORDER BY key'), ' key | value \n-----+-------\n a   | 1!\n c   | 3!\n(2 rows)\n\n');
    assert.equal(await f.psql('TRUNCATE ph'), 'TRUNCATE TABLE\n');
    assert.equal(await exists('p:hash'), 0);
    assert.equal(await f.psql('SELECT count(*) FROM ph', ['-At']), '0\n');
  });

  it('list: INSERT ... SELECT, UPDATE by index, DELETE with RETURNING; zset RETURNING float8 scores', async () => {
    await r().del('p:list', 'p:zset');
    assert.equal(await f.psql(`INSERT INTO pl (element) SELECT 'e' || g FROM generate_series(1, 3) g`), 'INSERT 0 3\n');
    assert.deepEqual(await list('p:list'), ['e1', 'e2', 'e3']);
    assert.equal(await f.psql(`UPDATE pl SET element = 'E2' WHERE index = 1 RETURNING element, index`), ' element | index \n---------+-------\n E2      |     1\n(1 row)\n\nUPDATE 1\n');
    assert.deepEqual(await list('p:list'), ['e1', 'E2', 'e3']);
    assert.equal(await f.psql(`DELETE FROM pl WHERE index = 0 RETURNING element`), ' element \n---------\n e1\n(1 row)\n\nDELETE 1\n');
    assert.deepEqual(await list('p:list'), ['E2', 'e3']);

    assert.equal(
      await f.psql(`INSERT INTO pz VALUES ('a', 1.5), ('b', -2) RETURNING element, score`),
      ' element | score \n---------+-------\n a       |   1.5\n b       |    -2\n(2 rows)\n\nINSERT 0 2\n',
    );
    assert.deepEqual(await zset('p:zset'), ['b', '-2', 'a', '1.5']);
    assert.equal(await f.psql(`UPDATE pz SET score = score * 2 WHERE element = 'a'`), 'UPDATE 1\n');
    assert.deepEqual(await zset('p:zset'), ['b', '-2', 'a', '3']);
    assert.equal(await f.psql('TRUNCATE pl, pz'), 'TRUNCATE TABLE\n');
    assert.equal(await exists('p:list'), 0);
    assert.equal(await exists('p:zset'), 0);
  });

  it('an error prints its SQLSTATE (VERBOSITY verbose) and writes nothing', async () => {
    await r().del('p:hash');
    await r().hset('p:hash', 'keep', 'me');
    const out = await f.psql(`INSERT INTO ph VALUES ('x', NULL)`, ['-v', 'VERBOSITY=verbose']);
    assert.match(out, /^ERROR: {2}23502: /m, out);
    assert.doesNotMatch(out, /^INSERT/m, out);
    assert.deepEqual(await hash('p:hash'), { keep: 'me' });
  });
});

// ---------------------------------------------------------------------------------------------------
// Per type, through node-postgres
// ---------------------------------------------------------------------------------------------------

describe('hash (Supabase: key = field, value)', () => {
  before(async () => {
    await sb('h', 'key text, value text', 'hash', 'w:hash');
    await c.query(`create table h_src (k text, v text); insert into h_src values ('b', 'from-real'), ('zz', 'no-such-field')`);
  });

  it('INSERT one and many rows, RETURNING, an existing field is overwritten', async () => {
    await r().del('w:hash');
    assert.deepEqual(await expectTag(`INSERT INTO h VALUES ('a', '1')`, 'INSERT', 1), []);
    assert.deepEqual(await hash('w:hash'), { a: '1' });
    assert.deepEqual(await expectTag(`INSERT INTO h VALUES ('b', '2'), ('c', '3') RETURNING *`, 'INSERT', 2), [['b', '2'], ['c', '3']]);
    assert.deepEqual(await expectTag(`INSERT INTO h (value, key) VALUES ('10', 'a') RETURNING value, key, length(value)`, 'INSERT', 1), [['10', 'a', '2']]);
    assert.deepEqual(await hash('w:hash'), { a: '10', b: '2', c: '3' });
    assert.deepEqual(bag(await rows(c, 'SELECT * FROM h')), bag([['a', '10'], ['b', '2'], ['c', '3']]));
  });

  it('UPDATE value, rename a field, no match → UPDATE 0; RETURNING gives the new values', async () => {
    await r().del('w:hash');
    await r().hset('w:hash', 'a', '10', 'b', 'from-real', 'c', '3');
    assert.deepEqual(await expectTag(`UPDATE h SET value = value || '!' WHERE key = 'a' RETURNING key, value`, 'UPDATE', 1), [['a', '10!']]);
    assert.deepEqual(await hash('w:hash'), { a: '10!', b: 'from-real', c: '3' });
    // Renaming the field: HDEL old + HSET new, the value kept.
    assert.deepEqual(await expectTag(`UPDATE h SET key = 'cc' WHERE key = 'c' RETURNING *`, 'UPDATE', 1), [['cc', '3']]);
    assert.deepEqual(await hash('w:hash'), { a: '10!', b: 'from-real', cc: '3' });
    assert.deepEqual(await expectTag(`UPDATE h SET value = 'x' WHERE key = 'missing'`, 'UPDATE', 0), []);
    assert.deepEqual(await expectTag(`UPDATE h SET value = upper(value) WHERE value ~ '^[a-z]'`, 'UPDATE', 1), []);
    assert.deepEqual(await hash('w:hash'), { a: '10!', b: 'FROM-REAL', cc: '3' });
    assert.deepEqual(bag(await expectTag(`UPDATE h SET value = key RETURNING value`, 'UPDATE', 3)), bag([['a'], ['b'], ['cc']]));
    assert.deepEqual(await hash('w:hash'), { a: 'a', b: 'b', cc: 'cc' });
  });

  it('UPDATE ... FROM a real table', async () => {
    await r().del('w:hash');
    await r().hset('w:hash', 'a', '1', 'b', '2');
    assert.deepEqual(await expectTag(`UPDATE h SET value = s.v FROM h_src s WHERE h.key = s.k`, 'UPDATE', 1), []);
    assert.deepEqual(await hash('w:hash'), { a: '1', b: 'from-real' });
  });

  it('UPDATE ... FROM with RETURNING columns of the FROM table, as on a real twin table', async () => {
    await r().del('w:hash');
    await r().hset('w:hash', 'a', '1', 'b', '2');
    assert.deepEqual(await expectTag(`UPDATE h SET value = s.v || '!' FROM h_src s WHERE h.key = s.k RETURNING h.key, h.value, s.k, s.v`, 'UPDATE', 1), [['b', 'from-real!', 'b', 'from-real']]);
    assert.deepEqual(await hash('w:hash'), { a: '1', b: 'from-real!' });
    await q('CREATE TABLE h_twin (key text, value text)');
    await q(`INSERT INTO h_twin VALUES ('a', '1'), ('b', 'from-real!')`);
    for (const sql of [
      `UPDATE {t} SET value = s.v || '?' FROM h_src s WHERE {t}.key = s.k RETURNING *`,
      `UPDATE {t} AS t SET value = 'x' FROM h_src s, (VALUES ('b')) AS v(k) WHERE t.key = s.k AND v.k = s.k RETURNING s.*, t.*, v.k, t.value || s.v`,
      `UPDATE {t} SET value = s.v FROM h_src s WHERE s.k = 'nope' RETURNING *`,
    ]) {
      const want = await q(sql.replaceAll('{t}', 'h_twin'));
      const got = await q(sql.replaceAll('{t}', 'h'));
      assert.deepEqual([got.command, got.rowCount, got.fields, got.rows], [want.command, want.rowCount, want.fields, want.rows], sql);
    }
    assert.deepEqual(bag(await rows(c, 'SELECT * FROM h')), bag(await rows(c, 'SELECT * FROM h_twin')));
  });

  it('RETURNING the whole row has the foreign table\'s row type', async () => {
    const own = (await rows(c, `SELECT 'h'::regtype::oid`))[0]![0];
    for (const sql of [`INSERT INTO h VALUES ('wr', '1') RETURNING h`, `UPDATE h AS x SET value = '2' WHERE key = 'wr' RETURNING x`, `UPDATE h SET value = '3' FROM h_src s WHERE h.key = 'wr' RETURNING h, s.k`]) {
      const r = await c.query({ text: sql, rowMode: 'array' });
      assert.equal(String(r.fields[0]!.dataTypeID), own, sql);
    }
    // DELETE's RETURNING sits beside the rows the rewrite numbers: the number must not show in the row.
    const d = await c.query({ text: `DELETE FROM h AS x WHERE key = 'wr' RETURNING x, row_to_json(x)`, rowMode: 'array' });
    assert.deepEqual([d.fields.map((x) => [x.name, String(x.dataTypeID)]), d.rows], [[['x', own], ['row_to_json', '114']], [['(wr,3)', '{"key":"wr","value":"3"}']]]);
  });

  it('the rewrite\'s own names are not in scope: RETURNING c1 fails as on a table', async () => {
    const e = await pgError(q(`INSERT INTO h VALUES ('n1', '1') RETURNING c1`));
    assert.equal(e.code, '42703');
    assert.equal(e.message, 'column "c1" does not exist');
    assert.equal((await pgError(q(`UPDATE h SET value = 'v' RETURNING q.c1`))).code, '42P01');
  });

  it('errors in Postgres\'s own form: $n in a simple Query is 42P02 at its position; a materialized view is a clear 0A000', async () => {
    await q('CREATE TABLE k (key text, value text)'); // as long as h: the same positions
    for (const sql of [`SELECT * FROM {t} WHERE value = $1`, `SELECT 1, (SELECT key FROM {t} WHERE value = $2)`, `INSERT INTO {t} VALUES ($1, 'x')`, `UPDATE {t} SET value = $1`]) {
      // node-postgres sends a statement without values as a simple Query.
      const fail = (text: string): Promise<unknown> => c.query(text).then(() => assert.fail(`${text} succeeded`), (x: { code?: string; message?: string; position?: string }) => [x.code, x.message, x.position]);
      assert.deepEqual(await fail(sql.replaceAll('{t}', 'h')), await fail(sql.replaceAll('{t}', 'k')), sql);
    }
    const narrow = await pgError(c.query(`INSERT INTO h SELECT * FROM (SELECT 'q') x`));
    assert.equal(narrow.code, '0A000', narrow.all);
    assert.doesNotMatch(narrow.all, /table "s"/);
    const e = await pgError(c.query('CREATE MATERIALIZED VIEW h_mv AS SELECT * FROM h'));
    assert.equal(e.code, '0A000');
    assert.ok(e.hint);
    assert.doesNotMatch(e.all, /bound parameters|redis_fdw_proxy|__redis_fdw/);
    assert.deepEqual(await rows(c, `SELECT count(*) FROM pg_class WHERE relname = 'h_mv'`), [['0']]);
  });

  it('DELETE with predicates (incl. a subquery and USING), RETURNING gives the old values; DELETE 0', async () => {
    await r().del('w:hash');
    await r().hset('w:hash', 'a', '10!', 'b', 'FROM-REAL', 'cc', '3', 'zz', 'gone soon', 'u', 'using');
    assert.deepEqual(bag(await expectTag(`DELETE FROM h WHERE key IN (SELECT k FROM h_src) RETURNING key, value`, 'DELETE', 2)), bag([['b', 'FROM-REAL'], ['zz', 'gone soon']]));
    assert.deepEqual(await hash('w:hash'), { a: '10!', cc: '3', u: 'using' });
    assert.deepEqual(await expectTag(`DELETE FROM h WHERE value = 'nothing'`, 'DELETE', 0), []);
    assert.deepEqual(await expectTag(`DELETE FROM h WHERE length(key) = 2 RETURNING *`, 'DELETE', 1), [['cc', '3']]);
    assert.deepEqual(await hash('w:hash'), { a: '10!', u: 'using' });
    assert.deepEqual(await expectTag(`DELETE FROM h USING (VALUES ('u')) AS v(k) WHERE h.key = v.k`, 'DELETE', 1), []);
    assert.deepEqual(await hash('w:hash'), { a: '10!' });
    assert.deepEqual(await expectTag(`DELETE FROM h`, 'DELETE', 1), []);
    assert.equal(await exists('w:hash'), 0);
  });

  it('TRUNCATE deletes the key and nothing else', async () => {
    await r().del('w:hash');
    await q(`INSERT INTO h VALUES ('t1', 'x'), ('t2', 'y')`);
    await r().hset('w:hash:other', 'keep', '1');
    assert.deepEqual(await hash('w:hash'), { t1: 'x', t2: 'y' });
    await expectTag('TRUNCATE h', 'TRUNCATE', null);
    assert.equal(await exists('w:hash'), 0);
    assert.deepEqual(await hash('w:hash:other'), { keep: '1' });
    assert.deepEqual(await rows(c, 'SELECT * FROM h'), []);
    await expectTag('TRUNCATE TABLE h', 'TRUNCATE', null); // an absent key: still fine
  });

  it('ioredis → proxy: fields written with HSET are what SELECT returns and what UPDATE/DELETE act on', async () => {
    await r().del('w:hash');
    await r().hset('w:hash', { f1: 'v1', f2: 'v2', f3: 'v3', 'f 4': "it's" });
    assert.deepEqual(bag(await rows(c, 'SELECT key, value FROM h')), bag([['f1', 'v1'], ['f2', 'v2'], ['f3', 'v3'], ['f 4', "it's"]]));
    assert.deepEqual(await expectTag(`UPDATE h SET value = 'V2' WHERE key = 'f2' RETURNING value`, 'UPDATE', 1), [['V2']]);
    assert.deepEqual(await expectTag(`DELETE FROM h WHERE value IN ('v1', 'it''s')`, 'DELETE', 2), []);
    assert.deepEqual(await hash('w:hash'), { f2: 'V2', f3: 'v3' });
    await r().hset('w:hash', 'f3', 'changed by redis');
    assert.deepEqual(await expectTag(`UPDATE h SET value = value || '+' WHERE key = 'f3' RETURNING value`, 'UPDATE', 1), [['changed by redis+']]);
    assert.deepEqual(await hash('w:hash'), { f2: 'V2', f3: 'changed by redis+' });
  });

  it('RETURNING * has exactly the table\'s columns, for INSERT, UPDATE and DELETE of every type', async () => {
    await sb('rt_l', 'element text, index bigint', 'list', 'rt:list');
    await sb('rt_z', 'element text, score float8', 'zset', 'rt:zset');
    await sb('rt_x', 'id text, items jsonb', 'stream', 'rt:stream');
    await sb('rt_m', 'key text, items jsonb', 'multi_hash', 'rt:m:*');
    await r().del('w:hash');
    const cases: [string, string[], (string | null)[][]][] = [
      [`INSERT INTO h VALUES ('a', '1') RETURNING *`, ['key', 'value'], [['a', '1']]],
      [`UPDATE h SET value = '2' RETURNING *`, ['key', 'value'], [['a', '2']]],
      [`DELETE FROM h RETURNING *`, ['key', 'value'], [['a', '2']]],
      [`INSERT INTO rt_l (element) VALUES ('e') RETURNING element`, ['element'], [['e']]],
      [`UPDATE rt_l SET element = 'E' RETURNING *`, ['element', 'index'], [['E', '0']]],
      [`DELETE FROM rt_l RETURNING *`, ['element', 'index'], [['E', '0']]],
      [`INSERT INTO rt_z VALUES ('m', 1) RETURNING *`, ['element', 'score'], [['m', '1']]],
      [`UPDATE rt_z SET score = 2 RETURNING *`, ['element', 'score'], [['m', '2']]],
      [`DELETE FROM rt_z RETURNING *`, ['element', 'score'], [['m', '2']]],
      [`INSERT INTO rt_x VALUES ('1-1', '{"f": "v"}') RETURNING *`, ['id', 'items'], [['1-1', '{"f": "v"}']]],
      [`DELETE FROM rt_x RETURNING *`, ['id', 'items'], [['1-1', '{"f": "v"}']]],
      [`INSERT INTO rt_m VALUES ('rt:m:1', '{"f": "v"}') RETURNING *`, ['key', 'items'], [['rt:m:1', '{"f": "v"}']]],
      [`UPDATE rt_m SET items = '{"g": "w"}' RETURNING *`, ['key', 'items'], [['rt:m:1', '{"g": "w"}']]],
      [`DELETE FROM rt_m RETURNING *`, ['key', 'items'], [['rt:m:1', '{"g": "w"}']]],
    ];
    const problems: string[] = [];
    for (const [sql, fields, want] of cases) {
      const res = await q(sql);
      if (JSON.stringify(res.fields) !== JSON.stringify(fields) || JSON.stringify(res.rows) !== JSON.stringify(want)) {
        problems.push(`${sql}\n    got ${JSON.stringify(res.fields)} ${JSON.stringify(res.rows)}, want ${JSON.stringify(fields)} ${JSON.stringify(want)}`);
      }
    }
    assert.deepEqual(problems, []);
    for (const k of ['w:hash', 'rt:list', 'rt:zset', 'rt:m:1']) assert.equal(await exists(k), 0, k);
  });
});

describe('list (element [, index])', () => {
  before(async () => {
    await sb('l', 'element text', 'list', 'w:list');
    await sb('li', 'element text, index bigint', 'list', 'w:list');
  });

  it('INSERT: RPUSH in row order; the index column may be omitted, DEFAULT or NULL', async () => {
    await r().del('w:list');
    assert.deepEqual(await expectTag(`INSERT INTO l VALUES ('a'), ('b') RETURNING element`, 'INSERT', 2), [['a'], ['b']]);
    assert.deepEqual(await list('w:list'), ['a', 'b']);
    await expectTag(`INSERT INTO l VALUES ('a'), ('c')`, 'INSERT', 2);
    await expectTag(`INSERT INTO li (element) VALUES ('d')`, 'INSERT', 1);
    await expectTag(`INSERT INTO li VALUES ('e', DEFAULT)`, 'INSERT', 1);
    await expectTag(`INSERT INTO li VALUES ('f', NULL)`, 'INSERT', 1);
    assert.deepEqual(await list('w:list'), ['a', 'b', 'a', 'c', 'd', 'e', 'f']);
    assert.deepEqual(await rows(c, 'SELECT element, index FROM li'), [['a', '0'], ['b', '1'], ['a', '2'], ['c', '3'], ['d', '4'], ['e', '5'], ['f', '6']]);
  });

  it('UPDATE: LSET by index, and by element with no index column (every matching position)', async () => {
    await r().del('w:list');
    await r().rpush('w:list', 'a', 'b', 'a', 'c', 'd', 'e', 'f');
    assert.deepEqual(await expectTag(`UPDATE li SET element = 'B' WHERE index = 1 RETURNING element, index`, 'UPDATE', 1), [['B', '1']]);
    assert.deepEqual(await list('w:list'), ['a', 'B', 'a', 'c', 'd', 'e', 'f']);
    assert.deepEqual(await expectTag(`UPDATE l SET element = upper(element) WHERE element = 'a'`, 'UPDATE', 2), []);
    assert.deepEqual(await list('w:list'), ['A', 'B', 'A', 'c', 'd', 'e', 'f']);
    assert.deepEqual(bag(await expectTag(`UPDATE li SET element = element || '!' WHERE index >= 5 RETURNING index, element`, 'UPDATE', 2)), bag([['5', 'e!'], ['6', 'f!']]));
    assert.deepEqual(await list('w:list'), ['A', 'B', 'A', 'c', 'd', 'e!', 'f!']);
  });

  it('DELETE removes exactly the matching positions (not every equal element), RETURNING old values', async () => {
    await r().del('w:list');
    await r().rpush('w:list', 'A', 'B', 'A', 'c', 'd', 'e!', 'f!');
    assert.deepEqual(await expectTag(`DELETE FROM li WHERE index = 2 RETURNING element, index`, 'DELETE', 1), [['A', '2']]);
    assert.deepEqual(await list('w:list'), ['A', 'B', 'c', 'd', 'e!', 'f!'], 'the equal element at index 0 stays');
    assert.deepEqual(bag(await expectTag(`DELETE FROM l WHERE element LIKE '%!' RETURNING element`, 'DELETE', 2)), bag([['e!'], ['f!']]));
    assert.deepEqual(await list('w:list'), ['A', 'B', 'c', 'd']);
    assert.deepEqual(await expectTag(`DELETE FROM li WHERE index IN (0, 3)`, 'DELETE', 2), []);
    assert.deepEqual(await list('w:list'), ['B', 'c']);
    assert.deepEqual(await expectTag(`DELETE FROM l WHERE element = 'zzz'`, 'DELETE', 0), []);
    assert.deepEqual(await list('w:list'), ['B', 'c']);
  });

  it('UPDATE and DELETE of elements with quotes, backslashes, control characters and non-BMP text act exactly', async () => {
    // The checked edit carries its elements to Redis as JSON text (write.ts): what it escapes must come back as it was.
    await r().del('w:list');
    const els = ['"q"', 'back\\slash', 'new\nline', 'tab\t', '\u0001ctl', '', 'é中😀', 'plain'];
    await r().rpush('w:list', ...els);
    await expectTag(`UPDATE li SET element = element || '|' WHERE index % 2 = 0`, 'UPDATE', 4);
    const updated = els.map((e, i) => (i % 2 === 0 ? `${e}|` : e));
    assert.deepEqual(await list('w:list'), updated);
    await expectTag(`DELETE FROM li WHERE index % 2 = 1`, 'DELETE', 4);
    assert.deepEqual(await list('w:list'), updated.filter((_, i) => i % 2 === 0));
  });

  it('a list changed since the statement read it is refused whole at COMMIT, even past the first 1,000 edits', async () => {
    await r().del('w:list');
    const els = Array.from({ length: 2500 }, (_, i) => `e${i}`);
    await r().rpush('w:list', ...els);
    const notices: { severity?: string; message?: string }[] = [];
    const onNotice = (n: { severity?: string; message?: string }): void => void notices.push(n);
    c.on('notice', onNotice);
    try {
      await c.query('begin');
      await expectTag(`UPDATE l SET element = element || '!'`, 'UPDATE', 2500);
      // Someone else edits a position the statement read, in the third 1,000 of its edits.
      await r().lset('w:list', 2100, 'changed');
      await c.query('commit');
    } finally {
      c.off('notice', onNotice);
    }
    const warning = notices.find((n) => n.severity === 'WARNING');
    assert.match(warning?.message ?? '', /changed since the statement read it: element 2100 no longer holds what the statement read/);
    assert.deepEqual(await list('w:list'), els.map((e, i) => (i === 2100 ? 'changed' : e)), 'no position was edited');
  });

  it('TRUNCATE deletes the key', async () => {
    await r().rpush('w:list', 'B', 'c');
    await expectTag('TRUNCATE l', 'TRUNCATE', null);
    assert.equal(await exists('w:list'), 0);
    assert.deepEqual(await rows(c, 'SELECT count(*) FROM li'), [['0']]);
  });

  it('ioredis → proxy: RPUSHed elements are the rows, in order; UPDATE/DELETE by index act on them', async () => {
    await r().del('w:list');
    await r().rpush('w:list', 'p', 'q', 'p', 'r');
    assert.deepEqual(await rows(c, 'SELECT element, index FROM li'), [['p', '0'], ['q', '1'], ['p', '2'], ['r', '3']]);
    await expectTag(`UPDATE li SET element = 'R' WHERE index = 3`, 'UPDATE', 1);
    assert.deepEqual(await list('w:list'), ['p', 'q', 'p', 'R']);
    await expectTag(`DELETE FROM li WHERE index = 0`, 'DELETE', 1);
    assert.deepEqual(await list('w:list'), ['q', 'p', 'R']);
    await r().lpush('w:list', 'new-head');
    assert.deepEqual(await expectTag(`DELETE FROM li WHERE index = 0 RETURNING element`, 'DELETE', 1), [['new-head']]);
    assert.deepEqual(await list('w:list'), ['q', 'p', 'R']);
  });
});

describe('set (element)', () => {
  before(async () => {
    await sb('s', 'element text', 'set', 'w:set');
  });

  it('INSERT (SADD), UPDATE (SREM+SADD), DELETE (SREM) with RETURNING, TRUNCATE', async () => {
    await r().del('w:set');
    assert.deepEqual(bag(await expectTag(`INSERT INTO s VALUES ('a'), ('b'), ('c') RETURNING element`, 'INSERT', 3)), bag([['a'], ['b'], ['c']]));
    assert.deepEqual(await members('w:set'), ['a', 'b', 'c']);
    await q(`INSERT INTO s VALUES ('a')`); // already a member: the set is unchanged
    assert.deepEqual(await members('w:set'), ['a', 'b', 'c']);
    assert.deepEqual(bag(await expectTag(`UPDATE s SET element = element || element WHERE element <> 'a' RETURNING element`, 'UPDATE', 2)), bag([['bb'], ['cc']]));
    assert.deepEqual(await members('w:set'), ['a', 'bb', 'cc']);
    assert.deepEqual(await expectTag(`DELETE FROM s WHERE element = 'a' RETURNING *`, 'DELETE', 1), [['a']]);
    assert.deepEqual(await members('w:set'), ['bb', 'cc']);
    assert.deepEqual(await expectTag(`DELETE FROM s WHERE element = 'a'`, 'DELETE', 0), []);
    assert.deepEqual(bag(await rows(c, 'SELECT * FROM s')), bag([['bb'], ['cc']]));
    await expectTag('TRUNCATE s', 'TRUNCATE', null);
    assert.equal(await exists('w:set'), 0);
  });

  it('ioredis → proxy', async () => {
    await r().del('w:set');
    await r().sadd('w:set', 'x', 'y', 'z');
    assert.deepEqual(bag(await rows(c, 'SELECT element FROM s')), bag([['x'], ['y'], ['z']]));
    await expectTag(`UPDATE s SET element = 'Y' WHERE element = 'y'`, 'UPDATE', 1);
    await expectTag(`DELETE FROM s WHERE element = 'z'`, 'DELETE', 1);
    assert.deepEqual(await members('w:set'), ['Y', 'x']);
  });
});

describe('zset (element [, score])', () => {
  before(async () => {
    await sb('z', 'element text, score float8', 'zset', 'w:zset');
    await sb('zm', 'element text', 'zset', 'w:zset');
  });

  it('INSERT: ZADD score member; score 0 without a score column; an existing member gets the new score', async () => {
    await r().del('w:zset');
    assert.deepEqual(await expectTag(`INSERT INTO z VALUES ('a', 1.5), ('b', -2) RETURNING element, score`, 'INSERT', 2), [['a', '1.5'], ['b', '-2']]);
    assert.deepEqual(await zset('w:zset'), ['b', '-2', 'a', '1.5']);
    await expectTag(`INSERT INTO zm VALUES ('c')`, 'INSERT', 1);
    assert.deepEqual(await zset('w:zset'), ['b', '-2', 'c', '0', 'a', '1.5']);
    await expectTag(`INSERT INTO z VALUES ('b', 10)`, 'INSERT', 1);
    assert.deepEqual(await zset('w:zset'), ['c', '0', 'a', '1.5', 'b', '10']);
    assert.deepEqual(await rows(c, 'SELECT element, score FROM z'), [['c', '0'], ['a', '1.5'], ['b', '10']]);
  });

  it('UPDATE: score change (ZADD), member change (ZREM+ZADD keeping the score), both at once', async () => {
    await r().del('w:zset');
    await r().zadd('w:zset', 0, 'c', 1.5, 'a', 10, 'b');
    assert.deepEqual(await expectTag(`UPDATE z SET score = score + 1 WHERE element = 'a' RETURNING *`, 'UPDATE', 1), [['a', '2.5']]);
    assert.deepEqual(await zset('w:zset'), ['c', '0', 'a', '2.5', 'b', '10']);
    await expectTag(`UPDATE z SET element = 'C' WHERE element = 'c'`, 'UPDATE', 1);
    assert.deepEqual(await zset('w:zset'), ['C', '0', 'a', '2.5', 'b', '10']);
    assert.deepEqual(await expectTag(`UPDATE z SET element = 'B', score = -1 WHERE element = 'b' RETURNING element, score`, 'UPDATE', 1), [['B', '-1']]);
    assert.deepEqual(await zset('w:zset'), ['B', '-1', 'C', '0', 'a', '2.5']);
  });

  it('DELETE (ZREM) by a score predicate, RETURNING old values; TRUNCATE', async () => {
    await r().del('w:zset');
    await r().zadd('w:zset', -1, 'B', 0, 'C', 2.5, 'a');
    assert.deepEqual(bag(await expectTag(`DELETE FROM z WHERE score < 1 RETURNING element, score`, 'DELETE', 2)), bag([['B', '-1'], ['C', '0']]));
    assert.deepEqual(await zset('w:zset'), ['a', '2.5']);
    await expectTag('TRUNCATE z', 'TRUNCATE', null);
    assert.equal(await exists('w:zset'), 0);
  });

  it('ioredis → proxy', async () => {
    await r().del('w:zset');
    await r().zadd('w:zset', 3, 'c', 1, 'a', 2, 'b');
    assert.deepEqual(await rows(c, 'SELECT * FROM z'), [['a', '1'], ['b', '2'], ['c', '3']]);
    await expectTag(`UPDATE z SET score = 0 WHERE element = 'c'`, 'UPDATE', 1);
    await expectTag(`DELETE FROM z WHERE score BETWEEN 1 AND 1.5`, 'DELETE', 1);
    assert.deepEqual(await zset('w:zset'), ['c', '0', 'b', '2']);
  });
});

describe('stream (id, items jsonb)', () => {
  before(async () => {
    await sb('x', 'id text, items jsonb', 'stream', 'w:stream');
  });

  it('INSERT with explicit ids: XADD, JSON strings as is, other JSON values as their JSON text', async () => {
    await r().del('w:stream');
    assert.deepEqual(
      await expectTag(`INSERT INTO x VALUES ('1-1', '{"a": "x", "n": 42, "t": true}'), ('2-0', '{"b": "y y"}') RETURNING id`, 'INSERT', 2),
      [['1-1'], ['2-0']],
    );
    assert.deepEqual(await stream('w:stream'), [['1-1', { a: 'x', n: '42', t: 'true' }], ['2-0', { b: 'y y' }]]);
    assert.deepEqual(await rows(c, 'SELECT id, items FROM x'), [['1-1', '{"a": "x", "n": "42", "t": "true"}'], ['2-0', '{"b": "y y"}']]);
  });

  it("INSERT with id '*': Redis assigns the id", async () => {
    await r().del('w:stream');
    await r().xadd('w:stream', '2-0', 'b', 'y y');
    await expectTag(`INSERT INTO x VALUES ('*', '{"k": "v"}'), ('*', '{"k": "w"}')`, 'INSERT', 2);
    const s = await stream('w:stream');
    assert.equal(s.length, 3);
    assert.match(s[1]![0], /^\d{10,}-\d+$/);
    assert.deepEqual(s.map((e) => e[1]), [{ b: 'y y' }, { k: 'v' }, { k: 'w' }], 'appended in row order');
  });

  it('UPDATE is refused: 0A000, the stream unchanged', async () => {
    await r().del('w:stream');
    await r().xadd('w:stream', '1-1', 'a', 'x');
    const e = await expectError(`UPDATE x SET items = '{"a": "changed"}' WHERE id = '1-1'`, '0A000', { scope: 'w:*' });
    assert.match(e.all, /stream/i, e.all);
  });

  it('DELETE (XDEL) by id and by an items predicate, RETURNING old values; TRUNCATE', async () => {
    await r().del('w:stream');
    await r().xadd('w:stream', '1-1', 'a', 'x', 'n', '42', 't', 'true');
    await r().xadd('w:stream', '2-0', 'b', 'y y');
    await r().xadd('w:stream', '3-0', 'k', 'v');
    assert.deepEqual(await expectTag(`DELETE FROM x WHERE id = '1-1' RETURNING id, items`, 'DELETE', 1), [['1-1', '{"a": "x", "n": "42", "t": "true"}']]);
    assert.deepEqual((await stream('w:stream')).map((e) => e[0]), ['2-0', '3-0']);
    await expectTag(`DELETE FROM x WHERE items ? 'k'`, 'DELETE', 1);
    assert.deepEqual(await stream('w:stream'), [['2-0', { b: 'y y' }]]);
    await expectTag('TRUNCATE x', 'TRUNCATE', null);
    assert.equal(await exists('w:stream'), 0);
  });

  it('ioredis → proxy', async () => {
    await r().del('w:stream');
    await r().xadd('w:stream', '1-0', 'f', 'v');
    await r().xadd('w:stream', '2-0', 'g', 'w', 'h', '1');
    assert.deepEqual(await rows(c, 'SELECT * FROM x'), [['1-0', '{"f": "v"}'], ['2-0', '{"g": "w", "h": "1"}']]);
    await expectTag(`DELETE FROM x WHERE items->>'g' = 'w'`, 'DELETE', 1);
    assert.deepEqual(await stream('w:stream'), [['1-0', { f: 'v' }]]);
  });

  it('redis_fdw_rs stream with one column per field: INSERT writes each column as a field; UPDATE 0A000; DELETE; TRUNCATE', async () => {
    await rs('rx', 'id text, name text, age int', 'stream', 'w:rsstream');
    assert.deepEqual(await expectTag(`INSERT INTO rx VALUES ('5-1', 'ann', 31), ('6-1', 'bob', 40) RETURNING id, name, age`, 'INSERT', 2), [['5-1', 'ann', '31'], ['6-1', 'bob', '40']]);
    assert.deepEqual(await stream('w:rsstream'), [['5-1', { name: 'ann', age: '31' }], ['6-1', { name: 'bob', age: '40' }]]);
    assert.deepEqual(await rows(c, 'SELECT id, name, age + 1 FROM rx'), [['5-1', 'ann', '32'], ['6-1', 'bob', '41']]);
    await expectError(`UPDATE rx SET age = 32 WHERE id = '5-1'`, '0A000', { scope: 'w:*' });
    assert.deepEqual(await expectTag(`DELETE FROM rx WHERE age > 35 RETURNING name`, 'DELETE', 1), [['bob']]);
    assert.deepEqual(await stream('w:rsstream'), [['5-1', { name: 'ann', age: '31' }]]);
    await expectTag('TRUNCATE rx', 'TRUNCATE', null);
    assert.equal(await exists('w:rsstream'), 0);
  });
});

describe('string (redis_fdw_rs, value)', () => {
  before(async () => {
    await rs('str', 'value text', 'string', 'w:string');
  });

  it('INSERT (SET, overwriting), UPDATE (SET), DELETE (DEL), with RETURNING; absent key: UPDATE 0, DELETE 0', async () => {
    await r().del('w:string');
    assert.deepEqual(await expectTag(`INSERT INTO str VALUES ('hello') RETURNING value`, 'INSERT', 1), [['hello']]);
    assert.equal(await r().get('w:string'), 'hello');
    await expectTag(`INSERT INTO str VALUES ('bye')`, 'INSERT', 1);
    assert.equal(await r().get('w:string'), 'bye');
    assert.deepEqual(await rows(c, 'SELECT * FROM str'), [['bye']]);
    assert.deepEqual(await expectTag(`UPDATE str SET value = value || '!' RETURNING value`, 'UPDATE', 1), [['bye!']]);
    assert.equal(await r().get('w:string'), 'bye!');
    assert.deepEqual(await expectTag(`DELETE FROM str RETURNING value`, 'DELETE', 1), [['bye!']]);
    assert.equal(await exists('w:string'), 0);
    assert.deepEqual(await expectTag(`UPDATE str SET value = 'x'`, 'UPDATE', 0), []);
    assert.equal(await exists('w:string'), 0, 'UPDATE of an absent string creates nothing');
    assert.deepEqual(await expectTag(`DELETE FROM str`, 'DELETE', 0), []);
  });

  it('TRUNCATE; ioredis → proxy', async () => {
    await r().del('w:string');
    await q(`INSERT INTO str VALUES ('t')`);
    await expectTag('TRUNCATE str', 'TRUNCATE', null);
    assert.equal(await exists('w:string'), 0);
    await r().set('w:string', 'abc');
    assert.deepEqual(await rows(c, 'SELECT value FROM str'), [['abc']]);
    await expectTag(`UPDATE str SET value = reverse(value) WHERE value = 'abc'`, 'UPDATE', 1);
    assert.equal(await r().get('w:string'), 'cba');
    await expectTag(`DELETE FROM str WHERE value = 'nope'`, 'DELETE', 0);
    assert.equal(await r().get('w:string'), 'cba');
  });
});

describe('redis_fdw_rs single-key hash, list, set, zset', () => {
  before(async () => {
    await rs('rh', 'field text, value text', 'hash', 'w:rshash');
    await rs('rl', 'element text, index int', 'list', 'w:rslist');
    await rs('rset', 'member text', 'set', 'w:rsset');
    await rs('rz', 'member text, score float8', 'zset', 'w:rszset');
  });

  it('hash: INSERT, UPDATE (value and field rename), DELETE, TRUNCATE', async () => {
    await expectTag(`INSERT INTO rh VALUES ('a', '1'), ('b', '2')`, 'INSERT', 2);
    assert.deepEqual(await hash('w:rshash'), { a: '1', b: '2' });
    await expectTag(`UPDATE rh SET value = '11' WHERE field = 'a'`, 'UPDATE', 1);
    await expectTag(`UPDATE rh SET field = 'B' WHERE field = 'b'`, 'UPDATE', 1);
    assert.deepEqual(await hash('w:rshash'), { a: '11', B: '2' });
    assert.deepEqual(await expectTag(`DELETE FROM rh WHERE field = 'a' RETURNING field, value`, 'DELETE', 1), [['a', '11']]);
    assert.deepEqual(await hash('w:rshash'), { B: '2' });
    await expectTag('TRUNCATE rh', 'TRUNCATE', null);
    assert.equal(await exists('w:rshash'), 0);
  });

  it('list: INSERT, UPDATE by index, DELETE by index, TRUNCATE', async () => {
    await expectTag(`INSERT INTO rl (element) VALUES ('x'), ('y'), ('z')`, 'INSERT', 3);
    assert.deepEqual(await list('w:rslist'), ['x', 'y', 'z']);
    await expectTag(`UPDATE rl SET element = 'Z' WHERE index = 2`, 'UPDATE', 1);
    await expectTag(`DELETE FROM rl WHERE index = 0`, 'DELETE', 1);
    assert.deepEqual(await list('w:rslist'), ['y', 'Z']);
    await expectTag('TRUNCATE rl', 'TRUNCATE', null);
    assert.equal(await exists('w:rslist'), 0);
  });

  it('set and zset: INSERT, UPDATE, DELETE, TRUNCATE', async () => {
    await expectTag(`INSERT INTO rset VALUES ('m1'), ('m2')`, 'INSERT', 2);
    await expectTag(`UPDATE rset SET member = 'M2' WHERE member = 'm2'`, 'UPDATE', 1);
    assert.deepEqual(await members('w:rsset'), ['M2', 'm1']);
    await expectTag(`DELETE FROM rset WHERE member = 'm1'`, 'DELETE', 1);
    assert.deepEqual(await members('w:rsset'), ['M2']);
    await expectTag('TRUNCATE rset', 'TRUNCATE', null);
    assert.equal(await exists('w:rsset'), 0);

    await expectTag(`INSERT INTO rz VALUES ('a', 2), ('b', 1)`, 'INSERT', 2);
    assert.deepEqual(await zset('w:rszset'), ['b', '1', 'a', '2']);
    await expectTag(`UPDATE rz SET score = 0.5 WHERE member = 'a'`, 'UPDATE', 1);
    assert.deepEqual(await zset('w:rszset'), ['a', '0.5', 'b', '1']);
    await expectTag(`DELETE FROM rz WHERE member = 'b'`, 'DELETE', 1);
    assert.deepEqual(await zset('w:rszset'), ['a', '0.5']);
    await expectTag('TRUNCATE rz', 'TRUNCATE', null);
    assert.equal(await exists('w:rszset'), 0);
  });
});

describe('multi_* (Supabase: key, items jsonb; src_key is a pattern)', () => {
  before(async () => {
    await sb('mh', 'key text, items jsonb', 'multi_hash', 'mh:*');
    await sb('ml', 'key text, items jsonb', 'multi_list', 'ml:*');
    await sb('ms', 'key text, items jsonb', 'multi_set', 'ms:*');
    await sb('mz', 'key text, items jsonb', 'multi_zset', 'mz:*');
  });

  it('multi_hash: INSERT picks the key; UPDATE replaces the hash; DELETE deletes the key; TRUNCATE deletes every matching key', async () => {
    assert.deepEqual(await expectTag(`INSERT INTO mh VALUES ('mh:1', '{"a": "1", "b": "2"}'), ('mh:2', '{"c": "3"}') RETURNING key`, 'INSERT', 2), [['mh:1'], ['mh:2']]);
    assert.deepEqual(await hash('mh:1'), { a: '1', b: '2' });
    assert.deepEqual(await hash('mh:2'), { c: '3' });
    assert.deepEqual(await rows(c, 'SELECT key, items FROM mh ORDER BY key'), [['mh:1', '{"a": "1", "b": "2"}'], ['mh:2', '{"c": "3"}']]);
    assert.deepEqual(await expectTag(`UPDATE mh SET items = '{"z": "26"}' WHERE key = 'mh:1' RETURNING key, items`, 'UPDATE', 1), [['mh:1', '{"z": "26"}']]);
    assert.deepEqual(await hash('mh:1'), { z: '26' }, 'the hash is replaced, not merged');
    await expectTag(`UPDATE mh SET items = items || '{"d": "4"}' WHERE key = 'mh:2'`, 'UPDATE', 1);
    assert.deepEqual(await hash('mh:2'), { c: '3', d: '4' });
    assert.deepEqual(await expectTag(`DELETE FROM mh WHERE items ? 'd' RETURNING key`, 'DELETE', 1), [['mh:2']]);
    assert.equal(await exists('mh:2'), 0);
    assert.deepEqual(await hash('mh:1'), { z: '26' });
    await q(`INSERT INTO mh VALUES ('mh:3', '{"x": "y"}')`);
    await r().hset('mhx:1', 'keep', '1'); // does not match mh:*
    await expectTag('TRUNCATE mh', 'TRUNCATE', null);
    assert.equal(await exists('mh:1'), 0);
    assert.equal(await exists('mh:3'), 0);
    assert.deepEqual(await hash('mhx:1'), { keep: '1' });
  });

  it('multi_list, multi_set, multi_zset: INSERT (items a JSON array of strings), DELETE the key, TRUNCATE', async () => {
    await expectTag(`INSERT INTO ml VALUES ('ml:1', '["a", "b", "a"]'), ('ml:2', '["c"]')`, 'INSERT', 2);
    assert.deepEqual(await list('ml:1'), ['a', 'b', 'a']);
    assert.deepEqual(await list('ml:2'), ['c']);
    assert.deepEqual(await rows(c, 'SELECT key, items FROM ml ORDER BY key'), [['ml:1', '["a", "b", "a"]'], ['ml:2', '["c"]']]);
    assert.deepEqual(await expectTag(`DELETE FROM ml WHERE key = 'ml:1' RETURNING key, items`, 'DELETE', 1), [['ml:1', '["a", "b", "a"]']]);
    assert.equal(await exists('ml:1'), 0);
    assert.deepEqual(await list('ml:2'), ['c']);

    await expectTag(`INSERT INTO ms VALUES ('ms:1', '["a", "b"]'), ('ms:2', '["c"]')`, 'INSERT', 2);
    assert.deepEqual(await members('ms:1'), ['a', 'b']);
    assert.deepEqual(await members('ms:2'), ['c']);
    await expectTag(`DELETE FROM ms WHERE items @> '["c"]'`, 'DELETE', 1);
    assert.equal(await exists('ms:2'), 0);
    assert.deepEqual(await members('ms:1'), ['a', 'b']);

    await expectTag(`INSERT INTO mz VALUES ('mz:1', '["a", "b"]'), ('mz:2', '["c"]')`, 'INSERT', 2);
    // Scores for multi_zset items are not specified; the members are, and reading back gives the array back.
    assert.deepEqual(await r().zrange('mz:1', '0', '-1'), ['a', 'b']);
    assert.deepEqual(await r().zrange('mz:2', '0', '-1'), ['c']);
    await expectTag(`INSERT INTO mz VALUES ('mz:3', '["zz", "aa", "mm"]')`, 'INSERT', 1);
    assert.deepEqual((await r().zrange('mz:3', '0', '-1')).sort(), ['aa', 'mm', 'zz']);
    await r().del('mz:3');
    await expectTag(`DELETE FROM mz WHERE key = 'mz:1'`, 'DELETE', 1);
    assert.equal(await exists('mz:1'), 0);

    await r().rpush('mlx', 'keep');
    await expectTag('TRUNCATE ml, ms, mz', 'TRUNCATE', null);
    for (const k of ['ml:2', 'ms:1', 'mz:2']) assert.equal(await exists(k), 0, k);
    assert.deepEqual(await list('mlx'), ['keep']);
  });

  it('multi_list/set/zset UPDATE: either replaces the key exactly, or is refused (0A000) changing nothing', async () => {
    // The spec defines UPDATE for multi_hash only; whichever way the others go, Redis is never left half-changed.
    await r().rpush('ml:u', 'a', 'b');
    await r().sadd('ms:u', 'a', 'b');
    await r().zadd('mz:u', 0, 'a', 0, 'b');
    for (const [t, key, read, want] of [
      ['ml', 'ml:u', list, ['x', 'y']],
      ['ms', 'ms:u', members, ['x', 'y']],
      ['mz', 'mz:u', (k: string) => r().zrange(k, '0', '-1').then((m) => m.sort()), ['x', 'y']],
    ] as const) {
      const before = await snapshot();
      try {
        const res = await q(`UPDATE ${t} SET items = '["x", "y"]' WHERE key = '${key}'`);
        tag(res, 'UPDATE', 1, t);
        assert.deepEqual(await read(key), want, `${t}: UPDATE succeeded, so the key holds exactly the new items`);
      } catch (err) {
        if (err instanceof assert.AssertionError) throw err;
        assert.equal((err as { code?: string }).code, '0A000', `${t}: ${String(err)}`);
        assert.deepEqual(await snapshot(), before, `${t}: refused UPDATE changed Redis`);
      }
    }
  });

  it('ioredis → proxy: keys written with ioredis are the rows; UPDATE and DELETE act on them', async () => {
    await r().hset('mh:r1', 'a', '1');
    await r().hset('mh:r2', 'b', '2');
    await r().rpush('ml:r1', 'p', 'q');
    await r().sadd('ms:r1', 's');
    await r().zadd('mz:r1', 2, 'two', 1, 'one');
    assert.deepEqual(await rows(c, `SELECT key, items FROM mh WHERE key LIKE 'mh:r%' ORDER BY key`), [['mh:r1', '{"a": "1"}'], ['mh:r2', '{"b": "2"}']]);
    assert.deepEqual(await rows(c, `SELECT key, items FROM ml WHERE key = 'ml:r1'`), [['ml:r1', '["p", "q"]']]);
    assert.deepEqual(await rows(c, `SELECT key, items FROM ms WHERE key = 'ms:r1'`), [['ms:r1', '["s"]']]);
    assert.deepEqual(await rows(c, `SELECT key, items FROM mz WHERE key = 'mz:r1'`), [['mz:r1', '["one", "two"]']]);
    await expectTag(`UPDATE mh SET items = '{"A": "one"}' WHERE key = 'mh:r1'`, 'UPDATE', 1);
    assert.deepEqual(await hash('mh:r1'), { A: 'one' });
    await expectTag(`DELETE FROM mh WHERE items->>'b' = '2'`, 'DELETE', 1);
    assert.equal(await exists('mh:r2'), 0);
    await expectTag(`DELETE FROM ml WHERE items->>0 = 'p'`, 'DELETE', 1);
    assert.equal(await exists('ml:r1'), 0);
    await expectTag(`DELETE FROM mz WHERE key = 'mz:r1'`, 'DELETE', 1);
    assert.equal(await exists('mz:r1'), 0);
  });
});

describe('redis_fdw_rs glob tables (key column first, one row per element)', () => {
  before(async () => {
    await rs('g_hash', 'key text, field text, value text', 'hash', 'g:hash:*');
    await rs('g_list', 'key text, element text', 'list', 'g:list:*');
    await rs('g_set', 'key text, member text', 'set', 'g:set:*');
    await rs('g_zset', 'key text, member text, score float8', 'zset', 'g:zset:*');
    await rs('g_str', 'key text, value text', 'string', 'g:str:*');
    await r().hset('g:other:keep', 'k', 'v');
  });

  it('hash: INSERT picks the key; UPDATE value and field; DELETE one field (HDEL); TRUNCATE every matching key', async () => {
    await expectTag(`INSERT INTO g_hash VALUES ('g:hash:1', 'a', '1'), ('g:hash:1', 'b', '2'), ('g:hash:2', 'c', '3')`, 'INSERT', 3);
    assert.deepEqual(await hash('g:hash:1'), { a: '1', b: '2' });
    assert.deepEqual(await hash('g:hash:2'), { c: '3' });
    assert.deepEqual(bag(await expectTag(`UPDATE g_hash SET value = value || '0' WHERE field IN ('a', 'c') RETURNING *`, 'UPDATE', 2)), bag([['g:hash:1', 'a', '10'], ['g:hash:2', 'c', '30']]));
    await expectTag(`UPDATE g_hash SET field = 'bb' WHERE key = 'g:hash:1' AND field = 'b'`, 'UPDATE', 1);
    assert.deepEqual(await hash('g:hash:1'), { a: '10', bb: '2' });
    assert.deepEqual(await expectTag(`DELETE FROM g_hash WHERE key = 'g:hash:1' AND field = 'a' RETURNING key, field, value`, 'DELETE', 1), [['g:hash:1', 'a', '10']]);
    assert.deepEqual(await hash('g:hash:1'), { bb: '2' }, 'only that field is deleted');
    assert.deepEqual(await hash('g:hash:2'), { c: '30' });
    await expectTag('TRUNCATE g_hash', 'TRUNCATE', null);
    assert.equal(await exists('g:hash:1'), 0);
    assert.equal(await exists('g:hash:2'), 0);
    assert.deepEqual(await hash('g:other:keep'), { k: 'v' });
  });

  it('list: RPUSH per key in row order; UPDATE; DELETE one element; TRUNCATE', async () => {
    await expectTag(`INSERT INTO g_list VALUES ('g:list:a', 'x'), ('g:list:b', 'y'), ('g:list:a', 'z')`, 'INSERT', 3);
    assert.deepEqual(await list('g:list:a'), ['x', 'z']);
    assert.deepEqual(await list('g:list:b'), ['y']);
    await expectTag(`UPDATE g_list SET element = 'Z' WHERE element = 'z'`, 'UPDATE', 1);
    assert.deepEqual(await list('g:list:a'), ['x', 'Z']);
    await expectTag(`DELETE FROM g_list WHERE key = 'g:list:a' AND element = 'x'`, 'DELETE', 1);
    assert.deepEqual(await list('g:list:a'), ['Z']);
    assert.deepEqual(await list('g:list:b'), ['y']);
    await expectTag('TRUNCATE g_list', 'TRUNCATE', null);
    assert.equal(await exists('g:list:a'), 0);
    assert.equal(await exists('g:list:b'), 0);
  });

  it('set and zset: INSERT, UPDATE, DELETE, TRUNCATE', async () => {
    await expectTag(`INSERT INTO g_set VALUES ('g:set:a', 'm'), ('g:set:a', 'n'), ('g:set:b', 'o')`, 'INSERT', 3);
    await expectTag(`UPDATE g_set SET member = 'N' WHERE member = 'n'`, 'UPDATE', 1);
    await expectTag(`DELETE FROM g_set WHERE member = 'o'`, 'DELETE', 1);
    assert.deepEqual(await members('g:set:a'), ['N', 'm']);
    assert.equal(await exists('g:set:b'), 0, 'the last member removed: the set is gone');
    await expectTag('TRUNCATE g_set', 'TRUNCATE', null);
    assert.equal(await exists('g:set:a'), 0);

    await expectTag(`INSERT INTO g_zset VALUES ('g:zset:a', 'm', 1), ('g:zset:a', 'n', 2), ('g:zset:b', 'o', 3)`, 'INSERT', 3);
    await expectTag(`UPDATE g_zset SET score = score * 10 WHERE key = 'g:zset:a'`, 'UPDATE', 2);
    assert.deepEqual(await zset('g:zset:a'), ['m', '10', 'n', '20']);
    await expectTag(`UPDATE g_zset SET member = 'O' WHERE member = 'o'`, 'UPDATE', 1);
    assert.deepEqual(await zset('g:zset:b'), ['O', '3']);
    await expectTag(`DELETE FROM g_zset WHERE score > 15`, 'DELETE', 1);
    assert.deepEqual(await zset('g:zset:a'), ['m', '10']);
    await expectTag('TRUNCATE g_zset', 'TRUNCATE', null);
    assert.equal(await exists('g:zset:a'), 0);
    assert.equal(await exists('g:zset:b'), 0);
  });

  it('string: INSERT SETs each key; UPDATE; DELETE DELs the key; TRUNCATE', async () => {
    assert.deepEqual(await expectTag(`INSERT INTO g_str VALUES ('g:str:a', '1'), ('g:str:b', '2') RETURNING key, value`, 'INSERT', 2), [['g:str:a', '1'], ['g:str:b', '2']]);
    assert.equal(await r().get('g:str:a'), '1');
    assert.equal(await r().get('g:str:b'), '2');
    await expectTag(`UPDATE g_str SET value = value || '!' WHERE key = 'g:str:a'`, 'UPDATE', 1);
    assert.equal(await r().get('g:str:a'), '1!');
    await expectTag(`DELETE FROM g_str WHERE key = 'g:str:b'`, 'DELETE', 1);
    assert.equal(await exists('g:str:b'), 0);
    assert.deepEqual(await rows(c, 'SELECT * FROM g_str'), [['g:str:a', '1!']]);
    await expectTag('TRUNCATE g_str', 'TRUNCATE', null);
    assert.equal(await exists('g:str:a'), 0);
    assert.deepEqual(await hash('g:other:keep'), { k: 'v' });
  });

  it('ioredis → proxy', async () => {
    await r().hset('g:hash:r1', 'a', '1', 'b', '2');
    await r().hset('g:hash:r2', 'c', '3');
    await r().set('g:str:r', 'sv');
    assert.deepEqual(bag(await rows(c, 'SELECT key, field, value FROM g_hash')), bag([['g:hash:r1', 'a', '1'], ['g:hash:r1', 'b', '2'], ['g:hash:r2', 'c', '3']]));
    await expectTag(`UPDATE g_hash SET value = 'B' WHERE key = 'g:hash:r1' AND field = 'b'`, 'UPDATE', 1);
    await expectTag(`DELETE FROM g_hash WHERE key = 'g:hash:r2'`, 'DELETE', 1);
    assert.deepEqual(await hash('g:hash:r1'), { a: '1', b: 'B' });
    assert.equal(await exists('g:hash:r2'), 0);
    assert.deepEqual(await rows(c, 'SELECT key, value FROM g_str'), [['g:str:r', 'sv']]);
    await expectTag(`UPDATE g_str SET value = upper(value)`, 'UPDATE', 1);
    assert.equal(await r().get('g:str:r'), 'SV');
  });
});

// ---------------------------------------------------------------------------------------------------
// INSERT forms: INSERT ... SELECT, DEFAULT, parameters, expressions
// ---------------------------------------------------------------------------------------------------

describe('INSERT forms', () => {
  before(async () => {
    await sb('fh', 'key text, value text', 'hash', 'f:hash');
    await sb('fh2', 'key text, value text', 'hash', 'f:hash2');
    await sb('fl', 'element text', 'list', 'f:list');
    await sb('fs', 'element text', 'set', 'f:set');
    await sb('fz', 'element text, score float8', 'zset', 'f:zset');
    await sb('fx', 'id text, items jsonb', 'stream', 'f:stream');
    await sb('fd', `key text, value text default 'dflt'`, 'hash', 'f:defaults');
    await sb('fzd', 'element text, score float8 default 7', 'zset', 'f:zdefaults');
    await sb('fp', 'key text, value text', 'hash', 'f:params');
    await sb('fpz', 'element text, score float8', 'zset', 'f:pzset');
    await sb('fpl', 'element text', 'list', 'f:plist');
    await sb('big', 'key text, value text', 'hash', 'f:big');
    await c.query(`create table src_kv (k text, v text, n int); insert into src_kv values ('k1', 'v1', 1), ('k2', 'v2', 2), ('k3', 'v3', 3)`);
  });

  it('INSERT ... SELECT from a real table, with WHERE, ORDER BY and RETURNING', async () => {
    await r().del('f:hash', 'f:zset');
    assert.deepEqual(await expectTag(`INSERT INTO fh SELECT k, v FROM src_kv WHERE n > 1 ORDER BY n RETURNING key, value`, 'INSERT', 2), [['k2', 'v2'], ['k3', 'v3']]);
    assert.deepEqual(await hash('f:hash'), { k2: 'v2', k3: 'v3' });
    await expectTag(`INSERT INTO fz SELECT k, n * 1.5 FROM src_kv`, 'INSERT', 3);
    assert.deepEqual(await zset('f:zset'), ['k1', '1.5', 'k2', '3', 'k3', '4.5']);
  });

  it('INSERT ... SELECT from other foreign tables (and a join of foreign and real)', async () => {
    await r().del('f:hash', 'f:zset', 'f:list', 'f:set', 'f:hash2');
    await r().hset('f:hash', 'k2', 'v2', 'k3', 'v3');
    await r().zadd('f:zset', 1.5, 'k1', 3, 'k2', 4.5, 'k3');
    await expectTag(`INSERT INTO fl SELECT value FROM fh ORDER BY key DESC`, 'INSERT', 2);
    assert.deepEqual(await list('f:list'), ['v3', 'v2']);
    await expectTag(`INSERT INTO fs SELECT element FROM fz WHERE score > 2`, 'INSERT', 2);
    assert.deepEqual(await members('f:set'), ['k2', 'k3']);
    await expectTag(`INSERT INTO fh2 SELECT h.key, h.value || ':' || s.n FROM fh h JOIN src_kv s ON s.k = h.key`, 'INSERT', 2);
    assert.deepEqual(await hash('f:hash2'), { k2: 'v2:2', k3: 'v3:3' });
    // From a multi-row CTE.
    await expectTag(`WITH w AS (SELECT 'cte' || g AS k FROM generate_series(1, 2) g) INSERT INTO fh2 SELECT k, 'from cte' FROM w`, 'INSERT', 2);
    assert.deepEqual(await hash('f:hash2'), { k2: 'v2:2', k3: 'v3:3', cte1: 'from cte', cte2: 'from cte' });
  });

  it('INSERT ... SELECT from the same table reads the rows as they were before the statement', async () => {
    await r().del('f:hash', 'f:list');
    await r().hset('f:hash', 'k2', 'v2', 'k3', 'v3');
    await r().rpush('f:list', 'v3', 'v2');
    await expectTag(`INSERT INTO fl SELECT element || '+' FROM fl`, 'INSERT', 2);
    assert.deepEqual(await list('f:list'), ['v3', 'v2', 'v3+', 'v2+']);
    await expectTag(`INSERT INTO fh SELECT key || '_copy', value FROM fh`, 'INSERT', 2);
    assert.deepEqual(await hash('f:hash'), { k2: 'v2', k3: 'v3', k2_copy: 'v2', k3_copy: 'v3' });
  });

  it('INSERT ... SELECT of 100,000 generated rows (the issue\'s bench statement): INSERT 0 100000, every field in Redis', async () => {
    await r().del('f:big');
    await expectTag(`INSERT INTO big SELECT 'f' || g, 'v' || g FROM generate_series(1, 100000) g`, 'INSERT', 100000);
    assert.equal(await r().hlen('f:big'), 100000);
    assert.deepEqual(await r().hmget('f:big', 'f1', 'f50000', 'f100000'), ['v1', 'v50000', 'v100000']);
    assert.deepEqual(await rows(c, 'SELECT count(*), count(DISTINCT value), max(length(key)) FROM big'), [['100000', '100000', '7']]);
    await r().del('f:big'); // keeps later whole-db snapshots small
  });

  it('DEFAULT: column defaults of the foreign table apply (omitted column, DEFAULT keyword)', async () => {
    await r().del('f:defaults', 'f:zdefaults');
    await expectTag(`INSERT INTO fd (key) VALUES ('k1')`, 'INSERT', 1);
    assert.deepEqual(await expectTag(`INSERT INTO fd VALUES ('k2', DEFAULT) RETURNING value`, 'INSERT', 1), [['dflt']]);
    await expectTag(`INSERT INTO fd VALUES ('k3', 'explicit')`, 'INSERT', 1);
    assert.deepEqual(await hash('f:defaults'), { k1: 'dflt', k2: 'dflt', k3: 'explicit' });
    await expectTag(`INSERT INTO fzd (element) VALUES ('m'), ('n')`, 'INSERT', 2);
    await expectTag(`INSERT INTO fzd VALUES ('o', DEFAULT), ('p', 1)`, 'INSERT', 2);
    assert.deepEqual(await zset('f:zdefaults'), ['p', '1', 'm', '7', 'n', '7', 'o', '7']);
  });

  it('$n parameters: named prepared INSERT/UPDATE/DELETE, each run twice with different values', async () => {
    await r().del('f:params', 'f:pzset', 'f:plist');
    const ins = 'INSERT INTO fp VALUES ($1, $2) RETURNING key, value';
    let res = await qn('w_ins', ins, ['p1', 'one']);
    tag(res, 'INSERT', 1);
    assert.deepEqual(res.rows, [['p1', 'one']]);
    res = await qn('w_ins', ins, ['p2', 'two']);
    tag(res, 'INSERT', 1);
    assert.deepEqual(res.rows, [['p2', 'two']]);
    assert.deepEqual(await hash('f:params'), { p1: 'one', p2: 'two' });

    const upd = 'UPDATE fp SET value = $2 || value WHERE key = $1 RETURNING value';
    res = await qn('w_upd', upd, ['p1', '>']);
    tag(res, 'UPDATE', 1);
    assert.deepEqual(res.rows, [['>one']]);
    res = await qn('w_upd', upd, ['p2', '<']);
    tag(res, 'UPDATE', 1);
    assert.deepEqual(res.rows, [['<two']]);
    assert.deepEqual(await hash('f:params'), { p1: '>one', p2: '<two' });

    const del = 'DELETE FROM fp WHERE key = $1';
    tag(await qn('w_del', del, ['p1']), 'DELETE', 1);
    assert.deepEqual(await hash('f:params'), { p2: '<two' });
    tag(await qn('w_del', del, ['nope']), 'DELETE', 0);
    assert.deepEqual(await hash('f:params'), { p2: '<two' });

    // Parameters of other types, and a cast of a parameter.
    const zins = 'INSERT INTO fpz VALUES ($1, $2)';
    tag(await qn('w_zins', zins, ['a', 2.5]), 'INSERT', 1);
    tag(await qn('w_zins', zins, ['b', '-3']), 'INSERT', 1);
    assert.deepEqual(await zset('f:pzset'), ['b', '-3', 'a', '2.5']);
    const lins = 'INSERT INTO fpl VALUES ($1::int::text), ($2)';
    tag(await qn('w_lins', lins, ['0042', 'x']), 'INSERT', 2);
    tag(await qn('w_lins', lins, [7, 'y']), 'INSERT', 2);
    assert.deepEqual(await list('f:plist'), ['42', 'x', '7', 'y']);
    // Unnamed (but still extended-protocol) parameters too.
    tag(await q('INSERT INTO fp VALUES ($1, $2)', ['p3', 'three']), 'INSERT', 1);
    assert.deepEqual(await hash('f:params'), { p2: '<two', p3: 'three' });
  });

  it('postgres.js: INSERT/UPDATE/DELETE with parameters (prepared), twice each', async () => {
    await r().del('f:params');
    await r().hset('f:params', 'p2', '<two', 'p3', 'three');
    const sql = postgres(f.url, { max: 1, onnotice: () => {} });
    try {
      for (const k of ['pj1', 'pj2']) {
        const ins = await sql`insert into fp values (${k}, ${'v-' + k}) returning key, value`;
        assert.equal(ins.command, 'INSERT');
        assert.equal(ins.count, 1);
        assert.deepEqual([...ins], [{ key: k, value: `v-${k}` }]);
      }
      for (const k of ['pj1', 'pj2']) {
        const upd = await sql`update fp set value = upper(value) where key = ${k}`;
        assert.equal(upd.command, 'UPDATE');
        assert.equal(upd.count, 1);
      }
      assert.deepEqual(await hash('f:params'), { p2: '<two', p3: 'three', pj1: 'V-PJ1', pj2: 'V-PJ2' });
      for (const k of ['pj1', 'pj2']) {
        const del = await sql`delete from fp where key = ${k}`;
        assert.equal(del.command, 'DELETE');
        assert.equal(del.count, 1);
      }
      assert.deepEqual(await hash('f:params'), { p2: '<two', p3: 'three' });
    } finally {
      await sql.end({ timeout: 5 });
    }
  });

  it("expressions and casts: upper('x')||'y', arithmetic, jsonb_build_object, CASE", async () => {
    await r().del('f:hash2', 'f:zset', 'f:stream', 'f:set');
    assert.deepEqual(
      await expectTag(`INSERT INTO fh2 VALUES (upper('x') || 'y', (40 + 2)::text), (concat('a', 1), repeat('z', 3)) RETURNING *`, 'INSERT', 2),
      [['Xy', '42'], ['a1', 'zzz']],
    );
    assert.equal(await r().hget('f:hash2', 'Xy'), '42');
    assert.equal(await r().hget('f:hash2', 'a1'), 'zzz');
    await expectTag(`INSERT INTO fz VALUES (lower('ABC'), 2 ^ 3), ('cast', '7'::int + 0.25)`, 'INSERT', 2);
    assert.equal(await r().zscore('f:zset', 'abc'), '8');
    assert.equal(await r().zscore('f:zset', 'cast'), '7.25');
    await expectTag(`INSERT INTO fx VALUES ('3-3', jsonb_build_object('k', 1 + 1, 's', 'a' || 'b'))`, 'INSERT', 1);
    assert.deepEqual(await stream('f:stream'), [['3-3', { k: '2', s: 'ab' }]]);
    await expectTag(`INSERT INTO fs VALUES (CASE WHEN 1 > 0 THEN 'yes' ELSE 'no' END), (42::text)`, 'INSERT', 2);
    assert.deepEqual(await members('f:set'), ['42', 'yes']);
  });
});

// ---------------------------------------------------------------------------------------------------
// Errors: SQLSTATE, Redis unchanged, connection usable
// ---------------------------------------------------------------------------------------------------

describe('errors leave Redis unchanged and the connection usable', () => {
  // Every key this group uses (or might wrongly write) starts with 'e'.
  const err = (sql: string, code: string, opts: Parameters<typeof expectError>[2] = {}): Promise<PgErr> => expectError(sql, code, { scope: 'e*', ...opts });
  before(async () => {
    await sb('eh', 'key text, value text', 'hash', 'e:hash');
    await sb('el', 'element text, index bigint', 'list', 'e:list');
    await sb('es', 'element text', 'set', 'e:set');
    await sb('ez', 'element text, score float8', 'zset', 'e:zset');
    await sb('ezt', 'element text, score text', 'zset', 'e:zset');
    await sb('ex', 'id text, items jsonb', 'stream', 'e:stream');
    await sb('emh', 'key text, items jsonb', 'multi_hash', 'emh:*');
    await sb('eml', 'key text, items jsonb', 'multi_list', 'eml:*');
    await sb('ems', 'key text, items jsonb', 'multi_set', 'ems:*');
    await sb('emz', 'key text, items jsonb', 'multi_zset', 'emz:*');
    await sb('ewrong', 'key text, value text', 'hash', 'e:wrongtype');
    await rs('estr', 'value text', 'string', 'e:string');
    await rs('eg_hash', 'key text, field text, value text', 'hash', 'eg:hash:*');
    await rs('eg_str', 'key text, value text', 'string', 'eg:str:*');
    const rr = r();
    await rr.hset('e:hash', 'h', 'v');
    await rr.rpush('e:list', 'l0', 'l1');
    await rr.sadd('e:set', 's');
    await rr.zadd('e:zset', 1, 'z');
    await rr.xadd('e:stream', '1-0', 'f', 'v');
    await rr.set('e:string', 'str');
    await rr.hset('emh:1', 'a', '1');
    await rr.set('e:wrongtype', 'a string, not a hash');
  });

  it('NULL where Redis needs a value → 23502, never stored as the text NULL', async () => {
    const cases = [
      `INSERT INTO eh VALUES ('k', NULL)`,
      `INSERT INTO eh VALUES (NULL, 'v')`,
      `INSERT INTO eh VALUES ('ok', '1'), ('bad', NULL)`,
      `INSERT INTO eh (key) VALUES ('no default')`,
      `INSERT INTO eh VALUES ('k', DEFAULT)`,
      `UPDATE eh SET value = NULL WHERE key = 'h'`,
      `UPDATE eh SET key = NULL`,
      `INSERT INTO el (element) VALUES ('ok'), (NULL)`,
      `UPDATE el SET element = NULL WHERE index = 0`,
      `INSERT INTO es VALUES (NULL)`,
      `INSERT INTO ez VALUES (NULL, 1)`,
      `INSERT INTO ez VALUES ('m', NULL)`,
      `INSERT INTO ex VALUES ('2-0', NULL)`,
      `INSERT INTO estr VALUES (NULL)`,
      `UPDATE estr SET value = NULL`,
      `INSERT INTO emh VALUES ('emh:2', NULL)`,
      `INSERT INTO eg_hash VALUES ('eg:hash:1', 'f', NULL)`,
    ];
    for (const sql of cases) await err(sql, '23502');
    // Parameters bound to NULL, in a named statement that then works with a value.
    await err('INSERT INTO eh VALUES ($1, $2)', '23502', { params: ['p', null] });
    tag(await qn('e_ins', 'INSERT INTO eh VALUES ($1, $2)', ['p', 'fine']), 'INSERT', 1);
    const e = await pgError(qn('e_ins', 'INSERT INTO eh VALUES ($1, $2)', ['q', null]));
    assert.equal(e.code, '23502', e.all);
    tag(await qn('e_ins', 'INSERT INTO eh VALUES ($1, $2)', ['q', 'fine too']), 'INSERT', 1);
    assert.deepEqual(await hash('e:hash'), { h: 'v', p: 'fine', q: 'fine too' });
    assert.equal(await r().hget('e:hash', 'bad'), null);
    assert.equal(await r().hget('e:hash', 'ok'), null, 'the good row of a failing statement is not written either');
  });

  it('non-numeric score → 22P02 (INSERT and UPDATE)', async () => {
    await err(`INSERT INTO ezt VALUES ('x', 'abc')`, '22P02');
    await err(`INSERT INTO ezt VALUES ('ok', '1'), ('x', 'one')`, '22P02');
    await err(`UPDATE ezt SET score = 'NaN-ish' WHERE element = 'z'`, '22P02');
    // A numeric text score is fine.
    await expectTag(`INSERT INTO ezt VALUES ('y', '2.5')`, 'INSERT', 1);
    assert.deepEqual(await zset('e:zset'), ['z', '1', 'y', '2.5']);
    await r().zrem('e:zset', 'y');
  });

  it('stream items that are not a JSON object → 22023', async () => {
    for (const v of ['[1, 2]', '"a string"', '5', 'null', 'true']) {
      await err(`INSERT INTO ex VALUES ('9-${v.length}', '${v}')`, '22023');
    }
    await err(`INSERT INTO ex VALUES ('3-0', '{"ok": "1"}'), ('4-0', '["bad"]')`, '22023');
    assert.deepEqual(await stream('e:stream'), [['1-0', { f: 'v' }]]);
  });

  it('wrong column count → 42601 "INSERT has more expressions than target columns"', async () => {
    const e = await err(`INSERT INTO eh VALUES ('a', 'b', 'c')`, '42601');
    assert.equal(e.message, 'INSERT has more expressions than target columns');
    await err(`INSERT INTO es VALUES ('a', 'b')`, '42601', { message: /^INSERT has more expressions than target columns$/ });
    await err(`INSERT INTO eh (key) VALUES ('a', 'b')`, '42601', { message: /^INSERT has more expressions than target columns$/ });
  });

  it('list index column given a value → 428C9 (INSERT; UPDATE SET index)', async () => {
    await err(`INSERT INTO el VALUES ('x', 0)`, '428C9');
    await err(`INSERT INTO el VALUES ('ok', NULL), ('x', 5)`, '428C9');
    await err(`UPDATE el SET index = 9 WHERE index = 0`, '428C9');
    assert.deepEqual(await list('e:list'), ['l0', 'l1']);
  });

  it('multi_* and glob tables: a key outside the pattern → 23514 naming it; nothing written', async () => {
    const cases: [string, string, string][] = [
      [`INSERT INTO emh VALUES ('emh:2', '{"a": "1"}'), ('eother:1', '{"a": "1"}')`, 'eother:1', 'emh:*'],
      [`INSERT INTO eml VALUES ('elsewhere', '["a"]')`, 'elsewhere', 'eml:*'],
      [`INSERT INTO ems VALUES ('emsX', '["a"]')`, 'emsX', 'ems:*'],
      [`INSERT INTO emz VALUES ('emz', '["a"]')`, 'emz', 'emz:*'],
      [`INSERT INTO eg_hash VALUES ('eg:hash:1', 'f', 'v'), ('eg:other', 'f', 'v')`, 'eg:other', 'eg:hash:*'],
      [`INSERT INTO eg_str VALUES ('eg:strx', 'v')`, 'eg:strx', 'eg:str:*'],
    ];
    for (const [sql, key, pattern] of cases) {
      const e = await err(sql, '23514');
      assert.ok(e.all.includes(key) || e.all.includes(pattern), `${sql}: the error should name the key or the pattern: ${e.all}`);
    }
    assert.equal(await exists('emh:2'), 0);
    assert.equal(await exists('eg:hash:1'), 0);
  });

  it('UPDATE of a stream → 0A000', async () => {
    await err(`UPDATE ex SET id = '5-0'`, '0A000');
    await err(`UPDATE ex SET items = '{}'`, '0A000');
  });

  it('a key of another type → 42809 (WRONGTYPE), nothing written', async () => {
    await err(`INSERT INTO ewrong VALUES ('f', 'v')`, '42809');
    assert.equal(await r().get('e:wrongtype'), 'a string, not a hash');
  });

  it('after all of the above, the same connection still writes', async () => {
    await expectTag(`INSERT INTO eh VALUES ('after', 'errors')`, 'INSERT', 1);
    assert.equal(await r().hget('e:hash', 'after'), 'errors');
    assert.deepEqual(await list('e:list'), ['l0', 'l1']);
    assert.deepEqual(await members('e:set'), ['s']);
    assert.deepEqual(await zset('e:zset'), ['z', '1']);
    assert.equal(await r().get('e:string'), 'str');
    assert.deepEqual(await hash('emh:1'), { a: '1' });
  });

  it('a value over --max-value-bytes → 54000 (proxy started with --max-value-bytes 1024)', async (t) => {
    const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
    const help = await promisify(execFile)(process.execPath, [cli, '--help']).then((o) => o.stdout, () => '');
    if (!help.includes('--max-value-bytes')) {
      t.skip('this build has no --max-value-bytes flag');
      return;
    }
    const p = await spawnProxy(['--listen', '127.0.0.1:0', '--upstream', f.directUrl, '--max-value-bytes', '1024', '--log-level', 'info']);
    let pc: pg.Client | undefined;
    try {
      const m = /"listen":"[^"]*:(\d+)"/.exec(p.output());
      assert.ok(m, `no listen address in output: ${p.output()}`);
      const u = new URL(f.directUrl);
      u.host = `127.0.0.1:${m[1]}`;
      pc = await connect(withDb(u.toString(), f.db));
      await err(`INSERT INTO eh VALUES ('big', repeat('x', 1025))`, '54000', { client: pc });
      await err(`INSERT INTO eh VALUES (repeat('k', 2000), 'v')`, '54000', { client: pc });
      await err(`INSERT INTO es VALUES ('small'), (repeat('é', 600))`, '54000', { client: pc });
      await err(`UPDATE eh SET value = repeat('y', 5000) WHERE key = 'h'`, '54000', { client: pc });
      const ok = await q(`INSERT INTO eh VALUES ('limit', repeat('x', 1024))`, [], pc);
      tag(ok, 'INSERT', 1);
      assert.equal((await r().hget('e:hash', 'limit'))?.length, 1024);
    } finally {
      await pc?.end().catch(() => {});
      p.child.kill('SIGTERM');
      await Promise.race([p.exited, new Promise((res) => setTimeout(res, 3000))]);
      p.child.kill('SIGKILL');
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// Privileges
// ---------------------------------------------------------------------------------------------------

describe('privileges: INSERT, UPDATE, DELETE, TRUNCATE are enforced (42501)', () => {
  const role = `fdw_writer_${process.pid}`;
  let rc: pg.Client | undefined;

  after(async () => {
    await rc?.end().catch(() => {});
    await c.query(`drop owned by ${role}`).catch(() => {});
    await c.query(`drop role if exists ${role}`).catch(() => {});
  });

  it('a role with SELECT only is refused each write; GRANT allows it', async () => {
    await sb('priv_w', 'key text, value text', 'hash', 'priv:w');
    await r().hset('priv:w', 'k', 'v');
    await c.query(`drop role if exists ${role}; create role ${role} login password 'writer-pw'`);
    await c.query(`grant select on priv_w to ${role}`);
    const u = new URL(f.url);
    u.username = role;
    u.password = 'writer-pw';
    rc = await connect(withDb(u.toString(), f.db));
    assert.deepEqual(await rows(rc, 'SELECT * FROM priv_w'), [['k', 'v']]);
    const denied = /permission denied for (foreign )?table priv_w/;
    await expectError(`INSERT INTO priv_w VALUES ('x', 'y')`, '42501', { scope: 'priv*', client: rc, message: denied });
    await expectError(`UPDATE priv_w SET value = 'w'`, '42501', { scope: 'priv*', client: rc, message: denied });
    await expectError(`DELETE FROM priv_w`, '42501', { scope: 'priv*', client: rc, message: denied });
    await expectError(`TRUNCATE priv_w`, '42501', { scope: 'priv*', client: rc, message: denied });
    await expectError(`INSERT INTO priv_w VALUES ($1, $2)`, '42501', { scope: 'priv*', client: rc, params: ['x', 'y'] });

    await c.query(`grant insert on priv_w to ${role}`);
    tag(await q(`INSERT INTO priv_w VALUES ('x', 'y')`, [], rc), 'INSERT', 1);
    assert.deepEqual(await hash('priv:w'), { k: 'v', x: 'y' });
    await expectError(`UPDATE priv_w SET value = 'w'`, '42501', { scope: 'priv*', client: rc });
    await c.query(`grant update on priv_w to ${role}`);
    tag(await q(`UPDATE priv_w SET value = 'w' WHERE key = 'k'`, [], rc), 'UPDATE', 1);
    await expectError(`DELETE FROM priv_w WHERE key = 'x'`, '42501', { scope: 'priv*', client: rc });
    await c.query(`grant delete on priv_w to ${role}`);
    tag(await q(`DELETE FROM priv_w WHERE key = 'x'`, [], rc), 'DELETE', 1);
    assert.deepEqual(await hash('priv:w'), { k: 'w' });
    await expectError('TRUNCATE priv_w', '42501', { scope: 'priv*', client: rc });
    await c.query(`grant truncate on priv_w to ${role}`);
    tag(await q('TRUNCATE priv_w', [], rc), 'TRUNCATE', null);
    assert.equal(await exists('priv:w'), 0);
  });

  it('a statement prepared while allowed is refused after a REVOKE, as Postgres checks at every execution', async () => {
    assert.ok(rc, 'runs after the test above');
    await c.query(`grant select, insert, update, delete on priv_w to ${role}`);
    tag(await qn('priv_ins', 'INSERT INTO priv_w VALUES ($1, $2)', ['a', '1'], rc), 'INSERT', 1);
    tag(await qn('priv_upd', 'UPDATE priv_w SET value = $2 WHERE key = $1', ['a', '2'], rc), 'UPDATE', 1);
    tag(await qn('priv_del', 'DELETE FROM priv_w WHERE key = $1', ['zz'], rc), 'DELETE', 0);
    await c.query(`revoke insert, delete on priv_w from ${role}`);
    await c.query(`revoke select on priv_w from ${role}`);
    await sleep(1100); // the proxy asks upstream again at most once a second
    await expectError('INSERT INTO priv_w VALUES ($1, $2)', '42501', { scope: 'priv*', client: rc, params: ['b', '1'], name: 'priv_ins' });
    await expectError('DELETE FROM priv_w WHERE key = $1', '42501', { scope: 'priv*', client: rc, params: ['a'], name: 'priv_del' });
    // UPDATE … WHERE reads the target's rows, so it needs SELECT too, which is gone.
    await expectError('UPDATE priv_w SET value = $2 WHERE key = $1', '42501', { scope: 'priv*', client: rc, params: ['a', '3'], name: 'priv_upd' });
    assert.deepEqual(await hash('priv:w'), { a: '2' });
    await c.query(`grant select on priv_w to ${role}`);
    await sleep(1100);
    tag(await qn('priv_upd', 'UPDATE priv_w SET value = $2 WHERE key = $1', ['a', '3'], rc), 'UPDATE', 1);
    assert.deepEqual(await hash('priv:w'), { a: '3' });
  });
});

// ---------------------------------------------------------------------------------------------------
// One MULTI/EXEC per statement outside a transaction
// ---------------------------------------------------------------------------------------------------

describe('each statement outside BEGIN is one MULTI/EXEC', () => {
  it('a multi-row INSERT and a multi-row DELETE are each atomic: one command, or one MULTI ... EXEC', async () => {
    await sb('mon_h', 'key text, value text', 'hash', 'mon:h');
    await rs('mon_g', 'key text, field text, value text', 'hash', 'mon:g:*');
    const m = await monitorRedis(f.redisUrl, DB);
    try {
      const steps: [string, 'INSERT' | 'DELETE', number, string, string[]][] = [
        // One key: the rows merge into one variadic command, atomic by itself.
        [`INSERT INTO mon_h VALUES ('a', '1'), ('b', '2'), ('c', '3')`, 'INSERT', 3, 'HSET', ['mon:h']],
        // Two keys: two commands, in one transaction.
        [`INSERT INTO mon_g VALUES ('mon:g:1', 'a', '1'), ('mon:g:2', 'b', '2')`, 'INSERT', 2, 'HSET', ['mon:g:1', 'mon:g:2']],
        [`DELETE FROM mon_h WHERE key <> 'b'`, 'DELETE', 2, 'HDEL', ['mon:h']],
      ];
      for (const [sql, tag, n, write, keys] of steps) {
        const before = m.commands().length;
        await expectTag(sql, tag, n);
        await settle();
        const cmds = m.commands().slice(before);
        const writes = cmds.map((x, i) => [x, i] as const).filter(([x]) => x[0] === write && keys.includes(x[1]!));
        assert.equal(writes.length, keys.length, `${sql}: one ${write} per key in ${JSON.stringify(cmds)}`);
        if (writes.length === 1) {
          assert.ok(!cmds.some((x) => x[0] === 'MULTI'), `${sql}: a single command needs no MULTI: ${JSON.stringify(cmds)}`);
          continue;
        }
        const first = writes[0]![1];
        const last = writes[writes.length - 1]![1];
        const multi = cmds.slice(0, first).map((x) => x[0]).lastIndexOf('MULTI');
        const exec = cmds.findIndex((x, i) => i > last && x[0] === 'EXEC');
        assert.ok(multi >= 0 && exec > last, `${sql}: writes not inside MULTI/EXEC: ${JSON.stringify(cmds)}`);
        const between = cmds.slice(multi + 1, exec).map((x) => x[0]);
        assert.ok(!between.includes('EXEC') && !between.includes('MULTI'), `${sql}: more than one transaction: ${JSON.stringify(cmds)}`);
      }
      assert.deepEqual(await hash('mon:h'), { b: '2' });
      assert.deepEqual(await hash('mon:g:2'), { b: '2' });
    } finally {
      await m.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// Differential: the errors the proxy raises for a foreign table are Postgres's own for a real table
// ---------------------------------------------------------------------------------------------------

describe('INSERT shape errors match upstream on a real twin table', () => {
  before(async () => {
    await sb('diff_h', 'key text, value text', 'hash', 'd:hash');
    await c.query(`create schema diff_real; create table diff_real.diff_h (key text, value text)`);
  });

  const failure = async (client: pg.Client, sql: string): Promise<{ code?: string; message: string; position?: string }> => {
    try {
      await client.query(sql);
    } catch (e) {
      const err = e as { code?: string; message: string; position?: string };
      return { code: err.code, message: err.message, position: err.position };
    }
    assert.fail(`succeeded: ${sql}`);
  };

  for (const sql of [
    `insert into diff_h values ('a','b','c')`,
    `insert into diff_h (key, value) values ('q')`,
    `insert into diff_h (key, value) values ('q'), ('r')`,
    `insert into diff_h (key, value) select 'q'`,
    `insert into diff_h (nosuch) values ('q')`,
    `insert into diff_h (key, key) values ('q', 'r')`,
    `insert into diff_h (key, value) select * from (select 'q') x`,
  ]) {
    it(sql, async () => {
      const real = await connect(f.directUrl, { options: '-c search_path=diff_real' });
      try {
        assert.deepEqual(await failure(c, sql), await failure(real, sql));
        assert.equal(await exists('d:hash'), 0, 'nothing written');
      } finally {
        await real.end();
      }
    });
  }
});

describe('an Execute row limit on INSERT/UPDATE/DELETE ... RETURNING, raw protocol, against a real twin table', () => {
  it('the write runs whole at the first Execute; the rows come maxRows at a time with PortalSuspended, then the full tag', async () => {
    await c.query(`create foreign table page_h (key text, value text) server sb_server options (src_type 'hash', src_key 'w:page')`);
    await c.query('create table page_twin (key text, value text)');
    const u = new URL(f.url);
    const pc = await ProtoConn.open(f.proxy.port, { user: decodeURIComponent(u.username), password: decodeURIComponent(u.password), database: u.pathname.slice(1) });
    try {
      const run = async (t: string): Promise<string[]> => {
        pc.write(
          msg.parse('', `insert into ${t} select 'k' || g, 'v' || g from generate_series(1, 5) g returning key, value`),
          msg.bind('', ''),
          msg.describe('P', ''),
          msg.execute('', 2),
          msg.execute('', 2),
          msg.execute('', 2),
          msg.sync(),
          msg.parse('u', `update ${t} set value = value || '!' where key <> 'k5' returning value`),
          msg.bind('p', 'u'),
          msg.execute('p', 4),
          msg.execute('p', 1),
          msg.sync(),
          msg.parse('', `delete from ${t} where key in ('k1', 'k2') returning key`),
          msg.bind('', ''),
          msg.execute('', 1),
          msg.execute('', 0),
          msg.sync(),
        );
        const frames = normalize(await pc.readUntilReady(3)).map((s) => s.replace(/table=\d+ att=\d+/g, 'table=* att=*'));
        await pc.query('deallocate all');
        return frames;
      };
      const want = await run('page_twin');
      const got = await run('page_h');
      assert.deepEqual(got, want);
      assert.ok(want.includes('s'), 'the twin suspends the portal');
      assert.deepEqual({ ...(await r().hgetall('w:page')) }, { k3: 'v3!', k4: 'v4!', k5: 'v5' });
    } finally {
      await pc.end();
    }
  });
});

describe('a prepared INSERT alone in its batch: upstream\'s side ends with the proxy\'s own Sync', () => {
  it('errors skip the rest of the batch and the tags and statuses are a real table\'s, over the raw protocol', async () => {
    await c.query(`create foreign table pure_h (key text, value int) server sb_server options (src_type 'hash', src_key 'w:pure')`);
    await c.query('create table pure_twin (key text, value int)');
    const u = new URL(f.url);
    const pc = await ProtoConn.open(f.proxy.port, { user: decodeURIComponent(u.username), password: decodeURIComponent(u.password), database: u.pathname.slice(1) });
    try {
      const run = async (t: string): Promise<string[]> => {
        const ins = (k: string, v: string): Buffer[] => [msg.bind('', 'ins', [k, v]), msg.execute('')];
        pc.write(
          msg.parse('ins', `insert into ${t} values ($1 || '', $2)`),
          msg.sync(),
          ...ins('a', '1'),
          msg.sync(),
          // A bad int fails the first statement: the second must be skipped, as Postgres skips it.
          ...ins('b', 'x'),
          ...ins('c', '3'),
          msg.sync(),
          ...ins('d', '4'),
          ...ins('e', '5'),
          msg.sync(),
          msg.query('begin'),
          ...ins('f', '6'),
          msg.sync(),
          msg.query('commit'),
        );
        const frames = normalize(await pc.readUntilReady(7));
        await pc.query('deallocate all');
        return frames;
      };
      const want = await run('pure_twin');
      const got = await run('pure_h');
      assert.deepEqual(got, want);
      assert.deepEqual({ ...(await r().hgetall('w:pure')) }, { a: '1', d: '4', e: '5', f: '6' });
    } finally {
      await pc.end();
    }
  });
});
