/**
 * Nothing hangs (issue 11): a big autocommit write's work gives way to other sessions, and a cancel
 * stops it. INSERT … SELECT of 100,000 rows, then UPDATE and DELETE of all of them, into a hash, a list
 * and a zset table: no stretch of the proxy's work (building parameters, turning rows into commands,
 * grouping, queueing the MULTI/EXEC) holds the event loop for 50 ms of CPU. The proxy runs in this
 * process, so a ticker on the same event loop sees every stretch (test/support/cpu-stretch.ts).
 *
 * A CancelRequest that meets the INSERT while its rows become commands answers 57014 and nothing
 * reaches Redis; one that comes once its MULTI/EXEC has been sent lets it complete; whatever it meets,
 * Redis holds all of the statement's rows or none.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { fdwFixture, type FdwFixture } from '../support/fdw.js';
import { cancelRequest, connect, monitorRedis, rows, setupSupabase, type MonitorCapture } from '../support/fdw-sql.js';
import { REDIS_DB } from '../support/redis-dbs.js';
import { describeStretch, stretchOf } from '../support/cpu-stretch.js';

const ROWS = 100_000;
/** The issue asks for "a few milliseconds"; CPU is counted in 10 ms ticks, and a loaded machine gets slack. */
const STRETCH_BOUND_MS = 50;

let f: FdwFixture;
let c: pg.Client;

before(async () => {
  f = await fdwFixture('fdw_give_way', REDIS_DB.giveWay);
  c = await connect(f.url);
  await setupSupabase(c, f.redisUrl);
  await c.query(`
    create foreign table gw_hash (key text, value text) server redis_server options (src_type 'hash', src_key 'gw:hash');
    create foreign table gw_list (element text) server redis_server options (src_type 'list', src_key 'gw:list');
    create foreign table gw_zset (element text, score float8) server redis_server options (src_type 'zset', src_key 'gw:zset');
    create foreign table gw_cancel (key text, value text) server redis_server options (src_type 'hash', src_key 'gw:cancel');`);
});

after(async () => {
  await c?.end().catch(() => {});
  await f?.close();
});

/** Runs `sql` on the proxy under a watch; fails when a stretch reaches the bound. Returns the command tag. */
async function givesWay(what: string, sql: string): Promise<string> {
  // A failed statement's stretch is printed too: it says how long the failure held the loop.
  const { result, stretch } = await stretchOf(() => c.query(sql).catch((e: Error) => e));
  console.log(describeStretch(what, stretch));
  if (result instanceof Error) throw result;
  assert.ok(stretch.turns > 1, `the watch saw ${stretch.turns} turns`);
  assert.ok(stretch.worst < STRETCH_BOUND_MS, `${what}: a stretch of ${stretch.worst.toFixed(1)} ms of CPU without giving way (GC pauses counted out)`);
  return `${result.command} ${result.rowCount}`;
}

const n = ROWS.toLocaleString('en');
/** Big enough that a quadratic step shows (seconds); the second is the statement. */
const VALUES_ROWS = [40_000, 100_000];
/** Past where a spread of that many arguments into one call overflows the stack (~125,000). */
const UPSERT_ROWS = 150_000;
const upsertN = UPSERT_ROWS.toLocaleString('en');

