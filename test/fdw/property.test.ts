/**
 * Property test: seeded random Redis contents (a hash, a zset and a list with random, partly unicode
 * fields and values, changed every 20 queries) and ~200 random simple queries (WHERE on key/value with =, <, >, LIKE, IN, OR/NOT,
 * ORDER BY, LIMIT/OFFSET, aggregates, GROUP BY; literals and bound parameters), each answered by the
 * proxy over the foreign tables and by Postgres over ordinary tables holding the same rows. Any
 * difference fails, with the seed printed so the run can be repeated (PROPERTY_SEED=<n>).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { fdwFixture, type FdwFixture } from '../support/fdw.js';
import { bag, connect, setupSupabase } from '../support/fdw-sql.js';
import { prng } from '../support/frames.js';
import { REDIS_DB } from '../support/redis-dbs.js';

const DB = REDIS_DB.property;
const SEED = Number(process.env.PROPERTY_SEED ?? Date.now() % 1_000_000_007);
const QUERIES = 200;
const rnd = prng(SEED);

let f: FdwFixture;
let c: pg.Client;

const PIECES = ['a', 'b', 'ab', 'key', 'K', 'z', '1', '2', '10', '_', '%', "'", '\\', ' ', 'ü', 'é', 'ß', '中', '😀', 'x-y', ':', '.'];
const word = (min = 1, max = 4): string => {
  let s = '';
  const n = rnd.int(min, max);
  for (let i = 0; i < n; i++) s += rnd.pick(PIECES);
  return s;
};

const hash = new Map<string, string>();
const zset = new Map<string, number>();
const list: string[] = [];

function genData(): void {
  const nh = rnd.int(40, 160);
  while (hash.size < nh) {
    const k = rnd.next() < 0.1 ? String(rnd.int(0, 99)) : word();
    hash.set(k, rnd.next() < 0.3 ? String(rnd.int(-50, 50)) : rnd.next() < 0.05 ? '' : word(0, 5));
  }
  const nz = rnd.int(10, 60);
  while (zset.size < nz) zset.set(word(), rnd.pick([rnd.int(-10, 10), rnd.int(-1000, 1000) / 8, 0.5]));
  const nl = rnd.int(5, 80);
  for (let i = 0; i < nl; i++) list.push(rnd.next() < 0.3 && list.length ? rnd.pick(list) : word(0, 3));
}

before(async () => {
  genData();
  console.log(`[property] seed ${SEED} (repeat with PROPERTY_SEED=${SEED}); hash ${hash.size} fields, zset ${zset.size}, list ${list.length}`);
  f = await fdwFixture('fdw_property', DB);
  c = await connect(f.url);
  const r = f.redis;
  await r.hset('p:h', Object.fromEntries(hash));
  for (const [m, s] of zset) await r.zadd('p:z', s, m);
  await r.rpush('p:l', ...list);
  await setupSupabase(c, f.redisUrl);
  await c.query(`
    create foreign table fh (key text, value text) server redis_server options (src_type 'hash', src_key 'p:h');
    create foreign table fz (element text, score float8) server redis_server options (src_type 'zset', src_key 'p:z');
    create foreign table fl (element text, index int) server redis_server options (src_type 'list', src_key 'p:l');
    create table rh (key text, value text); create table rz (element text, score float8); create table rl (element text, index int);`);
  for (const [k, v] of hash) await c.query('insert into rh values ($1, $2)', [k, v]);
  for (const [m, s] of zset) await c.query('insert into rz values ($1, $2)', [m, s]);
  for (const [i, e] of list.entries()) await c.query('insert into rl values ($1, $2)', [e, i]);
});

after(async () => {
  await c?.end().catch(() => {});
  await f?.close();
});

const lit = (s: string): string => `'${s.replace(/'/g, "''")}'`;

interface Q {
  /** `{t}` stands for the table. */
  sql: string;
  params: string[];
  ordered: boolean;
  table: 'h' | 'z' | 'l';
}

/** A text value to compare with: usually one that exists, sometimes a prefix or a random one. */
function textOperand(existing: string[]): string {
  const x = rnd.next();
  if (x < 0.6 && existing.length) return rnd.pick(existing);
  if (x < 0.8 && existing.length) {
    const s = rnd.pick(existing);
    return s.slice(0, rnd.int(0, s.length));
  }
  return word(0, 3);
}

