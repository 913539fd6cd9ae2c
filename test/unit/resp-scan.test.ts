// resp-scan: the RESP2 reader fed replies split at every offset, and whole-key scans into text[] bodies
// against the real Redis, compared byte for byte with the ioredis row path (--redis-fast-scan off) reading
// the same key: every type, empty/missing keys, multi-page walks, huge values, bad text, wrong types,
// cancel and reuse of the connection afterwards.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { RedisPool } from '../../src/redis/pool.js';
import { fromConnUrl } from '../../src/redis/connection.js';
import { readTable, type ReadOptions } from '../../src/redis/read.js';
import { RespReader, fastScanFor, isPlainText, type RespHandler } from '../../src/redis/resp-scan.js';
import { checkText } from '../../src/redis/text.js';
import { TextArrayBuilder } from '../../src/protocol/text-array.js';
import { DataRowTarget } from '../../src/protocol/data-row-target.js';
import { RowViewTarget } from '../../src/executor/row-view-target.js';
import { streamColumns } from '../../src/executor/fast-path.js';
import type { RowView } from '../../src/executor/fast-filter.js';
import type { ColumnRole, Pushdown, RedisType, TableSpec } from '../../src/redis/table-spec.js';
import { PgError } from '../../src/protocol/pg-error.js';
import { testEnv } from '../harness/env.js';
import { attributedAccess, StatementStats } from '../../src/metrics/statement-stats.js';
import { startRedis } from '../harness/servers.js';

// ---- the reader ----

type Ev = string;
/** Records events with split bulks joined, so any chunking must give the same list. */
function recorder(out: Ev[]): RespHandler {
  let parts: Buffer[] = [];
  let d0 = 0;
  return {
    array: (n, d) => void out.push(`*${n}@${d}`),
    bulk: (s, a, b, d) => void out.push(`$${s.toString('latin1', a, b)}@${d}`),
    begin: (_l, d) => {
      parts = [];
      d0 = d;
    },
    part: (s, a, b) => void parts.push(Buffer.from(s.subarray(a, b))),
    end: () => void out.push(`$${Buffer.concat(parts).toString('latin1')}@${d0}`),
    nil: (d) => void out.push(`nil@${d}`),
    simple: (t, d) => void out.push(`+${t}@${d}`),
    error: (t, d) => void out.push(`-${t}@${d}`),
    done: () => void out.push('done'),
  };
}

const bulk = (b: Buffer | string): Buffer => {
  const v = Buffer.isBuffer(b) ? b : Buffer.from(b, 'latin1');
  return Buffer.concat([Buffer.from(`$${v.length}\r\n`), v, Buffer.from('\r\n')]);
};

describe('RespReader', () => {
  const values = ['f1', '', 'v\r\n$3\r\n*2', '\xff\xfe\x00bin', 'x'.repeat(300), '12345678901'];
  const reply = Buffer.concat([
    Buffer.from('*2\r\n'),
    bulk('17'),
    Buffer.from(`*${values.length}\r\n`),
    ...values.map((v) => bulk(v)),
    // a second reply right behind the first: an error, a nil, an integer, an empty and a nil array
    Buffer.from('-WRONGTYPE Operation against a key holding the wrong kind of value\r\n'),
    Buffer.from('$-1\r\n:42\r\n*0\r\n*-1\r\n+OK\r\n'),
  ]);
  const expected = [
    '*2@0', '$17@1', `*${values.length}@1`, ...values.map((v) => `$${v}@2`), 'done',
    '-WRONGTYPE Operation against a key holding the wrong kind of value@0', 'done',
    'nil@0', 'done', '+42@0', 'done', '*0@0', 'done', '*-1@0', 'done', '+OK@0', 'done',
  ];

  test('whole, split in two at every offset, and byte by byte', () => {
    const run = (chunks: Buffer[]): Ev[] => {
      const out: Ev[] = [];
      const r = new RespReader();
      r.handler = recorder(out);
      for (const c of chunks) r.feed(c);
      assert.ok(r.idle);
      return out;
    };
    assert.deepEqual(run([reply]), expected);
    for (let i = 1; i < reply.length; i++) assert.deepEqual(run([reply.subarray(0, i), reply.subarray(i)]), expected, `split at ${i}`);
    for (let i = 1; i + 7 < reply.length; i += 5) {
      assert.deepEqual(run([reply.subarray(0, i), reply.subarray(i, i + 7), reply.subarray(i + 7)]), expected, `split at ${i}, ${i + 7}`);
    }
    assert.deepEqual(run([...reply].map((b) => Buffer.from([b]))), expected);
  });

  test('a malformed header fails instead of guessing', () => {
    const r = new RespReader();
    r.handler = recorder([]);
    assert.throws(() => r.feed(Buffer.from('$1x\r\n')), /protocol error/);
    const r2 = new RespReader();
    r2.handler = recorder([]);
    assert.throws(() => r2.feed(Buffer.from('?oops\r\n')), /protocol error/);
  });
});

