/**
 * Writes inside transactions (issue 4): Redis is untouched until upstream's COMMIT, then gets everything
 * at once; ROLLBACK, an aborted transaction and ROLLBACK TO SAVEPOINT drop writes; pending writes are
 * visible to the writing session (compared with ordinary "twin" tables running the same statements)
 * and invisible to others; the same flows as one simple-query string and through postgres.js's
 * extended protocol; PREPARE TRANSACTION → 0A000; Redis dying before COMMIT → the COMMIT succeeds with
 * a WARNING; Redis down outside a transaction → HV/08 error; 8 concurrent writers lose nothing; a seeded
 * round-trip property test; bad input → the spec's SQLSTATE and no change in Redis; prepared
 * INSERT/UPDATE/DELETE with parameters through node-postgres and postgres.js.
 *
 * Every check compares exact values read back with ioredis. Keys all start with `wtx:`.
 * Repeat a property-test run with WRITE_TX_SEED=<n>.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type pg from 'pg';
import postgres from 'postgres';
import { Redis } from 'ioredis';
import { fdwFixture, withDb, type FdwFixture } from '../support/fdw.js';
import { bag, connect, pgError, rows, setupSupabase, sleep } from '../support/fdw-sql.js';
import { prng } from '../support/frames.js';
import { startRedis, type RedisInstance } from '../harness/servers.js';
import { startProxy } from '../harness/proxy.js';
import type { ProxyConfig } from '../../src/config/config.js';
import { withTimeout } from '../drivers/common.js';
import { REDIS_DB } from '../support/redis-dbs.js';

const DB = REDIS_DB.writeTx;
const SEED = Number(process.env.WRITE_TX_SEED ?? Date.now() % 1_000_000_007);

type Sql = postgres.Sql<Record<string, never>>;
type Row = (string | null)[];

let f: FdwFixture;
/** The writing session, through the proxy. */
let c: pg.Client;
/** Another session through the proxy: must not see pending writes. */
let c2: pg.Client;
/** Straight to upstream: the real-table twins. */
let d: pg.Client;
const extra: RedisInstance[] = [];
const extraClients: pg.Client[] = [];

before(async () => {
  // Outbox rows are replayed only when a test asks (replayNow), and at once, however young.
  f = await fdwFixture('fdw_write_tx', DB, { outbox: { enabled: true, replayIntervalMs: 0, replayAfterMs: 0, markerTtlS: 3600 } });
  c = await connect(f.url);
  await setupSupabase(c, f.redisUrl);
  c2 = await connect(f.url);
  d = await connect(f.directUrl);
});

after(async () => {
  for (const x of [c, c2, d, ...extraClients]) await x?.end().catch(() => {});
  for (const r of extra) await r.stop().catch(() => {});
  await f?.close();
});

// A failed test must not leave its transaction open for the next one.
afterEach(async () => {
  // Outside a transaction ROLLBACK is only a WARNING notice.
  for (const x of [c, c2, d]) await x?.query('rollback').catch(() => {});
});

const q = (s: string): string => `'${s.replace(/'/g, "''")}'`;

/** A Supabase-dialect foreign table, created through the proxy. */
async function ft(name: string, cols: string, type: string, key: string, server = 'redis_server'): Promise<void> {
  await c.query(`create foreign table ${name} (${cols}) server ${server} options (src_type '${type}', src_key ${q(key)})`);
}

/** Everything Redis holds at `key`, in a form deepEqual can compare (order kept only where Redis defines it). */
async function snap(key: string): Promise<unknown> {
  const r = f.redis;
  const type = await r.type(key);
  switch (type) {
    case 'none':
      return null;
    case 'hash':
      return { hash: await hashPairs(key) };
    case 'list':
      return { list: await r.lrange(key, 0, -1) };
    case 'set':
      return { set: (await r.smembers(key)).sort() };
    case 'zset':
      return { zset: await zws(key) };
    case 'stream':
      return { stream: await r.xrange(key, '-', '+') };
    case 'string':
      return { string: await r.get(key) };
    default:
      return { other: type };
  }
}

/** ZRANGE 0 -1 WITHSCORES (RESP2 flat array). */
const zws = (key: string): Promise<string[]> => f.redis.zrange(key, 0, '-1', 'WITHSCORES') as Promise<string[]>;

/** Every key matching `pattern` with its contents. */
async function snapAll(pattern: string): Promise<Record<string, unknown>> {
  const keys = (await f.redis.keys(pattern)).sort();
  const out: Record<string, unknown> = {};
  for (const k of keys) out[k] = await snap(k);
  return out;
}

