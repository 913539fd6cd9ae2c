// Inputs a logged-in client can send to hurt the proxy (issue 11, item 8, item 12, item 7 and the
// parser-abuse list), through the real CLI: deeply nested SQL, malformed extended-protocol messages
// for a foreign-table statement, a LIMIT over a pattern that matches the whole keyspace, and text that
// isn't valid in the client's encoding; and a stream of distinct big statements, which must leave the
// proxy's memory bounded (item 6). Each is answered as upstream answers it (or, where the proxy
// itself must answer, with a clear ERROR) and the session goes on.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { abuseFixture, assertNoStall, type AbuseFixture } from '../support/abuse.js';
import { connect, monitorRedis } from '../support/fdw-sql.js';
import { msg, normalize, ProtoConn, urlParts, type Frame } from '../support/proto-client.js';
import { prng } from '../support/frames.js';
import { REDIS_DB } from '../support/redis-dbs.js';

const DB = REDIS_DB.inputAbuse;
let x: AbuseFixture;

before(async () => {
  x = await abuseFixture('input_abuse', DB);
});

after(async () => {
  await x?.close();
});

describe('parser abuse', () => {
  /** The proxy's error for `sql` is upstream's own: same SQLSTATE and message. */
  async function sameErrorAsUpstream(sql: string): Promise<void> {
    const viaProxy = await x.c.query(sql).then(() => undefined, (e: { code?: string; message?: string }) => ({ code: e.code, message: e.message }));
    const d = await connect(x.directUrl);
    try {
      const upstream = await d.query(sql).then(() => undefined, (e: { code?: string; message?: string }) => ({ code: e.code, message: e.message }));
      assert.deepEqual(viaProxy, upstream);
      assert.ok(upstream, 'upstream accepted the statement');
    } finally {
      await d.end();
    }
    assert.deepEqual((await x.c.query('select 1 as one')).rows, [{ one: '1' }]);
  }

  test('a query nested 100,000 parentheses deep around a foreign table fails as upstream fails it (42601)', async () => {
    const sql = `select * from h where ${'('.repeat(100_000)}key = 'a'${')'.repeat(100_000)}`;
    const { worstMs } = await x.whileProbing(() => sameErrorAsUpstream(sql));
    assertNoStall('100,000 parentheses', worstMs);
  });

  test('10,000 nested subselects over a foreign table fail as upstream fails them', async () => {
    const sql = `${'select * from ('.repeat(10_000)}select * from h${') s'.repeat(10_000)}`;
    const { worstMs } = await x.whileProbing(() => sameErrorAsUpstream(sql));
    assertNoStall('10,000 nested subselects', worstMs);
  });
});

