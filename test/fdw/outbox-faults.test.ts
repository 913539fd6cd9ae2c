/**
 * The transactional outbox under faults (issue 11 item 4): the real CLI proxy is SIGKILLed, and Redis
 * paused or killed, at several points around COMMIT, in a loop. After each fault the proxy restarts
 * and replays its outbox; then Postgres (which transactions committed), Redis (every element of every
 * transaction) and a serial model must agree: nothing committed is lost, nothing rolled back appears,
 * nothing applies twice (a list shows a duplicate at once).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { cliFdw, type CliFdw } from '../support/cli-fdw.js';
import { connect, setupSupabase } from '../support/fdw-sql.js';
import { startRedis, type RedisInstance } from '../harness/servers.js';
import { prng } from '../support/frames.js';
import { waitFor } from '../support/proto-tools.js';

const ROUNDS = 15;
const ROWS = 2000;
const SEED = Number(process.env.OUTBOX_FAULT_SEED ?? Date.now() % 1_000_000_007);

let redis: RedisInstance;
let f: CliFdw;
let d: pg.Client;

/** Starts the proxy and waits until its start-up replay has finished (the event, not a sleep). */
async function startAndReplay(): Promise<void> {
  await f.start();
  await waitFor('the start-up outbox replay', () => /outbox replay at start|outbox off/.test(f.proxy.output()), 30_000, 20);
}

before(async () => {
  redis = await startRedis();
  f = await cliFdw('fdw_outbox_faults', redis.url, ['--outbox-replay-interval', '0', '--outbox-replay-after', '0']);
  const c = await connect(f.url);
  await setupSupabase(c, f.redisUrl);
  await c.query(`create foreign table ol (element text) server redis_server options (src_type 'list', src_key 'ob:list')`);
  await c.query('create table track (round int primary key)');
  await c.end();
  d = await connect(f.directUrl);
});

after(async () => {
  await d?.end().catch(() => {});
  redis?.signal('SIGCONT');
  await f?.close();
  await redis?.stop();
});

type Fault = 'kill proxy after COMMIT sent' | 'kill proxy before COMMIT' | 'kill proxy once upstream committed' | 'Redis paused at COMMIT, kill proxy' | 'Redis killed before COMMIT, then proxy';
const FAULTS: Fault[] = ['kill proxy after COMMIT sent', 'kill proxy before COMMIT', 'kill proxy once upstream committed', 'Redis paused at COMMIT, kill proxy', 'Redis killed before COMMIT, then proxy'];

