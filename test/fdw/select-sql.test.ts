/**
 * The whole of SQL around Redis foreign tables, checked differentially: every query runs twice through
 * the proxy, once over the foreign tables and once over ordinary tables loaded with the same rows, and
 * the answers (column names, type OIDs, rows) must be identical. Also: CREATE TABLE AS / INSERT ...
 * SELECT, multi-statement simple queries (also erroring halfway) compared frame by frame, EXPLAIN's
 * Redis commands, and — through Redis MONITOR — that a point lookup reads only what it needs.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { fdwFixture, type FdwFixture } from '../support/fdw.js';
import { bag, connect, monitorRedis, pgError, rows, settle, setupSupabase } from '../support/fdw-sql.js';
import { normalize, ProtoConn, urlParts, type Frame } from '../support/proto-client.js';
import { DEFAULT_FIRST_PAGE } from '../../src/redis/read.js';
import { REDIS_DB } from '../support/redis-dbs.js';

let f: FdwFixture;
let c: pg.Client;
const DB = REDIS_DB.selectSql;

/** Foreign table name → the ordinary table with the same rows. */
const PAIRS: Record<string, [string, string]> = {
  h: ['fh', 'rh'],
  l: ['fl', 'rl'],
  z: ['fz', 'rz'],
  m: ['fm', 'rm'],
  s: ['fs', 'rs'],
  v: ['fv', 'rv'],
};

const HASH: [string, string][] = [];
for (let i = 1; i <= 30; i++) HASH.push([`k${String(i).padStart(2, '0')}`, String((i * 7) % 6)]);
HASH.push(['quote\'s', 'it\'s'], ['Üml', 'ä'], ['space key', ' padded ']);
const LIST = ['1', '3', '5', '3', '2', '0', 'k05', 'x', '3', ''];
const ZSET: [number, string][] = [[1, 'a'], [2.5, 'b'], [2.5, 'c'], [-3, 'd'], [10, 'e'], [5, 'f'], [0, 'g']];
const MULTI: Record<string, Record<string, string>> = {
  'mh:1': { a: '1', b: 'x' },
  'mh:2': { a: '2' },
  'mh:3': { c: '{"nested": true}', a: '1' },
  'mh:4': { 'key with space': 'v', b: 'y' },
};
const STREAM: [string, string[]][] = [['1-0', ['f', 'one', 'g', '1']], ['2-0', ['f', 'two']], ['2-1', ['g', '3', 'f', 'three']]];
const VC = ['abcdef', 'abc', 'xy'];

