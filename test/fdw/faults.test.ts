/**
 * Fault injection with real servers and signals: Redis paused (SIGSTOP/SIGCONT), killed and restarted;
 * upstream Postgres killed and restarted. Each against read, autocommit-write and transactional traffic,
 * asserting a bounded wait, a clear SQLSTATE naming the server, a session (or proxy) that stays usable,
 * and that nothing a failed transaction staged reaches Redis. The proxy runs with --redis-timeout 1s.
 * (The proxy killed around COMMIT, and what a paused Redis does with writes it answers late, are the
 * transactional outbox's tests.)
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { Redis } from 'ioredis';
import { fdwFixture, withDb, type FdwFixture } from '../support/fdw.js';
import { connect, pgError, rows, setupSupabase } from '../support/fdw-sql.js';
import { startPostgres, startRedis, type PgInstance, type RedisInstance } from '../harness/servers.js';
import { startProxy, type RunningProxy } from '../harness/proxy.js';
import { REDIS_DB } from '../support/redis-dbs.js';

const REDIS_TIMEOUT_MS = 1000;
/** Every failure must be answered within this: the command timeout plus a reconnect attempt, with room. */
const BOUND_MS = 4000;

let f: FdwFixture;
let c: pg.Client;
let r: RedisInstance;
let raw: Redis;

before(async () => {
  r = await startRedis();
  f = await fdwFixture('fdw_faults', REDIS_DB.faults, { redisTimeoutMs: REDIS_TIMEOUT_MS, redisConnectTimeoutMs: 1000 });
  c = await connect(f.url);
  await setupSupabase(c, r.url);
  await c.query(`create foreign table fh (key text, value text) server redis_server options (src_type 'hash', src_key 'fh')`);
  raw = new Redis(r.url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false });
  raw.on('error', () => {});
});

after(async () => {
  r?.resume();
  raw?.disconnect();
  await c?.end().catch(() => {});
  await f?.close();
  await r?.stop();
});

async function timed<T>(p: Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await p;
  return [v, Math.round(performance.now() - t0)];
}

/** Retries `fn` until it succeeds (a restarted server is reconnected to in the background). */
async function eventually<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((res) => setTimeout(res, 50));
    }
  }
}

/** COMMIT's notices (the WARNING about Redis) and how long it took. */
async function commitWithNotices(client: pg.Client): Promise<{ notices: string[]; ms: number }> {
  const notices: string[] = [];
  const onNotice = (n: { severity?: string; message?: string }): void => void notices.push(`${n.severity}: ${n.message}`);
  client.on('notice', onNotice as (n: unknown) => void);
  try {
    const [, ms] = await timed(client.query('commit'));
    return { notices, ms };
  } finally {
    client.off('notice', onNotice as (n: unknown) => void);
  }
}

describe('Redis paused (SIGSTOP)', () => {
  it('reads, autocommit writes and COMMIT each end within the bound with HV00N naming the server; all work after SIGCONT', async () => {
    await c.query(`insert into fh values ('before', '1')`);
    for (let i = 0; i < 2; i++) assert.deepEqual(await rows(c, 'select value from fh where key = $1', ['before']), [['1']]);
    const server = `127.0.0.1:${r.port}`;
    r.pause();
    try {
      const [read, readMs] = await timed(pgError(c.query('select * from fh')));
      console.log(`[faults] paused Redis: read failed after ${readMs} ms: ${read.code} ${read.message}`);
      assert.equal(read.code, 'HV00N');
      assert.ok(read.message.includes(server), read.message);
      assert.ok(readMs < BOUND_MS, `read took ${readMs} ms`);
      assert.deepEqual(await rows(c, 'select 1'), [['1']], 'the session stays usable');

      // A prepared point lookup waits on the lookup pipe (opened by the lookups before the pause).
      const [lookup, lookupMs] = await timed(pgError(c.query('select value from fh where key = $1', ['before'])));
      console.log(`[faults] paused Redis: point lookup failed after ${lookupMs} ms: ${lookup.code} ${lookup.message}`);
      assert.equal(lookup.code, 'HV00N');
      assert.ok(lookup.message.includes(server) && lookup.message.includes('--redis-timeout'), lookup.message);
      assert.ok(lookupMs < BOUND_MS, `lookup took ${lookupMs} ms`);

      const [write, writeMs] = await timed(pgError(c.query(`insert into fh values ('during', '1')`)));
      console.log(`[faults] paused Redis: autocommit INSERT failed after ${writeMs} ms: ${write.code} ${write.all}`);
      // 08007 when the MULTI/EXEC was sent and its outcome is unknown; HV00N when it never left.
      assert.ok(['08007', 'HV00N'].includes(write.code ?? ''), `${write.code}: ${write.all}`);
      assert.ok(write.all.includes(server), write.all);
      assert.ok(writeMs < BOUND_MS, `write took ${writeMs} ms`);

      await c.query('begin');
      await c.query(`insert into fh values ('tx', '1')`);
      const commit = await commitWithNotices(c);
      console.log(`[faults] paused Redis: COMMIT answered after ${commit.ms} ms with ${JSON.stringify(commit.notices)}`);
      assert.ok(commit.ms < BOUND_MS, `COMMIT took ${commit.ms} ms`);
      assert.ok(commit.notices.some((n) => n.startsWith('WARNING')), 'COMMIT warns that Redis did not take the writes');
      assert.deepEqual(await rows(c, 'select 1'), [['1']]);
    } finally {
      r.resume();
    }
    assert.deepEqual(await eventually(() => rows(c, `select value from fh where key = 'before'`)), [['1']]);
    assert.deepEqual(await eventually(() => rows(c, 'select value from fh where key = $1', ['before'])), [['1']]);
    await c.query(`insert into fh values ('after', '1')`);
    await raw.connect().catch(() => {});
    assert.equal(await raw.hget('fh', 'after'), '1');
  });
});