describe('malformed extended-protocol messages for a foreign-table statement', () => {
  /** A Bind frame with its length recomputed after `body` was cut or grown. */
  const frame = (type: string, body: Buffer): Buffer => {
    const out = Buffer.alloc(5 + body.length);
    out.write(type, 0, 'latin1');
    out.writeInt32BE(4 + body.length, 1);
    body.copy(out, 5);
    return out;
  };
  const bodyOf = (f: Buffer): Buffer => f.subarray(5);

  /** Malformed variants of Bind/Describe/Execute for statement "s" (one text parameter), seeded. */
  function variants(seed: number, n: number): { name: string; msgs: Buffer[] }[] {
    const rng = prng(seed);
    const good = bodyOf(msg.bind('', 's', ['a']));
    const out: { name: string; msgs: Buffer[] }[] = [
      { name: 'no parameters', msgs: [msg.bind('', 's', [])] },
      { name: 'two parameters', msgs: [msg.bind('', 's', ['a', 'b'])] },
      { name: 'two formats, one parameter', msgs: [msg.bind('', 's', ['a'], [0, 0])] },
      { name: 'format code 7', msgs: [msg.bind('', 's', ['a'], [7])] },
      { name: 'format code -1', msgs: [msg.bind('', 's', ['a'], [-1])] },
      { name: 'result format 9', msgs: [msg.bind('', 's', ['a'], [], [9])] },
      { name: 'trailing byte', msgs: [frame('B', Buffer.concat([good, Buffer.from([1])]))] },
      { name: 'no NUL after the portal name', msgs: [frame('B', Buffer.from('pp'))] },
      { name: 'empty Bind', msgs: [frame('B', Buffer.alloc(0))] },
      { name: 'parameter length -2', msgs: [frame('B', Buffer.concat([good.subarray(0, good.length - 7), Buffer.from([0xff, 0xff, 0xff, 0xfe]), Buffer.from([0x61, 0, 0])]))] },
      { name: 'parameter length past the end', msgs: [frame('B', Buffer.concat([good.subarray(0, good.length - 7), Buffer.from([0, 0, 0, 9]), Buffer.from([0x61, 0, 0])]))] },
      { name: 'Describe subtype X', msgs: [msg.bind('', 's', ['a']), frame('D', Buffer.from('X\0'))] },
      { name: 'Execute without max rows', msgs: [msg.bind('', 's', ['a']), frame('E', Buffer.from([0]))] },
      { name: 'Execute without a NUL', msgs: [msg.bind('', 's', ['a']), frame('E', Buffer.from('p'))] },
    ];
    for (let i = 0; i < n; i++) {
      const cut = rng.int(0, good.length - 1);
      out.push({ name: `Bind cut to ${cut} bytes`, msgs: [frame('B', good.subarray(0, cut))] });
      const junk = Buffer.from(good);
      junk[rng.int(0, junk.length - 1)] = rng.int(0, 255);
      out.push({ name: `Bind with byte changed: ${junk.toString('hex')}`, msgs: [frame('B', junk)] });
    }
    return out;
  }

  test('each gets the reply upstream gives for the same bytes on an ordinary twin table, and the session goes on', async () => {
    const u = urlParts(x.url);
    const pc = await ProtoConn.open(Number(new URL(x.url).port), { user: u.user, password: u.password, database: u.database });
    // The twins are different tables; the proxy's own errors don't name Postgres's source lines.
    const shape = (frames: Frame[]): string[] =>
      normalize(frames).map((x) => x.replace(/table=\d+ att=\d+/g, 'table=* att=*').split(' | ').filter((part) => !/^[FLR]=/.test(part)).join(' | '));
    const run = async (table: string, msgs: Buffer[]): Promise<string[]> => {
      pc.write(msg.parse('s', `select value from ${table} where key = $1`, [25]), ...msgs, msg.describe('P', ''), msg.execute('', 0), msg.sync());
      const out = shape(await pc.readUntilReady(1));
      pc.write(msg.query('deallocate all; select 1 as alive'));
      out.push(...shape(await pc.readUntilReady(1)));
      return out;
    };
    try {
      const differ: string[] = [];
      for (const v of variants(0xb1d, 20)) {
        const real = await run('ht', v.msgs);
        const foreign = await run('h', v.msgs);
        if (JSON.stringify(foreign) !== JSON.stringify(real)) differ.push(`${v.name}:\n  proxy:    ${foreign.join(' / ')}\n  upstream: ${real.join(' / ')}`);
      }
      assert.deepEqual(differ, []);
    } finally {
      pc.end();
    }
  });
});

describe("src_key '*' and LIMIT", () => {
  test('a LIMIT with nothing else to filter stops the SCAN of the whole keyspace once it is met', async () => {
    await x.c.query(`create foreign table everything (key text, items jsonb) server redis_server options (src_type 'multi_hash', src_key '*')`);
    const pipe = x.f.redis.pipeline();
    for (let i = 0; i < 5000; i++) pipe.hset(`every:${i}`, 'f', String(i));
    await pipe.exec();
    const hashes = 5000 + 1; // and abuse:h
    const mon = await monitorRedis(x.f.redisUrl, DB);
    /** SCAN calls made by `sql`: MONITOR shows commands in order, so a marker after it is a barrier. */
    const scansOf = async (sql: string): Promise<{ rows: unknown[]; scans: number }> => {
      const from = mon.commands().length;
      const r = await x.c.query(sql);
      const marker = `__barrier_${Math.random()}`;
      await x.f.redis.exists(marker);
      for (let i = 0; i < 500 && !mon.commands().slice(from).some((x) => x[1] === marker); i++) await new Promise((res) => setImmediate(res));
      return { rows: r.rows, scans: mon.commands().slice(from).filter((x) => x[0] === 'SCAN').length };
    };
    try {
      const one = await scansOf('select key from everything limit 1');
      assert.equal(one.rows.length, 1);
      assert.equal(one.scans, 1, 'LIMIT 1 read one SCAN page');
      const offset = await scansOf('select key from everything limit 2 offset 3');
      assert.equal(offset.rows.length, 2);
      assert.equal(offset.scans, 1);
      // Where the LIMIT doesn't bound what must be read, everything is still read.
      const count = await scansOf('select count(*) as n from everything limit 1');
      assert.deepEqual(count.rows, [{ n: String(hashes) }]);
      assert.ok(count.scans > 1, `count(*) made ${count.scans} SCAN call(s)`);
      const filtered = await scansOf(`select key from everything where key = 'every:4999' limit 1`);
      assert.deepEqual(filtered.rows, [{ key: 'every:4999' }]);
      const ordered = await scansOf('select key from everything order by key limit 1');
      assert.deepEqual(ordered.rows, [{ key: 'abuse:h' }]);
      assert.ok(ordered.scans > 1);
    } finally {
      await mon.stop();
      await x.c.query('drop foreign table everything');
      const keys = await x.f.redis.keys('every:*');
      for (let i = 0; i < keys.length; i += 1000) await x.f.redis.del(...keys.slice(i, i + 1000));
    }
  });
});