before(async () => {
  f = await fdwFixture('fdw_select_sql', DB);
  c = await connect(f.url);
  const r = f.redis;
  for (const [k, v] of HASH) await r.hset('h', k, v);
  await r.rpush('l', ...LIST);
  for (const [s, m] of ZSET) await r.zadd('z', s, m);
  for (const [k, obj] of Object.entries(MULTI)) await r.hset(k, obj);
  for (const [id, fields] of STREAM) await r.xadd('st', id, ...fields);
  for (const k of VC) await r.hset('vc', k, `value of ${k}`);
  for (let i = 0; i < 5000; i++) await r.hset('big', `f${i}`, `v${i}`);

  await setupSupabase(c, f.redisUrl);
  const ft = (name: string, cols: string, type: string, key: string): string =>
    `create foreign table ${name} (${cols}) server redis_server options (src_type '${type}', src_key '${key}');`;
  await c.query(
    ft('fh', 'key text, value text', 'hash', 'h') +
      ft('fl', 'element text, index int', 'list', 'l') +
      ft('fz', 'element text, score float8', 'zset', 'z') +
      ft('fm', 'key text, items jsonb', 'multi_hash', 'mh:*') +
      ft('fs', 'id text, items jsonb', 'stream', 'st') +
      ft('fv', 'key varchar(3), value text', 'hash', 'vc') +
      ft('fbig', 'key text, value text', 'hash', 'big'),
  );
  // The ordinary twins, loaded from literal rows (never from the foreign tables themselves).
  await c.query('create table rh (key text, value text); create table rl (element text, index int); create table rz (element text, score float8);' +
    'create table rm (key text, items jsonb); create table rs (id text, items jsonb); create table rv (key varchar(3), value text);' +
    'create table notes (key text, note text); create table log (n int)');
  for (const [k, v] of HASH) await c.query('insert into rh values ($1, $2)', [k, v]);
  for (const [i, e] of LIST.entries()) await c.query('insert into rl values ($1, $2)', [e, i]);
  for (const [s, m] of ZSET) await c.query('insert into rz values ($1, $2)', [m, s]);
  for (const [k, obj] of Object.entries(MULTI)) await c.query('insert into rm values ($1, $2)', [k, JSON.stringify(obj)]);
  for (const [id, fields] of STREAM) {
    const o: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) o[fields[i]!] = fields[i + 1]!;
    await c.query('insert into rs values ($1, $2)', [id, JSON.stringify(o)]);
  }
  for (const k of VC) await c.query('insert into rv values ($1::text::varchar(3), $2)', [k, `value of ${k}`]);
  await c.query(`insert into notes values ('k01', 'first'), ('k05', 'fifth'), ('k99', 'absent'), ('quote''s', 'apostrophe'), ('3', 'three')`);
});

after(async () => {
  await c?.end().catch(() => {});
  await f?.close();
});

const instantiate = (tpl: string, side: 0 | 1): string => tpl.replace(/\{(\w)\}/g, (_m, k: string) => PAIRS[k]![side]);

interface Answer {
  fields: string[];
  rows: (string | null)[][];
}

async function answer(sql: string): Promise<Answer> {
  const r = await c.query({ text: sql, rowMode: 'array' });
  return { fields: r.fields.map((x) => `${x.name}:${x.dataTypeID}`), rows: r.rows as (string | null)[][] };
}

/** Runs the template over the foreign tables and over their twins; the answers must be identical. */
async function same(tpl: string, ordered: boolean): Promise<void> {
  const real = await answer(instantiate(tpl, 1));
  let got: Answer;
  try {
    got = await answer(instantiate(tpl, 0));
  } catch (e) {
    assert.fail(`${instantiate(tpl, 0)}\nfailed through the proxy: ${(e as Error).message} (${(e as { code?: string }).code})\nexpected rows: ${JSON.stringify(real.rows).slice(0, 400)}`);
  }
  const msg = `query: ${instantiate(tpl, 0)}`;
  assert.deepEqual(got.fields, real.fields, msg);
  if (ordered) assert.deepEqual(got.rows, real.rows, msg);
  else assert.deepEqual(bag(got.rows), bag(real.rows), msg);
}

