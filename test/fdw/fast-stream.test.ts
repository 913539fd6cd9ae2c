/**
 * A whole-key read on the fast path sends its rows as Redis's reply is parsed, once the reply is known
 * good (fast-path.ts, checkedWhole). That needs nothing owed upstream first. Name resolution (with
 * privileges, re-checked every second) and extra_float_digits are internal queries that leave a batch
 * open upstream: the read must close it and wait for its end before the rows start, or it silently
 * stops streaming (and waits for its whole parse) on every re-check. The slow-statement log says which.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { fdwFixture, type FdwFixture } from '../support/fdw.js';
import { connect, setupSupabase } from '../support/fdw-sql.js';
import { REDIS_DB } from '../support/redis-dbs.js';
import { startProxy, type RunningProxy } from '../harness/proxy.js';
import { configureSlowLog } from '../../src/metrics/statement-kind.js';
import pino from 'pino';

let f: FdwFixture;
let proxy: RunningProxy;
const lines: Record<string, unknown>[] = [];
const N = 30_000;
/** A key read whole whose rows take many turns of the event loop to write. */
const BIG = 200_000;

before(async () => {
  f = await fdwFixture('fdw_fast_stream', REDIS_DB.fastStream);
  const c = await connect(f.url);
  await setupSupabase(c, f.redisUrl);
  for (const [t, cols, type, key] of [['s_big', 'key text, value text', 'hash', 'sbig'], ['s_hash', 'key text, value text', 'hash', 'sh'], ['s_list', 'element text', 'list', 'sl'], ['s_zset', 'element text, score float8', 'zset', 'sz']] as const) {
    await c.query(`create foreign table ${t} (${cols}) server redis_server options (src_type '${type}', src_key '${key}')`);
  }
  await c.end();
  const ids = Array.from({ length: N }, (_, i) => i);
  await f.redis.hset('sh', ...ids.flatMap((i) => [`f${i}`, `value-${i}-${'v'.repeat(i % 30)}`]));
  await f.redis.rpush('sl', ...ids.map((i) => `element-${i}`));
  await f.redis.zadd('sz', ...ids.flatMap((i) => [String(i / 4), `member-${i}`]));
  for (let from = 0; from < BIG; from += 50_000) {
    await f.redis.hset('sbig', ...Array.from({ length: 50_000 }, (_, k) => [`k${from + k}`, `v${from + k}`]).flat());
  }
  // Every statement is logged, and names are re-checked upstream for every statement (recheck 0).
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const log = pino({ level: 'info' }, sink);
  configureSlowLog({ logMinDurationMs: 0 }, log);
  proxy = await startProxy(f.directUrl, { logLevel: 'info', redisWholeRead: BIG }, { recheckMs: 0 }, sink);
});

after(async () => {
  await proxy?.close();
  await f?.close();
});

describe('a whole-key fast read streams its rows', () => {
  it('also when its names (and extra_float_digits) were just asked of upstream', async () => {
    const c = await connect(proxy.url(undefined, undefined, f.db));
    try {
      const script = ['select * from s_hash', 'select * from s_list', 'select * from s_zset'];
      for (let round = 0; round < 2; round++) {
        for (const sql of script) {
          const r = await c.query({ text: sql, rowMode: 'array' });
          assert.equal(r.rows.length, N, sql);
        }
      }
      // A statement the session sends upstream between them: the next read asks for its names afresh.
      await c.query('select 1');
      const r = await c.query({ text: 'select * from s_zset', rowMode: 'array' });
      assert.equal(r.rows.length, N);
      assert.equal(r.rows[5]![1], '1.25');
    } finally {
      await c.end();
    }
    const reads = lines.filter((l) => l.msg === 'slow statement' && typeof l.sql === 'string' && l.sql.startsWith('select * from s_'));
    assert.equal(reads.length, 7, JSON.stringify(lines.filter((l) => l.msg === 'slow statement')));
    for (const l of reads) {
      assert.equal(l.kind, 'foreign_read_fast', l.sql as string);
      assert.equal(l.rows, N, l.sql as string);
      assert.equal(l.streamed, true, `${l.sql as string}: rows streamed`);
    }
  });

  it('every row arrives when something goes upstream mid-stream (the statement_timeout probe after 250 ms)', async () => {
    const c = await connect(proxy.url(undefined, undefined, f.db));
    try {
      await c.query('select count(*) from s_big'); // names resolved, the session warm
      const pid = (await c.query('select pg_backend_pid() as pid')).rows[0].pid as number;
      // The proxy runs in this process: holding the event loop once the first rows are in makes the
      // statement older than the probe's 250 ms while most of its rows are still to be written, so the
      // probe's query goes upstream between two chunks of them.
      let held = false;
      const stream = (c as unknown as { connection: { stream: NodeJS.EventEmitter } }).connection.stream;
      const hold = (): void => {
        if (held) return;
        held = true;
        const until = Date.now() + 400;
        while (Date.now() < until);
      };
      stream.on('data', hold);
      const r = await c.query({ text: 'select * from s_big', rowMode: 'array' });
      stream.off('data', hold);
      assert.ok(held);
      assert.equal(r.rows.length, BIG, 'no chunk of rows lost');
      assert.equal(new Set(r.rows.map((x) => x[0])).size, BIG);
      // The probe's batch was closed before the ReadyForQuery: upstream is not left idle in transaction.
      const direct = await connect(f.directUrl);
      try {
        const state = async (): Promise<string> => (await direct.query('select state from pg_stat_activity where pid = $1', [pid])).rows[0].state as string;
        for (let i = 0; i < 50 && (await state()) !== 'idle'; i++) await new Promise((res) => setImmediate(res));
        assert.equal(await state(), 'idle');
      } finally {
        await direct.end();
      }
      const after = await c.query("select 'after' as one");
      assert.deepEqual(after.rows, [{ one: 'after' }], 'the session goes on');
    } finally {
      await c.end();
    }
    const big = lines.filter((l) => l.msg === 'slow statement' && l.sql === 'select * from s_big');
    assert.equal(big.length, 1);
    assert.equal(big[0]!.streamed, true, 'the rows were streamed');
    assert.ok((big[0]!.durationMs as number) >= 250, 'long enough for the probe');
  });
});