describe('outbox fault injection', () => {
  it(`${ROUNDS} rounds of SIGKILL/SIGSTOP around COMMIT: Postgres, Redis and a serial model agree`, { timeout: 600_000 }, async () => {
    const rnd = prng(SEED);
    console.log(`[outbox-faults] seed ${SEED} (repeat with OUTBOX_FAULT_SEED=${SEED})`);
    const seen: Record<string, number> = {};
    for (let round = 0; round < ROUNDS; round++) {
      const fault = FAULTS[round % FAULTS.length]!;
      const c = await connect(f.url);
      await c.query('begin');
      await c.query(`insert into ol (element) select '${round}:' || g from generate_series(1, ${ROWS}) g`);
      await c.query(`insert into track values (${round})`);
      const committed = async (): Promise<boolean> => (await d.query('select 1 from track where round = $1', [round])).rowCount === 1;
      if (fault === 'kill proxy before COMMIT') {
        await f.kill();
      } else if (fault === 'kill proxy after COMMIT sent') {
        void c.query('commit').catch(() => {});
        const delay = rnd.int(0, 150);
        await new Promise((r) => setTimeout(r, delay)); // the fault point itself, not synchronisation
        await f.kill();
      } else if (fault === 'kill proxy once upstream committed') {
        // Between upstream's COMMIT and Redis's EXEC, or just after: the race the outbox exists for.
        void c.query('commit').catch(() => {});
        await waitFor('upstream COMMIT', async () => await committed(), 30_000, 1);
        await f.kill();
      } else if (fault === 'Redis paused at COMMIT, kill proxy') {
        redis.signal('SIGSTOP');
        void c.query('commit').catch(() => {});
        await waitFor('upstream COMMIT', async () => await committed(), 30_000, 20);
        await f.kill();
        redis.signal('SIGCONT');
      } else {
        // This Redis keeps nothing across a restart: what the list held is put back before the replay.
        const before = await f.redis.lrange('ob:list', 0, -1);
        await redis.kill();
        const notices: string[] = [];
        c.on('notice', (n) => notices.push(n.message ?? ''));
        assert.equal((await c.query('commit')).command, 'COMMIT');
        assert.ok(notices.some((m) => /queued in the outbox/.test(m)), `the WARNING says the writes are queued: ${JSON.stringify(notices)}`);
        await f.kill();
        await redis.restart();
        for (let i = 0; i < before.length; i += 1000) await f.redis.rpush('ob:list', ...before.slice(i, i + 1000));
      }
      await c.end().catch(() => {});
      await startAndReplay();
      seen[fault] = (seen[fault] ?? 0) + 1;
    }
    // The serial model: each committed round's elements exactly once, in commit order; nothing else.
    const rounds = (await d.query('select round from track order by round')).rows.map((r) => Number(r.round));
    const list = await f.redis.lrange('ob:list', 0, -1);
    const counts = new Map<string, number>();
    for (const e of list) counts.set(e, (counts.get(e) ?? 0) + 1);
    const dupes = [...counts].filter(([, n]) => n > 1);
    assert.deepEqual(dupes.slice(0, 5), [], 'no element applied twice');
    const byRound = new Map<number, number>();
    for (const e of counts.keys()) {
      const r = Number(e.split(':')[0]);
      byRound.set(r, (byRound.get(r) ?? 0) + 1);
    }
    const wrong: string[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const want = rounds.includes(r) ? ROWS : 0;
      const got = byRound.get(r) ?? 0;
      if (got !== want) wrong.push(`round ${r} (${FAULTS[r % FAULTS.length]}): ${rounds.includes(r) ? 'committed' : 'rolled back'} upstream, ${got} of ${ROWS} elements in Redis`);
    }
    assert.deepEqual(wrong, [], `Redis differs from the serial model; proxy log: ${f.proxy.output().slice(-1500)}`);
    // Rows applied by a live COMMIT are deleted just after it; one more replay pass settles a proxy killed in between.
    await f.kill();
    await startAndReplay();
    assert.deepEqual((await d.query('select txid, created from redis_fdw_proxy.outbox')).rows, [], 'the outbox is empty after the replays');
    console.log(`[outbox-faults] committed rounds ${JSON.stringify(rounds)}; faults ${JSON.stringify(seen)}`);
  });

  it('an autocommit INSERT whose Redis connection dies with the write in flight reports 08007 (outcome unknown), not a failure', { timeout: 120_000 }, async () => {
    const c = await connect(f.url);
    try {
      // A live connection first: a write stuck in connecting never left the proxy (that one is HV00N).
      await c.query('select count(*) from ol');
      redis.signal('SIGSTOP');
      // A function call keeps it on the upstream path (the fast write would send upstream nothing to wait on).
      const outcome = c.query(`insert into ol (element) values (concat('unknown-outcome', ''))`).then(
        () => undefined,
        (e: { code?: string; message?: string }) => e,
      );
      // Upstream has evaluated the INSERT and waits for the proxy's next message (its Sync comes after
      // Redis answers): the write is on its way to Redis.
      const waiting = `select 1 from pg_stat_activity where datname = $1 and state = 'active' and wait_event = 'ClientRead' and query like '%unknown-outcome%'`;
      await waitFor('the write in flight', async () => (await d.query(waiting, [f.db])).rowCount! > 0, 30_000, 20);
      await redis.kill();
      const e = await outcome;
      assert.equal(e?.code, '08007', `error: ${e?.code} ${e?.message}`);
      assert.match(e?.message ?? '', /outcome of this Redis write is unknown/);
      await redis.restart();
      assert.deepEqual((await c.query('select 1 as one')).rows, [{ one: '1' }], 'the session stays usable');
    } finally {
      redis.signal('SIGCONT');
      await c.end().catch(() => {});
    }
  });
});
