// Raw-socket differential tests: the same message sequence is sent to upstream Postgres directly and
// through the proxy, and the reply frames must be the same (BackendKeyData values and the order of
// ParameterStatus runs aside). A transparent proxy has no other valid answer.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testEnv } from '../harness/env.js';
import { startProxy, type RunningProxy } from '../harness/proxy.js';
import { dataRow, describeFrame, errorFields, msg, normalize, ProtoConn, urlParts, type Frame, type NormalizeOptions } from '../support/proto-client.js';

const env = testEnv();
const up = urlParts(env.pgUrl);
const login = { user: up.user, password: up.password, database: up.database };
const T = `proto_${process.pid}`; // permanent tables of this file (table OIDs then match in both runs)

let proxy: RunningProxy;

before(async () => {
  proxy = await startProxy(env.pgUrl);
  const c = await ProtoConn.open(up.port, login, up.host);
  try {
    await c.rows(`drop table if exists ${T}_items; create table ${T}_items (id int primary key, name text, price numeric(10,2), data bytea)`);
    await c.rows(`insert into ${T}_items select i, 'item ' || i, i * 1.25, decode(lpad(to_hex(i), 4, '0'), 'hex') from generate_series(1, 20) i`);
  } finally {
    await c.end();
  }
});

after(async () => {
  const c = await ProtoConn.open(up.port, login, up.host);
  try {
    await c.rows(`drop table if exists ${T}_items`);
  } finally {
    await c.end();
  }
  await proxy?.close();
});

type Script = (c: ProtoConn) => Promise<Frame[]>;

async function runOn(port: number, host: string, script: Script, opts: NormalizeOptions): Promise<{ startup: string[]; frames: string[]; after: string[] }> {
  const c = await ProtoConn.open(port, login, host);
  try {
    const frames = normalize(await script(c), opts);
    if (c.isClosed) return { startup: normalize(c.startupFrames, opts), frames, after: ['<closed>'] };
    // The connection must still be in sync afterwards: one more round trip gives the expected answer.
    const afterFrames = normalize(await c.query('select 42 as still_in_sync'), opts);
    return { startup: normalize(c.startupFrames, opts), frames, after: afterFrames };
  } finally {
    await c.end();
  }
}

/**
 * Runs `script` on upstream and through the proxy; asserts identical normalized replies. Returns them.
 * `through` picks the proxy (default: the file's shared one, whose catalog cache is warm).
 */
async function differential(script: Script, opts: NormalizeOptions & { through?: RunningProxy; mayClose?: boolean } = {}): Promise<string[]> {
  const direct = await runOn(up.port, up.host, script, opts);
  const proxied = await runOn((opts.through ?? proxy).port, '127.0.0.1', script, opts);
  assert.deepEqual(proxied.frames, direct.frames, 'replies through the proxy differ from upstream');
  assert.deepEqual(proxied.startup, direct.startup, 'startup replies differ');
  assert.deepEqual(proxied.after, direct.after, 'follow-up query differs');
  if (!opts.mayClose) assert.deepEqual(direct.after.slice(-3), ['D ["42"]', 'C SELECT 1', 'Z I']);
  return direct.frames;
}

/** Every frame that arrives until the server has been quiet for `ms` (or closed the connection). */
async function quiet(c: ProtoConn, ms = 300): Promise<Frame[]> {
  const out: Frame[] = [];
  for (;;) {
    const f = await c.maybeNext(ms);
    if (!f) return out;
    out.push(f);
  }
}

/** A frontend message with an arbitrary body (for malformed-message tests). */
function rawMsg(type: string, body: Buffer | string): Buffer {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body, 'latin1');
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(b.length + 4, 1);
  return Buffer.concat([head, b]);
}

const types = (frames: string[]): string => frames.map((f) => f.split(' ')[0]).join('');

const int4 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const float8 = (n: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(n);
  return b;
};

