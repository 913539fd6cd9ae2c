/**
 * The transactional outbox on a Redis Cluster: a transaction writing keys in several hash slots (on
 * every master) is applied exactly once per slot, whatever dies around COMMIT. The real CLI proxy is
 * SIGKILLed (and a master paused) at several points around COMMIT, in a loop; after each fault the
 * proxy restarts and replays its outbox. Then Postgres (which transactions committed), Redis (every
 * element of every list) and a serial model must agree: nothing committed is lost, nothing rolled back
 * appears, nothing applies twice (a list shows a duplicate at once).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { Cluster } from 'ioredis';
import { cliFdw, type CliFdw } from '../support/cli-fdw.js';
import { connect, setupSupabase } from '../support/fdw-sql.js';
import { haveRedisCli, startRedisCluster, type RedisClusterInstance } from '../harness/servers.js';
import { prng } from '../support/frames.js';
import { waitFor } from '../support/proto-tools.js';
import { slotOf } from '../../src/redis/slots.js';

const ROUNDS = 5;
/** Elements per list per round; one list per slot, two slots per master. */
const ROWS = 300;
const SEED = Number(process.env.OUTBOX_FAULT_SEED ?? Date.now() % 1_000_000_007);

let rc: RedisClusterInstance;
let f: CliFdw;
let d: pg.Client;
let cluster: Cluster;
/** The lists' keys, each in a slot of its own, two on every master; and each one's master port. */
const lists: { key: string; port: number }[] = [];

async function startAndReplay(extra: string[] = []): Promise<void> {
  await f.start(extra);
  await waitFor('the start-up outbox replay', () => /outbox replay at start|outbox off/.test(f.proxy.output()), 30_000, 20);
}

/**
 * Restarts the proxy replaying every 250 ms, and waits for the outbox to be empty: a replay that meets a
 * transient failure (a cluster client slow to connect on a loaded machine) leaves its row for the next
 * pass, as in production. A row that never applies times this out.
 */
async function drain(): Promise<void> {
  await f.kill();
  await f.start(['--outbox-replay-interval', '250ms']);
  await waitFor('the replays to empty the outbox', async () => (await d.query('select 1 from redis_fdw_proxy.outbox limit 1')).rowCount === 0, 60_000, 100);
}

/** Each list's elements, counted: the serial model compares these. */
async function counts(): Promise<Map<string, number>[]> {
  return Promise.all(
    lists.map(async (l) => {
      const m = new Map<string, number>();
      for (const e of await cluster.lrange(l.key, 0, -1)) m.set(e, (m.get(e) ?? 0) + 1);
      return m;
    }),
  );
}

/**
 * What differs from the model, for `rounds` only: every committed round's ROWS elements once in every
 * list, a rolled-back round's none. One line per list and round.
 */
function differences(all: Map<string, number>[], committed: number[], rounds: number[]): string[] {
  const wrong: string[] = [];
  all.forEach((m, i) => {
    const distinct = new Map<number, number>();
    const twice = new Map<number, number>();
    for (const [e, n] of m) {
      const r = Number(e.split(':')[0]);
      distinct.set(r, (distinct.get(r) ?? 0) + 1);
      if (n > 1) twice.set(r, (twice.get(r) ?? 0) + 1);
    }
    for (const r of rounds) {
      const want = committed.includes(r) ? ROWS : 0;
      const got = distinct.get(r) ?? 0;
      const where = `${lists[i]!.key} (master ${lists[i]!.port}), round ${r}`;
      if (got !== want) wrong.push(`${where}: ${committed.includes(r) ? 'committed' : 'rolled back'} upstream, ${got} of ${ROWS} elements in Redis`);
      if (twice.has(r)) wrong.push(`${where}: ${twice.get(r)} elements applied more than once`);
    }
  });
  return wrong;
}