describe('a big autocommit write gives way: CPU time between event-loop turns', { timeout: 300_000 }, () => {
  describe('hash', () => {
    it(`INSERT … SELECT of ${n} rows`, async () => {
      assert.equal(await givesWay(`hash INSERT … SELECT ${ROWS}`, `insert into gw_hash select 'f' || g, 'v' || g from generate_series(1, ${ROWS}) g`), `INSERT ${ROWS}`);
      assert.equal(await f.redis.hlen('gw:hash'), ROWS);
      assert.equal(await f.redis.hget('gw:hash', `f${ROWS}`), `v${ROWS}`);
    });
    it(`UPDATE of ${n} fields`, async () => {
      assert.equal(await givesWay(`hash UPDATE ${ROWS}`, `update gw_hash set value = value || 'x'`), `UPDATE ${ROWS}`);
      assert.equal(await f.redis.hget('gw:hash', 'f77'), 'v77x');
    });
    it(`DELETE of ${n} fields`, async () => {
      assert.equal(await givesWay(`hash DELETE ${ROWS}`, `delete from gw_hash`), `DELETE ${ROWS}`);
      assert.equal(await f.redis.exists('gw:hash'), 0);
    });
    it(`INSERT … ON CONFLICT DO NOTHING of ${upsertN} rows, half of them there already`, async () => {
      // DO NOTHING asks Redis which fields exist: 150,000 of them spread into one HMGET overflowed the stack.
      await f.redis.del('gw:hash');
      await c.query(`insert into gw_hash select 'f' || g, 'old' from generate_series(1, ${UPSERT_ROWS / 2}) g`);
      const tag = await givesWay(`hash INSERT … ON CONFLICT DO NOTHING ${UPSERT_ROWS}`, `insert into gw_hash select 'f' || g, 'v' || g from generate_series(1, ${UPSERT_ROWS}) g on conflict (key) do nothing`);
      assert.equal(tag, `INSERT ${UPSERT_ROWS / 2}`);
      assert.equal(await f.redis.hlen('gw:hash'), UPSERT_ROWS);
      assert.deepEqual(await f.redis.hmget('gw:hash', 'f1', `f${UPSERT_ROWS}`), ['old', `v${UPSERT_ROWS}`]);
      await f.redis.del('gw:hash');
    });
  });

  describe('VALUES', () => {
    for (const rows of VALUES_ROWS) {
      const rowsN = rows.toLocaleString('en');
      it(`INSERT … VALUES of ${rowsN} rows: no quadratic planning, tokens not cloned one by one, the tree's rows crossing in slices, every step after the reply giving way`, async () => {
        // At 100,000 rows (2.2 MB of text) the longest stretch measured 17–25 ms in four runs (GC counted out). Each
        // step used to be one stretch: receiving the worker's reply (the parse tree, structured-cloned
        // whole) ~160–250 ms, analysis ~80–150 ms, planning (the tokens unpacked) ~30–80 ms, the fast
        // write's shape ~50 ms. Now the VALUES rows cross apart from the tree and are put back a slice at
        // a time, the statement is analysed before they are back, and the tokens' unpacking, the shape
        // and the casts give way every few ms. Before those steps gave way they ran as one stretch with
        // the reply (~390 ms measured); before the tokens came packed the reply alone was ~750 ms; a
        // lookup of each VALUES item among all the tokens took 1.8 s at 20,000 rows.
        await f.redis.del('gw:hash');
        const vals = Array.from({ length: rows }, (_, i) => `('f${i}', 'v${i}')`).join(', ');
        const { result, stretch } = await stretchOf(() => c.query(`insert into gw_hash values ${vals}`));
        console.log(describeStretch(`hash INSERT … VALUES ${rows}`, stretch));
        assert.equal(`${result.command} ${result.rowCount}`, `INSERT ${rows}`);
        assert.equal(await f.redis.hlen('gw:hash'), rows);
        assert.deepEqual(await f.redis.hmget('gw:hash', 'f0', `f${rows - 1}`), ['v0', `v${rows - 1}`]);
        assert.ok(stretch.worst < STRETCH_BOUND_MS, `a stretch of ${stretch.worst.toFixed(1)} ms of CPU without giving way (GC pauses counted out)`);
        await f.redis.del('gw:hash');
      });
    }
    it(`the same ${VALUES_ROWS.at(-1)!.toLocaleString('en')} rows as a prepared statement (Parse, Bind, Execute): planning, shape and casts give way there too`, async () => {
      const rows = VALUES_ROWS.at(-1)!;
      await f.redis.del('gw:hash');
      const vals = Array.from({ length: rows }, (_, i) => `('f${i}', 'v${i}')`).join(', ');
      const { result, stretch } = await stretchOf(() => c.query({ name: 'big_fast_values', text: `insert into gw_hash values ${vals}` }));
      console.log(describeStretch(`hash prepared INSERT … VALUES ${rows}`, stretch));
      assert.equal(`${result.command} ${result.rowCount}`, `INSERT ${rows}`);
      assert.equal(await f.redis.hlen('gw:hash'), rows);
      assert.deepEqual(await f.redis.hmget('gw:hash', 'f0', `f${rows - 1}`), ['v0', `v${rows - 1}`]);
      assert.ok(stretch.worst < STRETCH_BOUND_MS, `a stretch of ${stretch.worst.toFixed(1)} ms of CPU without giving way (GC pauses counted out)`);
      await f.redis.del('gw:hash');
    });
  });

  describe('VALUES past ~125,000 rows: walks of the rows spread none into one call', () => {
    it(`a prepared INSERT … VALUES of ${upsertN} rows that upstream evaluates (a function call in it)`, async () => {
      // Whether upstream's evaluation is pure walked the VALUES rows spread into one push: past ~125,000
      // rows that overflowed the stack.
      await f.redis.del('gw:hash');
      const vals = Array.from({ length: UPSERT_ROWS }, (_, i) => (i === 0 ? `('f0', upper('v0'))` : `('f${i}', 'v${i}')`)).join(', ');
      // Run twice: the second Bind, with no Parse before it in its batch, is the one that asks.
      for (let run = 0; run < 2; run++) {
        await f.redis.del('gw:hash');
        const r = await c.query({ name: 'big_values', text: `insert into gw_hash values ${vals}` });
        assert.equal(`${r.command} ${r.rowCount}`, `INSERT ${UPSERT_ROWS}`);
      }
      assert.equal(await f.redis.hlen('gw:hash'), UPSERT_ROWS);
      assert.deepEqual(await f.redis.hmget('gw:hash', 'f0', `f${UPSERT_ROWS - 1}`), ['V0', `v${UPSERT_ROWS - 1}`]);
      await f.redis.del('gw:hash');
    });
    it(`a simple-Query INSERT … VALUES of ${upsertN} rows with a $n among them: 42P02 at the first`, async () => {
      // Finding the first $n walked the rows spread into one push, as above.
      const vals = Array.from({ length: UPSERT_ROWS }, (_, i) => (i === 7 ? `('f7', $2)` : i === 9 ? `($1, 'v9')` : `('f${i}', 'v${i}')`)).join(', ');
      const text = `insert into gw_hash values ${vals}`;
      const e = await c.query(text).catch((x: unknown) => x);
      assert.ok(e instanceof Error);
      const pe = e as Error & { code?: string; position?: string };
      assert.equal(pe.code, '42P02');
      assert.equal(pe.message, 'there is no parameter $2');
      assert.equal(Number(pe.position), text.indexOf('$2') + 1);
      assert.equal(await f.redis.exists('gw:hash'), 0);
    });
  });

  describe('list', () => {
    it(`INSERT … SELECT of ${n} rows`, async () => {
      assert.equal(await givesWay(`list INSERT … SELECT ${ROWS}`, `insert into gw_list select 'e' || g from generate_series(1, ${ROWS}) g`), `INSERT ${ROWS}`);
      assert.equal(await f.redis.llen('gw:list'), ROWS);
      assert.equal(await f.redis.lindex('gw:list', -1), `e${ROWS}`);
    });
    it(`UPDATE of ${n} elements (one checked position edit)`, async () => {
      assert.equal(await givesWay(`list UPDATE ${ROWS}`, `update gw_list set element = element || 'x'`), `UPDATE ${ROWS}`);
      assert.equal(await f.redis.lindex('gw:list', 76), 'e77x');
    });
    it(`DELETE of ${n} elements`, async () => {
      assert.equal(await givesWay(`list DELETE ${ROWS}`, `delete from gw_list`), `DELETE ${ROWS}`);
      assert.equal(await f.redis.exists('gw:list'), 0);
    });
  });

  describe('zset', () => {
    it(`INSERT … SELECT of ${n} rows`, async () => {
      assert.equal(await givesWay(`zset INSERT … SELECT ${ROWS}`, `insert into gw_zset select 'm' || g, g from generate_series(1, ${ROWS}) g`), `INSERT ${ROWS}`);
      assert.equal(await f.redis.zcard('gw:zset'), ROWS);
    });
    it(`UPDATE of ${n} members (renamed: ZREM and ZADD each)`, async () => {
      assert.equal(await givesWay(`zset UPDATE ${ROWS}`, `update gw_zset set element = element || 'x'`), `UPDATE ${ROWS}`);
      assert.equal(await f.redis.zscore('gw:zset', 'm77x'), '77');
      assert.equal(await f.redis.zcard('gw:zset'), ROWS);
    });
    it(`DELETE of ${n} members`, async () => {
      assert.equal(await givesWay(`zset DELETE ${ROWS}`, `delete from gw_zset`), `DELETE ${ROWS}`);
      assert.equal(await f.redis.exists('gw:zset'), 0);
    });
  });
});

