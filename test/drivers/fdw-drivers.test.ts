// Redis foreign tables read through real drivers. Drivers shape the extended protocol differently
// (unnamed vs named statements, Describe of statements vs portals, Flush before Sync, binary results,
// row-limited Execute, pipelines), and the interceptor must serve all of them. The oracle: the same
// driver code run against ordinary upstream tables holding the same rows must give the same results.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import Cursor from 'pg-cursor';
import postgres from 'postgres';
import { existsSync } from 'node:fs';
import { fdwFixture, type FdwFixture } from '../support/fdw.js';
import { errInfo, helperPath, normResult, runJsonProgram, runProgram, withTimeout } from './common.js';
import { REDIS_DB } from '../support/redis-dbs.js';

let f: FdwFixture;
const HASH_N = 200;
const LIST_N = 1000;
const hashKey = (i: number): string => `f${String(i).padStart(3, '0')}`;
const listElem = (i: number): string => `e${String((i * 7919) % LIST_N).padStart(4, '0')}`;

/** Table names for one side of the comparison. */
interface Tables {
  H: string;
  L: string;
  /** Changes one hash field's value on this side (HSET for Redis, UPDATE for the real table). */
  setHash(key: string, value: string): Promise<void>;
}
let foreign: Tables;
let real: Tables;

async function ddl(sql: string): Promise<void> {
  // One statement per call: several foreign-table DDL statements in one Query is a separate test.
  const out = await f.psql(sql);
  assert.doesNotMatch(out, /ERROR/, `${sql}\n${out}`);
}

before(async () => {
  f = await fdwFixture('drv_fdw', REDIS_DB.drivers);
  const r = f.redis;
  const fields: string[] = [];
  for (let i = 0; i < HASH_N; i++) fields.push(hashKey(i), String(i * 3));
  await r.hset('drv:h', ...fields);
  const elems = Array.from({ length: LIST_N }, (_, i) => listElem(i));
  await r.rpush('drv:l', ...elems);
  await ddl('create foreign data wrapper redis_wrapper handler redis_fdw_handler validator redis_fdw_validator');
  await ddl(`create server drv_rs foreign data wrapper redis_wrapper options (conn_url '${f.redisUrl}')`);
  await ddl(`create foreign table fh (key text, value text) server drv_rs options (src_type 'hash', src_key 'drv:h')`);
  await ddl(`create foreign table fl (element text) server drv_rs options (src_type 'list', src_key 'drv:l')`);
  await ddl(`create foreign table fh_typed (key varchar(20), value int) server drv_rs options (src_type 'hash', src_key 'drv:h')`);
  const c = new pg.Client({ connectionString: f.directUrl });
  await c.connect();
  try {
    await c.query('create table rh (key text, value text); create table rl (element text); create table notes (key text primary key, note text)');
    await c.query('insert into rh select k, v from unnest($1::text[], $2::text[]) as t(k, v)', [fields.filter((_, i) => i % 2 === 0), fields.filter((_, i) => i % 2 === 1)]);
    await c.query('insert into rl select unnest($1::text[])', [elems]);
    await c.query(`insert into notes values ('f001', 'one'), ('f010', 'ten'), ('f150', 'one fifty'), ('zzz', 'no match')`);
  } finally {
    await c.end();
  }
  foreign = { H: 'fh', L: 'fl', setHash: async (k, v) => void (await r.hset('drv:h', k, v)) };
  real = {
    H: 'rh',
    L: 'rl',
    setHash: async (k, v) => {
      const d = new pg.Client({ connectionString: f.directUrl });
      await d.connect();
      await d.query('update rh set value = $2 where key = $1', [k, v]).finally(() => d.end());
    },
  };
});
after(async () => {
  await f?.close();
});

/** Runs the scenario on foreign tables through the proxy, then on real tables directly; same results. */
async function tableSwap<R>(fn: (c: pg.Client, t: Tables) => Promise<R>, cfg: pg.ClientConfig = {}): Promise<R> {
  const once = async (url: string, t: Tables): Promise<R> => {
    const c = new pg.Client({ connectionString: url, ...cfg });
    c.on('error', () => {});
    await c.connect();
    try {
      return await withTimeout(fn(c, t), 30_000, `scenario on ${t.H}`);
    } finally {
      await c.end().catch(() => {});
    }
  };
  const viaProxy = await once(f.url, foreign);
  const direct = await once(f.directUrl, real);
  assert.deepEqual(viaProxy, direct, 'foreign tables through the proxy differ from the same rows in real tables');
  return viaProxy;
}