/** [template, ordered] */
const QUERIES: [string, boolean][] = [
  ['select * from {h}', false],
  ['select key, value from {h} where key = \'k05\'', true],
  ['select * from {h} where key in (\'k01\', \'k07\', \'nope\') order by key', true],
  ['select * from {h} where key in (\'k01\', null)', true],
  ['select * from {h} where key = \'k01\' and key = \'k02\'', true],
  ['select * from {h} where key = \'k01\' or value = \'3\' order by key', true],
  ['select * from {h} where key = any(array[\'k02\', \'k03\']) order by key', true],
  ['select * from {h} where key = \'quote\'\'s\'', true],
  ['select * from {h} where key = \'K05\'', true],
  ['select * from {h} where lower(key) = \'üml\'', true],
  ['select * from {h} where key > \'k2\' order by key', true],
  ['select * from {h} where value ~ \'^[0-9]+$\' and value::int > 3 order by key limit 5 offset 2', true],
  ['select * from {h} order by key fetch first 3 rows only', true],
  ['select * from {h} limit 0', true],
  ['select * from {h} where false', true],
  ['select distinct value from {h} order by 1', true],
  ['select value, count(*), min(key), max(key), string_agg(key, \',\' order by key) from {h} group by value order by value', true],
  ['select value, count(*) from {h} group by value having count(*) > 4 order by 1', true],
  ['select count(*), count(distinct value), count(*) filter (where key like \'k1%\') from {h}', true],
  ['select key, value, row_number() over (partition by value order by key), rank() over (order by value) from {h} order by key', true],
  ['select key, sum(value::int) over (order by key rows between 2 preceding and current row) from {h} where key like \'k%\' order by key', true],
  ['select h.key, n.note from {h} h join notes n on n.key = h.key order by 1', true],
  ['select n.key, h.value from notes n left join {h} h on h.key = n.key order by 1', true],
  ['select n.key, h.value from {h} h right join notes n on h.key = n.key and h.key = \'k01\' order by 1', true],
  ['select n.key, h.key from {h} h full join notes n using (key) where h.key is null or n.key is null order by 1, 2', true],
  ['select h.key, l.element, l.index from {h} h join {l} l on l.element = h.key order by 1, 3', true],
  ['select h.key, l.index from {h} h join {l} l on l.element = h.value where h.key < \'k05\' order by 1, 2', true],
  ['select a.key, b.key from {h} a join {h} b on a.value = b.value and a.key < b.key where a.key = \'k01\' order by 2', true],
  ['select count(*) from {h} a cross join {l} b', true],
  ['select key from {h} where key in (select element from {l}) order by 1', true],
  ['select key from {h} where value = (select max(value) from {h} where value ~ \'^[0-9]$\') order by key', true],
  ['select n.key from notes n where exists (select 1 from {h} h where h.key = n.key) order by 1', true],
  ['select n.key from notes n where not exists (select 1 from {h} h where h.key = n.key) order by 1', true],
  ['select (select count(*) from {h}), (select count(*) from {l}), (select max(score) from {z})', true],
  ['select v, c from (select value v, count(*) c from {h} group by value) s order by v', true],
  ['select n.key, x.value from notes n cross join lateral (select value from {h} h where h.key = n.key) x order by 1', true],
  ['with x as (select * from {h} where value = \'1\') select count(*), min(key) from x', true],
  ['with x as materialized (select * from {l}) select a.index, b.index from x a join x b on a.element = b.element and a.index < b.index order by 1, 2', true],
  ['with {h} as (select \'cte\' as key, \'row\' as value) select * from {h}', true],
  ['with {h} as (select * from {h} where value = \'1\') select key from {h} order by key', true],
  ['with recursive r(n) as (select 1 union all select n + 1 from r where n < (select count(*) from {l})) select max(n), count(*) from r', true],
  ['select key from {h} where value = \'1\' union select element from {l} order by 1', true],
  ['select key from {h} where value = \'1\' union all select element from {l}', false],
  ['select element from {l} intersect select key from {h} order by 1', true],
  ['select element from {l} except select value from {h} order by 1', true],
  ['select count(*) from {l}', true],
  ['select element, index from {l} order by index', true],
  ['select element, index from {l} order by index desc limit 3', true],
  ['select element, count(*), array_agg(index order by index) from {l} group by element order by 1', true],
  ['select element, lag(element) over (order by index), lead(index, 2) over (order by index) from {l} order by index', true],
  ['select element, score from {z} order by score, element', true],
  ['select element, score from {z} where score between 2 and 5 order by score, element', true],
  ['select avg(score), sum(score), stddev(score) from {z}', true],
  ['select element, ntile(3) over (order by score, element) from {z} order by element', true],
  ['select key, items->>\'a\', items ? \'b\', jsonb_typeof(items), items from {m} order by key', true],
  ['select m.key, e.key, e.value from {m} m, jsonb_each_text(m.items) e order by 1, 2', true],
  ['select key from {m} where items @> \'{"a": "1"}\' order by key', true],
  ['select key, (items->>\'c\')::jsonb->\'nested\' from {m} where items ? \'c\'', true],
  ['select key from {m} where key = \'mh:2\'', true],
  ['select key from {m} where key in (\'mh:1\', \'mh:4\', \'other:1\') order by 1', true],
  ['select jsonb_object_agg(key, items) from {m}', true],
  ['select id, items->>\'f\', items->>\'g\' from {s} order by id', true],
  ['select id, items from {s} where items ? \'g\' order by id desc', true],
  ['select upper(key) || \':\' || value as joined from {h} where key like \'k1%\' order by 1', true],
  ['select key, value from {v} order by key, value', true],
  ['select key, value from {v} where key = \'abc\' order by value', true],
  ['select key, value from {v} where key in (\'abc\', \'xy\') order by value', true],
  ['select * from {h} h where h.key = \'k03\' and h.value is not null', true],
  ['select t.key from {h} as t where t.key = \'k03\'', true],
  ['select * from (select * from {h} where key = \'k04\') s where s.value is not null', true],
  ['select key, value from {h} where key = \'k01\' union all select key, value from {h} where key = \'k02\' order by 1', true],
  ['select coalesce(max(value), \'none\') from {h} where key = \'missing\'', true],
  ['select key::int from {h} where key ~ \'^[0-9]+$\'', true],
  ['select row_to_json(h) from {h} h where key = \'k02\'', true],
  ['select h.* from {h} h where key = \'k02\'', true],
];