function genQuery(): Q {
  const table = rnd.pick(['h', 'h', 'h', 'z', 'l'] as const);
  const cols = table === 'h' ? ['key', 'value'] : table === 'z' ? ['element'] : ['element'];
  const existing = table === 'h' ? [...hash.keys(), ...hash.values()] : table === 'z' ? [...zset.keys()] : list;
  const params: string[] = [];
  const operand = (): string => {
    const v = textOperand(existing);
    if (rnd.next() < 0.3) {
      params.push(v);
      return `$${params.length}`;
    }
    return lit(v);
  };
  const pred = (depth: number): string => {
    const col = rnd.pick(cols);
    const k = rnd.int(0, depth > 0 ? 11 : 9);
    switch (k) {
      case 0:
      case 1:
        return `${col} = ${operand()}`;
      case 2:
        return `${col} in (${Array.from({ length: rnd.int(1, 4) }, operand).join(', ')})`;
      case 3:
        return `${col} < ${operand()}`;
      case 4:
        return `${col} >= ${operand()}`;
      case 5:
        return `${col} like ${lit(rnd.pick([`${word(1, 2)}%`, `%${word(1, 1)}%`, `_${word(0, 1)}%`, word(1, 2)]))}`;
      case 6:
        return `length(${col}) ${rnd.pick(['<', '>', '='])} ${rnd.int(0, 6)}`;
      case 7:
        if (table === 'z') return `score ${rnd.pick(['<', '>', '<=', '>='])} ${rnd.int(-20, 20) / 2}`;
        if (table === 'l') return `index ${rnd.pick(['<', '>', '='])} ${rnd.int(0, list.length)}`;
        return `value ~ '^-?[0-9]+$'`;
      case 8:
        return `${col} <> ${operand()}`;
      case 9:
        return `${col} is not null`;
      case 10:
        return `(${pred(depth - 1)} or ${pred(depth - 1)})`;
      default:
        return `not (${pred(depth - 1)})`;
    }
  };
  const where = (): string => {
    const n = rnd.int(0, 3);
    if (n === 0) return '';
    return ` where ${Array.from({ length: n }, () => pred(1)).join(' and ')}`;
  };
  const order = table === 'h' ? 'key' : table === 'z' ? 'score, element' : 'index';
  const all = table === 'h' ? 'key, value' : table === 'z' ? 'element, score' : 'element, index';
  const shape = rnd.int(0, 6);
  switch (shape) {
    case 0:
      return { sql: `select ${all} from {t}${where()}`, params, ordered: false, table };
    case 1:
    case 2: {
      const limit = rnd.next() < 0.6 ? ` limit ${rnd.int(0, 20)}${rnd.next() < 0.5 ? ` offset ${rnd.int(0, 10)}` : ''}` : '';
      return { sql: `select ${all} from {t}${where()} order by ${order}${rnd.next() < 0.3 ? ' desc' : ''}${limit}`.replace(/, element desc|, element$/, (m) => m), params, ordered: true, table };
    }
    case 3:
      return { sql: `select count(*), count(distinct ${cols[cols.length - 1]}), min(${cols[0]}), max(${cols[cols.length - 1]}) from {t}${where()}`, params, ordered: true, table };
    case 4: {
      const g = cols[cols.length - 1];
      return { sql: `select ${g}, count(*) from {t}${where()} group by ${g} order by ${g}`, params, ordered: true, table };
    }
    case 5:
      return { sql: `select distinct ${cols[0]} from {t}${where()} order by 1`, params, ordered: true, table };
    default:
      if (table === 'z') return { sql: `select sum(score), avg(score)::numeric(20,6), count(*) filter (where score > 0) from {t}${where()}`, params, ordered: true, table };
      if (table === 'l') return { sql: `select string_agg(element, '|' order by index), max(index) from {t}${where()}`, params, ordered: true, table };
      return { sql: `select key, value from {t}${where()} order by value desc, key limit ${rnd.int(1, 15)}`, params, ordered: true, table };
  }
}

/** Changes Redis and the twin tables the same way, so no answer may come from stale data. */
async function mutate(): Promise<void> {
  const k = rnd.next() < 0.5 && hash.size ? rnd.pick([...hash.keys()]) : word();
  if (rnd.next() < 0.3 && hash.has(k)) {
    hash.delete(k);
    await f.redis.hdel('p:h', k);
    await c.query('delete from rh where key = $1', [k]);
  } else {
    const v = word(0, 4);
    hash.set(k, v);
    await f.redis.hset('p:h', k, v);
    await c.query('delete from rh where key = $1', [k]);
    await c.query('insert into rh values ($1, $2)', [k, v]);
  }
  const e = word(0, 3);
  list.push(e);
  await f.redis.rpush('p:l', e);
  await c.query('insert into rl values ($1, $2)', [e, list.length - 1]);
  const m = rnd.pick([...zset.keys()]);
  const sc = rnd.int(-10, 10);
  zset.set(m, sc);
  await f.redis.zadd('p:z', sc, m);
  await c.query('update rz set score = $2 where element = $1', [m, sc]);
}

describe(`random queries, proxy vs ordinary tables (seed ${SEED})`, () => {
  it(`${QUERIES} queries agree`, async () => {
    const failures: string[] = [];
    let rowsSeen = 0;
    for (let i = 0; i < QUERIES; i++) {
      if (i % 20 === 19) await mutate();
      const q = genQuery();
      const foreign = q.sql.replace('{t}', `f${q.table}`);
      const real = q.sql.replace('{t}', `r${q.table}`);
      const run = async (sql: string): Promise<{ rows: (string | null)[][] } | { error: string }> => {
        try {
          const r = await c.query({ text: sql, values: q.params.length ? q.params : undefined, rowMode: 'array' });
          return { rows: r.rows as (string | null)[][] };
        } catch (e) {
          return { error: `${(e as { code?: string }).code}: ${(e as Error).message}` };
        }
      };
      const want = await run(real);
      const got = await run(foreign);
      const norm = (x: typeof want): unknown => ('error' in x ? x : { rows: q.ordered ? x.rows : bag(x.rows) });
      try {
        assert.deepEqual(norm(got), norm(want));
        if ('rows' in want) rowsSeen += want.rows.length;
      } catch {
        failures.push(`#${i} ${foreign} ${JSON.stringify(q.params)}\n  proxy:  ${JSON.stringify(norm(got)).slice(0, 300)}\n  direct: ${JSON.stringify(norm(want)).slice(0, 300)}`);
      }
    }
    console.log(`[property] seed ${SEED}: ${QUERIES} queries, ${rowsSeen} rows compared, ${failures.length} differences`);
    assert.equal(failures.length, 0, `seed ${SEED}: ${failures.length} of ${QUERIES} queries differ:\n${failures.slice(0, 8).join('\n')}`);
  });
});