// ---- scans against the real Redis ----

const env = testEnv();
const P = `rs:${process.pid}:${Date.now()}:`;
let redis: Redis;
let fast: Redis;
let slow: Redis;
const fastPool = new RedisPool();
const slowPool = new RedisPool({ fastScan: false });

before(async () => {
  redis = new Redis(env.redisUrl, { protocol: 2 });
  fast = await fastPool.get(fromConnUrl(env.redisUrl));
  slow = await slowPool.get(fromConnUrl(env.redisUrl));
  assert.ok(fastScanFor(fast), 'the pool gives standalone clients a raw scan pool');
  assert.equal(fastScanFor(slow), undefined);
});
after(async () => {
  const keys = await redis.keys(`${P}*`);
  if (keys.length) await redis.unlink(...keys);
  redis.disconnect();
  await fastPool.close();
  await slowPool.close();
});

function spec(type: RedisType, key: string, roles: ColumnRole['kind'][]): TableSpec {
  const r = roles.map((kind) => ({ kind }) as ColumnRole);
  return { table: 'redis.t', type, multi: 'none', key: P + key, columns: r.map((_, i) => ({ name: `c${i}`, type: 'text', typeOid: 25, notNull: false })), roles: r };
}

/** The parameters as fetchReadParams builds them, through `client`; `used` says whether rows came by row(). */
async function params(client: Redis, s: TableSpec, opts: ReadOptions = {}, pd: Pushdown = {}): Promise<{ bodies: Buffer[]; rowCalls: number }> {
  const arrays = s.columns.map(() => new TextArrayBuilder());
  let rowCalls = 0;
  await readTable(
    client,
    s,
    pd,
    {
      columns: { arrays, table: 'display.t' },
      row(key, values) {
        rowCalls++;
        values.forEach((v, i) => {
          if (Buffer.isBuffer(v)) checkText(v, key, 'display.t');
          arrays[i]!.push(v ?? null);
        });
      },
    },
    opts,
  );
  return { bodies: arrays.map((a) => a.finish()), rowCalls };
}

/** Rows of the bodies, sorted (scan order may differ between two walks of a hash or set). */
function rowsOf(bodies: Buffer[]): string[] {
  return columnsOf(bodies).sort();
}

async function same(s: TableSpec, opts: ReadOptions = {}, ordered = false): Promise<number> {
  const a = await params(fast, s, opts);
  const b = await params(slow, s, opts);
  assert.equal(a.rowCalls, 0, 'the fast scan filled the parameters in place');
  if (ordered) assert.deepEqual(a.bodies, b.bodies);
  else assert.deepEqual(rowsOf(a.bodies), rowsOf(b.bodies));
  return rowsOf(a.bodies).length;
}

/**
 * The fast path's direct scan (DataRows written from the reply, one target for both columns) must
 * give the rows the builders get, in the same order: `roles` are the scan's first and second roles.
 */
async function sameAsDataRows(s: TableSpec, opts: ReadOptions = {}): Promise<number> {
  const ncols = s.roles.length as 1 | 2;
  // Chunks of 16 bytes: nearly every row moves to a chunk of its own.
  const target = new DataRowTarget(ncols, [], 16);
  await readTable(fast, s, {}, { columns: { arrays: [], table: 'display.t', direct: { first: target, second: ncols === 2 ? target : undefined } }, row: () => assert.fail('row path') }, opts);
  const body = Buffer.concat(target.finish());
  const rows: string[] = [];
  for (let p = 0; p < body.length; ) {
    assert.equal(body[p], 0x44, 'a DataRow');
    const len = body.readInt32BE(p + 1);
    assert.equal(body.readUInt16BE(p + 5), ncols);
    const cols: string[] = [];
    for (let q = p + 7, c = 0; c < ncols; c++) {
      const n = body.readInt32BE(q);
      cols.push(body.toString('latin1', q + 4, q + 4 + n));
      q += 4 + n;
      if (c === ncols - 1) assert.equal(q, p + 1 + len, 'the row ends where its length says');
    }
    rows.push(JSON.stringify(cols));
    p += 1 + len;
  }
  assert.equal(rows.length, target.length);
  const viaBuilders = await params(fast, s, opts);
  assert.deepEqual(rows, columnsOf(viaBuilders.bodies));
  return rows.length;
}