describe('Redis killed and restarted', () => {
  it('reads and writes fail fast with HV00N while it is down, COMMIT warns; all work once it is back', async () => {
    await r.kill();
    try {
      const [read, readMs] = await timed(pgError(c.query('select * from fh')));
      console.log(`[faults] killed Redis: read failed after ${readMs} ms: ${read.code} ${read.message}`);
      assert.equal(read.code, 'HV00N');
      assert.ok(read.message.includes(`127.0.0.1:${r.port}`), read.message);
      assert.ok(readMs < BOUND_MS, `read took ${readMs} ms`);
      // The lookup pipe's connection dropped too: its lookups go to ioredis, which reports the outage.
      const [lookup, lookupMs] = await timed(pgError(c.query('select value from fh where key = $1', ['back'])));
      assert.equal(lookup.code, 'HV00N');
      assert.ok(lookupMs < BOUND_MS, `lookup took ${lookupMs} ms`);
      const [write, writeMs] = await timed(pgError(c.query(`insert into fh values ('down', '1')`)));
      assert.equal(write.code, 'HV00N');
      assert.ok(writeMs < BOUND_MS, `write took ${writeMs} ms`);
      await c.query('begin');
      await c.query(`insert into fh values ('down-tx', '1')`);
      const commit = await commitWithNotices(c);
      assert.ok(commit.ms < BOUND_MS, `COMMIT took ${commit.ms} ms`);
      assert.ok(commit.notices.some((n) => n.startsWith('WARNING')), JSON.stringify(commit.notices));
    } finally {
      await r.restart();
    }
    await eventually(() => c.query(`insert into fh values ('back', '1')`));
    assert.deepEqual(await rows(c, `select value from fh where key = 'back'`), [['1']]);
    assert.deepEqual(await eventually(() => rows(c, 'select value from fh where key = $1', ['back'])), [['1']]);
    // A write that failed while Redis was down is not replayed behind the client's back.
    assert.deepEqual(await rows(c, `select key from fh where key = 'down'`), []);
  });
});

describe('upstream killed and restarted', () => {
  let up: PgInstance;
  let proxy: RunningProxy;

  before(async () => {
    up = await startPostgres();
    proxy = await startProxy(up.url, { redisTimeoutMs: REDIS_TIMEOUT_MS });
  });
  after(async () => {
    await proxy?.close();
    await up?.stop();
  });

  it('open sessions end with a clear error, new ones are refused fast while it is down, nothing staged reaches Redis; all works after restart', async () => {
    const url = withDb(proxy.url(), 'postgres');
    const a = await connect(url);
    await setupSupabase(a, r.url, 'up_server');
    await a.query(`create foreign table uh (key text, value text) server up_server options (src_type 'hash', src_key 'uh')`);
    await a.query(`insert into uh values ('first', '1')`);
    const b = await connect(url);
    await b.query('begin');
    await b.query(`insert into uh values ('staged', '1')`);
    assert.deepEqual(await rows(b, 'select count(*) from uh'), [['2']], 'the staged write is visible to its own transaction');

    // The throwaway server runs with synchronous_commit off: make the DDL above survive the crash.
    await a.query('checkpoint');
    // Differential: a client connected straight to Postgres is told the same thing as the proxy's clients.
    const direct = await connect(up.url);
    const told = [a, b, direct].map((cl) => new Promise<[string | undefined, number]>((resolve) => {
      cl.once('error', (e: { code?: string }) => resolve([e.code, Math.round(performance.now() - killedAt)]));
    }));
    const killedAt = performance.now();
    await up.kill();
    const [[aCode, aMs], [bCode, bMs], [directCode]] = (await Promise.all(told)) as [[string | undefined, number], [string | undefined, number], [string | undefined, number]];
    console.log(`[faults] upstream killed: idle session told ${aCode} after ${aMs} ms, session in a transaction ${bCode} after ${bMs} ms; direct client ${directCode}`);
    // Postgres's FATAL when it sends one; when it just drops the connection (as here, on an immediate
    // shutdown), the proxy's 08006 "server closed the connection unexpectedly", libpq's own words.
    assert.equal(aCode, directCode ?? '08006');
    assert.equal(bCode, directCode ?? '08006');
    assert.ok(aMs < BOUND_MS && bMs < BOUND_MS, `took ${aMs} / ${bMs} ms`);
    await pgError(a.query('select * from uh'), 'a read on the dead session');
    await pgError(b.query('commit'), 'COMMIT on the dead session');
    await raw.connect().catch(() => {});
    assert.equal(await raw.hget('uh', 'staged'), null, 'a transaction upstream never committed wrote nothing to Redis');

    const t0 = performance.now();
    const refused = await pgError(connect(url));
    const refusedMs = Math.round(performance.now() - t0);
    console.log(`[faults] upstream down: new connection refused after ${refusedMs} ms: ${refused.code} ${refused.message}`);
    assert.equal(refused.code, '08006');
    assert.match(refused.message, /could not connect to upstream server/);
    assert.ok(refusedMs < BOUND_MS, `took ${refusedMs} ms`);

    await up.start();
    const d = await eventually(() => connect(url));
    try {
      assert.deepEqual(await rows(d, 'select key from uh order by key'), [['first']]);
      await d.query(`insert into uh values ('after', '1')`);
      assert.equal(await raw.hget('uh', 'after'), '1');
    } finally {
      await d.end();
      for (const cl of [a, b, direct]) await cl.end().catch(() => {});
    }
  });
});