describe('simple query protocol', () => {
  test('multi-statement query with an error in the middle stops at the error', async () => {
    const out = await differential(async (c) => [
      ...(await c.query(`select 1 as a; select 1/0; select 3 as c`)),
      ...(await c.query(`select 'x'::int`)),
      ...(await c.query(`select id, name, price from ${T}_items where id <= 3 order by id; select count(*) from ${T}_items`)),
    ]);
    assert.equal(types(out), 'TDCEZEZTDDDCTDCZ');
  });

  test('errors inside an explicit transaction leave it failed until ROLLBACK', async () => {
    const out = await differential(async (c) => [
      ...(await c.query('begin; select 1; select 1/0; select 2')),
      ...(await c.query('select 2')),
      ...(await c.query('rollback')),
      ...(await c.query('begin')),
      ...(await c.query('commit')),
    ]);
    assert.deepEqual(out.filter((f) => f.startsWith('Z')), ['Z E', 'Z E', 'Z I', 'Z T', 'Z I']);
  });

  test('empty queries', async () => {
    const out = await differential(async (c) => [...(await c.query('')), ...(await c.query(';')), ...(await c.query('  -- only a comment'))]);
    assert.equal(types(out), 'IZIZIZ');
  });

  test('50 simple queries written at once', async () => {
    const out = await differential(async (c) => {
      c.write(...Array.from({ length: 50 }, (_, i) => msg.query(`select ${i} as n, repeat('y', ${i})`)));
      return c.readUntilReady(50);
    });
    assert.equal(out.filter((f) => f === 'Z I').length, 50);
  });

  test('notices and ParameterStatus changes are relayed in place', async () => {
    await differential(async (c) => [
      ...(await c.query(`do $$ begin raise notice 'hello from plpgsql'; raise warning 'careful'; end $$`)),
      ...(await c.query(`set application_name = 'proto-test'; set datestyle = 'German'; select now()::date is not null`)),
      ...(await c.query(`reset application_name; reset datestyle`)),
    ]);
  });
});