describe('differential: foreign tables vs ordinary tables with the same rows', () => {
  for (const [tpl, ordered] of QUERIES) {
    it(instantiate(tpl, 0), () => same(tpl, ordered));
  }
  it('a whole-row reference has the foreign table\'s row type, as a real table\'s has its own', async () => {
    for (const tpl of ["select h from {h} h where key = 'k02'", 'select h.key, h from {h} h order by h.key', 'select z, z.score from {z} z order by z', 'select count(distinct h) from {h} h']) {
      const [foreign, twin] = [instantiate(tpl, 0), instantiate(tpl, 1)];
      const types = async (sql: string): Promise<string[]> => {
        const r = await c.query({ text: sql, rowMode: 'array' });
        return r.fields.map((x) => String(x.dataTypeID));
      };
      const rowType = async (t: string): Promise<string> => (await rows(c, `select '${t}'::regtype::oid`))[0]![0]!;
      const ownType = async (sql: string, table: string): Promise<string[]> => {
        const own = await rowType(table);
        return (await types(sql)).map((t) => (t === own ? 'row type' : t));
      };
      const side = (k: 0 | 1): string => tpl.includes('{z}') ? PAIRS.z![k] : PAIRS.h![k];
      assert.deepEqual(await ownType(foreign, side(0)), await ownType(twin, side(1)), tpl);
      assert.deepEqual(await rows(c, foreign), await rows(c, twin), tpl);
    }
  });

});