/** Result without table identity (a derived table and a real one differ there; see the metadata test). */
const rowsOf = (r: pg.QueryResult): unknown => {
  const n = normResult(r) as { fields: Array<Record<string, unknown>> };
  return { ...n, fields: n.fields.map(({ fromTable: _t, columnID: _c, ...rest }) => rest) };
};

describe('node-postgres over Redis foreign tables', () => {
  test('simple and parameterized queries, joins with a real table, aggregates', async () => {
    const r = await tableSwap(async (c, t) => {
      const out: unknown[] = [];
      out.push(rowsOf(await c.query(`select key, value from ${t.H} order by key limit 5`)));
      out.push(rowsOf(await c.query(`select count(*)::int as n, sum(value::int)::int as s from ${t.H}`)));
      out.push(rowsOf(await c.query(`select value from ${t.H} where key = $1`, ['f042'])));
      out.push(rowsOf(await c.query(`select key from ${t.H} where key = any($1::text[]) order by key`, [['f001', 'f199', 'nope']])));
      out.push(rowsOf(await c.query(`select h.key, n.note from ${t.H} h join notes n on n.key = h.key order by 1`)));
      out.push(rowsOf(await c.query(`select element from ${t.L} order by element limit 5 offset $1`, [10])));
      out.push(rowsOf(await c.query(`select element, row_number() over (order by element desc)::int as rn from ${t.L} order by element desc limit 3`)));
      out.push(rowsOf(await c.query(`with x as (select value::int as v from ${t.H}) select max(v) as mx, min(v) as mn from x where v > $1`, [100])));
      return out;
    });
    assert.deepEqual((r[2] as { rows: unknown[] }).rows, [{ value: '126' }]);
    assert.deepEqual((r[1] as { rows: unknown[] }).rows, [{ n: HASH_N, s: 3 * (HASH_N * (HASH_N - 1)) / 2 }]);
  });

  test('a named prepared statement reused 10 times, seeing fresh Redis data each time', async () => {
    const r = await tableSwap(async (c, t) => {
      const out: unknown[] = [];
      for (let i = 0; i < 10; i++) {
        if (i === 5) await t.setHash('f005', 'changed');
        out.push((await c.query({ name: 'drv_fdw_named', text: `select key, value from ${t.H} where key = $1`, values: [hashKey(i)] })).rows);
      }
      await t.setHash('f005', '15');
      out.push((await c.query({ name: 'drv_fdw_named', text: `select key, value from ${t.H} where key = $1`, values: ['f005'] })).rows);
      return out;
    });
    assert.deepEqual(r[5], [{ key: 'f005', value: 'changed' }]);
    assert.deepEqual(r[10], [{ key: 'f005', value: '15' }]);
  });

  test('binary results (binary: true) over a foreign table', async () => {
    const r = await tableSwap(async (c, t) => {
      const res = await c.query(`select key, value::int as v, length(key)::int2 as l from ${t.H} where key = $1`, ['f007']);
      return { rows: res.rows, formats: res.fields.map((x) => x.format), types: res.fields.map((x) => x.dataTypeID) };
    }, { binary: true } as pg.ClientConfig);
    assert.deepEqual(r.formats, ['binary', 'binary', 'binary']);
    assert.deepEqual(r.rows, [{ key: 'f007', v: 21, l: 4 }]);
  });

  test('pg-cursor over a 1000-element list in batches of 100 (portal suspension)', async () => {
    const r = await tableSwap(async (c, t) => {
      const cur = c.query(new Cursor(`select element from ${t.L} where element >= $1 order by element`, ['e0000']));
      const sizes: number[] = [];
      const all: string[] = [];
      for (;;) {
        const rows = (await cur.read(100)) as Array<{ element: string }>;
        sizes.push(rows.length);
        all.push(...rows.map((x) => x.element));
        if (rows.length === 0) break;
      }
      await cur.close();
      return { sizes, first: all.slice(0, 3), n: all.length, ok: (await c.query('select 1 as ok')).rows };
    });
    assert.equal(r.n, LIST_N);
    assert.equal(r.sizes.length, 11);
  });

  test('errors with a foreign table inside a transaction, then ROLLBACK; the session keeps serving', async () => {
    const r = await tableSwap(async (c, t) => {
      const out: unknown[] = [];
      await c.query('begin');
      out.push((await c.query(`select count(*)::int as n from ${t.L}`)).rows);
      out.push(await c.query(`select 1 / (value::int - 3) from ${t.H} where key = $1`, ['f001']).then(() => null, (e: unknown) => (errInfo(e) as { code: string }).code));
      out.push(await c.query(`select * from ${t.H}`).then(() => null, (e: unknown) => (errInfo(e) as { code: string }).code));
      await c.query('rollback');
      out.push((await c.query(`select value from ${t.H} where key = 'f002'`)).rows);
      out.push(await c.query(`select nosuch from ${t.H}`).then(() => null, (e: unknown) => (errInfo(e) as { code: string }).code));
      out.push((await c.query(`select value from ${t.H} where key = $1`, ['f003'])).rows);
      return out;
    });
    assert.deepEqual(r, [[{ n: LIST_N }], '22012', '25P02', [{ value: '6' }], '42703', [{ value: '9' }]]);
  });

  test('pipeline mode (pg pipeline: true): foreign and plain queries mixed, one error', async () => {
    const r = await tableSwap(async (c, t) => {
      const qs: Promise<pg.QueryResult>[] = [];
      for (let i = 0; i < 24; i++) {
        if (i === 9) qs.push(c.query(`select 1 / 0 from ${t.H} where key = $1`, ['f009']));
        else if (i % 3 === 0) qs.push(c.query(`select value from ${t.H} where key = $1`, [hashKey(i)]));
        else if (i % 3 === 1) qs.push(c.query(`select count(*)::int as n from ${t.L} where element < $1`, ['e0500']));
        else qs.push(c.query('select $1::int as plain', [i]));
      }
      const s = await Promise.allSettled(qs);
      return s.map((x) => (x.status === 'fulfilled' ? x.value.rows : (errInfo(x.reason) as { code: string }).code));
    }, { pipeline: true } as pg.ClientConfig);
    assert.equal(r[9], '22012');
    assert.deepEqual(r[3], [{ value: '9' }]);
    assert.deepEqual(r[2], [{ plain: 2 }]);
  });

  test('several foreign-table statements in one simple Query, and the session afterwards', async () => {
    const r = await tableSwap(async (c, t) => {
      const multi = await c.query(`select count(*)::int as n from ${t.H}; select count(*)::int as n from ${t.L}; select value from ${t.H} where key = 'f004'`)
        .then((rs) => (rs as unknown as pg.QueryResult[]).map((x) => x.rows), (e: unknown) => errInfo(e));
      const afterwards = await c.query(`select value from ${t.H} where key = 'f005'`).then((x) => x.rows, (e: unknown) => errInfo(e));
      return { multi, afterwards };
    });
    assert.deepEqual(r.multi, [[{ n: HASH_N }], [{ n: LIST_N }], [{ value: '12' }]]);
    assert.deepEqual(r.afterwards, [{ value: '15' }]);
  });

  test('RowDescription names the foreign table and column, and the declared types, as a foreign scan does', async () => {
    const c = new pg.Client({ connectionString: f.url });
    await c.connect();
    try {
      const ids = (await c.query(`select 'fh_typed'::regclass::oid::int as oid`)).rows[0].oid as number;
      const res = await c.query('select key, value from fh_typed where key = $1', ['f002']);
      assert.deepEqual(res.rows, [{ key: 'f002', value: 6 }]);
      assert.deepEqual(res.fields.map((x) => [x.name, x.dataTypeID, x.dataTypeModifier]), [['key', 1043, 24], ['value', 23, -1]], 'declared types: varchar(20), int');
      // Postgres's own foreign scan reports the table oid and attribute numbers; JDBC's
      // getTableName, pgAdmin and DBeaver (editable results) rely on them.
      assert.deepEqual(res.fields.map((x) => [x.tableID, x.columnID]), [[ids, 1], [ids, 2]], 'RowDescription table oid / column number of the foreign table');
    } finally {
      await c.end();
    }
  });
});