describe('text that is not valid UTF-8', () => {
  test('touching a foreign table, it is rejected with upstream\'s own 22021, not stored with replacement characters', async () => {
    const u = urlParts(x.url);
    const port = Number(new URL(x.url).port);
    const pc = await ProtoConn.open(port, { user: u.user, password: u.password, database: u.database });
    const du = urlParts(x.directUrl);
    const dc = await ProtoConn.open(Number(new URL(x.directUrl).port), { user: du.user, password: du.password, database: du.database });
    const shape = (frames: Frame[]): string[] => normalize(frames).map((x) => x.split(' | ').filter((part) => !/^[FLR]=/.test(part)).join(' | '));
    const bad = (table: string): Buffer => Buffer.concat([Buffer.from(`insert into ${table} values ('bad', 'x`), Buffer.from([0xff, 0xfe]), Buffer.from(`y')`)]);
    const query = (sql: Buffer): Buffer => {
      const out = Buffer.alloc(6 + sql.length);
      out.write('Q', 0, 'latin1');
      out.writeInt32BE(5 + sql.length, 1);
      sql.copy(out, 5);
      return out;
    };
    try {
      for (const [name, sql] of [
        ['simple Query', (t: string) => [query(bad(t))]],
        ['Parse', (t: string) => [Buffer.concat([Buffer.from('P'), Buffer.alloc(4), Buffer.from([0]), bad(t), Buffer.from([0, 0, 0])]), msg.sync()]],
      ] as const) {
        const frames = sql('h');
        for (const fr of frames) fr.writeInt32BE(fr.length - 1, 1);
        pc.write(...frames);
        const viaProxy = shape(await pc.readUntilReady(1));
        const direct = sql('ht');
        for (const fr of direct) fr.writeInt32BE(fr.length - 1, 1);
        dc.write(...direct);
        const upstream = shape(await dc.readUntilReady(1));
        assert.deepEqual(viaProxy, upstream, name);
        assert.match(viaProxy.join(' / '), /C=22021/, name);
      }
      assert.equal(await x.f.redis.hget('abuse:h', 'bad'), null);
      assert.deepEqual(await pc.rows('select 1'), [['1']]);
    } finally {
      pc.end();
      dc.end();
    }
  });
});

describe('client_encoding other than UTF8', () => {
  test('a multi-byte one the proxy does not convert: a statement on a foreign table is refused with a clear ERROR instead of mangling text; the rest is untouched', async () => {
    const c = await connect(x.url);
    try {
      await c.query(`set client_encoding = 'SJIS'`);
      for (const sql of ['select * from h', `insert into h values ('latin', 'caf')`]) {
        const e = await c.query(sql).then(() => undefined, (err: { code?: string; message?: string }) => err);
        assert.equal(e?.code, '0A000', sql);
        assert.match(String(e?.message), /client_encoding "SJIS"/);
      }
      assert.equal(await x.f.redis.hget('abuse:h', 'latin'), null);
      // Real tables still convert as Postgres does.
      assert.deepEqual((await c.query(`select 'caf' as v`)).rows, [{ v: 'caf' }]);
      await c.query(`set client_encoding = 'UTF8'`);
      assert.deepEqual((await c.query(`select value from h where key = 'a'`)).rows, [{ value: '1' }]);
    } finally {
      await c.end();
    }
  });
});

describe('memory', () => {
  test('a stream of distinct big statements leaves the parse cache and the proxy bounded', async () => {
    const before = x.proxyRssMb();
    // The stream: 8 MB statements that mention the foreign table's name only in a comment.
    const body = 'z'.repeat(8 * 1024 * 1024);
    for (let i = 0; i < 40; i++) {
      const r = await x.c.query(`select length('${body}${i}') as n /* h */`);
      assert.equal(Number(r.rows[0].n), body.length + String(i).length);
    }
    // And statements that do read it, each distinct and just under the size the cache still keeps.
    const pad = 'p'.repeat(60 * 1024);
    for (let i = 0; i < 300; i++) await x.c.query(`select count(*) from h where key <> '${pad}${i}'`);
    const after = x.proxyRssMb();
    console.log(`[abuse] distinct big statements: proxy RSS ${before.toFixed(0)} MB before, ${after.toFixed(0)} MB after`);
    // Kept, 40 texts of 8 MB hold 320 MB and more (the issue measured 8 MB a statement, never released);
    // the cache keeps 32 MB at most, and what remains is garbage not yet collected.
    assert.ok(after - before < 250, `proxy RSS grew from ${before.toFixed(0)} MB to ${after.toFixed(0)} MB`);
  });
});
