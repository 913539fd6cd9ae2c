// postgres.js through the proxy. It pipelines aggressively (many queries in flight on one socket),
// prepares by default, and sends Parse/Describe/Flush before Bind/Execute/Sync for queries with
// parameters, so it exercises the proxy's request boundaries harder than most clients. Scenarios run
// against upstream directly and through the proxy, and must give identical results.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import postgres from 'postgres';
import { testEnv } from '../harness/env.js';
import { startProxy, type RunningProxy } from '../harness/proxy.js';
import { withTimeout } from './common.js';

const env = testEnv();
const T = `drv_pgjs_${process.pid}`;
let proxy: RunningProxy;

before(async () => {
  proxy = await startProxy(env.pgUrl);
});
after(async () => {
  const deadline = Date.now() + 3000;
  while (proxy.server.sessionCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await proxy?.close();
});

type Target = 'upstream' | 'proxy';
type Sql = postgres.Sql<Record<string, never>>;
const urlOf = (t: Target): string => (t === 'upstream' ? env.pgUrl : proxy.url());

interface Events {
  notices: unknown[];
  parameters: Array<[string, string]>;
}

/** A postgres.js error's server fields (all of them must match between upstream and proxy). */
function pgjsErr(e: unknown): Record<string, unknown> {
  if (!(e instanceof Error)) return { notAnError: String(e) };
  const o = e as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = { name: e.name, message: e.message };
  for (const k of ['severity_local', 'severity', 'code', 'position', 'file', 'line', 'routine', 'detail', 'hint', 'where', 'schema_name', 'table_name', 'column_name', 'constraint_name', 'internal_query', 'internal_position']) {
    if (o[k] !== undefined) out[k] = o[k];
  }
  return out;
}

/** Rows plus the metadata postgres.js exposes, without table oids (they differ between runs). */
function norm(r: postgres.RowList<postgres.Row[]> | postgres.Row[]): unknown {
  const rl = r as postgres.RowList<postgres.Row[]>;
  return {
    rows: [...r].map((x) => ({ ...x })),
    count: rl.count,
    command: rl.command,
    columns: rl.columns?.map((c) => ({ name: c.name, type: c.type, number: c.number, fromTable: Boolean(c.table) })),
  };
}

async function runOn<R>(target: Target, fn: (sql: Sql, ev: Events) => Promise<R>, opts: postgres.Options<Record<string, never>> = {}): Promise<{ result: R; ev: Events }> {
  const ev: Events = { notices: [], parameters: [] };
  const sql = postgres(urlOf(target), {
    max: 1,
    onnotice: (n) => ev.notices.push(pgjsErr(Object.assign(new Error(n.message), n))),
    onparameter: (k, v) => ev.parameters.push([k, v]),
    connect_timeout: 10,
    ...opts,
  }) as unknown as Sql;
  try {
    const result = await withTimeout(fn(sql, ev), 60_000, `postgres.js scenario on ${target}`);
    return { result, ev };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function differential<R>(fn: (sql: Sql, ev: Events) => Promise<R>, opts: postgres.Options<Record<string, never>> = {}): Promise<{ result: R; ev: Events }> {
  const up = await runOn('upstream', fn, opts);
  const px = await runOn('proxy', fn, opts);
  assert.deepEqual(px.result, up.result, 'result through the proxy differs from upstream directly');
  assert.deepEqual(px.ev, up.ev, 'notices / parameter status through the proxy differ from upstream directly');
  return px;
}

describe('postgres.js', () => {
  test('pipelining: 300 queries in flight on one connection (max: 1), answers in order', async () => {
    const run = await differential(async (sql) => {
      const qs = Array.from({ length: 300 }, (_, i) => {
        switch (i % 4) {
          case 0: return sql`select ${i}::int as i, pg_backend_pid() as pid`;
          case 1: return sql`select ${'v' + i}::text as t, ${i}::int as i, pg_backend_pid() as pid`;
          case 2: return sql`select i, pg_backend_pid() as pid from generate_series(${i}::int, ${i + 2}::int) i`;
          default: return sql.unsafe(`select ${i} as i, pg_backend_pid() as pid`, [], { prepare: false });
        }
      });
      const res = await Promise.all(qs);
      const pids = new Set(res.flatMap((r) => r.map((row) => row.pid)));
      return { pids: pids.size, rows: res.map((r) => r.map(({ pid: _pid, ...rest }) => rest)) };
    });
    assert.equal(run.result.pids, 1, 'all queries shared one backend');
    assert.deepEqual(run.result.rows[0], [{ i: 0 }]);
    assert.deepEqual(run.result.rows[1], [{ t: 'v1', i: 1 }]);
    assert.deepEqual(run.result.rows[2], [{ i: 2 }, { i: 3 }, { i: 4 }]);
    assert.deepEqual(run.result.rows[299], [{ i: 299 }]);
  });

  test('prepared statements (prepare: true): named upstream and reused', async () => {
    const run = await differential(async (sql) => {
      const out: unknown[] = [];
      for (let i = 0; i < 10; i++) out.push(norm(await sql`select ${i}::int * 2 as double, ${'x'}::text as t`));
      for (let i = 0; i < 3; i++) out.push(norm(await sql`select count(*)::int as n from generate_series(1, ${i + 5}::int)`));
      // postgres.js's own type-fetch query is prepared too; look only at ours.
      const prepared = await sql`select statement from pg_prepared_statements where statement like 'select $1::int%' or statement like 'select count(*)::int as n%' order by statement`;
      return { out, prepared: prepared.map((r) => r.statement) };
    });
    assert.deepEqual(run.result.prepared, ['select $1::int * 2 as double, $2::text as t', 'select count(*)::int as n from generate_series(1, $1::int)'], 'one server-side statement per query text');
    assert.deepEqual((run.result.out[9] as { rows: unknown[] }).rows, [{ double: 18, t: 'x' }]);
    assert.deepEqual((run.result.out[12] as { rows: unknown[] }).rows, [{ n: 7 }]);
  });

  test('sql.begin: commit, rollback on throw, savepoints, errors leave the connection usable', async () => {
    const tbl = `${T}_tx`;
    const run = await differential(async (sql) => {
      await sql.unsafe(`drop table if exists ${tbl}; create table ${tbl} (id int primary key, v text)`);
      try {
        const out: unknown[] = [];
        out.push(await sql.begin(async (tx) => {
          await tx`insert into ${tx(tbl)} ${tx([{ id: 1, v: 'a' }, { id: 2, v: 'b' }])}`;
          return norm(await tx`select * from ${tx(tbl)} order by id`);
        }));
        out.push(await sql.begin(async (tx) => {
          await tx`insert into ${tx(tbl)} values (3, 'c')`;
          throw new Error('app says no');
        }).catch((e: unknown) => pgjsErr(e)));
        out.push(await sql.begin(async (tx) => {
          await tx`insert into ${tx(tbl)} values (4, 'd')`;
          await tx`insert into ${tx(tbl)} values (1, 'dup')`; // unique violation aborts the transaction
        }).catch((e: unknown) => pgjsErr(e)));
        out.push(await sql.begin(async (tx) => {
          await tx`insert into ${tx(tbl)} values (5, 'e')`;
          const sp = await tx.savepoint(async (s) => {
            await s`insert into ${s(tbl)} values (6, 'f')`;
            await s`select 1 / 0`;
          }).catch((e: unknown) => pgjsErr(e));
          await tx`insert into ${tx(tbl)} values (7, 'g')`;
          return sp;
        }));
        // Pipelined statements inside a transaction (postgres.js sends them without waiting).
        out.push(await sql.begin((tx) => [tx`insert into ${tx(tbl)} values (8, 'h')`, tx`update ${tx(tbl)} set v = upper(v) where id > 6`, tx`select count(*)::int as n from ${tx(tbl)}`]).then((rs) => rs.map((r) => norm(r as postgres.RowList<postgres.Row[]>))));
        out.push(norm(await sql`select id, v from ${sql(tbl)} order by id`));
        return out;
      } finally {
        await sql.unsafe(`drop table if exists ${tbl}`);
      }
    });
    const r = run.result as Array<any>;
    assert.equal(r[0].rows.length, 2);
    assert.equal(r[1].message, 'app says no');
    assert.equal(r[2].code, '23505');
    assert.equal(r[3].code, '22012');
    assert.deepEqual(r[5].rows, [{ id: 1, v: 'a' }, { id: 2, v: 'b' }, { id: 5, v: 'e' }, { id: 7, v: 'G' }, { id: 8, v: 'H' }]);
  });

  test('errors inside a pipeline fail only their own query; the connection stays usable', async () => {
    const run = await differential(async (sql) => {
      const qs: Promise<unknown>[] = [];
      for (let i = 0; i < 40; i++) {
        if (i === 5) qs.push(sql`select 1 / ${0}::int as boom`); // error at Execute (prepared)
        else if (i === 12) qs.push(sql`select ${i}::int + nosuchcolumn`); // error at Parse, after Parse/Describe/Flush
        else if (i === 20) qs.push(sql.unsafe('select nosuch_function()')); // error, no parameters
        else if (i === 27) qs.push(sql.unsafe('selec 1', [], { prepare: false })); // syntax error, unnamed
        else if (i === 33) qs.push(sql`select ${'abc'}::int`); // error at Bind (bad input)
        else qs.push(sql`select ${i}::int as i`);
      }
      const settled = await Promise.allSettled(qs);
      const after = await sql`select 'still fine' as ok`;
      return { settled: settled.map((s) => (s.status === 'fulfilled' ? { ok: [...(s.value as postgres.Row[])] } : { err: pgjsErr(s.reason) })), after: [...after] };
    });
    const s = run.result.settled as Array<{ ok?: unknown[]; err?: { code: string } }>;
    assert.equal(s[5]!.err?.code, '22012');
    assert.equal(s[12]!.err?.code, '42703');
    assert.equal(s[20]!.err?.code, '42883');
    assert.equal(s[27]!.err?.code, '42601');
    assert.equal(s[33]!.err?.code, '22P02');
    assert.equal(s.filter((x) => x.err).length, 5);
    assert.deepEqual(s[6]!.ok, [{ i: 6 }]);
    assert.deepEqual(s[39]!.ok, [{ i: 39 }]);
    assert.deepEqual(run.result.after, [{ ok: 'still fine' }]);
  });

  test('arrays, json and bytea round trips (parameters and a table)', async () => {
    const tbl = `${T}_types`;
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const doc = { a: 1, b: [true, null, 'x"y'], c: { d: 'ünïcödé ✓' } };
    const run = await differential(async (sql) => {
      await sql.unsafe(`drop table if exists ${tbl}; create table ${tbl} (id int, ints int[], texts text[], j json, jb jsonb, b bytea, nested int[][])`);
      try {
        await sql`insert into ${sql(tbl)} values (1, ${sql.array([1, 2, 3])}::int[], ${sql.array(['a', 'b,c', 'd"e', ''])}, ${sql.json(doc)}, ${sql.json(doc)}, ${bytes}, ${'{{1,2},{3,4}}'}::int[])`;
        await sql`insert into ${sql(tbl)} values (2, ${sql.array([] as number[])}::int[], null, ${sql.json([1, 'two'])}, ${sql.json(null)}, ${Buffer.alloc(0)}, null)`;
        const rows = await sql`select * from ${sql(tbl)} order by id`;
        const params = await sql`select ${sql.array([10, 20])}::int[] as arr, ${sql.json({ k: 'v' })}::jsonb as j, ${Buffer.from('\x00\xff', 'latin1')}::bytea as b`;
        return { rows: norm(rows), params: norm(params) };
      } finally {
        await sql.unsafe(`drop table if exists ${tbl}`);
      }
    });
    const rows = (run.result.rows as { rows: Array<Record<string, unknown>> }).rows;
    assert.deepEqual(rows[0]!.ints, [1, 2, 3]);
    assert.deepEqual(rows[0]!.texts, ['a', 'b,c', 'd"e', '']);
    assert.deepEqual(rows[0]!.j, doc);
    assert.deepEqual(rows[0]!.jb, doc);
    assert.deepEqual(rows[0]!.b, bytes);
    assert.deepEqual(rows[0]!.nested, [[1, 2], [3, 4]]);
    assert.deepEqual(rows[1]!.ints, []);
    assert.deepEqual(rows[1]!.b, Buffer.alloc(0));
    const p = (run.result.params as { rows: Array<Record<string, unknown>> }).rows[0]!;
    assert.deepEqual(p.arr, [10, 20]);
    assert.deepEqual(p.j, { k: 'v' });
    assert.deepEqual(p.b, Buffer.from([0, 0xff]));
  });

  test('cursors: .cursor(100) iteration, callback form, and early break', async () => {
    const run = await differential(async (sql) => {
      const sizes: number[] = [];
      const hash = createHash('sha256');
      for await (const rows of sql`select g, md5(g::text) as h from generate_series(1, ${5000}::int) g`.cursor(100)) {
        sizes.push(rows.length);
        for (const r of rows) hash.update(`${r.g}:${r.h}\n`);
      }
      let cbRows = 0;
      let cbBatches = 0;
      await sql`select g from generate_series(1, 1050) g`.cursor(200, (rows) => {
        cbBatches++;
        cbRows += rows.length;
      });
      let seen = 0;
      for await (const rows of sql`select g from generate_series(1, 100000) g`.cursor(10)) {
        seen += rows.length;
        if (seen >= 30) break; // closes the portal early
      }
      const after = await sql`select 1 as ok`;
      return { sizes, hash: hash.digest('hex'), cbRows, cbBatches, seen, after: [...after] };
    });
    const r = run.result;
    assert.equal(r.sizes.length, 50);
    assert.ok(r.sizes.every((n) => n === 100));
    assert.equal(r.cbRows, 1050);
    assert.equal(r.cbBatches, 6);
    assert.equal(r.seen, 30);
    assert.deepEqual(r.after, [{ ok: 1 }]);
  });

  test('COPY via .writable() and .readable(), 50,000 rows with a checksum', async () => {
    const tbl = `${T}_copy`;
    const N = 50_000;
    let input = '';
    for (let i = 1; i <= N; i++) input += `${i}\tname ${i}\t${(i * 37) % 1000}\n`;
    const inputHash = createHash('sha256').update(input).digest('hex');
    const run = await differential(async (sql) => {
      await sql.unsafe(`drop table if exists ${tbl}; create table ${tbl} (id int, name text, score int)`);
      try {
        const w = await sql`copy ${sql(tbl)} from stdin`.writable();
        const buf = Buffer.from(input);
        const chunks: Buffer[] = [];
        for (let off = 0; off < buf.length; off += 7777) chunks.push(buf.subarray(off, off + 7777));
        await pipeline(Readable.from(chunks), w);
        const stats = await sql`select count(*)::int as n, sum(score)::int as s from ${sql(tbl)}`;
        const r = await sql`copy (select * from ${sql(tbl)} order by id) to stdout`.readable();
        const h = createHash('sha256');
        let bytes = 0;
        await pipeline(r, new Writable({
          write(chunk: Buffer, _e, cb) {
            h.update(chunk);
            bytes += chunk.length;
            cb();
          },
        }));
        const after = await sql`select 'after copy' as ok`;
        return { stats: [...stats], hash: h.digest('hex'), bytes, after: [...after] };
      } finally {
        await sql.unsafe(`drop table if exists ${tbl}`);
      }
    });
    assert.equal(run.result.stats[0]!.n, N);
    assert.equal(run.result.hash, inputHash);
    assert.equal(run.result.bytes, input.length);
    assert.deepEqual(run.result.after, [{ ok: 'after copy' }]);
  });

  test('notices and ParameterStatus reach onnotice / onparameter', async () => {
    const run = await differential(async (sql) => {
      await sql`do $$ begin raise notice 'pgjs notice %', 7; end $$`;
      await sql`set application_name = 'drv_pgjs'`;
      await sql.unsafe(`set application_name = 'drv_pgjs_simple'`, [], { prepare: false });
      const r = await sql`select current_setting('application_name') as a`;
      return [...r];
    });
    assert.deepEqual(run.result, [{ a: 'drv_pgjs_simple' }]);
    assert.equal((run.ev.notices[0] as { message: string }).message, 'pgjs notice 7');
    const apps = run.ev.parameters.filter(([k]) => k === 'application_name').map(([, v]) => v);
    assert.deepEqual(apps.slice(-2), ['drv_pgjs', 'drv_pgjs_simple']);
    assert.ok(run.ev.parameters.some(([k]) => k === 'server_version'), 'startup ParameterStatus forwarded');
  });

  test('sql.listen / sql.notify through the proxy', async () => {
    const sql = postgres(proxy.url(), { max: 1 });
    const other = postgres(proxy.url(), { max: 1 });
    try {
      const chan = `drv_pgjs_chan_${process.pid}`;
      const got: string[] = [];
      let wake: (() => void) | undefined;
      const { unlisten } = await sql.listen(chan, (payload) => {
        got.push(payload);
        wake?.();
      });
      const waitFor = (n: number): Promise<void> =>
        withTimeout(new Promise<void>((resolve) => {
          const check = (): void => (got.length >= n ? resolve() : void (wake = check));
          check();
        }), 5000, `${n} notifications`);
      await sql.notify(chan, 'one');
      await waitFor(1);
      await other.notify(chan, 'two ✓');
      await waitFor(2);
      await other`select pg_notify(${chan}, ${'three'})`;
      await waitFor(3);
      assert.deepEqual(got, ['one', 'two ✓', 'three']);
      await unlisten();
      await other.notify(chan, 'ignored');
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(got.length, 3);
    } finally {
      await Promise.all([sql.end({ timeout: 5 }), other.end({ timeout: 5 })]);
    }
  });
});