describe('postgres.js over Redis foreign tables', () => {
  async function swap<R>(fn: (sql: postgres.Sql<Record<string, never>>, t: Tables) => Promise<R>): Promise<R> {
    const once = async (url: string, t: Tables): Promise<R> => {
      const sql = postgres(url, { max: 1, connect_timeout: 10 }) as unknown as postgres.Sql<Record<string, never>>;
      try {
        return await withTimeout(fn(sql, t), 30_000, `postgres.js scenario on ${t.H}`);
      } finally {
        await sql.end({ timeout: 5 });
      }
    };
    const viaProxy = await once(f.url, foreign);
    const direct = await once(f.directUrl, real);
    assert.deepEqual(viaProxy, direct, 'foreign tables through the proxy differ from the same rows in real tables');
    return viaProxy;
  }

  test('pipelined queries (Parse/Describe/Flush first), prepared reuse, errors in the pipeline', async () => {
    const r = await swap(async (sql, t) => {
      const qs = Array.from({ length: 60 }, (_, i) => {
        if (i === 17) return sql.unsafe(`select 1 / 0 from ${t.H} where key = $1`, ['f017']);
        if (i % 2 === 0) return sql.unsafe(`select key, value from ${t.H} where key = $1`, [hashKey(i)]);
        return sql.unsafe(`select count(*)::int as n from ${t.L} where element > $1`, [listElem(i)]);
      });
      const s = await Promise.allSettled(qs);
      const again = await sql.unsafe(`select key, value from ${t.H} where key = $1`, ['f001']);
      return { s: s.map((x) => (x.status === 'fulfilled' ? [...x.value] : (x.reason as { code: string }).code)), again: [...again] };
    });
    assert.equal(r.s[17], '22012');
    assert.deepEqual(r.s[4], [{ key: 'f004', value: '12' }]);
    assert.deepEqual(r.again, [{ key: 'f001', value: '3' }]);
  });

  test('cursor(50) and sql.begin over foreign tables', async () => {
    const r = await swap(async (sql, t) => {
      const sizes: number[] = [];
      for await (const rows of sql.unsafe(`select element from ${t.L} order by element`).cursor(50)) sizes.push(rows.length);
      const tx = await sql.begin(async (s) => {
        const a = await s.unsafe(`select count(*)::int as n from ${t.H}`);
        const b = await s.unsafe(`select value from ${t.H} where key = $1`, ['f100']);
        return [[...a], [...b]];
      });
      return { sizes, tx };
    });
    assert.equal(r.sizes.length, LIST_N / 50);
    assert.deepEqual(r.tx, [[{ n: HASH_N }], [{ value: '300' }]]);
  });
});

