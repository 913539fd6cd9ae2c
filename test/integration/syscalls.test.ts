// The hot path's budget in syscalls, read off /proc/<pid>/io of the real CLI while a client sends
// pgbench-shaped batches (Bind, Describe, Execute, Sync in one packet). A relay's cost on loopback is
// mostly its socket writes (see ARCHITECTURE.md, "Passthrough cost"), so the count of writes per
// batch is the number to hold:
//   passthrough                   2: one to upstream, one to the client
//   foreign-table point lookup    2: one to Redis, one to the client: the local fast path answers
//                                    Bind, Describe, Execute and Sync with nothing sent upstream
//   N clients' lookups in a turn  N + 1: one to each client, one to Redis for all of them
// Counts, unlike timings, don't move with machine load.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { Redis } from 'ioredis';
import { testEnv } from '../harness/env.js';
import { spawnProxy, type SpawnedProxy } from '../harness/proxy.js';
import { dataRow, msg, ProtoConn, urlParts } from '../support/proto-client.js';
import { sleep } from '../support/proto-tools.js';
import { REDIS_DB as DBS } from '../support/redis-dbs.js';

const REDIS_DB = DBS.syscalls;
const env = testEnv();
const up = urlParts(env.pgUrl);
const DB = `syscalls_${process.pid}`;
const ROUNDS = 200;
const linux = process.platform === 'linux';

let proxy: SpawnedProxy;
let port: number;
let redis: Redis;

/** Write-type syscalls (write, writev, sendmsg...) the process has made so far, all threads. */
async function writeSyscalls(pid: number): Promise<number> {
  const io = await readFile(`/proc/${pid}/io`, 'utf8');
  return Number(/^syscw:\s+(\d+)/m.exec(io)![1]);
}