describe('writes into ordinary tables from foreign ones', () => {
  it('CREATE TABLE AS / SELECT INTO', async () => {
    const a = await c.query(`create table cta_f as select * from fh where value <> '0'`);
    const b = await c.query(`create table cta_r as select * from rh where value <> '0'`);
    assert.equal(a.command, b.command);
    assert.equal(a.rowCount, b.rowCount);
    assert.deepEqual(bag(await rows(c, 'select * from cta_f')), bag(await rows(c, 'select * from cta_r')));
    assert.deepEqual(await rows(c, `select format_type(atttypid, atttypmod) from pg_attribute where attrelid = 'cta_f'::regclass and attnum > 0 order by attnum`), [['text'], ['text']]);
    const s = await c.query('select element, index into sel_into from fl where index < 4');
    assert.equal(s.rowCount, 4);
    assert.deepEqual(await rows(c, 'select * from sel_into order by index'), LIST.slice(0, 4).map((e, i) => [e, String(i)]));
    const typed = await c.query('create table cta_z as select * from fz');
    assert.equal(typed.rowCount, ZSET.length);
    assert.deepEqual(await rows(c, `select format_type(atttypid, atttypmod) from pg_attribute where attrelid = 'cta_z'::regclass and attnum > 0 order by attnum`), [['text'], ['double precision']]);
  });

  it('INSERT INTO ordinary SELECT FROM foreign: tag INSERT 0 n, RETURNING, rows as read', async () => {
    await c.query('create table sink (key text, value text)');
    const r = await c.query(`insert into sink select key, value from fh where key like 'k0%'`);
    assert.equal(r.command, 'INSERT');
    assert.equal(r.rowCount, 9);
    assert.deepEqual(bag(await rows(c, 'select * from sink')), bag(HASH.filter(([k]) => k.startsWith('k0'))));
    const ret = await c.query({ text: `insert into sink select key, value from fh where key = 'k10' returning key, value || '!'`, rowMode: 'array' });
    assert.deepEqual(ret.rows, [['k10', `${HASH[9]![1]}!`]]);
    const ins = await c.query(`with src as (select * from fl where index < 2) insert into sink select element, index::text from src`);
    assert.equal(ins.rowCount, 2);
  });

  it('UPDATE / DELETE of an ordinary table using a foreign table in FROM / USING / subquery', async () => {
    const script = (t: string, side: 0 | 1): string[] => [
      `update ${t} set value = h.value from {h} h where h.key = ${t}.key and h.key like 'k1%'`,
      `delete from ${t} using {h} h where h.key = ${t}.key and h.value = '0'`,
      `delete from ${t} where key in (select element from {l})`,
      `update ${t} set value = (select max(score)::text from {z}) where key = 'k20'`,
    ].map((x) => instantiate(x, side));
    await c.query(`create table upd_f as select key, 'old'::text as value from rh; create table upd_r as select key, 'old'::text as value from rh`);
    const fs = script('upd_f', 0);
    const rs = script('upd_r', 1);
    for (let i = 0; i < fs.length; i++) {
      const a = await c.query(fs[i]!);
      const b = await c.query(rs[i]!);
      assert.equal(`${a.command} ${a.rowCount}`, `${b.command} ${b.rowCount}`, fs[i]);
      assert.ok((b.rowCount ?? 0) > 0, `the twin statement should change rows: ${rs[i]}`);
    }
    assert.deepEqual(await rows(c, 'select * from upd_f order by key'), await rows(c, 'select * from upd_r order by key'));
  });
});