/**
 * The fast path's streamed rows (RowViewTarget: each row handed on from one scratch buffer as the reply
 * is parsed, key and position columns filled in) must be the rows the builders get, in the same order.
 */
async function sameAsRowViews(s: TableSpec, opts: ReadOptions = {}): Promise<number> {
  const cols = streamColumns(s, {});
  assert.ok(cols, 'a whole-key read');
  const n = s.roles.length;
  const view: RowView = { bufs: new Array<Buffer | undefined>(n), starts: new Int32Array(n), ends: new Int32Array(n) };
  const rows: string[] = [];
  const target = new RowViewTarget(view, cols, Buffer.from(s.key), (v) => {
    rows.push(JSON.stringify(Array.from({ length: n }, (_, c) => (v.ends[c]! < 0 ? null : v.bufs[c]!.toString('latin1', v.starts[c]!, v.ends[c]!)))));
  });
  await readTable(fast, s, {}, { columns: { arrays: [], table: 'display.t', direct: { first: target, second: cols.slots.length === 2 ? target : undefined } }, row: () => assert.fail('row path') }, opts);
  target.flush();
  assert.equal(rows.length, target.length);
  assert.deepEqual(rows, columnsOf((await params(fast, s, opts)).bodies));
  return rows.length;
}

/** The rows of `text[]` bodies, in order. */
function columnsOf(bodies: Buffer[]): string[] {
  const cols = bodies.map((b) => {
    const out: (string | null)[] = [];
    if (b.length <= 12) return out;
    const n = b.readInt32BE(12);
    for (let i = 0, p = 20; i < n; i++) {
      const len = b.readInt32BE(p);
      out.push(len < 0 ? null : b.toString('latin1', p + 4, p + 4 + len));
      p += 4 + Math.max(len, 0);
    }
    return out;
  });
  return Array.from({ length: cols[0]?.length ?? 0 }, (_, i) => JSON.stringify(cols.map((c) => c[i])));
}