const BIG_INSERT = `insert into gw_cancel select 'k' || g, 'v' || g from generate_series(1, ${ROWS}) g`;
/** The bound for a cancel; held where the machine itself delivers a cancel fast (see below). */
const CANCEL_BOUND_MS = 100;
/** On a machine too loaded for that, the bound cancel.test.ts holds. */
const LOADED_CANCEL_BOUND_MS = 1000;

describe(`a cancel of an autocommit INSERT … SELECT of ${n} rows`, { timeout: 300_000 }, () => {
  // Each test has a session of its own: a cancel relayed upstream after its statement ended must not meet the next one's.
  let a: pg.Client;
  let watch: pg.Client;
  let mon: MonitorCapture;
  let barriers = 0;

  before(async () => {
    watch = await connect(f.directUrl);
    mon = await monitorRedis(f.redisUrl, f.redisDb);
  });
  after(async () => {
    await mon?.stop();
    await watch?.end().catch(() => {});
  });

  /** Runs the INSERT on `a` and cancels it once `ready` resolves; its outcome, what Redis holds, and the cancel's latency. */
  async function cancelAt(ready: (skip: number) => Promise<unknown>): Promise<{ outcome: string; held: number; reachedRedis: boolean; ms: number }> {
    await f.redis.del('gw:cancel');
    const skip = mon.commands().length;
    const q = a.query(BIG_INSERT).then(
      () => 'applied',
      (e: { code?: string }) => e.code ?? String(e),
    );
    await ready(skip);
    const t0 = performance.now();
    await cancelRequest(f.proxy.port, a);
    const outcome = await q;
    const ms = performance.now() - t0;
    // A barrier through MONITOR: whatever the statement sent Redis was seen before it.
    const marker = `gw:barrier:${++barriers}`;
    await f.redis.exists(marker);
    await mon.seen((c) => c[1] === marker, skip);
    const reachedRedis = mon.commands().slice(skip).some((c) => c[0] === 'MULTI' || c[1] === 'gw:cancel');
    const held = await f.redis.hlen('gw:cancel');
    // All or nothing, whatever the cancel met.
    if (outcome === 'applied') assert.equal(held, ROWS, `applied, yet Redis holds ${held} of ${ROWS}`);
    else {
      assert.equal(outcome, '57014');
      assert.equal(held, 0, `cancelled, yet Redis holds ${held} of ${ROWS}`);
    }
    assert.deepEqual(await rows(a, 'select 1'), [['1']], 'the session goes on');
    return { outcome, held, reachedRedis, ms };
  }

  /** Upstream has answered the INSERT's SELECT part: its backend waits for the proxy's next message. */
  async function upstreamAnswered(): Promise<void> {
    const pid = (a as unknown as { processID: number }).processID;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await watch.query<{ state: string; wait_event: string | null; query: string }>('select state, wait_event, query from pg_stat_activity where pid = $1', [pid]);
      const s = r.rows[0];
      if (s && s.query.includes('generate_series') && ((s.state === 'active' && s.wait_event === 'ClientRead') || s.state.startsWith('idle'))) return;
      if (Date.now() > deadline) throw new Error(`upstream's backend never finished the SELECT part: ${JSON.stringify(s)}`);
      await new Promise((res) => setTimeout(res, 2));
    }
  }

  /** How long a cancel of a statement upstream runs takes here: the machine's own cancel round trip. */
  async function baselineMs(): Promise<number> {
    const slow = a.query('select pg_sleep(30)').catch((e: { code?: string }) => e.code);
    const pid = (a as unknown as { processID: number }).processID;
    for (;;) {
      const r = await watch.query<{ wait_event: string | null }>('select wait_event from pg_stat_activity where pid = $1', [pid]);
      if (r.rows[0]?.wait_event === 'PgSleep') break;
      await new Promise((res) => setTimeout(res, 2));
    }
    const t0 = performance.now();
    await cancelRequest(f.proxy.port, a);
    assert.equal(await slow, '57014');
    return performance.now() - t0;
  }

  it('while its rows become commands: 57014 within 100 ms, nothing reaches Redis, the session goes on', async () => {
    a = await connect(f.url);
    try {
      const baseline = await baselineMs();
      // Upstream has answered; the proxy still has 100,000 rows to decode, turn into commands and queue.
      // Should the test's own poll come late on a loaded machine, the statement may be past that: tried again.
      const tries: string[] = [];
      let met: { ms: number } | undefined;
      for (let i = 0; i < 3 && !met; i++) {
        const r = await cancelAt(upstreamAnswered);
        tries.push(`${r.outcome}, Redis ${r.reachedRedis ? 'reached' : 'untouched'}, ${r.ms.toFixed(1)} ms`);
        if (r.outcome === '57014' && !r.reachedRedis) met = r;
      }
      console.log(`# cancel once upstream answered: ${tries.join('; ')} (a cancel of pg_sleep here: ${baseline.toFixed(1)} ms)`);
      assert.ok(met, `no cancel met the statement before it reached Redis: ${tries.join('; ')}`);
      if (baseline < 20) assert.ok(met.ms < CANCEL_BOUND_MS, `the cancel took ${met.ms.toFixed(1)} ms`);
      else {
        console.log(`# machine too loaded for the ${CANCEL_BOUND_MS} ms bound (a cancel of pg_sleep took ${baseline.toFixed(1)} ms): ${LOADED_CANCEL_BOUND_MS} ms held`);
        assert.ok(met.ms < LOADED_CANCEL_BOUND_MS, `the cancel took ${met.ms.toFixed(1)} ms`);
      }
    } finally {
      await a.end();
    }
  });

  it('while its MULTI is being queued: all of its writes or none, never part', async () => {
    a = await connect(f.url);
    try {
      const r = await cancelAt((skip) => mon.seen((c) => c[0] === 'MULTI', skip));
      console.log(`# cancel once Redis saw the MULTI: ${r.outcome}, Redis holds ${r.held} (${r.ms.toFixed(1)} ms)`);
    } finally {
      await a.end();
    }
  });

  it('once its MULTI/EXEC has been sent: the statement completes, all of its rows written', async () => {
    a = await connect(f.url);
    try {
      // Redis has run the EXEC (MONITOR shows a transaction's commands, then EXEC, when it runs them).
      const r = await cancelAt((skip) => mon.seen((c) => c[0] === 'EXEC', skip));
      console.log(`# cancel once Redis ran the EXEC: ${r.outcome}, Redis holds ${r.held}`);
      assert.equal(r.outcome, 'applied');
    } finally {
      await a.end();
    }
  });
});
