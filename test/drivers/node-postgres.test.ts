// node-postgres (pg, pg-cursor, pg-copy-streams) through the proxy. Most scenarios run twice, first
// against upstream directly and then through the proxy, and must give identical results and
// identical backend message traces: a client must not be able to tell the proxy is there.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import pg from 'pg';
import Cursor from 'pg-cursor';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { testEnv } from '../harness/env.js';
import { startProxy, type RunningProxy } from '../harness/proxy.js';
import { errInfo, normResult, traceMessages, withTimeout, type TracedMessage } from './common.js';

const env = testEnv();
const T = `drv_pg_${process.pid}`;
let proxy: RunningProxy;

before(async () => {
  proxy = await startProxy(env.pgUrl);
});
after(async () => {
  // pg-pool's end() does not wait for sockets to close; let sessions see their Terminate first, or
  // the shutdown's FATAL would reach clients that already said goodbye.
  await waitForSessions(0, 3000).catch(() => {});
  await proxy?.close();
});

async function waitForSessions(n: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (proxy.server.sessionCount !== n) {
    if (Date.now() > deadline) throw new Error(`proxy still has ${proxy.server.sessionCount} sessions, expected ${n}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

type Target = 'upstream' | 'proxy';
const urlOf = (t: Target): string => (t === 'upstream' ? env.pgUrl : proxy.url());

interface Run<R> {
  result: R;
  trace: TracedMessage[];
}

/** Connects a traced client to the target, runs fn, always ends the client. */
async function runOn<R>(target: Target, fn: (c: pg.Client, trace: TracedMessage[]) => Promise<R>, cfg: pg.ClientConfig = {}): Promise<Run<R>> {
  const client = new pg.Client({ connectionString: urlOf(target), ...cfg });
  const trace = traceMessages(client);
  client.on('error', () => {}); // a broken connection surfaces as a failed query instead
  await withTimeout(client.connect(), 10_000, `connect to ${target}`);
  try {
    const result = await withTimeout(fn(client, trace), 60_000, `scenario on ${target}`);
    return { result, trace };
  } finally {
    await client.end().catch(() => {});
  }
}

/** Runs the same scenario against upstream, then through the proxy; both must match exactly. */
async function differential<R>(fn: (c: pg.Client, trace: TracedMessage[]) => Promise<R>, cfg: pg.ClientConfig = {}, opts: { compareTrace?: boolean } = {}): Promise<Run<R>> {
  const up = await runOn('upstream', fn, cfg);
  const px = await runOn('proxy', fn, cfg);
  assert.deepEqual(px.result, up.result, 'result through the proxy differs from upstream directly');
  if (opts.compareTrace !== false) assert.deepEqual(px.trace, up.trace, 'backend message trace through the proxy differs from upstream directly');
  return px;
}

/** Query that must fail; returns the error's fields. */
async function failing(c: pg.Client | pg.Pool, text: string, values?: unknown[]): Promise<Record<string, unknown>> {
  try {
    await c.query(text, values);
  } catch (e) {
    return errInfo(e);
  }
  assert.fail(`expected ${text} to fail`);
}

const count = (trace: TracedMessage[], name: string): number => trace.filter((m) => m.name === name).length;

describe('node-postgres pg.Client', () => {
  test('simple queries: many types, several statements in one Query, empty query', async () => {
    const run = await differential(async (c) => {
      const types = await c.query(`select 1 as int4, 2::int2 as int2, 9007199254740993::int8 as int8, 1.25::numeric(10,3) as num,
        0.1::float8 as f8, 0.1::float4 as f4, true as b, 'héllo ✓'::text as t, '\\x00ff10'::bytea as by, date '2021-02-03' as d,
        timestamptz '2021-02-03 04:05:06.789+02' as tstz, timestamp '2021-02-03 04:05:06' as ts, interval '1 day 2 hours' as iv,
        '{1,2,NULL}'::int[] as arr, '{"a":[1,2]}'::json as j, '{"b": {"c": 1}}'::jsonb as jb, null::text as n,
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid as u, '192.168.0.1/24'::inet as ip, point(1,2) as pt`);
      const multi = await c.query(`select 1 as a; select 'x' as b, 'y' as c; set search_path = public; show search_path`);
      const empty = await c.query('');
      const ddl = await c.query(`create temp table ${T}_tmp (a int); insert into ${T}_tmp select generate_series(1, 5); update ${T}_tmp set a = a + 1 where a > 2; delete from ${T}_tmp where a = 1`);
      return { types: normResult(types), multi: normResult(multi as unknown as pg.QueryResult[]), empty: normResult(empty), ddl: normResult(ddl as unknown as pg.QueryResult[]) };
    });
    const types = run.result.types as { rows: Array<Record<string, unknown>> };
    assert.equal(types.rows[0]!.int8, '9007199254740993');
    assert.equal(types.rows[0]!.t, 'héllo ✓');
    assert.deepEqual(types.rows[0]!.by, Buffer.from([0, 0xff, 0x10]));
    assert.deepEqual(types.rows[0]!.arr, [1, 2, null]);
    assert.deepEqual(types.rows[0]!.jb, { b: { c: 1 } });
    const ddl = run.result.ddl as Array<{ command: string; rowCount: number }>;
    assert.deepEqual(ddl.map((r) => [r.command, r.rowCount]), [['CREATE', null], ['INSERT', 5], ['UPDATE', 3], ['DELETE', 1]]);
    assert.equal(count(run.trace, 'emptyQuery'), 1);
  });

  test('parameterized queries (extended protocol, unnamed statement)', async () => {
    const run = await differential(async (c) => {
      const out: unknown[] = [];
      out.push(normResult(await c.query('select $1::int + 1 as n, $2::text as t, $3::jsonb as j, $4::int[] as arr, $5::bytea as b, $6::timestamptz as ts, $7::text as nul',
        [41, 'it\'s "quoted"; drop table x; --', JSON.stringify({ k: [1, 'two'] }), [1, 2, 3], Buffer.from([0, 1, 2, 253, 254, 255]), new Date(Date.UTC(2020, 0, 2, 3, 4, 5, 678)), null])));
      // Parameters whose types upstream infers, and a query with no parameters at all.
      out.push(normResult(await c.query('select $1 || $2 as cat, length($1) as len', ['ab', 'cd'])));
      out.push(normResult(await c.query('select generate_series(1, $1::int) as g', [50])));
      out.push(errInfo(await c.query('select $1::int', ['not-a-number']).catch((e: unknown) => e)));
      out.push(normResult(await c.query('select $1::int as after_error', [7])));
      return out;
    });
    const first = (run.result[0] as { rows: Array<Record<string, unknown>> }).rows[0]!;
    assert.equal(first.n, 42);
    assert.equal(first.t, 'it\'s "quoted"; drop table x; --');
    assert.deepEqual(first.b, Buffer.from([0, 1, 2, 253, 254, 255]));
    assert.equal((first.ts as Date).toISOString(), '2020-01-02T03:04:05.678Z');
    assert.equal((run.result[3] as { code: string }).code, '22P02');
    assert.equal((run.result[4] as { rows: Array<Record<string, unknown>> }).rows[0]!.after_error, 7);
    assert.ok(count(run.trace, 'parseComplete') >= 5, 'extended protocol was used');
  });

  test('named prepared statements are parsed once and reused', async () => {
    const tbl = `${T}_named`;
    const run = await differential(async (c, trace) => {
      await c.query(`drop table if exists ${tbl}; create table ${tbl} (id int primary key, v text)`);
      try {
        const parsesBefore = count(trace, 'parseComplete');
        const rows: unknown[] = [];
        for (let i = 0; i < 20; i++) {
          const r = await c.query({ name: 'drv_ins', text: `insert into ${tbl} (id, v) values ($1, $2) returning id, v`, values: [i, `v${i}`] });
          rows.push(r.rows[0]);
        }
        for (let i = 0; i < 5; i++) {
          const r = await c.query({ name: 'drv_sel', text: `select count(*)::int as n, max(id) as m from ${tbl} where id >= $1`, values: [i] });
          rows.push(r.rows[0]);
        }
        const parses = count(trace, 'parseComplete') - parsesBefore;
        const prepared = await c.query(`select name, statement, parameter_types::text[] as types from pg_prepared_statements order by name`);
        return { rows, parses, prepared: prepared.rows };
      } finally {
        await c.query(`drop table if exists ${tbl}`);
      }
    });
    assert.equal(run.result.parses, 2, 'each named statement parsed exactly once');
    assert.deepEqual(run.result.prepared.map((r: { name: string }) => r.name), ['drv_ins', 'drv_sel']);
    assert.deepEqual(run.result.prepared[0].types, ['integer', 'text']);
    assert.deepEqual(run.result.rows[19], { id: 19, v: 'v19' });
    assert.deepEqual(run.result.rows[24], { n: 16, m: 19 });
  });

  test('binary results (binary: true) and rowMode array', async () => {
    const raw = {
      getTypeParser: (_oid: number, format?: string) => (v: string | Buffer) => (format === 'binary' ? `bin:${Buffer.from(v).toString('hex')}` : `txt:${String(v)}`),
    };
    // pg's own binary parsers only cope with some types (its DataRow decoding is UTF-8 text, lossy for
    // bytes >= 0x80), so the parsed query sticks to those; the raw one covers more types byte for byte.
    const parsedSql = `select 1::int4 as i4, 2::int2 as i2, true as b, 2.0::float8 as f8, 'hello'::text as t, $1::int as p`;
    const rawSql = `select 1::int4 as i4, (-2)::int2 as i2, 72623859790382856::int8 as i8, true as b, 1.5::float8 as f8, 'hello'::text as t,
      timestamptz '2000-01-01 00:00:01+00' as ts, '{1,2}'::int4[] as arr, $1::int as p`;
    const run = await differential(async (c) => {
      const parsed = await c.query(parsedSql, [5]);
      const rawRes = await c.query({ text: rawSql, values: [6], types: raw });
      const arr = await c.query({ text: 'select $1::int as a, $2::text as b', values: [1, 'x'], rowMode: 'array' });
      return { parsed: normResult(parsed), raw: normResult(rawRes), arr: normResult(arr) };
    }, { binary: true } as pg.ClientConfig);
    const parsed = run.result.parsed as { rows: Array<Record<string, unknown>>; fields: Array<{ format: string }> };
    assert.ok(parsed.fields.every((f) => f.format === 'binary'), 'RowDescription through the proxy reports binary formats');
    assert.equal(parsed.rows[0]!.i4, 1);
    assert.equal(parsed.rows[0]!.i2, 2);
    assert.equal(parsed.rows[0]!.b, true);
    assert.equal(parsed.rows[0]!.f8, 2);
    assert.equal(parsed.rows[0]!.p, 5);
    const rawRow = (run.result.raw as { rows: Array<Record<string, string>> }).rows[0]!;
    assert.equal(rawRow.i4, 'bin:00000001');
    // pg-protocol decodes DataRow fields as UTF-8 text even in binary format, so ff fe arrives as two U+FFFD.
    assert.equal(rawRow.i2, 'bin:efbfbdefbfbd');
    assert.equal(rawRow.t, 'bin:68656c6c6f');
    assert.equal(rawRow.p, 'bin:00000006');
    assert.equal(rawRow.i8, 'bin:0102030405060708');
    assert.equal(rawRow.ts, 'bin:00000000000f4240', 'timestamptz binary: 1 s after 2000-01-01 in microseconds');
    const arrRows = (run.result.arr as { rows: unknown[][]; fields: Array<{ format: string }> });
    assert.equal(arrRows.rows[0]!.length, 2);
    assert.equal(arrRows.rows[0]![1], 'x');
    assert.ok(arrRows.fields.every((f) => f.format === 'binary'));
  });

  test('error mid-transaction, then ROLLBACK, connection still usable', async () => {
    const tbl = `${T}_tx`;
    const run = await differential(async (c) => {
      await c.query(`drop table if exists ${tbl}; create table ${tbl} (a int primary key)`);
      try {
        const out: unknown[] = [];
        await c.query('begin');
        await c.query(`insert into ${tbl} values (1), (2)`);
        out.push(await failing(c, `insert into ${tbl} values (2)`)); // unique violation
        out.push(await failing(c, 'select 1')); // 25P02: in failed transaction
        out.push(await failing(c, 'select $1::int', [1])); // same, extended protocol
        out.push(normResult(await c.query('rollback')));
        out.push(normResult(await c.query(`select count(*)::int as n from ${tbl}`)));
        // A parameterized error inside a transaction, then ROLLBACK via the extended protocol.
        await c.query('begin');
        await c.query(`insert into ${tbl} values ($1)`, [10]);
        out.push(await failing(c, 'select 1 / $1::int', [0]));
        out.push(normResult(await c.query({ text: 'rollback', values: [] })));
        out.push(normResult(await c.query(`select count(*)::int as n from ${tbl}`)));
        // Savepoints: an error rolled back to the savepoint keeps the transaction alive.
        await c.query('begin');
        await c.query(`insert into ${tbl} values (100)`);
        await c.query('savepoint s1');
        out.push(await failing(c, `insert into ${tbl} values (100)`));
        await c.query('rollback to savepoint s1');
        await c.query(`insert into ${tbl} values (101)`);
        await c.query('commit');
        out.push(normResult(await c.query(`select array_agg(a order by a) as a from ${tbl}`)));
        return out;
      } finally {
        await c.query(`drop table if exists ${tbl}`);
      }
    });
    const r = run.result as Array<Record<string, any>>;
    assert.equal(r[0]!.code, '23505');
    assert.equal(r[0]!.constraint, `${tbl}_pkey`);
    assert.equal(r[1]!.code, '25P02');
    assert.equal(r[2]!.code, '25P02');
    assert.equal(r[4]!.rows[0].n, 0);
    assert.equal(r[5]!.code, '22012');
    assert.equal(r[7]!.rows[0].n, 0);
    assert.deepEqual(r[9]!.rows[0].a, [100, 101]);
    const statuses = run.trace.filter((m) => m.name === 'readyForQuery').map((m) => m.status).join('');
    assert.match(statuses, /TEE+I/, 'the failed transaction is reported as E until ROLLBACK');
  });

  test('multi-statement simple query with an error halfway matches upstream', async () => {
    const tbl = `${T}_multi`;
    const run = await differential(async (c) => {
      await c.query(`drop table if exists ${tbl}; create table ${tbl} (a int)`);
      try {
        const out: unknown[] = [];
        // Implicit transaction: everything before the error is rolled back too.
        out.push(await failing(c, `insert into ${tbl} values (1); select 1/0; insert into ${tbl} values (2)`));
        out.push(normResult(await c.query(`select count(*)::int as n from ${tbl}`)));
        // An explicit COMMIT inside the string makes the first part stick.
        out.push(await failing(c, `begin; insert into ${tbl} values (10); commit; insert into ${tbl} values (11); select 1/0; insert into ${tbl} values (12)`));
        out.push(normResult(await c.query(`select array_agg(a order by a) as a from ${tbl}`)));
        // An error inside an explicit BEGIN leaves the session in a failed transaction.
        out.push(await failing(c, `begin; insert into ${tbl} values (20); select nosuchcolumn from ${tbl}; insert into ${tbl} values (21)`));
        out.push(await failing(c, 'select 1'));
        out.push(normResult(await c.query('rollback')));
        // Syntax error: nothing at all runs.
        out.push(await failing(c, `insert into ${tbl} values (30); selec 1; insert into ${tbl} values (31)`));
        out.push(normResult(await c.query(`select array_agg(a order by a) as a from ${tbl}`)));
        return out;
      } finally {
        await c.query(`drop table if exists ${tbl}`);
      }
    });
    const r = run.result as Array<Record<string, any>>;
    assert.equal(r[0]!.code, '22012');
    assert.equal(r[1]!.rows[0].n, 0);
    assert.deepEqual(r[3]!.rows[0].a, [10]);
    assert.equal(r[4]!.code, '42703');
    assert.equal(r[5]!.code, '25P02');
    assert.equal(r[7]!.code, '42601');
    assert.deepEqual(r[8]!.rows[0].a, [10]);
    // What upstream sent before the error (e.g. the INSERT's CommandComplete) reached the client too.
    assert.ok(run.trace.some((m) => m.name === 'commandComplete' && m.text === 'INSERT 0 1'));
  });

  test('pg-cursor reads 10,000 rows in batches of 100 (portal suspension)', async () => {
    const run = await differential(async (c, trace) => {
      const cursor = c.query(new Cursor('select g, md5(g::text) as h from generate_series(1, $1::int) g', [10_000]));
      const sizes: number[] = [];
      const hash = createHash('sha256');
      let last = 0;
      let ordered = true;
      for (;;) {
        const rows = await cursor.read(100);
        sizes.push(rows.length);
        for (const r of rows as Array<{ g: number; h: string }>) {
          if (r.g !== last + 1) ordered = false;
          last = r.g;
          hash.update(`${r.g}:${r.h}\n`);
        }
        if (rows.length === 0) break;
      }
      await cursor.close();
      const after = await c.query('select 1 as ok');
      return { sizes, last, ordered, hash: hash.digest('hex'), suspended: count(trace, 'portalSuspended'), ok: after.rows[0] };
    });
    const r = run.result;
    assert.equal(r.sizes.length, 101);
    assert.ok(r.sizes.slice(0, 100).every((n: number) => n === 100));
    assert.equal(r.sizes[100], 0);
    assert.equal(r.last, 10_000);
    assert.equal(r.ordered, true);
    assert.equal(r.suspended, 100, 'each batch ended with PortalSuspended');
    assert.deepEqual(r.ok, { ok: 1 });
  });

  test('pg-cursor: two cursors interleaved on one connection, and an error inside a cursor', async () => {
    await differential(async (c) => {
      const a = c.query(new Cursor('select g from generate_series(1, 300) g'));
      const a1 = await a.read(100);
      await a.close();
      const b = c.query(new Cursor('select 1 / (g - 50) as x from generate_series(1, 100) g'));
      const b1 = await b.read(10);
      const err = await b.read(100).then(() => null, (e: unknown) => errInfo(e));
      const c2 = c.query(new Cursor('select $1::text as t', ['after']));
      const c3 = await c2.read(10);
      await c2.close();
      return { a1: a1.length, b1, err, c3 };
    });
  });

  test('COPY FROM STDIN 100,000 rows and COPY TO STDOUT back, with checksums', async () => {
    const tbl = `${T}_copy`;
    const N = 100_000;
    const lines: string[] = [];
    for (let i = 1; i <= N; i++) lines.push(`${i}\trow-${i}-${(i * 7919) % 10007}\t${i % 3 === 0 ? '\\N' : `{${i},${i + 1}}`}\n`);
    const input = lines.join('');
    const inputHash = createHash('sha256').update(input).digest('hex');
    const run = await differential(async (c) => {
      await c.query(`drop table if exists ${tbl}; create table ${tbl} (id int, t text, a int[])`);
      try {
        // Feed in uneven chunks that split lines, as real producers do.
        const chunks: Buffer[] = [];
        const buf = Buffer.from(input);
        for (let off = 0, step = 1; off < buf.length; off += step, step = (step * 31 + 7) % 65_521 + 1) chunks.push(buf.subarray(off, off + step));
        const ingest = c.query(copyFrom(`copy ${tbl} (id, t, a) from stdin`));
        await pipeline(Readable.from(chunks), ingest);
        const stats = await c.query(`select count(*)::int as n, sum(id)::text as s, count(a)::int as arrays from ${tbl}`);
        const outHash = createHash('sha256');
        let outBytes = 0;
        const reader = c.query(copyTo(`copy (select id, t, a from ${tbl} order by id) to stdout`));
        await pipeline(reader, new Writable({
          write(chunk: Buffer, _enc, cb) {
            outHash.update(chunk);
            outBytes += chunk.length;
            cb();
          },
        }));
        const binHash = createHash('sha256');
        await pipeline(c.query(copyTo(`copy (select id, t, a from ${tbl} order by id) to stdout (format binary)`)), new Writable({
          write(chunk: Buffer, _enc, cb) {
            binHash.update(chunk);
            cb();
          },
        }));
        return { rowCount: ingest.rowCount, stats: stats.rows[0], outHash: outHash.digest('hex'), outBytes, outRows: reader.rowCount, binHash: binHash.digest('hex') };
      } finally {
        await c.query(`drop table if exists ${tbl}`);
      }
    }, {}, { compareTrace: false }); // CopyData chunking from the client side is ours; results are compared
    const r = run.result;
    assert.equal(r.rowCount, N);
    assert.deepEqual(r.stats, { n: N, s: String((N * (N + 1)) / 2), arrays: N - Math.floor(N / 3) });
    assert.equal(r.outHash, inputHash, 'COPY TO gives back exactly what COPY FROM put in');
    assert.equal(r.outBytes, input.length);
    assert.equal(r.outRows, N);
  });

  test('COPY errors: bad row, and client-side CopyFail; connection stays usable', async () => {
    const tbl = `${T}_copyerr`;
    const run = await differential(async (c) => {
      await c.query(`drop table if exists ${tbl}; create table ${tbl} (id int)`);
      try {
        const out: unknown[] = [];
        const bad = c.query(copyFrom(`copy ${tbl} from stdin`));
        out.push(await pipeline(Readable.from(['1\n2\n', 'three\n', '4\n']), bad).then(() => null, (e: unknown) => errInfo(e)));
        out.push(normResult(await c.query(`select count(*)::int as n from ${tbl}`)));
        let pushed = false;
        const failingSource = new Readable({
          read() {
            if (pushed) return;
            pushed = true;
            this.push('5\n6\n');
            setTimeout(() => this.destroy(new Error('producer gave up')), 20);
          },
        });
        const aborted = c.query(copyFrom(`copy ${tbl} from stdin`));
        out.push(await pipeline(failingSource, aborted).then(() => 'no error', (e: unknown) => (e as Error).message));
        // Give the CopyFail round trip time to finish before the next query is queued.
        out.push(normResult(await withTimeout(c.query('select 42 as answer'), 5000, 'query after CopyFail')));
        out.push(normResult(await c.query(`select count(*)::int as n from ${tbl}`)));
        return out;
      } finally {
        await c.query(`drop table if exists ${tbl}`);
      }
    }, {}, { compareTrace: false });
    const r = run.result as Array<any>;
    assert.equal(r[0].code, '22P02');
    assert.equal(r[1].rows[0].n, 0);
    assert.deepEqual(r[3].rows, [{ answer: 42 }]);
    assert.equal(r[4].rows[0].n, 0);
  });

  test('NoticeResponse from RAISE NOTICE is delivered with all its fields', async () => {
    const run = await differential(async (c) => {
      const notices: unknown[] = [];
      c.on('notice', (n) => notices.push(errInfo(n)));
      await c.query(`do $$ begin raise notice 'hello %', 42; raise warning 'careful' using detail = 'some detail', hint = 'a hint', errcode = '01000'; end $$`);
      await c.query(`do $$ begin raise notice 'from extended %', 1; end $$`, []);
      await c.query(`set client_min_messages = warning`);
      await c.query(`do $$ begin raise notice 'suppressed'; raise warning 'shown'; end $$`);
      await c.query(`drop table if exists ${T}_never_existed`); // NOTICE: table does not exist, skipping (but min level warning)
      await c.query(`reset client_min_messages`);
      await c.query(`drop table if exists ${T}_never_existed`);
      return notices;
    });
    const n = run.result as Array<Record<string, string>>;
    assert.equal(n.length, 5);
    assert.equal(n[0]!.message, 'hello 42');
    assert.equal(n[0]!.severity, 'NOTICE');
    assert.equal(n[0]!.code, '00000');
    assert.equal(n[1]!.severity, 'WARNING');
    assert.equal(n[1]!.detail, 'some detail');
    assert.equal(n[1]!.hint, 'a hint');
    assert.equal(n[2]!.message, 'from extended 1');
    assert.equal(n[3]!.message, 'shown');
    assert.equal(n[4]!.message, `table "${T}_never_existed" does not exist, skipping`);
  });

  test('ParameterStatus: startup set identical to upstream, and sent after SET application_name', async () => {
    const run = await differential(async (c, trace) => {
      const startup = trace.filter((m) => m.name === 'parameterStatus').map((m) => [m.param, m.value]);
      const before = trace.length;
      await c.query(`set application_name = 'drv_pg_app'`);
      const afterSimple = trace.slice(before).filter((m) => m.name === 'parameterStatus');
      const before2 = trace.length;
      await c.query({ text: `set application_name = 'drv_pg_app2'`, values: [] }); // extended protocol
      const afterExtended = trace.slice(before2).filter((m) => m.name === 'parameterStatus');
      await c.query(`set timezone = 'Asia/Tokyo'`);
      const ts = await c.query(`select current_setting('application_name') as app, current_setting('TimeZone') as tz`);
      return { startup, afterSimple, afterExtended, ts: ts.rows[0] };
    }, { application_name: 'drv_pg_start' });
    const r = run.result;
    const startup = Object.fromEntries(r.startup as Array<[string, string]>);
    assert.equal(startup.application_name, 'drv_pg_start');
    assert.ok(startup.server_version, 'server_version reported at startup');
    assert.deepEqual(r.afterSimple, [{ name: 'parameterStatus', param: 'application_name', value: 'drv_pg_app' }]);
    assert.deepEqual(r.afterExtended, [{ name: 'parameterStatus', param: 'application_name', value: 'drv_pg_app2' }]);
    assert.deepEqual(r.ts, { app: 'drv_pg_app2', tz: 'Asia/Tokyo' });
    assert.ok(run.trace.some((m) => m.name === 'parameterStatus' && m.param === 'TimeZone' && m.value === 'Asia/Tokyo'));
  });

  test('pipeline mode (pg pipeline: true) with an error in the middle', async () => {
    const run = await differential(async (c) => {
      const qs: Promise<pg.QueryResult>[] = [];
      for (let i = 0; i < 30; i++) {
        if (i === 10) qs.push(c.query('select 1 / $1::int as boom', [0]));
        else if (i === 20) qs.push(c.query('select nosuch'));
        else if (i % 2) qs.push(c.query('select $1::int * 2 as v', [i]));
        else qs.push(c.query(`select ${i} as v`));
      }
      const settled = await Promise.allSettled(qs);
      return settled.map((s) => (s.status === 'fulfilled' ? { ok: s.value.rows } : { err: errInfo(s.reason) }));
    }, { pipeline: true } as pg.ClientConfig);
    const r = run.result as Array<{ ok?: unknown; err?: { code: string } }>;
    assert.equal(r[10]!.err?.code, '22012');
    assert.equal(r[20]!.err?.code, '42703');
    assert.deepEqual(r[11]!.ok, [{ v: 22 }]);
    assert.deepEqual(r[29]!.ok, [{ v: 58 }]);
  });
});

describe('node-postgres LISTEN/NOTIFY and cancel', () => {
  test('LISTEN/NOTIFY between two clients through the proxy, and from a direct client', async () => {
    const listener = new pg.Client({ connectionString: proxy.url() });
    const notifier = new pg.Client({ connectionString: proxy.url() });
    const direct = new pg.Client({ connectionString: env.pgUrl });
    await Promise.all([listener.connect(), notifier.connect(), direct.connect()]);
    try {
      const got: pg.Notification[] = [];
      let wake: (() => void) | undefined;
      listener.on('notification', (n) => {
        got.push(n);
        wake?.();
      });
      const waitFor = (n: number, what: string): Promise<void> =>
        withTimeout(new Promise<void>((resolve) => {
          const check = (): void => (got.length >= n ? resolve() : void (wake = check));
          check();
        }), 5000, what);
      const chan = `drv_chan_${process.pid}`;
      await listener.query(`listen ${chan}`);
      const notifierPid = (await notifier.query('select pg_backend_pid() as pid')).rows[0].pid as number;
      // The listener is idle (nothing in flight): the notification must still be forwarded at once.
      await notifier.query(`notify ${chan}, 'first'`);
      await waitFor(1, 'notification while the listener is idle');
      await notifier.query('select pg_notify($1, $2)', [chan, 'second ✓ payload']);
      await waitFor(2, 'notification via pg_notify');
      // A notification from a transaction is only delivered on COMMIT.
      await notifier.query('begin');
      await notifier.query(`notify ${chan}, 'in-tx'`);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(got.length, 2, 'not delivered before COMMIT');
      await notifier.query('commit');
      await waitFor(3, 'notification after COMMIT');
      await direct.query(`notify ${chan}, 'from direct'`);
      await waitFor(4, 'notification from a client not using the proxy');
      // Notifications arriving while the listener is busy with its own query.
      const busy = listener.query('select pg_sleep(0.3) as s');
      await new Promise((r) => setTimeout(r, 50));
      await notifier.query(`notify ${chan}, 'while busy'`);
      await busy;
      await waitFor(5, 'notification while the listener runs a query');
      assert.deepEqual(got.map((n) => [n.channel, n.payload]), [[chan, 'first'], [chan, 'second ✓ payload'], [chan, 'in-tx'], [chan, 'from direct'], [chan, 'while busy']]);
      assert.equal(got[0]!.processId, notifierPid, 'processId is the notifying upstream backend');
      await listener.query(`unlisten ${chan}`);
      await notifier.query(`notify ${chan}, 'after unlisten'`);
      await listener.query('select 1');
      assert.equal(got.length, 5);
    } finally {
      await Promise.all([listener.end(), notifier.end(), direct.end()]);
    }
  });

  test('BackendKeyData is upstream\'s, and a CancelRequest through the proxy cancels the query', async () => {
    const c = new pg.Client({ connectionString: proxy.url() });
    await c.connect();
    try {
      const pid = (await c.query('select pg_backend_pid() as pid')).rows[0].pid as number;
      const key = c as unknown as { processID: number; secretKey: number };
      assert.equal(key.processID, pid, 'BackendKeyData carries the upstream backend pid');
      const started = Date.now();
      const sleeping = c.query('select pg_sleep(20)').then(() => null, (e: unknown) => errInfo(e));
      await new Promise((r) => setTimeout(r, 300));
      await new Promise<void>((resolve, reject) => {
        const s = net.connect(proxy.port, '127.0.0.1', () => {
          const pkt = Buffer.alloc(16);
          pkt.writeInt32BE(16, 0);
          pkt.writeInt32BE(80877102, 4);
          pkt.writeInt32BE(key.processID, 8);
          pkt.writeInt32BE(key.secretKey, 12);
          s.end(pkt);
        });
        s.on('error', reject);
        s.on('close', () => resolve());
      });
      const err = await withTimeout(sleeping, 10_000, 'cancelled query to fail');
      assert.equal(err?.code, '57014', 'canceling statement due to user request');
      assert.ok(Date.now() - started < 10_000);
      assert.deepEqual((await c.query('select 1 as still_ok')).rows, [{ still_ok: 1 }]);
    } finally {
      await c.end();
    }
  });
});

describe('node-postgres pg.Pool', () => {
  test('concurrent queries, transactions on checked-out clients, release and reuse', async () => {
    const tbl = `${T}_pool`;
    const pool = new pg.Pool({ connectionString: proxy.url(), max: 4 });
    try {
      await pool.query(`drop table if exists ${tbl}; create table ${tbl} (id serial primary key, v int)`);
      const res = await Promise.all(Array.from({ length: 60 }, (_, i) => pool.query('select pg_backend_pid() as pid, $1::int as i, pg_sleep(0.005)::text as s', [i])));
      assert.deepEqual(res.map((r) => r.rows[0].i), Array.from({ length: 60 }, (_, i) => i), 'every query got its own answer');
      const pids = new Set(res.map((r) => r.rows[0].pid));
      assert.ok(pids.size >= 1 && pids.size <= 4, `pool used ${pids.size} connections`);

      const commitClient = await pool.connect();
      const rollbackClient = await pool.connect();
      try {
        await commitClient.query('begin');
        await rollbackClient.query('begin');
        await commitClient.query(`insert into ${tbl} (v) values ($1), ($2)`, [1, 2]);
        await rollbackClient.query(`insert into ${tbl} (v) values ($1)`, [3]);
        // Isolation: the other session does not see uncommitted rows.
        assert.equal((await pool.query(`select count(*)::int as n from ${tbl}`)).rows[0].n, 0);
        await commitClient.query('commit');
        await assert.rejects(rollbackClient.query('select 1/0'), { code: '22012' });
        await rollbackClient.query('rollback');
      } finally {
        commitClient.release();
        rollbackClient.release();
      }
      const rows = await pool.query(`select v from ${tbl} order by v`);
      assert.deepEqual(rows.rows, [{ v: 1 }, { v: 2 }]);
      // Errors on pool.query do not poison the pooled connections.
      const mixed = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => pool.query(i % 5 === 0 ? 'select 1/0' : 'select $1::int as i', i % 5 === 0 ? [] : [i])));
      assert.equal(mixed.filter((m) => m.status === 'rejected').length, 4);
      assert.equal((await pool.query('select 1 as ok')).rows[0].ok, 1);
    } finally {
      await pool.query(`drop table if exists ${tbl}`).catch(() => {});
      await pool.end();
    }
  });
});

describe('node-postgres connection lifecycle', () => {
  async function upstreamSessions(direct: pg.Client, app: string): Promise<number> {
    return (await direct.query('select count(*)::int as n from pg_stat_activity where application_name = $1', [app])).rows[0].n as number;
  }
  async function waitUpstreamSessions(direct: pg.Client, app: string, n: number, ms: number): Promise<number> {
    const deadline = Date.now() + ms;
    for (;;) {
      const got = await upstreamSessions(direct, app);
      if (got === n || Date.now() > deadline) return got;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  test('client.end(): the upstream backend goes away too', async () => {
    const app = `${T}_end`;
    const direct = new pg.Client({ connectionString: env.pgUrl });
    await direct.connect();
    try {
      const c = new pg.Client({ connectionString: proxy.url(), application_name: app });
      await c.connect();
      await c.query('select 1');
      assert.equal(await upstreamSessions(direct, app), 1);
      await c.end();
      assert.equal(await waitUpstreamSessions(direct, app, 0, 3000), 0, 'upstream session closed after Terminate');
    } finally {
      await direct.end();
    }
  });

  test('client vanishes mid-transaction (no Terminate): upstream rolls back and releases its locks', async () => {
    const app = `${T}_vanish`;
    const tbl = `${T}_vanish`;
    const direct = new pg.Client({ connectionString: env.pgUrl });
    await direct.connect();
    try {
      await direct.query(`drop table if exists ${tbl}; create table ${tbl} (id int primary key, v int); insert into ${tbl} values (1, 0)`);
      const c = new pg.Client({ connectionString: proxy.url(), application_name: app });
      c.on('error', () => {});
      await c.connect();
      await c.query('begin');
      await c.query(`update ${tbl} set v = 99 where id = 1`);
      // Kill the TCP connection the way a crashed process would.
      (c as unknown as { connection: { stream: import('node:net').Socket } }).connection.stream.destroy();
      assert.equal(await waitUpstreamSessions(direct, app, 0, 3000), 0, 'upstream session closed after the client vanished');
      await direct.query(`set lock_timeout = '2s'`);
      const row = await direct.query(`select v from ${tbl} where id = 1 for update`);
      assert.deepEqual(row.rows, [{ v: 0 }], 'the update was rolled back and the row lock released');
    } finally {
      await direct.query(`drop table if exists ${tbl}`).catch(() => {});
      await direct.end();
    }
  });

  test('pg_terminate_backend on the upstream backend: the client sees exactly what upstream sends', async () => {
    const direct = new pg.Client({ connectionString: env.pgUrl });
    await direct.connect();
    try {
      const outcome = async (target: Target): Promise<unknown> => {
        const c = new pg.Client({ connectionString: urlOf(target) });
        const errors: unknown[] = [];
        c.on('error', (e) => errors.push(errInfo(e)));
        const ended = new Promise<void>((r) => c.on('end', () => r()));
        await c.connect();
        const pid = (await c.query('select pg_backend_pid() as pid')).rows[0].pid as number;
        await direct.query('select pg_terminate_backend($1)', [pid]);
        await withTimeout(ended, 5000, `${target} client to see the connection end`);
        const after = await c.query('select 1').then(() => 'query worked?!', (e: unknown) => (e as Error).message);
        return { errors, after };
      };
      const up = await outcome('upstream');
      const px = await outcome('proxy');
      assert.deepEqual(px, up);
      const errs = (px as { errors: Array<{ code?: string }> }).errors;
      assert.equal(errs[0]?.code, '57P01', 'terminating connection due to administrator command');
    } finally {
      await direct.end();
    }
  });

  test('16 MB values both ways: a Bind parameter, a result value, and a simple-query literal', async () => {
    const big = 'abcdefghij'.repeat(1_600_000) + 'é✓';
    const run = await differential(async (c) => {
      const r1 = await c.query('select md5($1::text) as h, length($1::text) as n', [big]);
      const r2 = await c.query('select repeat($1::text, 2000000) as v', ['abcdefgh']);
      const r3 = await c.query(`select length('${big}') as n`);
      return { r1: r1.rows, len2: (r2.rows[0].v as string).length, md5_2: createHash('md5').update(r2.rows[0].v as string).digest('hex'), r3: r3.rows };
    }, {}, { compareTrace: false });
    assert.deepEqual(run.result.r1, [{ h: createHash('md5').update(big).digest('hex'), n: big.length }]);
    assert.equal(run.result.len2, 16_000_000);
    assert.deepEqual(run.result.r3, [{ n: big.length }]);
  });
});

describe('node-postgres session cleanup', () => {
  test('every client above has ended, and the proxy has closed all its sessions', async () => {
    await waitForSessions(0, 3000);
  });
});