async function errorOf(client: Redis, s: TableSpec, opts: ReadOptions = {}): Promise<PgError> {
  try {
    await params(client, s, opts);
  } catch (e) {
    assert.ok(e instanceof PgError, `expected PgError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected an error');
}

describe('isPlainText: a reply checked whole, however it is cut', () => {
  test('valid UTF-8 cut inside characters is plain; a NUL, a bad byte or a truncated character is not', () => {
    const good = Buffer.from(`*2\r\n$${Buffer.byteLength('日本語🙂é')}\r\n日本語🙂é\r\n$5\r\nplain\r\n`);
    const cuts = (b: Buffer): Buffer[][] => {
      const out: Buffer[][] = [[b]];
      for (let i = 1; i < b.length; i++) out.push([b.subarray(0, i), b.subarray(i)]);
      for (let i = 1; i + 1 < b.length; i += 3) out.push([b.subarray(0, i), b.subarray(i, i + 1), b.subarray(i + 1)]);
      return out;
    };
    for (const c of cuts(good)) assert.equal(isPlainText(c), true, c.map((x) => x.toString('hex')).join('|'));
    const bad = [Buffer.from('$3\r\na\0b\r\n'), Buffer.from([0x24, 0x32, 0x0d, 0x0a, 0x61, 0xff, 0x0d, 0x0a]), Buffer.from([0x61, 0xe6, 0x97]), Buffer.from([0xed, 0xa0, 0x80, 0x0d, 0x0a])];
    for (const b of bad) for (const c of cuts(b)) assert.equal(isPlainText(c), false, c.map((x) => x.toString('hex')).join('|'));
  });
});

describe('fast scans, byte for byte as the ioredis row path', () => {
  test('hash: missing, empty-string field, binary-looking UTF-8, null-role and key columns', async () => {
    assert.equal(await same(spec('hash', 'missing', ['field', 'value'])), 0);
    await redis.hset(P + 'h', '', 'empty field', 'é€𝄞', 'multi-byte', 'bin', '\u0001\u007f', 'n', '');
    assert.equal(await same(spec('hash', 'h', ['value', 'field', 'element', 'index'])), 4);
    assert.equal(await same(spec('hash', 'h', ['field'])), 4);
  });

  test('hash of 30,000 fields in pages of 1,000 (the dedupe runs), and in one page', async () => {
    const args: string[] = [];
    for (let i = 0; i < 30_000; i++) args.push(`f${i}`, `value-${i}-${'x'.repeat(i % 50)}`);
    await redis.hset(P + 'big', ...args);
    assert.equal(await same(spec('hash', 'big', ['field', 'value']), { batchSize: 1000 }), 30_000);
    assert.equal(await same(spec('hash', 'big', ['field', 'value'])), 30_000);
  });

  test('--redis-whole-read: a key above it is paged (HLEN, then pipelined HSCANs), one within it is one HGETALL', async () => {
    for (const [wholeRead, want] of [[29_999, 'paged'], [30_000, 'whole']] as const) {
      const pool = new RedisPool({ wholeRead });
      try {
        const client = await pool.get(fromConnUrl(env.redisUrl));
        const names: string[] = [];
        const view = Object.assign(Object.create(client) as Redis, { noteCommand: (n: string) => void names.push(n) });
        const got = await params(view, spec('hash', 'big', ['field', 'value']));
        assert.equal(got.rowCalls, 0, 'the raw scan');
        assert.deepEqual(rowsOf(got.bodies), rowsOf((await params(slow, spec('hash', 'big', ['field', 'value']))).bodies));
        if (want === 'whole') assert.deepEqual(names, ['HLEN', 'HGETALL']);
        else {
          assert.equal(names[0], 'HLEN');
          assert.ok(names.length >= 4 && names.slice(1).every((n) => n === 'HSCAN'), names.join(' '));
        }
      } finally {
        await pool.close();
      }
    }
  });

  test('values of 3 MB span many chunks', async () => {
    await redis.hset(P + 'huge', 'a', 'é'.repeat(1_500_000), 'b', 'y'.repeat(3_000_000), 'c', 'small');
    assert.equal(await same(spec('hash', 'huge', ['field', 'value'])), 3);
    await redis.rpush(P + 'hl', 'z'.repeat(3_000_000), 'w');
    assert.equal(await same(spec('list', 'hl', ['index', 'element']), {}, true), 2);
  });

  test('set, list (with index) and zset (member, score), small pages', async () => {
    const members = Array.from({ length: 5000 }, (_, i) => `m${i}`);
    await redis.sadd(P + 's', ...members);
    assert.equal(await same(spec('set', 's', ['element']), { batchSize: 700 }), 5000);
    await redis.rpush(P + 'l', ...members, '', 'ü');
    assert.equal(await same(spec('list', 'l', ['index', 'element']), { batchSize: 700 }, true), 5002);
    assert.equal(await same(spec('list', 'l', ['element']), { batchSize: 5002 }, true), 5002);
    await redis.zadd(P + 'z', ...members.flatMap((m, i) => [String(i / 3), m]), 'inf', 'top');
    assert.equal(await same(spec('zset', 'z', ['element', 'score']), { batchSize: 999 }, true), 5001);
  });

  test("the fast path's DataRows written straight from the reply: same rows, same order (pages, dedupe, split values)", async () => {
    assert.equal(await sameAsDataRows(spec('hash', 'big', ['field', 'value']), { batchSize: 1000 }), 30_000);
    assert.equal(await sameAsDataRows(spec('hash', 'big', ['field'])), 30_000);
    assert.equal(await sameAsDataRows(spec('hash', 'huge', ['field', 'value'])), 3);
    assert.equal(await sameAsDataRows(spec('set', 's', ['element']), { batchSize: 700 }), 5000);
    assert.equal(await sameAsDataRows(spec('list', 'l', ['element']), { batchSize: 700 }), 5002);
    assert.equal(await sameAsDataRows(spec('zset', 'z', ['element', 'score']), { batchSize: 999 }), 5001);
    assert.equal(await sameAsDataRows(spec('hash', 'missing', ['field', 'value'])), 0);
  });

  test("the fast path's streamed rows: same rows, same order, with key and position columns (pages, dedupe, split values)", async () => {
    assert.equal(await sameAsRowViews(spec('hash', 'big', ['field', 'value', 'key']), { batchSize: 1000 }), 30_000);
    assert.equal(await sameAsRowViews(spec('hash', 'big', ['value'])), 30_000);
    assert.equal(await sameAsRowViews(spec('hash', 'huge', ['key', 'field', 'value'])), 3);
    assert.equal(await sameAsRowViews(spec('set', 's', ['element']), { batchSize: 700 }), 5000);
    assert.equal(await sameAsRowViews(spec('list', 'l', ['index', 'element']), { batchSize: 700 }), 5002);
    assert.equal(await sameAsRowViews(spec('zset', 'z', ['score', 'element', 'key']), { batchSize: 999 }), 5001);
    assert.equal(await sameAsRowViews(spec('hash', 'missing', ['field', 'value'])), 0);
  });

  test('a key read whole and checked first: every value is checked, also those a socket chunk cuts in two', async () => {
    // 50,000 pairs whose scores Redis prints in 17 digits span dozens of socket chunks, and most of a
    // pair's bytes are its score, so some scores surely arrive in two pieces. The check must still see
    // each whole: it passes when every value passes, and one failing value anywhere stops it.
    const pairs = Array.from({ length: 50_000 }, (_, i) => [String(i + 0.1), `m${i}`]).flat();
    await redis.zadd(P + 'zc', ...pairs);
    const scores = new Set(Array.from({ length: 50_000 }, (_, i) => String(i + 0.1)));
    const printed = await redis.zrange(P + 'zc', '0', '-1', 'WITHSCORES');
    const checked = async (pass: (score: string) => boolean): Promise<{ checked: boolean; rows: number }> => {
      const target = new DataRowTarget(2, []);
      let ok = false;
      const values = [undefined, (b: Buffer, s: number, e: number): boolean => pass(b.toString('latin1', s, e))];
      await readTable(fast, spec('zset', 'zc', ['element', 'score']), {}, { columns: { arrays: [], table: 'display.t', direct: { first: target, second: target }, checkedWhole: { checked: () => void (ok = true), values } }, row: () => assert.fail('row path') });
      return { checked: ok, rows: target.length };
    };
    const seen: string[] = [];
    assert.deepEqual(await checked((x) => (seen.push(x), true)), { checked: true, rows: 50_000 });
    assert.deepEqual(seen, printed.filter((_, i) => i % 2 === 1), 'each score checked once, whole, in order');
    assert.ok(seen.every((x) => scores.has(String(Number(x)))));
    const oddOne = printed[2 * 31_337 + 1]!;
    assert.deepEqual(await checked((x) => x !== oddOne), { checked: false, rows: 50_000 });
  });

  test('invalid UTF-8 and NUL: 22021 naming the key, as the row path says it', async () => {
    for (const [name, bad] of [['badutf8', Buffer.from([0x61, 0xc3, 0x28])], ['nul', Buffer.from('a\0b')], ['badlong', Buffer.concat([Buffer.alloc(100, 0x61), Buffer.from([0xff])])]] as const) {
      await redis.hset(P + name, 'ok', 'fine', 'bad', bad);
      const a = await errorOf(fast, spec('hash', name, ['field', 'value']));
      const b = await errorOf(slow, spec('hash', name, ['field', 'value']));
      assert.equal(a.code, '22021');
      assert.deepEqual([a.code, a.message, a.detail], [b.code, b.message, b.detail]);
    }
    // The connection that stopped mid-reply is not reused: the next scan reads the right reply.
    await redis.hset(P + 'after', 'k', 'v');
    assert.equal(await same(spec('hash', 'after', ['field', 'value'])), 1);
  });

  test('wrong type: 42809 as today, and the connection stays usable', async () => {
    await redis.set(P + 'str', 'x');
    const a = await errorOf(fast, spec('hash', 'str', ['field', 'value']));
    const b = await errorOf(slow, spec('hash', 'str', ['field', 'value']));
    assert.equal(a.code, '42809');
    assert.deepEqual([a.code, a.message, a.detail], [b.code, b.message, b.detail]);
    assert.equal(await same(spec('hash', 'after', ['field', 'value'])), 1);
  });

  test('cancel mid-read: 57014, then the next read is right', async () => {
    const args: string[] = [];
    for (let i = 0; i < 20_000; i++) args.push(`f${i}`, `v${i}`);
    await redis.hset(P + 'cancel', ...args);
    const ac = new AbortController();
    const reason = new PgError('57014', 'canceling statement due to user request');
    const arrays = [new TextArrayBuilder(), new TextArrayBuilder()];
    const read = readTable(fast, spec('hash', 'cancel', ['field', 'value']), {}, { columns: { arrays, table: 't' }, row: () => assert.fail('row path') }, { signal: ac.signal, batchSize: 100 });
    // Abort once the first page has arrived (the first column has rows), mid-walk.
    await new Promise<void>((resolve) => {
      const poll = (): void => (arrays[0]!.length > 0 ? resolve() : void setImmediate(poll));
      poll();
    });
    ac.abort(reason);
    await assert.rejects(read, (e: unknown) => e instanceof PgError && e.code === '57014');
    assert.equal(await same(spec('hash', 'cancel', ['field', 'value'])), 20_000);
  });

  test('another database: SELECT on the raw connection', async () => {
    const url = new URL(env.redisUrl);
    url.pathname = '/7';
    const other = new Redis(url.toString(), { protocol: 2 });
    const pool = new RedisPool();
    try {
      await other.hset(P + 'db7', 'only', 'in db 7');
      const c = await pool.get(fromConnUrl(url.toString()));
      const { bodies, rowCalls } = await params(c, spec('hash', 'db7', ['field', 'value']));
      assert.equal(rowCalls, 0);
      assert.deepEqual(rowsOf(bodies), [JSON.stringify(['only', 'in db 7'])]);
    } finally {
      await other.del(P + 'db7');
      other.disconnect();
      await pool.close();
    }
  });

  test('AUTH with a password, and with an ACL user and password, then SELECT', async () => {
    const secured = await startRedis({ password: 'pa ss' });
    const admin = new Redis({ host: secured.host, port: secured.port, password: 'pa ss', db: 3 });
    const pool = new RedisPool();
    try {
      await admin.call('ACL', 'SETUSER', 'scanner', 'on', '>s3cret', '~*', '+@all');
      await admin.hset('k', 'f', 'v');
      for (const url of [`redis://:${encodeURIComponent('pa ss')}@${secured.host}:${secured.port}/3`, `redis://scanner:s3cret@${secured.host}:${secured.port}/3`]) {
        const c = await pool.get(fromConnUrl(url));
        const s = { ...spec('hash', 'x', ['field', 'value']), key: 'k' };
        const { bodies, rowCalls } = await params(c, s);
        assert.equal(rowCalls, 0);
        assert.deepEqual(rowsOf(bodies), [JSON.stringify(['f', 'v'])]);
      }
    } finally {
      admin.disconnect();
      await pool.close();
      await secured.stop();
    }
  });

  test('a password given to a server without one is ignored, as ioredis ignores it', async () => {
    const pool = new RedisPool();
    try {
      const url = new URL(env.redisUrl);
      url.password = 'unused';
      const c = await pool.get(fromConnUrl(url.toString()));
      assert.equal(await same({ ...spec('hash', 'after', ['field', 'value']) }), 1);
      const { rowCalls } = await params(c, spec('hash', 'after', ['field', 'value']));
      assert.equal(rowCalls, 0);
    } finally {
      await pool.close();
    }
  });

  test("a session's attributed view of the pooled client still scans raw (the slow log's wrapper once hid the pool)", async () => {
    const view = (await attributedAccess({ client: async () => fast }, new StatementStats()).client(fromConnUrl(env.redisUrl))) as Redis;
    assert.notEqual(view, fast);
    assert.ok(fastScanFor(view));
    const r = await params(view, spec('hash', 'after', ['field', 'value']));
    assert.equal(r.rowCalls, 0);
  });

  test('a LIMIT or a pushdown keeps the row path', async () => {
    const r = await params(fast, spec('hash', 'after', ['field', 'value']), {}, { limit: 1 });
    assert.equal(r.rowCalls, 1);
  });
});