before(async () => {
  if (!haveRedisCli()) return;
  // A paused master must not be marked failed: with no replica, that would stop the whole cluster.
  rc = await startRedisCluster(3, { nodeTimeoutMs: 120_000 });
  cluster = new Cluster([{ host: rc.host, port: rc.ports[0]! }], { enableOfflineQueue: true });
  await cluster.cluster('INFO');
  const ranges = (await cluster.cluster('SLOTS')) as unknown as [number, number, [string, number]][];
  const masterOf = (slot: number): number => {
    const r = ranges.find(([from, to]) => slot >= from && slot <= to);
    assert.ok(r, `slot ${slot} is assigned`);
    return r[2][1];
  };
  const perMaster = new Map<number, number>();
  const usedSlots = new Set<number>();
  for (let i = 0; lists.length < 6; i++) {
    const key = `oc:list:${i}`;
    const slot = slotOf(key);
    const port = masterOf(slot);
    if (usedSlots.has(slot) || (perMaster.get(port) ?? 0) >= 2) continue;
    usedSlots.add(slot);
    perMaster.set(port, (perMaster.get(port) ?? 0) + 1);
    lists.push({ key, port });
  }
  // A paused master's slots give up after 3 s (4 s for a new connection) rather than 5.
  f = await cliFdw('fdw_outbox_cluster', rc.url, ['--outbox-replay-interval', '0', '--outbox-replay-after', '0', '--redis-timeout', '3s']);
  const c = await connect(f.url);
  await setupSupabase(c, f.redisUrl);
  for (let i = 0; i < lists.length; i++) await c.query(`create foreign table ol${i} (element text) server redis_server options (src_type 'list', src_key '${lists[i]!.key}')`);
  await c.query('create table track (round int primary key)');
  await c.end();
  d = await connect(f.directUrl);
});

after(async () => {
  await d?.end().catch(() => {});
  for (const p of rc?.ports ?? []) rc.signal(p, 'SIGCONT');
  await f?.close();
  cluster?.disconnect();
  await rc?.stop();
});

/** Opens a transaction that writes ROWS elements to every list and records `round` in a real table. */
async function stage(round: number): Promise<pg.Client> {
  const c = await connect(f.url).catch((e: unknown) => {
    // A refused connection means the proxy is gone: say how it ended.
    const child = f.proxy.child;
    throw new Error(`round ${round}: ${String(e)}; proxy exit code ${child.exitCode}, signal ${child.signalCode}; its log: ${f.proxy.output().slice(-3000)}`);
  });
  // The proxy meets the cluster before any fault: one that first meets it with a master paused may not
  // connect within the bound (the pool probes the seed node, ioredis asks nodes for the slot map).
  await c.query('select count(*) from ol0');
  await c.query('begin');
  for (let i = 0; i < lists.length; i++) await c.query(`insert into ol${i} (element) select '${round}:' || g from generate_series(1, ${ROWS}) g`);
  await c.query(`insert into track values (${round})`);
  return c;
}

const committedRounds = async (): Promise<number[]> => (await d.query('select round from track order by round')).rows.map((r) => Number(r.round));

type Fault = 'kill proxy after COMMIT sent' | 'kill proxy before COMMIT' | 'kill proxy once upstream committed' | 'a master paused at COMMIT, kill proxy once the others applied';
// The runner's 3-minute file limit holds ROUNDS rounds on a loaded machine: a master is paused in the first and the last.
const FAULTS: Fault[] = ['a master paused at COMMIT, kill proxy once the others applied', 'kill proxy after COMMIT sent', 'kill proxy once upstream committed', 'kill proxy before COMMIT'];