describe('multi-statement simple queries', () => {
  let proxyConn: ProtoConn;
  before(async () => {
    const u = urlParts(f.url);
    proxyConn = await ProtoConn.open(f.proxy.port, { user: u.user, password: u.password, database: u.database });
  });
  after(() => proxyConn?.end());

  const shape = (frames: Frame[]): string[] => normalize(frames).map((s) => s.replace(/table=\d+ att=\d+/g, 'table=* att=*'));

  /** Runs one side on proxyConn from a clean state: no open transaction, application_name reset. */
  async function runSide(sql: string): Promise<string[]> {
    await proxyConn.query('rollback; set application_name = \'before\'');
    await c.query('truncate log');
    return shape(await proxyConn.query(sql));
  }

  async function compare(tpl: string, after: string): Promise<{ got: string[] }> {
    const real = await runSide(instantiate(tpl, 1));
    const realAfter = await rows(c, after);
    const got = await runSide(instantiate(tpl, 0));
    const gotAfter = await rows(c, after);
    assert.deepEqual(got, real, instantiate(tpl, 0));
    assert.deepEqual(gotAfter, realAfter, `state after: ${after}`);
    await proxyConn.query('rollback');
    return { got };
  }

  it('foreign and ordinary statements mixed: every result, in order, with the right tags', async () => {
    const { got } = await compare(
      `insert into log values (1); select key, value from {h} where key = 'k01'; select count(*) from {l}; set application_name = 'multi'; insert into log values (2); select n from log order by n; select 'done'`,
      'select n from log order by n',
    );
    assert.deepEqual(got.filter((s) => s.startsWith('C ')), ['C INSERT 0 1', 'C SELECT 1', 'C SELECT 1', 'C SET', 'C INSERT 0 1', 'C SELECT 2', 'C SELECT 1']);
    assert.deepEqual(await rows(c, 'select 1'), [['1']]);
  });

  it('an error halfway: the statements before it ran, none after it, the implicit transaction is rolled back', async () => {
    const { got } = await compare(
      `insert into log values (10); select * from {h} where key = 'k01'; select 1/0; insert into log values (11); select * from {l}`,
      'select n from log order by n',
    );
    assert.ok(got.some((s) => s.startsWith('E ') && s.includes('C=22012')), got.join('\n'));
    assert.equal(got[got.length - 1], 'Z I');
  });

  it('an error in the statement reading the foreign table (a syntax-valid but failing cast)', async () => {
    const { got } = await compare(`insert into log values (20); select value::int from {h}; insert into log values (21)`, 'select n from log order by n');
    assert.ok(got.some((s) => s.startsWith('E ') && s.includes('C=22P02')), got.join('\n'));
  });

  it('an error before any foreign statement', async () => {
    await compare(`select 1/0; select * from {h}`, 'select count(*) from log');
  });

  it('explicit transaction inside one Query: BEGIN ... COMMIT persists, the later error does not undo it', async () => {
    const { got } = await compare(
      `begin; insert into log values (30); select count(*) from {h}; commit; insert into log values (31); select 1/0`,
      'select n from log order by n',
    );
    assert.equal(got[got.length - 1], 'Z I');
  });

  it('an error inside an explicit transaction leaves it failed (Z E), as with ordinary tables', async () => {
    const { got } = await compare(`begin; select * from {l} where index = 0; select 1/0; select * from {h}`, 'select 1');
    assert.equal(got[got.length - 1], 'Z E');
  });

  it('a Redis error halfway fails the Query there and rolls back the earlier insert', async () => {
    await f.redis.set('notahash', 'string value');
    await c.query(`create foreign table fwrong (key text, value text) server redis_server options (src_type 'hash', src_key 'notahash')`);
    const frames = await runSide(`insert into log values (40); select * from fwrong; insert into log values (41)`);
    assert.deepEqual(frames.map((s) => s.slice(0, 2)), ['C ', 'E ', 'Z '], frames.join('\n'));
    assert.match(frames[1]!, /C=42809/);
    assert.equal(frames[2], 'Z I');
    assert.deepEqual(await rows(c, 'select count(*) from log'), [['0']]);
  });

  it('error positions point into the client\'s own text', async () => {
    await runSide('select 1');
    const frames = await proxyConn.query(`select 1; select key, no_such_column from fh`);
    const e = normalize(frames).find((s) => s.startsWith('E '))!;
    const pos = Number(/P=(\d+)/.exec(e)?.[1]);
    assert.equal(`select 1; select key, no_such_column from fh`.slice(pos - 1, pos - 1 + 'no_such_column'.length), 'no_such_column', e);
  });
});