describe('extended query protocol', () => {
  test('named and unnamed statements and portals, with Describe', async () => {
    const out = await differential(async (c) => {
      c.write(
        msg.parse('s1', `select id, name, price from ${T}_items where id = $1`, [23]),
        msg.describe('S', 's1'),
        msg.bind('p1', 's1', ['7']),
        msg.describe('P', 'p1'),
        msg.execute('p1'),
        msg.parse('', 'select $1::text || $2::text as cat'),
        msg.describe('S', ''),
        msg.bind('', '', ['foo', 'bar']),
        msg.describe('P', ''),
        msg.execute(''),
        msg.parse('', `update ${T}_items set name = name where id = $1`),
        msg.describe('S', ''),
        msg.bind('', '', ['1']),
        msg.describe('P', ''),
        msg.execute(''),
        msg.sync(),
      );
      const a = await c.readUntilReady();
      // s1 survives the Sync; the unnamed statement is replaced by the next Parse.
      c.write(msg.bind('', 's1', ['8']), msg.execute(''), msg.bind('named', 's1', ['9']), msg.execute('named'), msg.sync());
      const b = await c.readUntilReady();
      // A statement that does not exist.
      c.write(msg.bind('', 'nope', []), msg.execute(''), msg.sync());
      const d = await c.readUntilReady();
      // Parse of a duplicate name.
      c.write(msg.parse('s1', 'select 1'), msg.sync());
      return [...a, ...b, ...d, ...(await c.readUntilReady())];
    });
    assert.ok(out.some((f) => f.startsWith('E ') && f.includes('C=26000')), 'missing statement is an error');
    assert.ok(out.some((f) => f.startsWith('E ') && f.includes('C=42P05')), 'duplicate statement is an error');
  });

  test('binary parameters and binary results, Describe of a portal reports the Bind formats', async () => {
    const out = await differential(async (c) => {
      c.write(
        msg.parse('', 'select $1::int4 as i, $2::text as t, $3::bytea as b, $4::float8 as f, $5::int4 as n'),
        msg.bind('', '', [int4(42), 'hello', Buffer.from([0, 0xff, 0x10]), float8(1.5), null], [1, 0, 1, 1, 1], [1]),
        msg.describe('P', ''),
        msg.execute(''),
        msg.parse('', 'select $1::int4 as i, $2::text as t, $3::bytea as b, $4::float8 as f'),
        msg.bind('', '', [int4(-7), 'x', Buffer.from('ab'), float8(-0.25)], [1, 0, 1, 1], [0, 1, 0, 1]),
        msg.describe('P', ''),
        msg.execute(''),
        msg.sync(),
      );
      const a = await c.readUntilReady();
      // Binary data from a real table.
      c.write(msg.parse('', `select id, data, price from ${T}_items where id between $1 and $2 order by id`), msg.bind('', '', [int4(3), int4(6)], [1], [1]), msg.describe('P', ''), msg.execute(''), msg.sync());
      return [...a, ...(await c.readUntilReady())];
    });
    const firstRow = out.find((f) => f.startsWith('D '));
    assert.equal(firstRow, 'D [0x0000002a, "hello", 0x00ff10, 0x3ff8000000000000, NULL]');
    assert.ok(out.some((f) => f.startsWith('T ') && f.includes('fmt=1')), 'portal Describe reports binary');
  });

  test('50 statements pipelined before one Sync', async () => {
    const out = await differential(async (c) => {
      const parts: Buffer[] = [];
      for (let i = 0; i < 50; i++) {
        parts.push(msg.parse('', 'select $1::int * 2 as doubled, $2::text as label'), msg.bind('', '', [String(i), `row ${i}`]), msg.describe('P', ''), msg.execute(''));
      }
      parts.push(msg.sync());
      c.write(...parts);
      return c.readUntilReady();
    });
    assert.equal(out.filter((f) => f === 'C SELECT 1').length, 50);
    assert.equal(out.filter((f) => f.startsWith('Z')).length, 1);
  });

  test('an error in the middle of a pipeline skips until Sync; later batches run', async () => {
    const out = await differential(async (c) => {
      const parts: Buffer[] = [msg.query('begin')];
      for (let i = 0; i < 10; i++) parts.push(msg.parse('', `select ${i === 4 ? '1/0' : i} as v`), msg.bind('', ''), msg.execute(''));
      parts.push(msg.sync());
      parts.push(msg.parse('', 'select 100'), msg.bind('', ''), msg.execute(''), msg.sync());
      parts.push(msg.query('rollback'));
      for (let i = 0; i < 3; i++) parts.push(msg.parse('', `select ${i} + 1000`), msg.bind('', ''), msg.execute(''));
      parts.push(msg.sync());
      c.write(...parts);
      return c.readUntilReady(5);
    });
    assert.deepEqual(out.filter((f) => f.startsWith('Z')), ['Z T', 'Z E', 'Z E', 'Z I', 'Z I']);
    assert.equal(out.filter((f) => f.startsWith('E ')).length, 2);
  });

  test('a simple Query inside a failed extended batch is discarded; inside a good one it runs', async () => {
    const out = await differential(async (c) => {
      c.write(msg.parse('', 'select 1/0'), msg.bind('', ''), msg.execute(''), msg.query('select 2'), msg.sync(), msg.query('select 3'));
      const a = await c.readUntilReady(2);
      c.write(msg.parse('', 'select 1'), msg.bind('', ''), msg.execute(''), msg.query('select 2'), msg.sync());
      return [...a, ...(await c.readUntilReady(2))];
    });
    assert.equal(types(out), '1EZTDCZ12DCTDCZZ');
  });

  test('BEGIN, SET and COMMIT through the extended protocol (JDBC style)', async () => {
    const out = await differential(async (c) => {
      const ext = (sql: string): Buffer[] => [msg.parse('', sql), msg.bind('', ''), msg.describe('P', ''), msg.execute(''), msg.sync()];
      c.write(...ext('BEGIN'), ...ext(`SET LOCAL search_path = pg_catalog`), ...ext(`SET application_name = 'jdbc-ish'`));
      const a = await c.readUntilReady(3);
      c.write(...ext(`select current_setting('search_path'), current_setting('application_name')`), ...ext('COMMIT'), ...ext(`select current_setting('search_path')`));
      return [...a, ...(await c.readUntilReady(3))];
    });
    assert.deepEqual(out.filter((f) => f.startsWith('Z')), ['Z T', 'Z T', 'Z T', 'Z T', 'Z I', 'Z I']);
  });

  test('Execute with a row limit: PortalSuspended, then Execute again', async () => {
    const out = await differential(async (c) => {
      c.write(msg.parse('', 'select g from generate_series(1, 10) g'), msg.bind('', ''), msg.execute('', 3), msg.execute('', 3), msg.execute('', 0), msg.sync());
      const a = await c.readUntilReady();
      // Across round trips, with Flush in between.
      c.write(msg.parse('', 'select g from generate_series(1, 5) g'), msg.bind('', ''), msg.execute('', 4), msg.flush());
      const b = await c.readUntil((f) => f.type === 's', 5000);
      c.write(msg.execute('', 4), msg.sync());
      const d = await c.readUntilReady();
      // A named portal in an explicit transaction survives Sync.
      c.write(msg.query('begin'), msg.parse('cur_s', `select id from ${T}_items order by id`), msg.bind('cur', 'cur_s'), msg.execute('cur', 2), msg.sync());
      const e = await c.readUntilReady(2);
      c.write(msg.execute('cur', 2), msg.sync());
      const f = await c.readUntilReady();
      c.write(msg.close('P', 'cur'), msg.execute('cur', 1), msg.sync(), msg.query('rollback'));
      return [...a, ...b, ...d, ...e, ...f, ...(await c.readUntilReady(2))];
    });
    assert.equal(out.filter((f) => f === 's').length, 5);
    assert.ok(out.some((f) => f.includes('C=34000')), 'Execute of a closed portal fails');
  });

  test('Parse/Describe/Flush is answered before any Sync (asyncpg / postgres.js style)', async () => {
    const out = await differential(async (c) => {
      c.write(msg.parse('ps', `select name, price from ${T}_items where id = $1`), msg.describe('S', 'ps'), msg.flush());
      // Upstream answers Flush at once; the proxy must too, or this times out.
      const a = await c.readUntil((f) => f.type === 'T' || f.type === 'E', 3000);
      c.write(msg.bind('', 'ps', [int4(5)], [1], [0, 1]), msg.describe('P', ''), msg.flush());
      const b = await c.readUntil((f) => f.type === 'T' || f.type === 'E', 3000);
      c.write(msg.execute(''), msg.flush());
      const d = await c.readUntil((f) => f.type === 'C' || f.type === 'E', 3000);
      c.write(msg.sync());
      const e = await c.readUntilReady();
      // Flush after an error: the error is delivered before the Sync.
      c.write(msg.parse('bad', 'select nosuchcolumn'), msg.flush());
      const g = await c.readUntil((f) => f.type === 'E', 3000);
      c.write(msg.sync());
      return [...a, ...b, ...d, ...e, ...g, ...(await c.readUntilReady())];
    });
    assert.equal(types(out), '1tT2TDCZEZ');
  });

  test('Close statement and portal', async () => {
    const out = await differential(async (c) => {
      c.write(msg.parse('c1', 'select 1 as one'), msg.bind('cp', 'c1'), msg.sync());
      const a = await c.readUntilReady();
      c.write(msg.close('S', 'c1'), msg.close('S', 'never_existed'), msg.close('P', 'cp'), msg.close('P', ''), msg.sync());
      const b = await c.readUntilReady();
      c.write(msg.bind('', 'c1'), msg.execute(''), msg.sync());
      const d = await c.readUntilReady();
      // The name can be reused after Close.
      c.write(msg.parse('c1', 'select 2 as two'), msg.bind('', 'c1'), msg.execute(''), msg.sync());
      return [...a, ...b, ...d, ...(await c.readUntilReady())];
    });
    assert.equal(types(out), '12Z3333ZEZ12DCZ');
  });

  test('empty query through the extended protocol, and Describe of a statement without rows', async () => {
    const out = await differential(async (c) => {
      c.write(msg.parse('', ''), msg.describe('S', ''), msg.bind('', ''), msg.execute(''), msg.parse('', 'set search_path = public'), msg.describe('S', ''), msg.bind('', ''), msg.describe('P', ''), msg.execute(''), msg.sync());
      return c.readUntilReady();
    });
    assert.equal(types(out), '1tn2I1tn2nCZ');
  });

  test('FunctionCall', async () => {
    const out = await differential(async (c) => {
      c.write(msg.functionCall(177 /* int4pl */, ['2', '3'], [0], 0));
      const a = await c.readUntilReady();
      c.write(msg.functionCall(177, [int4(40), int4(2)], [1], 1));
      const b = await c.readUntilReady();
      c.write(msg.functionCall(1, ['x']));
      return [...a, ...b, ...(await c.readUntilReady())];
    });
    assert.equal(types(out), 'VZVZEZ');
  });

  test('a 5 MB Bind parameter and a 5 MB result value', async () => {
    const big = 'z'.repeat(5 * 1024 * 1024);
    const out = await differential(async (c) => {
      c.write(msg.parse('', 'select md5($1) as h, length($1) as n, $1 as echo'), msg.bind('', '', [big]), msg.execute(''), msg.sync());
      return c.readUntilReady(1, 30_000);
    });
    assert.match(out.find((f) => f.startsWith('D ')) ?? '', /^D \["[0-9a-f]{32}", "5242880", "z{100}/);
  });

  test('messages trickled one byte at a time', async () => {
    await differential(async (c) => {
      const bytes = Buffer.concat([msg.query('select 1 as a; select 2 as b'), msg.parse('', 'select $1::int'), msg.bind('', '', ['5']), msg.execute(''), msg.sync()]);
      for (const b of bytes) {
        c.write(Buffer.from([b]));
        await new Promise((r) => setImmediate(r));
      }
      return c.readUntilReady(2);
    });
  });
});

describe('COPY', () => {
  const copyOpts: NormalizeOptions = { maskTableOids: true };

  test('COPY FROM STDIN and TO STDOUT, simple protocol, including CopyFail', async () => {
    const out = await differential(async (c) => {
      const a = await c.query('create temp table ct (a int, b text)');
      c.write(msg.query('copy ct from stdin'));
      const b = await c.readUntil((f) => f.type === 'G');
      c.write(msg.copyData('1\tone\n2\t'), msg.copyData('two\n'), msg.copyData('3\t\\N\n'), msg.copyDone());
      const d = await c.readUntilReady();
      c.write(msg.query('copy ct from stdin (format csv)'));
      const e = await c.readUntil((f) => f.type === 'G');
      c.write(msg.copyData('4,four\n'), msg.copyFail('client gave up'));
      const g = await c.readUntilReady();
      // A bad row: the server reports the error, and the rest of the data is drained.
      c.write(msg.query('copy ct from stdin'));
      const h = await c.readUntil((f) => f.type === 'G');
      c.write(msg.copyData('x\ty\n'), msg.copyData('5\tfive\n'), msg.copyDone());
      const i = await c.readUntilReady();
      return [...a, ...b, ...d, ...e, ...g, ...h, ...i, ...(await c.query('copy (select * from ct order by a) to stdout; select count(*) from ct'))];
    }, copyOpts);
    assert.ok(out.includes('C COPY 3'));
    assert.ok(out.includes('d "2\\ttwo\\n"'));
  });

  test('COPY in the extended protocol (Flush style and libpq double-Sync style)', async () => {
    const out = await differential(async (c) => {
      const a = await c.query('create temp table cx (a int, b text)');
      c.write(msg.parse('', 'copy cx from stdin'), msg.bind('', ''), msg.execute(''), msg.flush());
      const b = await c.readUntil((f) => f.type === 'G');
      c.write(msg.copyData('1\tone\n'), msg.copyDone(), msg.sync());
      const d = await c.readUntilReady();
      // libpq's PQexecParams + PQputCopyEnd: Sync right after Execute (ignored by the server during copy-in), another after CopyDone.
      c.write(msg.parse('', 'copy cx from stdin'), msg.bind('', ''), msg.execute(''), msg.sync());
      const e = await c.readUntil((f) => f.type === 'G');
      c.write(msg.copyData('2\ttwo\n'), msg.copyDone(), msg.sync());
      const g = await c.readUntilReady();
      c.write(msg.parse('', 'copy (select * from cx order by a) to stdout'), msg.bind('', ''), msg.describe('P', ''), msg.execute(''), msg.sync());
      return [...a, ...b, ...d, ...e, ...g, ...(await c.readUntilReady())];
    }, copyOpts);
    assert.deepEqual(out.filter((f) => f.startsWith('C ')), ['C CREATE TABLE', 'C COPY 1', 'C COPY 1', 'C COPY 2']);
  });

  test('a 20 MB COPY in and out', async () => {
    const rows = 20_000;
    const line = (i: number): string => `${i}\t${String(i).padStart(8, '0')}${'x'.repeat(1000)}\n`;
    const out = await differential(async (c) => {
      const a = await c.query('create temp table big (id int, payload text)');
      c.write(msg.query('copy big from stdin'));
      const b = await c.readUntil((f) => f.type === 'G');
      // 64 KB CopyData chunks that cut rows anywhere, as COPY clients do.
      const all = Buffer.from(Array.from({ length: rows }, (_, i) => line(i)).join(''));
      for (let off = 0; off < all.length; off += 65536) {
        if (!c.socket.write(msg.copyData(all.subarray(off, off + 65536)))) await new Promise((r) => c.socket.once('drain', r));
      }
      c.write(msg.copyDone());
      const d = await c.readUntilReady(1, 60_000);
      const e = await c.query('copy big to stdout', 60_000);
      const g = await c.query(`select count(*), sum(length(payload)), md5(string_agg(payload, ',' order by id)) from big`);
      return [...a, ...b, ...d, ...e, ...g];
    }, copyOpts);
    assert.ok(out.includes(`C COPY ${rows}`));
    assert.ok(out.some((f) => /^d x20000 bytes=\d+ sha256=/.test(f)), `copy out summarised: ${out.slice(0, 8).join(' / ')}`);
  });

  test('after libpq-style extended COPY the session is idle (graceful shutdown closes it at once)', async () => {
    // Postgres ignores the Sync sent during copy-in; a proxy that waits for its ReadyForQuery thinks the
    // session is mid-request forever, so SIGTERM waits out the whole grace period (and locally produced
    // replies queued behind it would be held back).
    const own = await startProxy(env.pgUrl);
    const c = await ProtoConn.open(own.port, login);
    try {
      await c.query('create temp table cz (a int)');
      c.write(msg.parse('', 'copy cz from stdin'), msg.bind('', ''), msg.execute(''), msg.sync());
      await c.readUntil((f) => f.type === 'G');
      c.write(msg.copyData('1\n'), msg.copyDone(), msg.sync());
      await c.readUntilReady();
      assert.deepEqual(normalize(await c.query('select count(*) from cz')).slice(1), ['D ["1"]', 'C SELECT 1', 'Z I']);
      const t0 = Date.now();
      const closing = own.server.close(4000);
      const frames = await c.readUntilClose(8000);
      const ms = Date.now() - t0;
      await closing;
      assert.equal(frames.length, 1);
      assert.equal(errorFields(frames[0]!.body).C, '57P01');
      assert.ok(ms < 1500, `idle session was closed only after ${ms} ms (grace 4000 ms): the proxy still waits for a reply to the ignored Sync`);
    } finally {
      c.destroy();
      await own.close();
    }
  });
});

describe('startup negotiation', () => {
  test('SSLRequest gets N (as from upstream without TLS), then a normal startup works', async () => {
    for (const [port, host] of [[up.port, up.host], [proxy.port, '127.0.0.1']] as const) {
      const c = await ProtoConn.connect(port, host);
      try {
        c.write(msg.sslRequest());
        assert.equal((await c.readBytes(1)).toString(), 'N', `port ${port}`);
        const frames = await c.startup(login);
        assert.equal(frames.at(-1)?.type, 'Z');
        assert.deepEqual(await c.rows('select 1'), [['1']]);
      } finally {
        await c.end();
      }
    }
  });

  test('GSSENCRequest gets N, then SSLRequest gets N, then a normal startup works', async () => {
    const c = await ProtoConn.connect(proxy.port);
    try {
      c.write(msg.gssencRequest());
      assert.equal((await c.readBytes(1)).toString(), 'N');
      c.write(msg.sslRequest());
      assert.equal((await c.readBytes(1)).toString(), 'N');
      await c.startup(login);
      assert.deepEqual(await c.rows('select 2'), [['2']]);
    } finally {
      await c.end();
    }
    const g = await ProtoConn.connect(proxy.port);
    try {
      g.write(msg.gssencRequest());
      assert.equal((await g.readBytes(1)).toString(), 'N');
      await g.startup(login);
      assert.deepEqual(await g.rows('select 3'), [['3']]);
    } finally {
      await g.end();
    }
  });

  test('data sent right behind SSLRequest: N, then FATAL 08P01, like upstream', async () => {
    const answer = async (port: number, host: string): Promise<{ first: string; fields: Record<string, string> }> => {
      const c = await ProtoConn.connect(port, host);
      try {
        c.write(Buffer.concat([msg.sslRequest(), msg.startup({ user: login.user, database: login.database })]));
        const first = (await c.readBytes(1)).toString('latin1');
        const rest = first === 'N' ? await c.readUntilClose(5000) : [];
        const err = rest.find((f) => f.type === 'E');
        return { first, fields: err ? errorFields(err.body) : {} };
      } finally {
        c.destroy();
      }
    };
    const direct = await answer(up.port, up.host);
    const proxied = await answer(proxy.port, '127.0.0.1');
    assert.equal(direct.first, 'N');
    assert.equal(proxied.first, direct.first, 'the answer to SSLRequest comes before the error');
    const pick = (f: Record<string, string>): Record<string, string | undefined> => ({ S: f.S, V: f.V, C: f.C, M: f.M, D: f.D });
    assert.deepEqual(pick(proxied.fields), pick(direct.fields));
  });

  test('startup parameters reach upstream (application_name, options)', async () => {
    const script: Script = async (c) => c.query(`select current_setting('application_name'), current_setting('search_path'), current_setting('work_mem')`);
    for (const [port, host] of [[up.port, up.host], [proxy.port, '127.0.0.1']] as const) {
      const c = await ProtoConn.open(port, { ...login, params: { application_name: 'proto-app', options: '-c search_path=pg_catalog -c work_mem=7MB', extra_float_digits: '3', DateStyle: 'ISO' } }, host);
      try {
        const rows = normalize(await script(c));
        assert.equal(rows[1], 'D ["proto-app", "pg_catalog", "7MB"]', `port ${port}`);
        assert.deepEqual(await c.rows(`select current_setting('extra_float_digits'), current_setting('DateStyle')`), [['3', 'ISO, MDY']], 'extra_float_digits/DateStyle from the startup packet');
        assert.ok(normalize(c.startupFrames).includes('S application_name=proto-app'));
      } finally {
        await c.end();
      }
    }
  });
});

describe('unsolicited upstream messages', () => {
  test('a NotificationResponse reaches an idle client that sent nothing', async () => {
    const channel = `${T}_chan`;
    for (const [port, host] of [[up.port, up.host], [proxy.port, '127.0.0.1']] as const) {
      const listener = await ProtoConn.open(port, login, host);
      const notifier = await ProtoConn.open(up.port, login, up.host);
      try {
        await listener.rows(`listen ${channel}`);
        await notifier.rows(`notify ${channel}, 'payload-${port}'`);
        const f = await listener.next(5000);
        assert.match(describeFrame(f), new RegExp(`^A pid=\\d+ ${channel} "payload-${port}"$`));
        // The notifying backend's pid as seen by the listener is the real upstream pid.
        const pid = (await notifier.rows('select pg_backend_pid()'))[0]![0];
        assert.equal(String(f.body.readInt32BE(0)), pid);
      } finally {
        await listener.end();
        await notifier.end();
      }
    }
  });

  test('BackendKeyData is upstream\'s own (pid matches pg_backend_pid())', async () => {
    const c = await ProtoConn.open(proxy.port, login);
    try {
      const k = c.startupFrames.find((f) => f.type === 'K');
      assert.ok(k, 'BackendKeyData sent');
      const pid = (await c.rows('select pg_backend_pid()'))[0]![0];
      assert.equal(String(k.body.readInt32BE(0)), pid);
      assert.equal(dataRow(Buffer.from([0, 0])).length, 0);
    } finally {
      await c.end();
    }
  });
});

describe('malformed frontend messages are answered as upstream answers them', () => {
  // Each case runs through a fresh proxy too, whose catalog cache is cold: its first statement makes
  // the proxy run its own catalog query on the session, which must not change what the client sees.
  const cases: Array<[string, () => Buffer[]]> = [
    ['Flush with trailing bytes, then a batch (upstream: ERROR, skip until Sync)', () => [rawMsg('H', '\x01\x02\x03'), msg.parse('', 'select 1'), msg.bind('', ''), msg.execute(''), msg.sync()]],
    ['Sync with trailing bytes', () => [rawMsg('S', '\x01'), msg.query('select 2')]],
    ['Describe with a bad subtype', () => [rawMsg('D', 'Xfoo\0'), msg.sync(), msg.query('select 3')]],
    ['Close with a bad subtype', () => [rawMsg('C', 'Zfoo\0'), msg.sync()]],
    ['Execute with a truncated body', () => [msg.parse('', 'select 1'), msg.bind('', ''), rawMsg('E', '\0\0'), msg.sync()]],
    ['CopyData and CopyDone outside COPY are ignored', () => [msg.copyData('stray'), msg.copyDone(), msg.sync(), msg.query('select 4')]],
    ['Query without its NUL terminator (upstream: ERROR, session goes on)', () => [rawMsg('Q', 'select 5')]],
    ['Parse without NUL terminators (upstream: ERROR, session goes on)', () => [rawMsg('P', 'stmt'), msg.sync()]],
    ['Bind naming a statement that was never parsed, with parameters', () => [msg.bind('', 'ghost', ['1', '2']), msg.execute(''), msg.sync()]],
  ];
  for (const [name, parts] of cases) {
    test(name, async () => {
      const script: Script = async (c) => {
        c.write(...parts());
        return quiet(c);
      };
      await differential(script);
      const fresh = await startProxy(env.pgUrl);
      try {
        await differential(script, { through: fresh });
      } finally {
        await fresh.close();
      }
    });
  }

  test('Flush with trailing bytes, then a batch in a later write (fresh proxy)', async () => {
    const fresh = await startProxy(env.pgUrl);
    try {
      await differential(async (c) => {
        c.write(rawMsg('H', '\x01\x02\x03'));
        const a = await quiet(c, 300);
        c.write(msg.parse('', 'select 1'), msg.bind('', ''), msg.execute(''), msg.sync());
        return [...a, ...(await c.readUntilReady())];
      }, { through: fresh });
    } finally {
      await fresh.close();
    }
  });

  test('an unknown message type is FATAL 08P01, like upstream', async () => {
    const answer = async (port: number, host: string): Promise<Record<string, string | undefined>> => {
      const c = await ProtoConn.open(port, login, host);
      try {
        c.write(rawMsg('y', ''));
        const frames = await c.readUntilClose(5000);
        assert.equal(frames.length, 1);
        const f = errorFields(frames[0]!.body);
        return { S: f.S, V: f.V, C: f.C, M: f.M };
      } finally {
        c.destroy();
      }
    };
    const direct = await answer(up.port, up.host);
    assert.deepEqual(await answer(proxy.port, '127.0.0.1'), direct);
    assert.deepEqual(direct, { S: 'FATAL', V: 'FATAL', C: '08P01', M: 'invalid frontend message type 121' });
  });
});

describe('connection end', () => {
  test('a client that half-closes after its last query still gets the replies (as from upstream)', async () => {
    const run = async (port: number, host: string): Promise<string[]> => {
      const c = await ProtoConn.open(port, login, host);
      try {
        c.socket.end(msg.query('select pg_sleep(0.2); select 1 as half_closed'));
        return normalize(await c.readUntilClose(5000));
      } finally {
        c.destroy();
      }
    };
    const direct = await run(up.port, up.host);
    assert.equal(direct.at(-1), 'Z I');
    assert.deepEqual(await run(proxy.port, '127.0.0.1'), direct);
  });

  test('Terminate right behind a query: the query still runs to completion upstream', async () => {
    const table = `${T}_term`;
    const c0 = await ProtoConn.open(up.port, login, up.host);
    await c0.rows(`drop table if exists ${table}; create table ${table} (src text)`);
    try {
      for (const [port, host, src] of [[up.port, up.host, 'direct'], [proxy.port, '127.0.0.1', 'proxy']] as const) {
        const c = await ProtoConn.open(port, login, host);
        c.write(msg.query(`select pg_sleep(0.3); insert into ${table} values ('${src}')`), msg.terminate());
        await c.readUntilClose(5000).catch(() => []);
        c.destroy();
      }
      await new Promise((r) => setTimeout(r, 1500));
      assert.deepEqual((await c0.rows(`select src from ${table} order by src`)).map((r) => r[0]), ['direct', 'proxy']);
    } finally {
      await c0.rows(`drop table if exists ${table}`);
      await c0.end();
    }
  });
});