describe('outbox on a Redis Cluster', { skip: !haveRedisCli() && 'redis-cli not installed' }, () => {
  it('a clean COMMIT writes every slot, and a master paused at COMMIT leaves only its slots queued, applied once by the replay', { timeout: 60_000 }, async () => {
    const round = 1000;
    let c = await stage(round);
    assert.equal((await c.query('commit')).command, 'COMMIT');
    await c.end();
    assert.deepEqual(differences(await counts(), [round], [round]), [], 'every slot applied at COMMIT');

    // One master paused: its slots time out (outcome unknown: queued), the other masters' slots apply.
    const paused = lists[0]!.port;
    c = await stage(round + 1);
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    rc.signal(paused, 'SIGSTOP');
    try {
      assert.equal((await c.query('commit')).command, 'COMMIT');
    } finally {
      rc.signal(paused, 'SIGCONT');
    }
    await c.end();
    assert.ok(
      notices.some((m) => new RegExp(`the transaction committed; ${2 * ROWS} of its ${6 * ROWS} Redis writes to .* are queued in the outbox`).test(m)),
      `the WARNING says which writes are queued: ${JSON.stringify(notices)}`,
    );
    const now = await counts();
    const onPaused = lists.map((l, i) => (l.port === paused ? i : -1)).filter((i) => i >= 0);
    for (let i = 0; i < lists.length; i++) {
      const got = [...now[i]!.keys()].filter((e) => e.startsWith(`${round + 1}:`)).length;
      if (!onPaused.includes(i)) assert.equal(got, ROWS, `${lists[i]!.key} on a live master is written at COMMIT`);
    }
    // The replay finishes the paused master's slots and leaves the others alone.
    await drain();
    assert.deepEqual(differences(await counts(), [round, round + 1], [round, round + 1]), [], `proxy log: ${f.proxy.output().slice(-3000)}`);
  });

  it(`${ROUNDS} rounds of SIGKILL (and a paused master) around COMMIT: Postgres, Redis and a serial model agree, per slot`, { timeout: 110_000 }, async () => {
    const rnd = prng(SEED);
    console.log(`[outbox-cluster] seed ${SEED} (repeat with OUTBOX_FAULT_SEED=${SEED})`);
    const seen: Record<string, number> = {};
    const rounds: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const fault = FAULTS[round % FAULTS.length]!;
      rounds.push(round);
      const c = await stage(round);
      const committed = async (): Promise<boolean> => (await d.query('select 1 from track where round = $1', [round])).rowCount === 1;
      if (fault === 'kill proxy before COMMIT') {
        await f.kill();
      } else if (fault === 'kill proxy after COMMIT sent') {
        void c.query('commit').catch(() => {});
        const delay = rnd.int(0, 150);
        await new Promise((r) => setTimeout(r, delay)); // the fault point itself, not synchronisation
        await f.kill();
      } else if (fault === 'kill proxy once upstream committed') {
        // Between upstream's COMMIT and the slots' EXECs, or among them: the race the markers exist for.
        void c.query('commit').catch(() => {});
        await waitFor('upstream COMMIT', async () => await committed(), 30_000, 1);
        await f.kill();
      } else {
        // Killed half-way: the live masters' slots applied, the paused one's not.
        const port = rc.ports[round % rc.ports.length]!;
        rc.signal(port, 'SIGSTOP');
        try {
          void c.query('commit').catch(() => {});
          const live = lists.filter((l) => l.port !== port);
          await waitFor('the live masters applied their slots', async () => (await Promise.all(live.map((l) => cluster.lindex(l.key, -1)))).every((e) => e === `${round}:${ROWS}`), 30_000, 5);
          await f.kill();
        } finally {
          rc.signal(port, 'SIGCONT');
        }
      }
      await c.end().catch(() => {});
      await startAndReplay();
      seen[fault] = (seen[fault] ?? 0) + 1;
    }
    // Whatever a start-up replay left (a proxy killed after its COMMIT, or a transient failure) is applied now.
    await drain();
    const committed = (await committedRounds()).filter((r) => r < ROUNDS);
    assert.deepEqual(differences(await counts(), committed, rounds), [], `Redis differs from the serial model; proxy log: ${f.proxy.output().slice(-1500)}`);
    console.log(`[outbox-cluster] committed rounds ${JSON.stringify(committed)}; faults ${JSON.stringify(seen)}`);
  });
});