describe('psycopg and JDBC over Redis foreign tables', () => {
  const PY = '/usr/bin/python3';
  const JAR = '/usr/share/java/postgresql.jar';

  test('psycopg: params, prepare=True, binary cursor, server-side cursor, pipeline', async (t) => {
    const ok = existsSync(PY) && (await runProgram(PY, ['-c', 'import psycopg'], { timeoutMs: 30_000 }).catch(() => ({ code: 1 }))).code === 0;
    if (!ok) return t.skip('python3-psycopg not available to /usr/bin/python3');
    const run = (url: string, tb: Tables): Promise<Record<string, unknown>> => runJsonProgram(PY, [helperPath('python/psycopg_fdw.py'), url, tb.H, tb.L], { timeoutMs: 120_000 });
    const viaProxy = await run(f.url, foreign);
    const direct = await run(f.directUrl, real);
    assert.deepEqual(direct.params, [['126']], 'the real-table run itself is sane');
    for (const k of Object.keys(direct).sort()) {
      await t.test(`psycopg scenario ${k}: same over foreign tables as over real ones`, () => assert.deepEqual(viaProxy[k], direct[k]));
    }
  });

  test('JDBC: prepareThreshold=1 reuse, binary results, setFetchSize in a transaction, errors in a transaction', async (t) => {
    const ok = existsSync(JAR) && (await runProgram('java', ['-version'], { timeoutMs: 30_000 }).catch(() => ({ code: 1 }))).code === 0;
    if (!ok) return t.skip('java or the PostgreSQL JDBC jar not available');
    const run = async (url: string, tb: Tables): Promise<Record<string, unknown>> => {
      const u = new URL(url);
      const jdbcUrl = `jdbc:postgresql://${u.hostname}:${u.port}${u.pathname}`;
      return runJsonProgram('java', ['-cp', JAR, helperPath('java/JdbcFdw.java'), jdbcUrl, decodeURIComponent(u.username), decodeURIComponent(u.password), tb.H, tb.L], { timeoutMs: 180_000 });
    };
    const viaProxy = await run(f.url, foreign);
    const direct = await run(f.directUrl, real);
    assert.deepEqual((direct.threshold as unknown[])[9], ['f009', '27'], 'the real-table run itself is sane');
    for (const k of Object.keys(direct).sort()) {
      await t.test(`JDBC scenario ${k}: same over foreign tables as over real ones`, () => assert.deepEqual(viaProxy[k], direct[k]));
    }
  });
});
