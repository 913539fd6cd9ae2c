import { it } from 'node:test';
import { cliFdw } from '../support/cli-fdw.js';
import { connect, setupSupabase } from '../support/fdw-sql.js';
import { startRedis } from '../harness/servers.js';
import { spawnProxy } from '../harness/proxy.js';

it('outbox cost', { timeout: 600_000 }, async () => {
  const redis = await startRedis();
  const f = await cliFdw('fdw_cost', redis.url);
  const c = await connect(f.url);
  await setupSupabase(c, f.redisUrl);
  await c.query(`create foreign table h (key text, value text) server redis_server options (src_type 'hash', src_key 'cost:h')`);
  const off = await spawnProxy(['--listen', '127.0.0.1:0', '--upstream', f.directUrl, '--log-level', 'info', '--no-outbox']);
  const port = Number(/"listen":"[^"]*:(\d+)"/.exec(off.output())![1]);
  const u = new URL(f.url); u.host = `127.0.0.1:${port}`;
  const c2 = await connect(u.toString());
  const N = 400;
  const run = async (cl: typeof c, tx: boolean): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      if (tx) {
        await cl.query('begin');
        await cl.query('insert into h values ($1, $2)', [`k${i}`, 'v']);
        await cl.query('commit');
      } else await cl.query('insert into h values ($1, $2)', [`k${i}`, 'v']);
    }
    return (performance.now() - t0) / N;
  };
  const res: Record<string, number[]> = { txOutbox: [], txNoOutbox: [], autoOutbox: [], autoNoOutbox: [] };
  for (let rep = 0; rep < 5; rep++) {
    res.txOutbox!.push(await run(c, true));
    res.txNoOutbox!.push(await run(c2, true));
    res.autoOutbox!.push(await run(c, false));
    res.autoNoOutbox!.push(await run(c2, false));
  }
  const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  console.log('# ms per statement/transaction, median of 5 alternating reps:', JSON.stringify(Object.fromEntries(Object.entries(res).map(([k, v]) => [k, med(v).toFixed(3)]))));
  await c.end(); await c2.end();
  off.child.kill('SIGTERM'); await off.exited;
  await f.close(); await redis.stop();
});