/** A hash's [field, value] pairs, sorted (HKEYS and HVALS in one MULTI come in the same order). */
async function hashPairs(key: string): Promise<[string, string][]> {
  const res = await f.redis.multi().hkeys(key).hvals(key).exec();
  const ks = res![0]![1] as string[];
  const vs = res![1]![1] as string[];
  return ks.map((k, i) => [k, vs[i]!] as [string, string]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

async function waitFor<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, ms = 8000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    let v: T | undefined;
    let err: unknown;
    try {
      v = await fn();
      if (ok(v)) return v;
    } catch (e) {
      err = e;
    }
    if (Date.now() - t0 > ms) throw new Error(`${what}: not reached within ${ms} ms (last: ${err ? String(err) : JSON.stringify(v)})`);
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------------
describe('transactions, one statement per query (node-postgres)', () => {
  it('BEGIN/INSERT/UPDATE/DELETE/COMMIT: Redis unchanged until COMMIT, then all applied', async () => {
    await f.redis.hset('wtx:c:h', 'old', '1', 'gone', '2');
    await f.redis.rpush('wtx:c:l', 'l0');
    await ft('tc_h', 'key text, value text', 'hash', 'wtx:c:h');
    await ft('tc_l', 'element text', 'list', 'wtx:c:l');
    await ft('tc_s', 'element text', 'set', 'wtx:c:s');
    await ft('tc_z', 'element text, score float8', 'zset', 'wtx:c:z');
    const keys = ['wtx:c:h', 'wtx:c:l', 'wtx:c:s', 'wtx:c:z'];
    const before = await Promise.all(keys.map(snap));
    const unchanged = async (after: string): Promise<void> => assert.deepEqual(await Promise.all(keys.map(snap)), before, `Redis changed before COMMIT (after ${after})`);

    assert.equal((await c.query('begin')).command, 'BEGIN');
    const steps: Array<[string, string, number]> = [
      [`insert into tc_h values ('k1', 'v1')`, 'INSERT', 1],
      [`insert into tc_h values ('k2', 'v2'), ('k3', 'v3')`, 'INSERT', 2],
      [`update tc_h set value = 'one' where key = 'old'`, 'UPDATE', 1],
      [`delete from tc_h where key = 'gone'`, 'DELETE', 1],
      [`insert into tc_l values ('l1'), ('l2')`, 'INSERT', 2],
      [`insert into tc_l values ('l3')`, 'INSERT', 1],
      [`insert into tc_s values ('s1'), ('s2')`, 'INSERT', 2],
      [`insert into tc_z values ('z1', 1.5), ('z2', -2)`, 'INSERT', 2],
    ];
    for (const [sql, command, n] of steps) {
      const r = await c.query(sql);
      assert.equal(r.command, command, sql);
      assert.equal(r.rowCount, n, sql);
      await unchanged(sql);
    }
    assert.equal((await c.query('commit')).command, 'COMMIT');
    assert.deepEqual(await hashPairs('wtx:c:h'), [['k1', 'v1'], ['k2', 'v2'], ['k3', 'v3'], ['old', 'one']]);
    assert.deepEqual(await f.redis.lrange('wtx:c:l', 0, -1), ['l0', 'l1', 'l2', 'l3']);
    assert.deepEqual((await f.redis.smembers('wtx:c:s')).sort(), ['s1', 's2']);
    assert.deepEqual(await zws('wtx:c:z'), ['z2', '-2', 'z1', '1.5']);
  });

  it('ROLLBACK drops INSERT, UPDATE, DELETE and TRUNCATE', async () => {
    await f.redis.hset('wtx:rb:h', 'a', '1', 'b', '2');
    await f.redis.rpush('wtx:rb:l', 'x', 'y');
    await ft('trb_h', 'key text, value text', 'hash', 'wtx:rb:h');
    await ft('trb_l', 'element text', 'list', 'wtx:rb:l');
    await ft('trb_new', 'element text', 'set', 'wtx:rb:new');
    const keys = ['wtx:rb:h', 'wtx:rb:l', 'wtx:rb:new'];
    const before = await Promise.all(keys.map(snap));
    await c.query('begin');
    await c.query(`insert into trb_h values ('c', '3')`);
    await c.query(`update trb_h set value = 'changed' where key = 'a'`);
    await c.query(`delete from trb_h where key = 'b'`);
    await c.query(`insert into trb_l values ('z')`);
    await c.query(`insert into trb_new values ('n')`);
    const t = await c.query('truncate trb_l');
    assert.equal(t.command, 'TRUNCATE');
    assert.deepEqual(await Promise.all(keys.map(snap)), before, 'Redis changed before ROLLBACK');
    assert.equal((await c.query('rollback')).command, 'ROLLBACK');
    assert.deepEqual(await Promise.all(keys.map(snap)), before, 'ROLLBACK must drop every pending write');
    // The session is fine and sees Redis as it is.
    assert.deepEqual(bag(await rows(c, 'select key, value from trb_h')), bag([['a', '1'], ['b', '2']]));
    // A committed TRUNCATE does apply.
    await c.query('begin');
    await c.query('truncate trb_l');
    assert.deepEqual(await f.redis.lrange('wtx:rb:l', 0, -1), ['x', 'y']);
    await c.query('commit');
    assert.equal(await f.redis.exists('wtx:rb:l'), 0);
  });

  it('an error mid-transaction aborts it: later statements 25P02, COMMIT answers ROLLBACK, nothing written', async () => {
    await f.redis.hset('wtx:err:h', 'a', '1');
    await ft('terr_h', 'key text, value text', 'hash', 'wtx:err:h');
    await ft('terr_l', 'element text', 'list', 'wtx:err:l');
    const keys = ['wtx:err:h', 'wtx:err:l'];
    const before = await Promise.all(keys.map(snap));

    // An upstream error (division by zero).
    await c.query('begin');
    await c.query(`insert into terr_h values ('b', '2')`);
    await c.query(`insert into terr_l values ('e1')`);
    assert.equal((await pgError(c.query('select 1 / 0'))).code, '22012');
    assert.equal((await pgError(c.query(`insert into terr_h values ('c', '3')`), 'insert in aborted tx')).code, '25P02');
    assert.equal((await c.query('commit')).command, 'ROLLBACK');
    assert.deepEqual(await Promise.all(keys.map(snap)), before, 'aborted transaction must write nothing');

    // An error the proxy raises itself (NULL value → 23502) after earlier good writes.
    await c.query('begin');
    await c.query(`insert into terr_h values ('b', '2')`);
    assert.equal((await pgError(c.query(`insert into terr_h values ('n', null)`))).code, '23502');
    assert.equal((await pgError(c.query('select 1'), 'select in aborted tx')).code, '25P02');
    assert.equal((await c.query('commit')).command, 'ROLLBACK');
    assert.deepEqual(await Promise.all(keys.map(snap)), before, 'aborted transaction (proxy error) must write nothing');

    // An error in a foreign-table statement itself (upstream evaluates the expression).
    await c.query('begin');
    await c.query(`insert into terr_l values ('e2')`);
    assert.equal((await pgError(c.query(`insert into terr_l values ((1 / 0)::text)`))).code, '22012');
    assert.equal((await c.query('commit')).command, 'ROLLBACK');
    assert.deepEqual(await Promise.all(keys.map(snap)), before);
    assert.deepEqual(await rows(c, 'select 1'), [['1']]);
  });

  it('SAVEPOINT: ROLLBACK TO drops only later writes, RELEASE keeps, nested savepoints', async () => {
    await f.redis.hset('wtx:sp:h', 'keep', 'orig');
    await ft('tsp_h', 'key text, value text', 'hash', 'wtx:sp:h');
    await ft('tsp_l', 'element text', 'list', 'wtx:sp:l');
    const before = [await snap('wtx:sp:h'), await snap('wtx:sp:l')];
    const unchanged = async (): Promise<void> => assert.deepEqual([await snap('wtx:sp:h'), await snap('wtx:sp:l')], before, 'Redis changed before COMMIT');
    const ins = async (k: string): Promise<void> => {
      await c.query(`insert into tsp_h values (${q(k)}, ${q(k.toUpperCase())})`);
      await c.query(`insert into tsp_l values (${q(k)})`);
    };
    const seen = async (): Promise<string[]> => (await rows(c, 'select key from tsp_h')).map((r) => r[0]!).sort();

    await c.query('begin');
    await ins('a');
    await c.query('savepoint s1');
    await ins('b');
    await c.query(`update tsp_h set value = 'changed' where key = 'keep'`);
    assert.deepEqual(await seen(), ['a', 'b', 'keep']);
    await c.query('rollback to savepoint s1');
    assert.deepEqual(await seen(), ['a', 'keep'], 'after ROLLBACK TO s1 the session no longer sees b');
    assert.deepEqual(await rows(c, `select value from tsp_h where key = 'keep'`), [['orig']], 'the UPDATE after s1 is undone');
    await ins('c');
    await c.query('savepoint s2');
    await ins('d');
    await c.query('release savepoint s2');
    await c.query('savepoint s3');
    await ins('e');
    assert.equal((await pgError(c.query('select 1 / 0'))).code, '22012');
    await c.query('rollback to s3');
    await ins('f');
    await c.query('savepoint s4');
    await c.query('savepoint s5');
    await ins('g');
    await c.query('release s5');
    await c.query('rollback to s4');
    await c.query('savepoint s6');
    await c.query(`delete from tsp_h where key = 'a'`);
    await c.query('rollback to s6');
    await ins('h');
    assert.deepEqual(await seen(), ['a', 'c', 'd', 'f', 'h', 'keep']);
    await unchanged();
    assert.equal((await c.query('commit')).command, 'COMMIT');
    assert.deepEqual(await hashPairs('wtx:sp:h'), [['a', 'A'], ['c', 'C'], ['d', 'D'], ['f', 'F'], ['h', 'H'], ['keep', 'orig']]);
    assert.deepEqual(await f.redis.lrange('wtx:sp:l', 0, -1), ['a', 'c', 'd', 'f', 'h']);
  });
});

// ---------------------------------------------------------------------------------------------------
interface TwinCase {
  name: string;
  cols: string;
  type: string;
  key: string;
  seedRedis(): Promise<void>;
  /** Rows of the twin table before the transaction (the same rows Redis holds). */
  seedSql: string;
  /** The statement that lists the whole table. */
  all: string;
  steps: string[];
  /** Redis's contents as the rows of `all` (bag-compared), read raw. */
  raw(): Promise<Row[]>;
  /** Extra checks inside the foreign transaction, just before COMMIT. */
  inTx?(t: string): Promise<void>;
  afterCommit?(): Promise<void>;
}

interface StepResult {
  sql: string;
  command: string;
  rowCount: number | null;
  rows: string[];
}

async function runSteps(cl: pg.Client, t: string, steps: string[], each?: (sql: string) => Promise<void>): Promise<StepResult[]> {
  const out: StepResult[] = [];
  for (const s of steps) {
    const sql = s.replaceAll('{t}', t);
    let r: pg.QueryResult;
    try {
      r = await cl.query({ text: sql, rowMode: 'array' });
    } catch (e) {
      throw new Error(`${sql}: ${(e as Error).message}`);
    }
    out.push({ sql: s, command: r.command, rowCount: r.rowCount, rows: bag(r.rows as Row[]) });
    if (each) await each(sql);
  }
  return out;
}

async function twin(tc: TwinCase): Promise<void> {
  const F = `rw_${tc.name}`;
  const T = `twin_${tc.name}`;
  await tc.seedRedis();
  await ft(F, tc.cols, tc.type, tc.key);
  await d.query(`create table ${T} (${tc.cols})`);
  await d.query(tc.seedSql.replaceAll('{t}', T));
  const seedRows = bag(await rows(d, tc.all.replaceAll('{t}', T)));
  assert.deepEqual(bag(await rows(c, tc.all.replaceAll('{t}', F))), seedRows, 'foreign table and twin start equal');
  const before = await snap(tc.key);

  await c.query('begin');
  const foreign = await runSteps(c, F, tc.steps, async (sql) => {
    assert.deepEqual(await snap(tc.key), before, `Redis changed before COMMIT (after ${sql})`);
    assert.deepEqual(bag(await rows(c2, tc.all.replaceAll('{t}', F))), seedRows, `another session saw pending writes (after ${sql})`);
  });
  if (tc.inTx) await tc.inTx(F);
  await c.query('commit');

  await d.query('begin');
  const real = await runSteps(d, T, tc.steps);
  await d.query('commit');
  for (let i = 0; i < real.length; i++) assert.deepEqual(foreign[i], real[i], `step ${i}: ${tc.steps[i]}`);

  const final = bag(await rows(d, tc.all.replaceAll('{t}', T)));
  assert.deepEqual(bag(await rows(c2, tc.all.replaceAll('{t}', F))), final, 'after COMMIT another session sees the writes');
  assert.deepEqual(bag(await tc.raw()), final, 'after COMMIT Redis holds exactly the twin table rows');
  if (tc.afterCommit) await tc.afterCommit();
}

describe('read-your-writes: the writing session sees pending writes exactly as a real-table twin would', () => {
  it('hash', async () => {
    await twin({
      name: 'hash',
      cols: 'key text, value text',
      type: 'hash',
      key: 'wtx:ryw:h',
      seedRedis: async () => void (await f.redis.hset('wtx:ryw:h', 'a', '1', 'b', '2', 'c', '3')),
      seedSql: `insert into {t} values ('a', '1'), ('b', '2'), ('c', '3')`,
      all: 'select key, value from {t}',
      steps: [
        `insert into {t} values ('d', '4'), ('e', '5')`,
        'select key, value from {t}',
        `select value from {t} where key = 'd'`,
        `update {t} set value = value || '!' where key in ('a', 'd') returning key, value`,
        `select key, value from {t} where value like '%!'`,
        `update {t} set key = 'b2' where key = 'b' returning key, value`,
        'select key, value from {t}',
        `select key, value from {t} where key = 'b'`,
        `delete from {t} where key = 'c' or key = 'e' returning key, value`,
        'select count(*) from {t}',
        `insert into {t} select 'g' || g, 'G' || g from generate_series(1, 3) g`,
        `insert into {t} values ('c', 'again') returning *`,
        `delete from {t} where key = 'g2'`,
        `select key, value from {t} order by key`,
        `select t.key, u.value from {t} t join {t} u on u.value = upper(t.key)`,
      ],
      raw: async () => (await hashPairs('wtx:ryw:h')).map(([k, v]) => [k, v]),
    });
  });

  it('list (order checked too)', async () => {
    await twin({
      name: 'list',
      cols: 'element text, index bigint',
      type: 'list',
      key: 'wtx:ryw:l',
      seedRedis: async () => void (await f.redis.rpush('wtx:ryw:l', 'x', 'y', 'x', 'z')),
      seedSql: `insert into {t} (element) values ('x'), ('y'), ('x'), ('z')`,
      all: 'select element from {t}',
      steps: [
        `insert into {t} (element) values ('p'), ('x')`,
        'select element from {t}',
        `select count(*) from {t} where element = 'x'`,
        `update {t} set element = element || '1' where element = 'y' returning element`,
        'select element from {t}',
        `delete from {t} where element = 'x' returning element`,
        'select element from {t}',
        `insert into {t} (element) values ('q') returning element`,
        `select element from {t} where element > 'p'`,
      ],
      raw: async () => (await f.redis.lrange('wtx:ryw:l', 0, -1)).map((e) => [e]),
      inTx: async (t) => {
        assert.deepEqual(await rows(c, `select element, index from ${t} order by index`), [['y1', '0'], ['z', '1'], ['p', '2'], ['q', '3']], 'pending list in order, indexes as Redis will have them');
      },
      afterCommit: async () => assert.deepEqual(await f.redis.lrange('wtx:ryw:l', 0, -1), ['y1', 'z', 'p', 'q']),
    });
  });

  it('set', async () => {
    await twin({
      name: 'set',
      cols: 'element text',
      type: 'set',
      key: 'wtx:ryw:s',
      seedRedis: async () => void (await f.redis.sadd('wtx:ryw:s', 'm1', 'm2', 'm3')),
      seedSql: `insert into {t} values ('m1'), ('m2'), ('m3')`,
      all: 'select element from {t}',
      steps: [
        `insert into {t} values ('m4'), ('m5')`,
        'select element from {t}',
        `select element from {t} where element = 'm4'`,
        `update {t} set element = 'm2x' where element = 'm2' returning element`,
        `delete from {t} where element in ('m3', 'm5') returning element`,
        'select element from {t}',
        `insert into {t} values ('m3')`,
        `select element from {t} where element like 'm%'`,
        `select count(*) from {t}`,
      ],
      raw: async () => (await f.redis.smembers('wtx:ryw:s')).map((e) => [e]),
    });
  });

  it('zset', async () => {
    await twin({
      name: 'zset',
      cols: 'element text, score float8',
      type: 'zset',
      key: 'wtx:ryw:z',
      seedRedis: async () => void (await f.redis.zadd('wtx:ryw:z', 1, 'a', 2, 'b', 3, 'c')),
      seedSql: `insert into {t} values ('a', 1), ('b', 2), ('c', 3)`,
      all: 'select element, score from {t}',
      steps: [
        `insert into {t} values ('d', 4), ('e', 2.5)`,
        'select element, score from {t}',
        `update {t} set score = score * 10 where element = 'a' returning element, score`,
        `update {t} set element = 'bb' where element = 'b' returning element, score`,
        'select element, score from {t} where score > 2',
        `delete from {t} where score > 3 and score < 5 returning element, score`,
        'select element, score from {t}',
        `insert into {t} values ('f', -1.5)`,
        'select element, score from {t} order by score',
        'select sum(score) from {t}',
      ],
      raw: async () => {
        const flat = await zws('wtx:ryw:z');
        const out: Row[] = [];
        for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
        return out;
      },
      afterCommit: async () => assert.deepEqual(await zws('wtx:ryw:z'), ['f', '-1.5', 'bb', '2', 'e', '2.5', 'c', '3', 'a', '10']),
    });
  });
});

// ---------------------------------------------------------------------------------------------------
describe('transactions as one simple-query string (node-postgres, no parameters)', () => {
  before(async () => {
    await ft('sq_h', 'key text, value text', 'hash', 'wtx:sq:h');
    await ft('sq_l', 'element text', 'list', 'wtx:sq:l');
    await d.query('create table sq_real (k text)');
  });
  const commands = (r: pg.QueryResult | pg.QueryResult[]): string[] => (Array.isArray(r) ? r : [r]).map((x) => x.command);

  it('BEGIN; INSERT; INSERT; COMMIT applies everything', async () => {
    const r = await c.query(`begin; insert into sq_h values ('a', '1'), ('b', '2'); insert into sq_l values ('l1'); update sq_h set value = 'B' where key = 'b'; commit`);
    assert.deepEqual(commands(r), ['BEGIN', 'INSERT', 'INSERT', 'UPDATE', 'COMMIT']);
    assert.deepEqual(await hashPairs('wtx:sq:h'), [['a', '1'], ['b', 'B']]);
    assert.deepEqual(await f.redis.lrange('wtx:sq:l', 0, -1), ['l1']);
  });

  it('BEGIN; INSERT; ROLLBACK drops it; SAVEPOINT/ROLLBACK TO in one string; read-your-writes in one string', async () => {
    const before = [await snap('wtx:sq:h'), await snap('wtx:sq:l')];
    const r1 = await c.query(`begin; insert into sq_h values ('x', 'x'); insert into sq_l values ('lx'); delete from sq_h where key = 'a'; rollback`);
    assert.deepEqual(commands(r1), ['BEGIN', 'INSERT', 'INSERT', 'DELETE', 'ROLLBACK']);
    assert.deepEqual([await snap('wtx:sq:h'), await snap('wtx:sq:l')], before);

    const r2 = await c.query(`begin; insert into sq_l values ('s1'); savepoint p; insert into sq_l values ('s2'); rollback to p; insert into sq_l values ('s3'); savepoint p2; insert into sq_l values ('s4'); release p2; commit`);
    assert.deepEqual(commands(r2), ['BEGIN', 'INSERT', 'SAVEPOINT', 'INSERT', 'ROLLBACK', 'INSERT', 'SAVEPOINT', 'INSERT', 'RELEASE', 'COMMIT']);
    assert.deepEqual(await f.redis.lrange('wtx:sq:l', 0, -1), ['l1', 's1', 's3', 's4']);

    const r3 = (await c.query(`begin; insert into sq_h values ('c', '3'); select key, value from sq_h order by key; delete from sq_h where key = 'a'; select count(*)::text from sq_h; commit`)) as unknown as pg.QueryResult[];
    assert.deepEqual(commands(r3), ['BEGIN', 'INSERT', 'SELECT', 'DELETE', 'SELECT', 'COMMIT']);
    assert.deepEqual(r3[2]!.rows, [{ key: 'a', value: '1' }, { key: 'b', value: 'B' }, { key: 'c', value: '3' }]);
    assert.deepEqual(r3[4]!.rows, [{ count: '2' }]);
    assert.deepEqual(await hashPairs('wtx:sq:h'), [['b', 'B'], ['c', '3']]);
  });

  it('BEGIN; INSERT; <error>; COMMIT: error, transaction left aborted, nothing written', async () => {
    const before = [await snap('wtx:sq:h'), await snap('wtx:sq:l')];
    const e = await pgError(c.query(`begin; insert into sq_h values ('y', 'y'); insert into sq_l values ('ly'); select 1 / 0; commit`));
    assert.equal(e.code, '22012');
    assert.deepEqual([await snap('wtx:sq:h'), await snap('wtx:sq:l')], before);
    // The error skipped COMMIT: the session is inside an aborted transaction, as Postgres leaves it.
    assert.equal((await pgError(c.query('select 1'))).code, '25P02');
    assert.equal((await c.query('rollback')).command, 'ROLLBACK');
    assert.deepEqual([await snap('wtx:sq:h'), await snap('wtx:sq:l')], before);
    assert.deepEqual(await rows(c, 'select 1'), [['1']]);
  });

  it('without BEGIN a multi-statement string is one implicit transaction: an error drops its earlier writes, like a real table', async () => {
    const r = await c.query(`insert into sq_l values ('i1'); insert into sq_l values ('i2')`);
    assert.deepEqual(commands(r), ['INSERT', 'INSERT']);
    assert.deepEqual((await f.redis.lrange('wtx:sq:l', 0, -1)).slice(-2), ['i1', 'i2']);
    const before = await snap('wtx:sq:l');
    // The oracle: the same string against a real table.
    assert.equal((await pgError(d.query(`insert into sq_real values ('i3'); select 1 / 0`))).code, '22012');
    assert.deepEqual(await rows(d, 'select count(*) from sq_real'), [['0']], 'Postgres itself rolls the implicit transaction back');
    assert.equal((await pgError(c.query(`insert into sq_l values ('i3'); select 1 / 0`))).code, '22012');
    assert.deepEqual(await snap('wtx:sq:l'), before, 'the INSERT of an implicit transaction that failed must not reach Redis');
    assert.deepEqual(await rows(c, 'select 1'), [['1']]);
  });
});

// ---------------------------------------------------------------------------------------------------
async function withPgJs<R>(fn: (sql: Sql) => Promise<R>): Promise<R> {
  const sql = postgres(f.url, { max: 1, connect_timeout: 10, onnotice: () => {} }) as unknown as Sql;
  try {
    return await withTimeout(fn(sql), 60_000, 'postgres.js scenario');
  } finally {
    await sql.end({ timeout: 5 });
  }
}

describe('transactions through postgres.js (extended protocol, sql.begin)', () => {
  before(async () => {
    await ft('pj_h', 'key text, value text', 'hash', 'wtx:pj:h');
    await ft('pj_l', 'element text', 'list', 'wtx:pj:l');
  });

  it('sql.begin commits; Redis unchanged inside; read-your-writes with parameters', async () => {
    await withPgJs(async (sql) => {
      const res = await sql.begin(async (tx) => {
        const a = await tx`insert into pj_h values (${'k1'}, ${'v1'}), (${'k2'}, ${'v2'})`;
        assert.equal(a.count, 2);
        assert.equal(a.command, 'INSERT');
        await tx`insert into pj_l values (${'e1'})`;
        await tx`insert into pj_l values (${'e2'})`;
        assert.equal(await f.redis.exists('wtx:pj:h', 'wtx:pj:l'), 0, 'Redis changed before COMMIT');
        const one = [...(await tx`select value from pj_h where key = ${'k2'}`)];
        const all = [...(await tx`select element from pj_l`)];
        const upd = [...(await tx`update pj_h set value = ${'V1'} where key = ${'k1'} returning key, value`)];
        const del = await tx`delete from pj_l where element = ${'e1'} returning element`;
        assert.equal(await f.redis.exists('wtx:pj:h', 'wtx:pj:l'), 0, 'Redis changed before COMMIT');
        return { one, all, upd, del: [...del], delCount: del.count };
      });
      assert.deepEqual(res, { one: [{ value: 'v2' }], all: [{ element: 'e1' }, { element: 'e2' }], upd: [{ key: 'k1', value: 'V1' }], del: [{ element: 'e1' }], delCount: 1 });
    });
    assert.deepEqual(await hashPairs('wtx:pj:h'), [['k1', 'V1'], ['k2', 'v2']]);
    assert.deepEqual(await f.redis.lrange('wtx:pj:l', 0, -1), ['e2']);
  });

  it('a throw inside sql.begin rolls back; an SQL error inside rolls back; the connection stays usable', async () => {
    const before = [await snap('wtx:pj:h'), await snap('wtx:pj:l')];
    await withPgJs(async (sql) => {
      await assert.rejects(sql.begin(async (tx) => {
        await tx`insert into pj_h values (${'t1'}, ${'x'})`;
        await tx`insert into pj_l values (${'t1'})`;
        throw new Error('app says no');
      }), /app says no/);
      const e = await pgError(sql.begin(async (tx) => {
        await tx`insert into pj_h values (${'t2'}, ${'x'})`;
        await tx`select 1 / ${0}::int`;
      }));
      assert.equal(e.code, '22012');
      assert.deepEqual([await snap('wtx:pj:h'), await snap('wtx:pj:l')], before);
      assert.deepEqual([...(await sql`select count(*)::int as n from pj_h`)], [{ n: 2 }]);
    });
  });

  it('savepoints in sql.begin, and statements pipelined inside the transaction', async () => {
    await withPgJs(async (sql) => {
      const r = await sql.begin(async (tx) => {
        await tx`insert into pj_l values (${'a'})`;
        const sp = await tx.savepoint(async (s) => {
          await s`insert into pj_l values (${'dropped'})`;
          await s`select 1 / 0`;
        }).catch((e: { code?: string }) => e.code);
        await tx.savepoint(async (s) => {
          await s`insert into pj_l values (${'kept'})`;
        });
        // Sent without waiting for each answer.
        const piped = await Promise.all([
          tx`insert into pj_l values (${'p1'})`,
          tx`insert into pj_l values (${'p2'})`,
          tx`update pj_h set value = value || ${'+'} where key = ${'k2'}`,
          tx`select element from pj_l`,
          tx`select value from pj_h where key = ${'k2'}`,
        ]);
        assert.deepEqual(await f.redis.lrange('wtx:pj:l', 0, -1), ['e2'], 'Redis changed before COMMIT');
        return { sp, list: [...piped[3]!].map((x) => x.element as string).sort(), v: [...piped[4]!] };
      });
      assert.deepEqual(r, { sp: '22012', list: ['a', 'e2', 'kept', 'p1', 'p2'], v: [{ value: 'v2+' }] });
    });
    assert.deepEqual(await f.redis.lrange('wtx:pj:l', 0, -1), ['e2', 'a', 'kept', 'p1', 'p2']);
    assert.deepEqual(await hashPairs('wtx:pj:h'), [['k1', 'V1'], ['k2', 'v2+']]);
  });
});

// ---------------------------------------------------------------------------------------------------
describe('PREPARE TRANSACTION', () => {
  it('after a Redis write → 0A000; nothing is written, upstream work is not kept, the session recovers', async () => {
    await ft('pt_h', 'key text, value text', 'hash', 'wtx:pt:h');
    await d.query('create table pt_real (k text)');
    await c.query('begin');
    await c.query(`insert into pt_h values ('a', '1')`);
    await c.query(`insert into pt_real values ('a')`);
    const e = await pgError(c.query(`prepare transaction 'wtx_gid'`));
    assert.equal(e.code, '0A000', e.all);
    await c.query('rollback'); // ends whatever is left of the transaction (a WARNING if nothing is)
    assert.equal(await f.redis.exists('wtx:pt:h'), 0);
    assert.deepEqual(await rows(d, 'select count(*) from pt_real'), [['0']]);
    assert.deepEqual(await rows(d, `select count(*) from pg_prepared_xacts where gid = 'wtx_gid'`), [['0']]);
    assert.deepEqual(await rows(c, 'select 1'), [['1']]);
    // The session still writes normally.
    await c.query(`insert into pt_h values ('b', '2')`);
    assert.deepEqual(await hashPairs('wtx:pt:h'), [['b', '2']]);
  });
});

// ---------------------------------------------------------------------------------------------------
describe('Redis failing', () => {
  it('Redis dies before COMMIT: COMMIT succeeds (upstream committed) with a WARNING notice; the session stays usable', async () => {
    const own = await startRedis();
    extra.push(own);
    await c.query(`create server wtx_down foreign data wrapper redis_wrapper options (conn_url '${own.url}')`);
    await ft('down_h', 'key text, value text', 'hash', 'wtx:down:h', 'wtx_down');
    await d.query('create table down_real (k text)');
    // Make sure the proxy has a live connection to it first.
    assert.deepEqual(await rows(c, 'select * from down_h'), []);

    const cl = await connect(f.url);
    extraClients.push(cl);
    const notices: Array<{ severity?: string; message?: string; detail?: string; hint?: string }> = [];
    cl.on('notice', (n) => notices.push(n));
    await cl.query('begin');
    await cl.query(`insert into down_h values ('lost', 'value')`);
    await cl.query(`insert into down_real values ('committed')`);
    await own.kill();
    const t0 = Date.now();
    const r = await cl.query('commit');
    const took = Date.now() - t0;
    assert.equal(r.command, 'COMMIT', 'the COMMIT itself succeeds');
    await waitFor('WARNING notice', async () => notices.length, (n) => n > 0, 3000);
    const w = notices.find((n) => n.severity === 'WARNING');
    assert.ok(w, `a notice with severity WARNING: ${JSON.stringify(notices)}`);
    const text = [w.message, w.detail, w.hint].filter(Boolean).join(' | ');
    assert.ok(/down_h|wtx:down:h/.test(text), `the warning says what was not applied (table or key): ${text}`);
    assert.ok(took < 30_000, `COMMIT answered within 30 s (took ${took} ms)`);
    assert.deepEqual(await rows(d, 'select k from down_real'), [['committed']], 'upstream committed');
    assert.deepEqual(await rows(cl, 'select 1'), [['1']], 'session usable after the warning');
    await ft('down_ok', 'element text', 'list', 'wtx:down:ok');
    await cl.query(`insert into down_ok values ('after-warning')`);
    assert.deepEqual(await f.redis.lrange('wtx:down:ok', 0, -1), ['after-warning'], 'writes to a live Redis work again');
    // The outbox kept the committed writes: the WARNING says so, and they apply once Redis is back.
    assert.match(text, /queued in the outbox/);
    await own.restart();
    const back = new Redis(own.url);
    try {
      assert.deepEqual(await f.proxy.fdw.outbox.replayNow(), { replayed: 1, left: 0 });
      assert.equal(await back.hget('wtx:down:h', 'lost'), 'value', 'the queued write applied after Redis returned');
      assert.deepEqual(await rows(d, 'select count(*) from redis_fdw_proxy.outbox'), [['0']], 'its outbox row is gone');
      assert.deepEqual(await f.proxy.fdw.outbox.replayNow(), { replayed: 0, left: 0 }, 'nothing to replay twice');
    } finally {
      back.disconnect();
    }
    await own.kill(); // the next test starts from this Redis being down
  });

  it('Redis down outside a transaction: INSERT/UPDATE/DELETE fail (HV…/08…), the session stays usable, nothing is replayed later', async () => {
    const own = extra[extra.length - 1]!; // started (and killed) by the previous test
    await own.kill(); // no-op if already dead
    const e1 = await pgError(c.query(`insert into down_h values ('k', 'v')`), 'insert with Redis down');
    assert.ok(e1.code !== undefined && /^(HV|08)/.test(e1.code), `SQLSTATE HV…/08…, got ${e1.code}: ${e1.all}`);
    assert.deepEqual(await rows(c, 'select 40 + 2'), [['42']]);
    const e2 = await pgError(c.query(`delete from down_h where key = 'k'`), 'delete with Redis down');
    assert.ok(e2.code !== undefined && /^(HV|08)/.test(e2.code), `SQLSTATE HV…/08…, got ${e2.code}: ${e2.all}`);
    const e3 = await pgError(c.query(`insert into down_h values ($1, $2)`, ['k2', 'v2']), 'prepared insert with Redis down');
    assert.ok(e3.code !== undefined && /^(HV|08)/.test(e3.code), `SQLSTATE HV…/08…, got ${e3.code}: ${e3.all}`);
    assert.deepEqual(await rows(c, 'select 1'), [['1']]);

    await own.restart(); // empty, same port
    await waitFor('INSERT after Redis restart', () => c.query(`insert into down_h values ('after', 'restart')`), () => true);
    await sleep(500); // anything queued and replayed on reconnect would show up by now
    const raw = new Redis(own.url);
    try {
      const ks = await raw.hkeys('wtx:down:h');
      assert.deepEqual(ks, ['after'], 'only the write made after the restart: failed or warned-about writes are never replayed');
    } finally {
      raw.disconnect();
    }
  });

  it('--no-outbox: Redis down at COMMIT drops the writes with a WARNING saying none were applied', async () => {
    const own = await startRedis();
    const p = await startProxy(f.directUrl, { outbox: { enabled: false, replayIntervalMs: 0, replayAfterMs: 0, markerTtlS: 60 } });
    try {
      const cl = await connect(withDb(p.url(), f.db));
      extraClients.push(cl);
      await cl.query(`create server wtx_down2 foreign data wrapper redis_wrapper options (conn_url '${own.url}')`);
      await cl.query(`create foreign table down2_h (key text, value text) server wtx_down2 options (src_type 'hash', src_key 'wtx:down2:h')`);
      assert.deepEqual(await rows(cl, 'select * from down2_h'), []);
      const notices: Array<{ severity?: string; message?: string }> = [];
      cl.on('notice', (n) => notices.push(n));
      await cl.query('begin');
      await cl.query(`insert into down2_h values ('lost', 'value')`);
      await own.kill();
      assert.equal((await cl.query('commit')).command, 'COMMIT');
      const w = notices.find((n) => n.severity === 'WARNING');
      assert.match(w?.message ?? '', /none of its 1 Redis writes to .*down2_h were applied/);
      await own.restart();
      assert.deepEqual(await p.fdw.outbox.replayNow(), { replayed: 0, left: 0 });
      const back = new Redis(own.url);
      assert.equal(await back.exists('wtx:down2:h'), 0, 'without the outbox nothing applies later');
      back.disconnect();
    } finally {
      await p.close();
      await own.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------------
describe('concurrent writers', () => {
  // 2,000 rows per client keep all 8 writers interleaving for the whole run (each statement is a
  // round trip through upstream and Redis, so the clients' statements alternate at every step); more
  // rows only made the same interleavings longer, and 10,000 took ~100 s, past the per-file limit.
  it('8 clients × 2,000 prepared single-row INSERTs into one hash and one list lose nothing', async () => {
    const N = 8;
    const M = 2_000;
    await ft('conc_h', 'key text, value text', 'hash', 'wtx:conc:h');
    await ft('conc_l', 'element text', 'list', 'wtx:conc:l');
    const clients = await Promise.all(Array.from({ length: N }, () => connect(f.url)));
    extraClients.push(...clients);
    const t0 = Date.now();
    await Promise.all(clients.map(async (cl, i) => {
      for (let j = 0; j < M; j++) {
        const a = await cl.query({ name: 'conc_ins_h', text: 'insert into conc_h values ($1, $2)', values: [`c${i}:${j}`, `v${i}:${j}:é`] });
        const b = await cl.query({ name: 'conc_ins_l', text: 'insert into conc_l values ($1)', values: [`c${i}:${j}`] });
        if (a.rowCount !== 1 || b.rowCount !== 1 || a.command !== 'INSERT') throw new Error(`client ${i} row ${j}: ${a.command} ${a.rowCount} / ${b.rowCount}`);
      }
    }));
    const ms = Date.now() - t0;
    console.log(`[write-tx] concurrent: ${N}×${M}×2 INSERTs in ${ms} ms (${Math.round((N * M * 2) / (ms / 1000))} statements/s)`);
    assert.equal(await f.redis.hlen('wtx:conc:h'), N * M);
    assert.equal(await f.redis.llen('wtx:conc:l'), N * M);
    const pairs = new Map(await hashPairs('wtx:conc:h'));
    let bad = 0;
    for (let i = 0; i < N; i++) for (let j = 0; j < M; j++) if (pairs.get(`c${i}:${j}`) !== `v${i}:${j}:é`) bad++;
    assert.equal(bad, 0, 'every hash field holds its value');
    const list = await f.redis.lrange('wtx:conc:l', 0, -1);
    // The writers really ran side by side: neighbours in the list mostly come from different clients.
    let switches = 0;
    for (let k = 1; k < list.length; k++) if (list[k]!.split(':')[0] !== list[k - 1]!.split(':')[0]) switches++;
    assert.ok(switches >= list.length / 4, `only ${switches} client switches among ${list.length} elements`);
    for (let i = 0; i < N; i++) {
      const mine = list.filter((e) => e.startsWith(`c${i}:`));
      assert.deepEqual(mine, Array.from({ length: M }, (_, j) => `c${i}:${j}`), `client ${i}'s elements, each once, in its order`);
    }
    assert.deepEqual(await rows(c, 'select count(*), count(distinct key) from conc_h'), [[String(N * M), String(N * M)]]);
    assert.deepEqual(await rows(c, 'select count(*) from conc_l'), [[String(N * M)]]);
  });
});

// ---------------------------------------------------------------------------------------------------
describe('round-trip property test', () => {
  it('random rows inserted through the proxy read back exactly, through the proxy and raw Redis', async () => {
    const rnd = prng(SEED);
    console.log(`[write-tx] property seed ${SEED} (repeat with WRITE_TX_SEED=${SEED})`);
    const SPECIAL = ['', "'", "''", '"', '\\', '\\\\', "\\'", 'NULL', 'null', '\\N', '$$', '$1', '{}', '{a,b}', '[1]', '{"a":1}', ' ', '\t', '\n', '\r\n', 'E\'x\'', '--', '/*', ';', '%', '_', 'é', '😀', '👩‍👩‍👧'];
    const ranges: Array<[number, number, number]> = [
      // [lo, hi, weight]
      [0x20, 0x7e, 10],
      [0x01, 0x1f, 1],
      [0xa0, 0x24f, 3],
      [0x300, 0x36f, 1],
      [0x400, 0x4ff, 2],
      [0x4e00, 0x9fff, 2],
      [0xe000, 0xfffd, 1],
      [0x1f300, 0x1faff, 2],
      [0x10000, 0x10ffff, 1],
    ];
    const totalW = ranges.reduce((s, r) => s + r[2], 0);
    const cp = (): number => {
      let w = rnd.int(1, totalW);
      for (const [lo, hi, wt] of ranges) {
        if ((w -= wt) <= 0) return rnd.int(lo, hi);
      }
      return 0x61;
    };
    const text = (): string => {
      const r = rnd.next();
      if (r < 0.08) return '';
      if (r < 0.2) return rnd.pick(SPECIAL);
      const n = r < 0.25 ? rnd.int(1000, 20_000) : rnd.int(1, 14);
      let s = '';
      for (let i = 0; i < n; i++) s += String.fromCodePoint(cp());
      return s;
    };
    const score = (): number => {
      const r = rnd.next();
      if (r < 0.3) return rnd.int(-1000, 1000);
      if (r < 0.5) return rnd.int(-800, 800) / 8;
      if (r < 0.55) return 0;
      if (r < 0.6) return rnd.pick([1e-7, 123456789.125, -1e15, 3.14159, 2 ** 52]);
      return (rnd.next() - 0.5) * 10 ** rnd.int(0, 12);
    };

    await ft('prop_h', 'key text, value text', 'hash', 'wtx:prop:h');
    await ft('prop_s', 'element text', 'set', 'wtx:prop:s');
    await ft('prop_z', 'element text, score float8', 'zset', 'wtx:prop:z');
    await ft('prop_l', 'element text, index bigint', 'list', 'wtx:prop:l');

    const hash = new Map<string, string>();
    const set = new Set<string>();
    const zset = new Map<string, number>();
    const list: string[] = [];
    const pickOld = <T>(xs: Iterable<T>, fresh: () => T): T => {
      const arr = [...xs];
      return arr.length && rnd.next() < 0.2 ? rnd.pick(arr) : fresh();
    };

    /** Inserts `rs` (each row's values as SQL-ready strings or numbers) into `t`, by a random method. */
    const insert = async (t: string, cols: string[], castTypes: string[], rs: Array<Array<string | number>>): Promise<string> => {
      const method = rnd.int(0, 3);
      const lit = (v: string | number): string => (typeof v === 'number' ? `${v}` : q(v));
      const colList = `(${cols.join(', ')})`;
      switch (method) {
        case 0: {
          const r = await c.query(`insert into ${t} ${colList} values ${rs.map((row) => `(${row.map(lit).join(', ')})`).join(', ')}`);
          assert.equal(r.rowCount, rs.length);
          return 'literal';
        }
        case 1: {
          for (const row of rs) {
            const r = await c.query(`insert into ${t} ${colList} values (${row.map((_, i) => `$${i + 1}`).join(', ')})`, row.map(String));
            assert.equal(r.rowCount, 1);
          }
          return 'param-rows';
        }
        case 2: {
          let n = 0;
          const vals = rs.map((row) => `(${row.map(() => `$${++n}`).join(', ')})`).join(', ');
          const r = await c.query(`insert into ${t} ${colList} values ${vals}`, rs.flat().map(String));
          assert.equal(r.rowCount, rs.length);
          return 'param-multirow';
        }
        default: {
          const arrays = cols.map((_, i) => rs.map((row) => row[i]!));
          const un = cols.map((_, i) => `$${i + 1}::${castTypes[i]}[]`).join(', ');
          const names = cols.map((_, i) => `c${i}`);
          const r = await c.query(`insert into ${t} ${colList} select ${names.join(', ')} from unnest(${un}) with ordinality as u(${names.join(', ')}, n) order by n`, arrays);
          assert.equal(r.rowCount, rs.length);
          return 'insert-select';
        }
      }
    };

    const methods: Record<string, number> = {};
    const note = (m: string): void => void (methods[m] = (methods[m] ?? 0) + 1);
    for (let batch = 0; batch < 25; batch++) {
      const n = rnd.int(1, 12);
      const hr: string[][] = [];
      for (let i = 0; i < n; i++) {
        const k = pickOld(hash.keys(), text);
        const v = text();
        hr.push([k, v]);
      }
      note(await insert('prop_h', ['key', 'value'], ['text', 'text'], hr));
      for (const [k, v] of hr) hash.set(k!, v!);

      const sr: string[][] = [];
      for (let i = 0; i < n; i++) sr.push([pickOld(set, text)]);
      note(await insert('prop_s', ['element'], ['text'], sr));
      for (const [e] of sr) set.add(e!);

      const zr: Array<[string, number]> = [];
      for (let i = 0; i < n; i++) zr.push([pickOld(zset.keys(), text), score()]);
      note(await insert('prop_z', ['element', 'score'], ['text', 'float8'], zr));
      for (const [e, s] of zr) zset.set(e, s);

      const lr: string[][] = [];
      for (let i = 0; i < n; i++) lr.push([pickOld(list, text)]);
      note(await insert('prop_l', ['element'], ['text'], lr));
      for (const [e] of lr) list.push(e!);
    }
    console.log(`[write-tx] property: hash ${hash.size}, set ${set.size}, zset ${zset.size}, list ${list.length}; methods ${JSON.stringify(methods)}`);

    const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
    const short = (x: unknown): string => JSON.stringify(x).slice(0, 300);
    // hash: last write wins per field.
    const expH = [...hash.entries()].sort((a, b) => cmp(a[0], b[0]));
    const rawH = await hashPairs('wtx:prop:h');
    assert.ok(rawH.length === expH.length, `raw hash has ${rawH.length} fields, expected ${expH.length}`);
    assert.deepEqual(rawH, expH, 'raw HGETALL');
    assert.deepEqual(bag(await rows(c, 'select key, value from prop_h')), bag(expH), 'proxy SELECT of the hash');
    // set
    const expS = [...set].sort(cmp);
    assert.deepEqual((await f.redis.smembers('wtx:prop:s')).sort(cmp), expS, 'raw SMEMBERS');
    assert.deepEqual((await rows(c, 'select element from prop_s')).map((r) => r[0]!).sort(cmp), expS, 'proxy SELECT of the set');
    // zset: last score wins; scores compared as doubles.
    const expZ = [...zset.entries()].sort((a, b) => cmp(a[0], b[0]));
    const flat = await zws('wtx:prop:z');
    const rawZ: Array<[string, number]> = [];
    for (let i = 0; i < flat.length; i += 2) rawZ.push([flat[i]!, Number(flat[i + 1])]);
    rawZ.sort((a, b) => cmp(a[0], b[0]));
    assert.deepEqual(rawZ, expZ, `raw ZRANGE WITHSCORES: ${short(rawZ.filter((x, i) => x[1] !== expZ[i]?.[1]).slice(0, 3))}`);
    const viaZ = (await rows(c, 'select element, score from prop_z')).map((r) => [r[0]!, Number(r[1])] as [string, number]).sort((a, b) => cmp(a[0], b[0]));
    assert.deepEqual(viaZ, expZ, 'proxy SELECT of the zset');
    // list: exact order.
    assert.deepEqual(await f.redis.lrange('wtx:prop:l', 0, -1), list, 'raw LRANGE');
    assert.deepEqual((await rows(c, 'select element from prop_l order by index')).map((r) => r[0]), list, 'proxy SELECT of the list');
  });
});

// ---------------------------------------------------------------------------------------------------
describe('bad input: the spec\'s SQLSTATE, and Redis unchanged', () => {
  before(async () => {
    const r = f.redis;
    await r.hset('wtx:bad:h', 'h1', 'one', 'h2', 'two');
    await r.rpush('wtx:bad:l', 'l1', 'l2');
    await r.sadd('wtx:bad:s', 's1');
    await r.zadd('wtx:bad:zt', 1, 'z1');
    await r.zadd('wtx:bad:zf', 2, 'z2');
    await r.xadd('wtx:bad:x', '1-1', 'f', 'v');
    await r.hset('wtx:bad:m:1', 'a', 'b');
    await ft('bad_h', 'key text, value text', 'hash', 'wtx:bad:h');
    await ft('bad_l', 'element text, index bigint', 'list', 'wtx:bad:l');
    await ft('bad_s', 'element text', 'set', 'wtx:bad:s');
    await ft('bad_zt', 'element text, score text', 'zset', 'wtx:bad:zt');
    await ft('bad_zf', 'element text, score float8', 'zset', 'wtx:bad:zf');
    await ft('bad_x', 'id text, items jsonb', 'stream', 'wtx:bad:x');
    await ft('bad_m', 'key text, items jsonb', 'multi_hash', 'wtx:bad:m:*');
  });

  const cases: Array<{ what: string; sql: string; params?: unknown[]; code: string; msg?: RegExp }> = [
    { what: 'wrong column count', sql: `insert into bad_h values ('a', 'b', 'c')`, code: '42601', msg: /INSERT has more expressions than target columns/ },
    { what: 'non-numeric score', sql: `insert into bad_zt values ('m1', 'abc')`, code: '22P02' },
    { what: 'non-numeric score in the 2nd row', sql: `insert into bad_zt values ('ok', '1'), ('m2', 'not a number')`, code: '22P02' },
    { what: 'non-numeric score as a parameter', sql: 'insert into bad_zt values ($1, $2)', params: ['m3', '1.5x'], code: '22P02' },
    { what: 'non-numeric score in UPDATE', sql: `update bad_zt set score = 'x' where element = 'z1'`, code: '22P02' },
    { what: 'stream items a JSON array', sql: `insert into bad_x (id, items) values ('*', '[1, 2]')`, code: '22023' },
    { what: 'stream items a JSON string', sql: `insert into bad_x (id, items) values ('*', '"text"')`, code: '22023' },
    { what: 'stream items a JSON number', sql: `insert into bad_x (id, items) values ('*', '5')`, code: '22023' },
    { what: 'stream items JSON null', sql: `insert into bad_x (id, items) values ('*', 'null')`, code: '22023' },
    { what: 'stream items not an object in the 2nd row', sql: `insert into bad_x (id, items) values ('*', '{"a": "b"}'), ('*', '[]')`, code: '22023' },
    { what: 'NULL hash value', sql: `insert into bad_h values ('k', null)`, code: '23502' },
    { what: 'NULL hash field', sql: `insert into bad_h values (null, 'v')`, code: '23502' },
    { what: 'NULL hash value as a parameter', sql: 'insert into bad_h values ($1, $2)', params: ['k', null], code: '23502' },
    { what: 'NULL in the 2nd row', sql: `insert into bad_h values ('k1', 'v1'), ('k2', null)`, code: '23502' },
    { what: 'UPDATE to NULL', sql: `update bad_h set value = null where key = 'h1'`, code: '23502' },
    { what: 'NULL set member', sql: 'insert into bad_s values (null)', code: '23502' },
    { what: 'NULL list element after a good one', sql: `insert into bad_l (element) values ('ok'), (null)`, code: '23502' },
    { what: 'NULL zset member', sql: 'insert into bad_zf values (null, 1)', code: '23502' },
    { what: 'NULL zset score', sql: `insert into bad_zf values ('m', null)`, code: '23502' },
    { what: 'NULL stream items', sql: `insert into bad_x (id, items) values ('*', null)`, code: '23502' },
    { what: 'list index given', sql: `insert into bad_l (element, index) values ('x', 5)`, code: '428C9' },
    { what: 'multi_hash key outside the pattern', sql: `insert into bad_m values ('wtx:other:1', '{"a": "b"}')`, code: '23514' },
  ];

  it('each bad statement: its SQLSTATE, nothing written, the session usable — alone and inside a transaction', async () => {
    const before = await snapAll('wtx:bad:*');
    const failures: string[] = [];
    for (const k of cases) {
      // Alone (autocommit).
      const e = await pgError(c.query(k.sql, k.params), k.what);
      if (e.code !== k.code) failures.push(`${k.what}: expected ${k.code}, got ${e.code}: ${e.all}`);
      if (k.msg && !k.msg.test(e.message)) failures.push(`${k.what}: message ${JSON.stringify(e.message)} does not match ${k.msg}`);
      const now = await snapAll('wtx:bad:*');
      if (JSON.stringify(now) !== JSON.stringify(before)) failures.push(`${k.what}: Redis changed: ${JSON.stringify(now).slice(0, 400)}`);
      assert.deepEqual(await rows(c, 'select 1'), [['1']], `${k.what}: session usable`);
      // After a good write in a transaction: the transaction aborts, COMMIT is a ROLLBACK.
      await c.query('begin');
      await c.query(`insert into bad_h values ('tx-good', 'x')`);
      const e2 = await pgError(c.query(k.sql, k.params), `${k.what} (in a transaction)`);
      if (e2.code !== k.code) failures.push(`${k.what} (in tx): expected ${k.code}, got ${e2.code}: ${e2.all}`);
      const cm = await c.query('commit');
      if (cm.command !== 'ROLLBACK') failures.push(`${k.what} (in tx): COMMIT answered ${cm.command}`);
      const now2 = await snapAll('wtx:bad:*');
      if (JSON.stringify(now2) !== JSON.stringify(before)) failures.push(`${k.what} (in tx): Redis changed: ${JSON.stringify(now2).slice(0, 400)}`);
    }
    assert.equal(await f.redis.exists('wtx:other:1'), 0, 'the key outside the pattern was not written');
    assert.deepEqual(failures, []);
  });

  it('a value over --max-value-bytes → 54000 and nothing written (only if the CLI has the flag)', async (t) => {
    const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
    const help = await promisify(execFile)(process.execPath, [cli, '--help']).then((r) => r.stdout, () => '');
    if (!help.includes('--max-value-bytes')) {
      t.skip('the proxy has no --max-value-bytes flag');
      return;
    }
    // In process, with the setting the flag feeds (cast: the test compiles whether or not the field exists).
    const p = await startProxy(f.directUrl, { maxValueBytes: 1000 } as unknown as Partial<ProxyConfig>);
    try {
      const cl = await connect(p.url(undefined, undefined, f.db));
      try {
        const before = await snapAll('wtx:bad:*');
        const e = await pgError(cl.query('insert into bad_h values ($1, $2)', ['big', 'x'.repeat(2000)]));
        assert.equal(e.code, '54000', e.all);
        const e2 = await pgError(cl.query(`insert into bad_l (element) values ('small'), (repeat('y', 5000))`));
        assert.equal(e2.code, '54000', e2.all);
        assert.deepEqual(await snapAll('wtx:bad:*'), before);
        await cl.query(`insert into bad_s values ('small-ok')`);
        assert.equal(await f.redis.sismember('wtx:bad:s', 'small-ok'), 1);
        await f.redis.srem('wtx:bad:s', 'small-ok');
      } finally {
        await cl.end().catch(() => {});
      }
    } finally {
      await p.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------
describe('prepared INSERT/UPDATE/DELETE with parameters', () => {
  it('node-postgres: named statements reused, RETURNING, all four types', async () => {
    await ft('pr_h', 'key text, value text', 'hash', 'wtx:pr:h');
    await ft('pr_l', 'element text', 'list', 'wtx:pr:l');
    await ft('pr_s', 'element text', 'set', 'wtx:pr:s');
    await ft('pr_z', 'element text, score float8', 'zset', 'wtx:pr:z');
    const ins = { name: 'wtx_ins_h', text: 'insert into pr_h values ($1, $2) returning key, value' };
    for (let i = 0; i < 5; i++) {
      const r = await c.query({ ...ins, values: [`k${i}`, `it's "v${i}"`], rowMode: 'array' });
      assert.equal(r.command, 'INSERT');
      assert.equal(r.rowCount, 1);
      assert.deepEqual(r.rows, [[`k${i}`, `it's "v${i}"`]]);
      assert.equal(await f.redis.hget('wtx:pr:h', `k${i}`), `it's "v${i}"`);
    }
    const upd = { name: 'wtx_upd_h', text: 'update pr_h set value = $2 where key = $1 returning key, value' };
    for (const k of ['k1', 'k3', 'missing']) {
      const r = await c.query({ ...upd, values: [k, `new-${k}`], rowMode: 'array' });
      assert.equal(r.command, 'UPDATE');
      assert.equal(r.rowCount, k === 'missing' ? 0 : 1);
      assert.deepEqual(r.rows, k === 'missing' ? [] : [[k, `new-${k}`]]);
    }
    const del = { name: 'wtx_del_h', text: 'delete from pr_h where key = $1 or value = $2 returning key, value' };
    const rd = await c.query({ ...del, values: ['k0', 'new-k3'], rowMode: 'array' });
    assert.equal(rd.command, 'DELETE');
    assert.deepEqual(bag(rd.rows as Row[]), bag([['k0', `it's "v0"`], ['k3', 'new-k3']]));
    const rd2 = await c.query({ ...del, values: ['nope', 'nope'], rowMode: 'array' });
    assert.equal(rd2.rowCount, 0);
    assert.deepEqual(await hashPairs('wtx:pr:h'), [['k1', 'new-k1'], ['k2', `it's "v2"`], ['k4', `it's "v4"`]]);

    for (const e of ['b', 'a', 'b']) await c.query({ name: 'wtx_ins_l', text: 'insert into pr_l values ($1)', values: [e] });
    await c.query({ name: 'wtx_upd_l', text: 'update pr_l set element = $2 where element = $1', values: ['a', 'A'] });
    const dl = await c.query({ name: 'wtx_del_l', text: 'delete from pr_l where element = $1', values: ['b'] });
    assert.equal(dl.rowCount, 2);
    assert.deepEqual(await f.redis.lrange('wtx:pr:l', 0, -1), ['A']);

    for (const e of ['s1', 's2', 's3']) await c.query({ name: 'wtx_ins_s', text: 'insert into pr_s values ($1)', values: [e] });
    await c.query({ name: 'wtx_upd_s', text: 'update pr_s set element = $2 where element = $1', values: ['s1', 's1x'] });
    await c.query({ name: 'wtx_del_s', text: 'delete from pr_s where element = $1', values: ['s2'] });
    assert.deepEqual((await f.redis.smembers('wtx:pr:s')).sort(), ['s1x', 's3']);

    for (const [e, s] of [['z1', '1.25'], ['z2', '-3'], ['z3', '1e3']] as const) await c.query({ name: 'wtx_ins_z', text: 'insert into pr_z values ($1, $2)', values: [e, s] });
    const uz = await c.query({ name: 'wtx_upd_z', text: 'update pr_z set score = score + $2 where element = $1 returning score', values: ['z1', 1], rowMode: 'array' });
    assert.deepEqual(uz.rows, [['2.25']]);
    await c.query({ name: 'wtx_del_z', text: 'delete from pr_z where score < $1', values: [0] });
    assert.deepEqual(await zws('wtx:pr:z'), ['z1', '2.25', 'z3', '1000']);

    // The same prepared statements inside a transaction: held until COMMIT.
    await c.query('begin');
    await c.query({ ...ins, values: ['tx', 'in-tx'] });
    await c.query({ ...upd, values: ['k1', 'tx-updated'] });
    await c.query({ ...del, values: ['k2', ''] });
    assert.deepEqual(await hashPairs('wtx:pr:h'), [['k1', 'new-k1'], ['k2', `it's "v2"`], ['k4', `it's "v4"`]], 'Redis changed before COMMIT');
    await c.query('commit');
    assert.deepEqual(await hashPairs('wtx:pr:h'), [['k1', 'tx-updated'], ['k4', `it's "v4"`], ['tx', 'in-tx']]);
  });

  it('postgres.js: prepared statements (tagged templates) reused, RETURNING, count and command', async () => {
    await ft('prj_h', 'key text, value text', 'hash', 'wtx:prj:h');
    await ft('prj_z', 'element text, score float8', 'zset', 'wtx:prj:z');
    await withPgJs(async (sql) => {
      for (let i = 0; i < 5; i++) {
        const r = await sql`insert into prj_h values (${`k${i}`}, ${`v${i} ü 😀`}) returning key, value`;
        assert.equal(r.count, 1);
        assert.equal(r.command, 'INSERT');
        assert.deepEqual([...r], [{ key: `k${i}`, value: `v${i} ü 😀` }]);
      }
      const u = await sql`update prj_h set value = ${'changed'} where key = ${'k2'} returning key, value`;
      assert.equal(u.command, 'UPDATE');
      assert.deepEqual([...u], [{ key: 'k2', value: 'changed' }]);
      const u0 = await sql`update prj_h set value = ${'changed'} where key = ${'nope'}`;
      assert.equal(u0.count, 0);
      const dl = await sql`delete from prj_h where key in ${sql(['k0', 'k4'])} returning key`;
      assert.equal(dl.command, 'DELETE');
      assert.deepEqual([...dl].map((x) => x.key).sort(), ['k0', 'k4']);
      const zi = await sql`insert into prj_z values (${'a'}, ${1.5}), (${'b'}, ${-2})`;
      assert.equal(zi.count, 2);
      await sql`update prj_z set score = ${7} where element = ${'b'}`;
    });
    assert.deepEqual(await hashPairs('wtx:prj:h'), [['k1', 'v1 ü 😀'], ['k2', 'changed'], ['k3', 'v3 ü 😀']]);
    assert.deepEqual(await zws('wtx:prj:z'), ['a', '1.5', 'b', '7']);
  });
});

// ---------------------------------------------------------------------------------------------------
describe('a stream entry inserted and deleted in one transaction (issue 8 §6)', () => {
  it('is invisible after the DELETE, and COMMIT leaves Redis as a serial execution would, with no WARNING', async () => {
    await ft('sx', 'id text, items jsonb', 'stream', 'wtx:sx');
    await f.redis.xadd('wtx:sx', '1-1', 'old', 'x');
    const notices: string[] = [];
    const onNotice = (n: { message?: string }): void => void notices.push(n.message ?? '');
    c.on('notice', onNotice);
    try {
      await c.query('begin');
      await c.query(`insert into sx (id, items) values ('*', '{"a":"1"}')`);
      await c.query(`insert into sx (id, items) values ('*', '{"a":"2"}'), ('*', '{"a":"2"}')`);
      assert.deepEqual(await rows(c, 'select count(*) from sx'), [['4']]);
      // One of two identical rows can't be singled out; deleting by content takes both, as Postgres would.
      const del = await c.query(`delete from sx where items->>'a' = '2'`);
      assert.equal(del.rowCount, 2);
      assert.deepEqual(await rows(c, 'select id, items from sx order by items::text'), [[null, '{"a": "1"}'], ['1-1', '{"old": "x"}']]);
      await c.query('delete from sx');
      assert.deepEqual(await rows(c, 'select count(*) from sx'), [['0']]);
      await c.query(`insert into sx (id, items) values ('*', '{"b":"kept"}')`);
      await c.query('commit');
    } finally {
      c.off('notice', onNotice);
    }
    assert.deepEqual(notices, [], 'no WARNING at COMMIT');
    const entries = await f.redis.xrange('wtx:sx', '-', '+');
    assert.deepEqual(entries.map(([, pairs]) => pairs), [['b', 'kept']], 'only the entry inserted after the DELETE is left');
  });

  it('ROLLBACK TO SAVEPOINT brings back an entry whose delete it undoes', async () => {
    await ft('sx2', 'id text, items jsonb', 'stream', 'wtx:sx2');
    await c.query('begin');
    await c.query(`insert into sx2 (id, items) values ('*', '{"a":"1"}')`);
    await c.query('savepoint s');
    await c.query('delete from sx2');
    assert.deepEqual(await rows(c, 'select count(*) from sx2'), [['0']]);
    await c.query('rollback to savepoint s');
    assert.deepEqual(await rows(c, 'select count(*) from sx2'), [['1']]);
    await c.query('commit');
    assert.deepEqual((await f.redis.xrange('wtx:sx2', '-', '+')).map(([, p]) => p), [['a', '1']]);
  });
});

// ---------------------------------------------------------------------------------------------------
describe('transaction property test: insert-then-delete and insert-then-update for every type, against real-table twins', () => {
  it('random transactions (commit or rollback) leave the proxy, raw Redis and the twin in agreement', async () => {
    const rnd = prng(SEED + 1);
    console.log(`[write-tx] transaction property seed ${SEED} (repeat with WRITE_TX_SEED=${SEED})`);
    // Each foreign table has a twin: an ordinary table with the same columns (plus an order column for
    // lists and streams, whose order Redis defines) running the same statements in a transaction of its own.
    await ft('tp_h', 'key text, value text', 'hash', 'wtx:tp:h');
    await ft('tp_l', 'element text, index bigint', 'list', 'wtx:tp:l');
    await ft('tp_s', 'element text', 'set', 'wtx:tp:s');
    await ft('tp_z', 'element text, score float8', 'zset', 'wtx:tp:z');
    await ft('tp_x', 'id text, items jsonb', 'stream', 'wtx:tp:x');
    await d.query('create table tw_h (key text, value text); create table tw_l (n serial, element text); create table tw_s (element text); create table tw_z (element text, score float8); create table tw_x (n serial, items jsonb)');
    /** The same statement on the twin tables (named tw_* beside the tp_* foreign tables). */
    const twin = (sql: string): string => sql.replace(/\btp_([hlszx])\b/g, 'tw_$1');
    let fresh = 0;
    const v = (): string => `${rnd.pick(['a', 'b', 'é', "'", '😀', ''])}${fresh++}`;
    // Values are fresh per row, so hash fields, set and zset members never collide: no upsert semantics.
    const types = [
      { t: 'tp_h', ins: (): string => `(${q(v())}, ${q(v())})`, cols: '(key, value)', upd: 'value', key: 'key', view: 'select key, value from tp_h', twin: 'select key, value from tp_h', ordered: false },
      { t: 'tp_l', ins: (): string => `(${q(v())})`, cols: '(element)', upd: 'element', key: 'element', view: 'select element from tp_l order by index', twin: 'select element from tp_l order by n', ordered: true },
      { t: 'tp_s', ins: (): string => `(${q(v())})`, cols: '(element)', upd: 'element', key: 'element', view: 'select element from tp_s', twin: 'select element from tp_s', ordered: false },
      { t: 'tp_z', ins: (): string => `(${q(v())}, ${rnd.int(-50, 50)})`, cols: '(element, score)', upd: 'score', key: 'element', view: 'select element, score from tp_z', twin: 'select element, score from tp_z', ordered: false },
      { t: 'tp_x', ins: (): string => `(${q(`{"f": ${JSON.stringify(v())}}`)})`, cols: '(items)', upd: 'items', key: `items->>'f'`, view: `select items from tp_x order by split_part(id, '-', 1)::numeric nulls last, split_part(id, '-', 2)::numeric`, twin: 'select items from tp_x order by n', ordered: true },
    ];
    const same = async (ty: (typeof types)[number], what: string): Promise<void> => {
      const p = await rows(c, ty.view);
      const tw = await rows(d, twin(ty.twin));
      if (ty.ordered) assert.deepEqual(p, tw, `${ty.t} ${what}`);
      else assert.deepEqual(bag(p), bag(tw), `${ty.t} ${what}`);
    };
    const stats: Record<string, number> = {};
    for (let round = 0; round < 60; round++) {
      const ty = rnd.pick(types);
      const both = async (sql: string): Promise<void> => {
        await c.query(sql);
        await d.query(twin(sql));
      };
      await both('begin');
      const inserted: string[] = [];
      const steps = rnd.int(1, 4);
      let aborted = false;
      for (let s = 0; s < steps && !aborted; s++) {
        const ins = Array.from({ length: rnd.int(1, 4) }, ty.ins);
        await both(`insert into ${ty.t} ${ty.cols} values ${ins.join(', ')}`);
        const keys = await rows(d, twin(`select ${ty.key} from ${ty.t}`));
        inserted.push(...keys.map((k) => k[0]!));
        const act = rnd.pick(['delete-one', 'delete-all', 'update-one', 'none'] as const);
        stats[`${ty.t}:${act}`] = (stats[`${ty.t}:${act}`] ?? 0) + 1;
        const victim = inserted.length ? rnd.pick(inserted) : undefined;
        if (act === 'delete-all') await both(`delete from ${ty.t}`);
        else if (act === 'delete-one' && victim !== undefined) await both(`delete from ${ty.t} where ${ty.key} = ${q(victim)}`);
        else if (act === 'update-one' && victim !== undefined) {
          const set = ty.upd === 'score' ? `score = score + 1` : ty.upd === 'items' ? `items = '{"u": "1"}'` : `${ty.upd} = ${ty.upd} || 'u'`;
          const sql = `update ${ty.t} set ${set} where ${ty.key} = ${q(victim)}`;
          if (ty.t === 'tp_x') {
            // Streams are append-only: the update is refused and the transaction aborts, like any error.
            assert.equal((await pgError(c.query(sql))).code, '0A000');
            aborted = true;
          } else await both(sql);
        }
        if (!aborted) await same(ty, `inside the transaction, round ${round} step ${s} (${act})`);
      }
      const end = aborted || rnd.next() < 0.3 ? 'rollback' : 'commit';
      await both(end);
      await same(ty, `after ${end}, round ${round}`);
    }
    // Raw Redis holds exactly what the twins hold.
    const tw = async (sql: string): Promise<string[]> => (await rows(d, twin(sql))).map((r) => r.join('\u0001'));
    assert.deepEqual((await hashPairs('wtx:tp:h')).map((p) => p.join('\u0001')).sort(), (await tw('select key, value from tp_h')).sort());
    assert.deepEqual(await f.redis.lrange('wtx:tp:l', 0, -1), await tw('select element from tp_l order by n'));
    assert.deepEqual((await f.redis.smembers('wtx:tp:s')).sort(), (await tw('select element from tp_s')).sort());
    const z = await zws('wtx:tp:z');
    const zPairs: string[] = [];
    for (let i = 0; i < z.length; i += 2) zPairs.push(`${z[i]}\u0001${Number(z[i + 1])}`);
    assert.deepEqual(zPairs.sort(), (await rows(d, 'select element, score from tw_z')).map((r) => `${r[0]}\u0001${Number(r[1])}`).sort());
    assert.deepEqual((await f.redis.xrange('wtx:tp:x', '-', '+')).map(([, p]) => JSON.stringify(Object.fromEntries([[p[0], p[1]]]))), (await rows(d, 'select items::text from tw_x order by n')).map((r) => JSON.stringify(JSON.parse(r[0]!))));
    console.log(`[write-tx] transaction property: ${JSON.stringify(stats)}`);
  });
});