describe('EXPLAIN and pushdown', () => {
  const explain = async (sql: string): Promise<string> => (await rows(c, `explain ${sql}`)).map((r) => r[0]).join('\n');

  it('EXPLAIN shows HMGET for key = / key IN, HSCAN otherwise', async () => {
    assert.match(await explain(`select * from fbig where key = 'f1'`), /HMGET\b.*\bf1\b/);
    const inList = await explain(`select * from fbig where key in ('f1', 'f2')`);
    assert.match(inList, /HMGET\b.*\bf1\b.*\bf2\b/);
    assert.doesNotMatch(inList, /HSCAN/);
    assert.match(await explain('select * from fbig'), /HSCAN/);
    assert.match(await explain(`select * from fbig where key like 'f1%'`), /HSCAN/);
    assert.match(await explain(`select * from fbig where key = 'f1' or value = 'v2'`), /HSCAN/);
    // Upstream's own plan is still there.
    assert.match(await explain(`select * from fbig where key = 'f1'`), /Function Scan|Subquery Scan|Result|Filter/);
  });

  it('EXPLAIN ANALYZE runs and shows the Redis command', async () => {
    const out = await explain(`analyze select * from fbig where key = 'f7'`);
    assert.match(out, /HMGET/);
    assert.match(out, /actual time=.*rows=1\b/);
  });

  it('a point lookup runs HMGET and never scans the hash (MONITOR)', async () => {
    const mon = await monitorRedis(f.redisUrl, DB);
    try {
      assert.deepEqual(await rows(c, `select value from fbig where key = 'f123'`), [['v123']]);
      assert.deepEqual(await rows(c, `select key, value from fbig where key in ('f1', 'f4999', 'nope') order by key`), [['f1', 'v1'], ['f4999', 'v4999']]);
      await settle();
      const cmds = mon.onKey('big');
      assert.deepEqual(cmds.map((x) => x[0]).sort(), ['HMGET', 'HMGET'], JSON.stringify(cmds));
      assert.deepEqual(cmds.find((x) => x.includes('f123')), ['HMGET', 'big', 'f123']);
    } finally {
      await mon.stop();
    }
  });

  it('without a usable predicate the hash is scanned in pages, and the answer is complete', async () => {
    const mon = await monitorRedis(f.redisUrl, DB);
    try {
      assert.deepEqual(await rows(c, `select count(*), count(distinct value) from fbig where key like 'f1%'`), [['1111', '1111']]);
      await settle();
      const cmds = mon.onKey('big');
      // 5,000 fields fit the first page: its length, then the whole hash in one reply (paging a bigger
      // one is tested in unit/redis-read and unit/resp-scan).
      assert.ok(5000 <= DEFAULT_FIRST_PAGE);
      assert.deepEqual(cmds.map((x) => x.join(' ')), ['HLEN big', 'HGETALL big']);
      const plan = (await c.query(`explain select * from fbig`)).rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n');
      assert.match(plan, new RegExp(`HLEN big first; one HGETALL when it holds at most ${DEFAULT_FIRST_PAGE} members`));
    } finally {
      await mon.stop();
    }
  });

  it('a multi_* table with an exact key does not SCAN the keyspace', async () => {
    const mon = await monitorRedis(f.redisUrl, DB);
    try {
      assert.deepEqual(await rows(c, `select items->>'a' from fm where key = 'mh:2'`), [['2']]);
      await settle();
      const all = mon.commands();
      assert.ok(!all.some((x) => x[0] === 'SCAN'), JSON.stringify(all));
      assert.ok(all.some((x) => x[1] === 'mh:2'), JSON.stringify(all));
    } finally {
      await mon.stop();
    }
  });

  it('a prepared point lookup pushes down the bound value', async () => {
    const mon = await monitorRedis(f.redisUrl, DB);
    try {
      for (const k of ['f10', 'f20', 'f30']) {
        assert.deepEqual(await rows(c, 'select value from fbig where key = $1', [k]), [[`v${k.slice(1)}`]]);
      }
      await settle();
      const cmds = mon.onKey('big');
      assert.deepEqual(cmds, [['HMGET', 'big', 'f10'], ['HMGET', 'big', 'f20'], ['HMGET', 'big', 'f30']]);
    } finally {
      await mon.stop();
    }
  });

  it('errors are reported as Postgres reports them for the same query over an ordinary table', async () => {
    const a = await pgError(c.query('select nope from fh'));
    const b = await pgError(c.query('select nope from rh'));
    assert.equal(a.code, b.code);
    assert.equal(a.message, b.message);
  });
});