function withDb(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

/** A client on the proxy with `sql` prepared as statement "s". */
async function preparedConn(sql: string): Promise<ProtoConn> {
  const c = await ProtoConn.open(port, { user: up.user, password: up.password, database: DB });
  c.write(msg.parse('s', sql), msg.sync());
  const frames = await c.readUntilReady();
  assert.ok(!frames.some((f) => f.type === 'E'), `prepare failed: ${JSON.stringify(frames)}`);
  return c;
}

/** Runs "s" with each key, one packet per batch as pgbench sends it; returns the values read. */
async function lookups(c: ProtoConn, keys: string[]): Promise<string[]> {
  const values: string[] = [];
  for (const k of keys) {
    c.write(msg.bind('', 's', [k]), msg.describe('P', ''), msg.execute(''), msg.sync());
    const frames = await c.readUntilReady();
    const row = frames.find((f) => f.type === 'D');
    assert.ok(row, `no row for key ${k}: ${JSON.stringify(frames.map((f) => f.type))}`);
    values.push(dataRow(row.body)[0]!.toString());
  }
  return values;
}

/**
 * Write syscalls per batch over ROUNDS lookups, after a warm-up that fills caches and pools, not
 * counting `perSecond` writes for each second begun (work done on a clock, not per batch).
 */
async function writesPerBatch(c: ProtoConn, expect: (k: string) => string, perSecond: number): Promise<number> {
  const keys = Array.from({ length: ROUNDS }, (_, i) => String((i % 100) + 1));
  await lookups(c, keys.slice(0, 20));
  const before = await writeSyscalls(proxy.child.pid!);
  const t0 = performance.now();
  const values = await lookups(c, keys);
  const seconds = Math.ceil((performance.now() - t0) / 1000);
  const after = await writeSyscalls(proxy.child.pid!);
  assert.deepEqual(values, keys.map(expect));
  return (after - before - perSecond * seconds) / ROUNDS;
}

/**
 * `sql` (both tables hold key n → 'vn') costs at most `writes` write syscalls per batch. A foreign
 * table's session also re-reads the catalog's name index and re-checks the statement's privileges
 * once a second (one upstream write each, with its Sync): `perSecond` allows for those.
 */
async function assertBudget(sql: string, writes: number, perSecond = 0): Promise<void> {
  const c = await preparedConn(sql);
  try {
    const perBatch = await writesPerBatch(c, (k) => `v${k}`, perSecond);
    assert.ok(perBatch <= writes + 0.05, `${perBatch} write syscalls per batch, budget ${writes}`);
  } finally {
    c.destroy();
  }
}

describe('write syscalls per request batch (real CLI, /proc/<pid>/io)', { skip: !linux && 'needs /proc' }, () => {
  before(async () => {
    const admin = new pg.Client({ connectionString: env.pgUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${DB}`);
    await admin.query(`CREATE DATABASE ${DB}`);
    await admin.end();
    const ru = new URL(env.redisUrl);
    ru.pathname = `/${REDIS_DB}`;
    redis = new Redis(ru.toString());
    await redis.flushdb();
    await redis.hset('h', Object.fromEntries(Array.from({ length: 100 }, (_, i) => [String(i + 1), `v${i + 1}`])));

    proxy = await spawnProxy(['--listen', '127.0.0.1:0', '--upstream', withDb(env.pgUrl, DB), '--log-level', 'info']);
    const m = /"listen":"[^"]*:(\d+)"/.exec(proxy.output());
    assert.ok(m, `no listen address in output: ${proxy.output()}`);
    port = Number(m[1]);
    const c = new pg.Client({ connectionString: withDb(`postgres://${encodeURIComponent(up.user)}:${encodeURIComponent(up.password)}@127.0.0.1:${port}/`, DB) });
    await c.connect();
    await c.query(`create foreign data wrapper redis_wrapper handler redis_fdw_handler`);
    await c.query(`create server rs foreign data wrapper redis_wrapper options (conn_url '${ru.toString()}')`);
    await c.query(`create foreign table h (key text, value text) server rs options (src_type 'hash', src_key 'h')`);
    await c.query(`create table t (key text primary key, value text)`);
    await c.query(`insert into t select g::text, 'v' || g from generate_series(1, 100) g`);
    await c.end();
  });

  after(async () => {
    proxy?.child.kill('SIGTERM');
    await proxy?.exited;
    redis?.disconnect();
    const admin = new pg.Client({ connectionString: env.pgUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
    await admin.end();
  });

  test('passthrough: one write to upstream and one to the client', async () => {
    await assertBudget('select value from t where key = $1', 2);
  });

  test('foreign-table point lookup: Redis, then the client, nothing upstream (the local fast path)', async () => {
    await assertBudget('select value from h where key = $1', 2, 2);
  });

  test('point lookups of many clients read in one turn reach Redis in one write (the lookup pipe)', async () => {
    const K = 8;
    const sql = 'select value from h where key = $1';
    const conns = await Promise.all(Array.from({ length: K }, () => preparedConn(sql)));
    const pid = proxy.child.pid!;
    try {
      const counts: number[] = [];
      for (let round = 0; round < 5; round++) {
        // Warm (pipe open, privileges checked within the last second), then all K batches wait in the
        // kernel while the proxy is stopped: continued, it reads them in one turn of its event loop.
        await Promise.all(conns.map((c, i) => lookups(c, [String(i + 1)])));
        const before = await writeSyscalls(pid);
        proxy.child.kill('SIGSTOP');
        conns.forEach((c, i) => c.write(msg.bind('', 's', [String(i + 50)]), msg.describe('P', ''), msg.execute(''), msg.sync()));
        proxy.child.kill('SIGCONT');
        const values = await Promise.all(conns.map(async (c) => dataRow((await c.readUntilReady()).find((f) => f.type === 'D')!.body)[0]!.toString()));
        counts.push((await writeSyscalls(pid)) - before);
        assert.deepEqual(values, conns.map((_, i) => `v${i + 50}`));
      }
      // One write per client and one to Redis; a round may also meet the once-a-second re-checks.
      assert.ok(Math.min(...counts) <= K + 1, `write syscalls per round of ${K} lookups: ${counts.join(', ')} (one per client, one to Redis)`);
    } finally {
      for (const c of conns) c.destroy();
    }
  });

  test('Terminate reaches upstream once', async () => {
    const c = await preparedConn('select 1');
    const before = await writeSyscalls(proxy.child.pid!);
    c.write(msg.terminate());
    await c.closed;
    await sleep(100);
    const after = await writeSyscalls(proxy.child.pid!);
    assert.equal(after - before, 1, 'the client\'s Terminate, forwarded; nothing else is owed to anyone');
  });
});
