/**
 * Foreign tables through the extended protocol: named prepared statements executed many times while
 * Redis changes underneath (node-postgres and postgres.js), Describe's ParameterDescription and
 * RowDescription, binary results, portals with a row limit, pipelining and Flush boundaries, and errors
 * in a pipeline. Raw-protocol cases are compared with the same messages over ordinary twin tables.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import postgres from 'postgres';
import { fdwFixture, type FdwFixture } from '../support/fdw.js';
import { connect, rows, setupSupabase } from '../support/fdw-sql.js';
import { msg, normalize, ProtoConn, urlParts, type Frame } from '../support/proto-client.js';
import { REDIS_DB } from '../support/redis-dbs.js';

let f: FdwFixture;
let c: pg.Client;
const DB = REDIS_DB.extended;

before(async () => {
  f = await fdwFixture('fdw_extended', DB);
  c = await connect(f.url);
  const r = f.redis;
  await r.hset('h', 'a', '1', 'b', '2', 'c', '3');
  await r.rpush('l', 'x', 'y', 'z');
  await r.zadd('z', 1.5, 'one', -2, 'two', 1e300, 'huge');
  await r.hset('counter', 'n', '0');
  await setupSupabase(c, f.redisUrl);
  await c.query(`
    create foreign table fh (key text, value text) server redis_server options (src_type 'hash', src_key 'h');
    create foreign table fl (element text, index int) server redis_server options (src_type 'list', src_key 'l');
    create foreign table fz (element text, score float8) server redis_server options (src_type 'zset', src_key 'z');
    create foreign table fc (key text, value int) server redis_server options (src_type 'hash', src_key 'counter');
    create foreign table fgrow (element text) server redis_server options (src_type 'list', src_key 'grow');
    create table rh (key text, value text); insert into rh values ('a', '1'), ('b', '2'), ('c', '3');
    create table rl (element text, index int); insert into rl values ('x', 0), ('y', 1), ('z', 2);
    create table rz (element text, score float8); insert into rz values ('two', -2), ('one', 1.5), ('huge', 1e300);`);
  await r.set('wrongtype', 'a string');
  await c.query(`create foreign table fwrong (key text, value text) server redis_server options (src_type 'hash', src_key 'wrongtype')`);
});

after(async () => {
  await c?.end().catch(() => {});
  await f?.close();
});

describe('prepared statements see current Redis data at every execution', () => {
  it('node-postgres: a named statement with $1, executed 20 times while Redis changes', async () => {
    const pc = await connect(f.url);
    try {
      for (let i = 0; i < 20; i++) {
        await f.redis.hset('counter', 'n', String(i * 10));
        await f.redis.rpush('grow', `e${i}`);
        const r = await pc.query({ name: 'by_key', text: 'select key, value, value + $2::int as plus from fc where key = $1', values: ['n', i], rowMode: 'array' });
        assert.deepEqual(r.rows, [['n', String(i * 10), String(i * 11)]], `execution ${i}`);
        const g = await pc.query({ name: 'grow_count', text: 'select count(*), max(element) filter (where element = $1) from fgrow', values: [`e${i}`], rowMode: 'array' });
        assert.deepEqual(g.rows, [[String(i + 1), `e${i}`]], `execution ${i}`);
      }
      // The statements really were prepared once (named) on this backend.
      const prepared = await rows(pc, `select name from pg_prepared_statements where name in ('by_key', 'grow_count') order by name`);
      assert.deepEqual(prepared, [['by_key'], ['grow_count']]);
    } finally {
      await pc.end();
    }
  });

  it('node-postgres: a key that disappears and reappears', async () => {
    const pc = await connect(f.url);
    try {
      const q = (): Promise<pg.QueryResult> => pc.query({ name: 'vanish', text: 'select value from fh where key = $1', values: ['gone'], rowMode: 'array' });
      await f.redis.hset('h', 'gone', 'here');
      assert.deepEqual((await q()).rows, [['here']]);
      await f.redis.hdel('h', 'gone');
      assert.deepEqual((await q()).rows, []);
      await f.redis.hset('h', 'gone', 'back');
      assert.deepEqual((await q()).rows, [['back']]);
      await f.redis.hdel('h', 'gone');
    } finally {
      await pc.end();
    }
  });

  it('postgres.js: prepared by default, executed 20 times while Redis changes', async () => {
    const sql = postgres(f.url, { max: 1, onnotice: () => {} });
    try {
      for (let i = 0; i < 20; i++) {
        await f.redis.hset('counter', 'n', String(1000 + i));
        const r = await sql`select key, value from fc where key = ${'n'}`;
        assert.deepEqual([...r].map((x) => ({ ...x })), [{ key: 'n', value: 1000 + i }], `execution ${i}`);
        const z = await sql`select element, score from fz where score > ${-10} order by score`;
        assert.equal(z.length, 3);
      }
      const names = await sql`select count(*)::int as n from pg_prepared_statements`;
      assert.ok(names[0]!.n >= 2, `postgres.js prepared its statements: ${names[0]!.n}`);
    } finally {
      await sql.end({ timeout: 2 });
    }
  });

  it('postgres.js: many statements in flight on one connection keep their order (Promise.all)', async () => {
    const sql = postgres(f.url, { max: 1, onnotice: () => {} });
    try {
      const jobs: Promise<unknown>[] = [];
      const expected: unknown[] = [];
      for (let i = 0; i < 30; i++) {
        switch (i % 4) {
          case 0:
            jobs.push(sql`select ${i}::int as i`.then((r) => r[0]));
            expected.push({ i });
            break;
          case 1:
            jobs.push(sql`select value from fh where key = ${'b'}`.then((r) => r[0]));
            expected.push({ value: '2' });
            break;
          case 2:
            jobs.push(sql`select count(*)::int as n from fl where index >= ${1}`.then((r) => r[0]));
            expected.push({ n: 2 });
            break;
          default:
            jobs.push(sql.unsafe(`select element from fl where index = ${i % 3}`).then((r) => r[0]));
            expected.push({ element: ['x', 'y', 'z'][i % 3] });
        }
      }
      assert.deepEqual((await Promise.all(jobs)).map((x) => ({ ...(x as object) })), expected);
    } finally {
      await sql.end({ timeout: 2 });
    }
  });

  it('postgres.js: an error in one pipelined statement does not disturb its neighbours', async () => {
    const sql = postgres(f.url, { max: 1, onnotice: () => {} });
    try {
      const results = await Promise.allSettled([
        sql`select 1 as a`,
        sql`select * from fwrong where key = ${'x'}`,
        sql`select value from fh where key = ${'c'}`,
        sql`select 1 / ${0}::int`,
        sql`select element from fl where index = ${2}`,
      ]);
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
      assert.equal(((results[1] as PromiseRejectedResult).reason as { code: string }).code, '42809');
      assert.equal(((results[3] as PromiseRejectedResult).reason as { code: string }).code, '22012');
      assert.deepEqual([...(results[2] as PromiseFulfilledResult<postgres.RowList<postgres.Row[]>>).value], [{ value: '3' }]);
      assert.deepEqual([...(results[4] as PromiseFulfilledResult<postgres.RowList<postgres.Row[]>>).value], [{ element: 'z' }]);
    } finally {
      await sql.end({ timeout: 2 });
    }
  });
});

describe('raw protocol, compared with ordinary twin tables', () => {
  let pc: ProtoConn;
  before(async () => {
    const u = urlParts(f.url);
    pc = await ProtoConn.open(f.proxy.port, { user: u.user, password: u.password, database: u.database });
  });
  after(() => pc?.end());

  /** Frames normalised, with table OIDs and column numbers masked (the twins are different tables). */
  const shape = (frames: Frame[]): string[] => normalize(frames).map((s) => s.replace(/table=\d+ att=\d+/g, 'table=* att=*'));

  /** Sends the messages built for `f*` tables, then for the `r*` twins, and compares the replies up to `syncs` ReadyForQuery. */
  async function twin(build: (t: (name: string) => string) => Buffer[], syncs = 1): Promise<string[]> {
    const run = async (side: 'f' | 'r'): Promise<string[]> => {
      pc.write(...build((name) => side + name));
      const out = shape(await pc.readUntilReady(syncs));
      await pc.query('deallocate all');
      return out;
    };
    const real = await run('r');
    const got = await run('f');
    assert.deepEqual(got, real);
    return got;
  }

  it('Describe statement: ParameterDescription lists only the client\'s parameters, RowDescription the declared types', async () => {
    const got = await twin((t) => [
      msg.parse('d1', `select element, score, score * $2 as scaled, $1::text as tag from ${t('z')} where element <> $1`, []),
      msg.describe('S', 'd1'),
      msg.sync(),
    ]);
    assert.deepEqual(got.slice(0, 2), ['1', 't [25, 701]']);
    assert.match(got[2]!, /^T element\(.*type=25 .*score\(.*type=701 .*scaled\(.*type=701 .*tag\(.*type=25 /);
  });

  it('Describe statement with parameter types given by the client, and a parameterless statement', async () => {
    const got = await twin((t) => [
      msg.parse('d2', `select * from ${t('l')} where index < $1 limit $2`, [23, 20]),
      msg.describe('S', 'd2'),
      msg.parse('d3', `select count(*) from ${t('h')}`, []),
      msg.describe('S', 'd3'),
      msg.sync(),
    ]);
    assert.equal(got[1], 't [23, 20]');
    assert.equal(got[4], 't []');
  });

  it('Bind/Execute of a described statement returns the rows, text format', async () => {
    const got = await twin((t) => [
      msg.parse('e1', `select key, value from ${t('h')} where key = $1 or key = $2 order by key`),
      msg.bind('', 'e1', ['a', 'c']),
      msg.describe('P', ''),
      msg.execute(''),
      msg.sync(),
    ]);
    assert.deepEqual(got.filter((s) => s.startsWith('D')), ['D ["a", "1"]', 'D ["c", "3"]']);
  });

  it('binary results: Describe portal reports format 1 and the values are binary-encoded', async () => {
    const got = await twin((t) => [
      msg.parse('b1', `select element, score, length(element) as len from ${t('z')} order by score`),
      msg.bind('', 'b1', [], [], [1]),
      msg.describe('P', ''),
      msg.execute(''),
      msg.sync(),
    ]);
    assert.match(got[2]!, /fmt=1\).*fmt=1\).*fmt=1\)$/);
    const first = pc.log.filter((x) => x.type === 'D').at(-3)!;
    // "two", -2.0 as a big-endian IEEE double, length 3 as int4.
    assert.equal(first.body.toString('hex'), '0003' + '00000003' + Buffer.from('two').toString('hex') + '00000008' + 'c000000000000000' + '00000004' + '00000003');
  });

  it('mixed result formats per column and binary parameters', async () => {
    const int4 = Buffer.alloc(4);
    int4.writeInt32BE(1);
    await twin((t) => [
      msg.parse('m1', `select element, index from ${t('l')} where element = $1 or index = $2`, [25, 23]),
      msg.bind('', 'm1', [Buffer.from('z'), int4], [1, 1], [0, 1]),
      msg.describe('P', ''),
      msg.execute(''),
      msg.sync(),
    ]);
  });

  it('a portal read with a row limit (PortalSuspended), then to the end', async () => {
    const got = await twin((t) => [
      msg.parse('p1', `select element, index from ${t('l')} order by index`),
      msg.bind('cur', 'p1'),
      msg.execute('cur', 2),
      msg.execute('cur', 2),
      msg.sync(),
    ]);
    assert.deepEqual(got.filter((s) => /^[Ds]/.test(s)), ['D ["x", "0"]', 'D ["y", "1"]', 's', 'D ["z", "2"]']);
  });

  it('a foreign statement pipelined between ordinary ones, several Syncs in one write: replies in order', async () => {
    const got = await twin(
      (t) => [
        msg.parse('', 'select 1 as one'), msg.bind('', ''), msg.execute(''), msg.sync(),
        msg.parse('', `select value from ${t('h')} where key = $1`), msg.bind('', '', ['b']), msg.execute(''), msg.sync(),
        msg.parse('', 'select 2 as two'), msg.bind('', ''), msg.execute(''),
        msg.parse('', `select count(*) from ${t('l')}`), msg.bind('', ''), msg.execute(''), msg.sync(),
        msg.query(`select element from ${t('l')} where index = 2`),
        msg.parse('', 'select 3 as three'), msg.bind('', ''), msg.execute(''), msg.sync(),
      ],
      5,
    );
    assert.deepEqual(got.filter((s) => /^[DZ]/.test(s)), ['D ["1"]', 'Z I', 'D ["2"]', 'Z I', 'D ["2"]', 'D ["3"]', 'Z I', 'D ["z"]', 'Z I', 'D ["3"]', 'Z I']);
  });

  it('Parse/Describe/Flush, then Bind/Execute/Sync later (postgres.js and asyncpg style)', async () => {
    for (const side of ['r', 'f']) {
      pc.write(msg.parse('fl1', `select value from ${side}h where key = $1`), msg.describe('S', 'fl1'), msg.flush());
      const first = shape(await pc.readUntil((x) => x.type === 'T' || x.type === 'n' || x.type === 'E'));
      assert.deepEqual(first.map((s) => s.slice(0, 1)), ['1', 't', 'T'], `${side}: ${first.join(' / ')}`);
      pc.write(msg.bind('', 'fl1', ['a']), msg.execute(''), msg.sync());
      const rest = shape(await pc.readUntilReady());
      assert.deepEqual(rest, ['2', 'D ["1"]', 'C SELECT 1', 'Z I'], side);
      pc.write(msg.close('S', 'fl1'), msg.sync());
      await pc.readUntilReady();
    }
  });

  it('an error in a pipeline: earlier results stand, later messages are skipped until Sync', async () => {
    const build = (bad: string, side: string): Buffer[] => [
      msg.parse('', `select key from ${side}h where key = 'a'`), msg.bind('', ''), msg.execute(''),
      msg.parse('', bad), msg.bind('', ''), msg.execute(''),
      msg.parse('', `select element from ${side}l where index = 0`), msg.bind('', ''), msg.execute(''),
      msg.sync(),
      msg.parse('', `select element from ${side}l where index = 1`), msg.bind('', ''), msg.execute(''), msg.sync(),
    ];
    pc.write(...build('select 1/0', 'r'));
    const real = shape(await pc.readUntilReady(2));
    pc.write(...build('select * from fwrong', 'f'));
    const got = shape(await pc.readUntilReady(2));
    const strip = (xs: string[]): string[] => xs.map((s) => (s.startsWith('E ') ? 'E' : s));
    assert.deepEqual(strip(got), strip(real));
    assert.match(got.find((s) => s.startsWith('E '))!, /C=42809/);
  });

  it('Bind with the wrong number of parameters is refused as Postgres refuses it', async () => {
    const run = async (side: string): Promise<string[]> => {
      pc.write(msg.parse('wp', `select value from ${side}h where key = $1`), msg.bind('', 'wp', []), msg.execute(''), msg.sync());
      const out = shape(await pc.readUntilReady());
      pc.write(msg.close('S', 'wp'), msg.sync());
      await pc.readUntilReady();
      return out;
    };
    const real = await run('r');
    const got = await run('f');
    // Severity, SQLSTATE and message must match; F/L/R (source location) may differ.
    const e = (xs: string[]): string | undefined => xs.find((s) => s.startsWith('E '))?.split(' | ').filter((x) => !/^[FLR]=/.test(x)).join(' | ');
    assert.equal(e(got), e(real));
  });

  it('the statement can be closed and prepared again under the same name', async () => {
    for (let i = 0; i < 3; i++) {
      pc.write(msg.parse('again', `select value from fh where key = $1`), msg.bind('', 'again', ['a']), msg.execute(''), msg.close('S', 'again'), msg.sync());
      const out = shape(await pc.readUntilReady());
      assert.deepEqual(out, ['1', '2', 'D ["1"]', 'C SELECT 1', '3', 'Z I'], `round ${i}`);
    }
  });
});
