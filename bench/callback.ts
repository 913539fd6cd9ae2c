// Callback-path benchmark (DESIGN §7): a Redis hash read where Postgres evaluates the foreign table
// itself (a view, so upstream's postgres_fdw calls the proxy back) vs. the proxy's rewritten path
// (the statement names the foreign table, so the proxy rewrites it), with a real table as the floor,
// all in the same run.
//
//   npm run bench:callback
//
// Scenarios, each 1 warm-up + BENCH_REPS (default 5) timed runs, median ms:
//   scan   all rows of a 100,000-field hash: rewritten `select * from h` vs. `select * from v` (a view
//          over h) through the proxy and straight at upstream, and a real 100k-row table;
//   count  `count(*)`: rewritten vs. the view (postgres_fdw pushes count(*) down: HLEN), and a filtered
//          count the callback has upstream evaluate (`where value <> ''`);
//   fetch  the view scan again with the server's fetch_size raised from postgres_fdw's 100 to 10,000.
//
// Environment: TEST_PG_URL / TEST_REDIS_URL as for the other benches (throwaway servers if unset),
// BENCH_REDIS_DB (default 14), BENCH_REPS.
import pg from 'pg';
import { envInt, fdwBenchServers, fmt, formatTable, median, onCleanup, ratio, runMain, startProxyCli, withDatabase } from './lib.js';

const N = 100_000;

async function main(): Promise<void> {
  const reps = envInt('BENCH_REPS', 5);
  const { redis, redisTarget, dbName, dbUrl } = await fdwBenchServers('callback_bench', envInt('BENCH_REDIS_DB', 14));
  const fields: string[] = [];
  for (let i = 0; i < N; i++) fields.push(String(i), `value-${i}-abcdefghijklmnopqrstuvwxyz`);
  for (let i = 0; i < fields.length; i += 20_000) await redis.hset('h', ...fields.slice(i, i + 20_000));

  const upstreamUrl = dbUrl;
  const proxy = await startProxyCli(upstreamUrl, ['--log-level', 'warn', '--advertise', 'auto']);
  const viaProxy = new pg.Client({ connectionString: withDatabase(proxy.url, dbName) });
  viaProxy.on('error', () => {});
  await viaProxy.connect();
  onCleanup(() => viaProxy.end().catch(() => {}));
  await viaProxy.query([
    'create foreign data wrapper redis_wrapper handler redis_fdw_handler;',
    `create server s foreign data wrapper redis_wrapper options (conn_url '${redisTarget.url.replace(/'/g, "''")}');`,
    "create foreign table h (key text, value text) server s options (src_type 'hash', src_key 'h');",
    'create view v as select * from h;',
    `create table t as select g::text as key, 'value-' || g || '-abcdefghijklmnopqrstuvwxyz' as value from generate_series(0, ${N - 1}) g;`,
  ].join('\n'));
  const handler = (await viaProxy.query("select fdwhandler::regproc::text as h from pg_foreign_data_wrapper where fdwname = 'redis_wrapper'")).rows[0].h as string;
  if (!handler.endsWith('postgres_fdw_handler')) throw new Error(`the wrapper's handler is ${handler}: no callback mode (upstream lacks postgres_fdw?)`);
  const direct = new pg.Client({ connectionString: upstreamUrl });
  await direct.connect();
  onCleanup(() => direct.end().catch(() => {}));

  const time = async (c: pg.Client, sql: string, expectRows: number | ((r: pg.QueryResult) => boolean)): Promise<number> => {
    const ms: number[] = [];
    for (let i = 0; i <= reps; i++) {
      const t0 = performance.now();
      const r = await c.query(sql);
      const dt = performance.now() - t0;
      const ok = typeof expectRows === 'number' ? r.rowCount === expectRows : expectRows(r);
      if (!ok) throw new Error(`${sql}: unexpected result (${r.rowCount} rows, first ${JSON.stringify(r.rows[0])})`);
      if (i > 0) ms.push(dt);
    }
    return median(ms);
  };
  const countIs = (n: number) => (r: pg.QueryResult): boolean => Number(r.rows[0]?.count) === n;

  const scanRewrite = await time(viaProxy, 'select * from h', N);
  const scanView = await time(viaProxy, 'select * from v', N);
  const scanViewDirect = await time(direct, 'select * from v', N);
  const scanTable = await time(direct, 'select * from t', N);
  const countRewrite = await time(viaProxy, 'select count(*) from h', countIs(N));
  const countView = await time(viaProxy, 'select count(*) from v', countIs(N));
  const countFiltered = await time(viaProxy, "select count(*) from v where value <> ''", countIs(N));
  const countFilteredRewrite = await time(viaProxy, "select count(*) from h where value <> ''", countIs(N));
  await direct.query("alter server s options (add fetch_size '10000')");
  const scanViewFetch = await time(viaProxy, 'select * from v', N);

  console.log(formatTable(['scenario', 'route', 'median ms', 'vs rewritten'], [
    ['scan 100k', 'rewritten: select * from h (proxy)', fmt(scanRewrite, 1), '1.00×'],
    ['scan 100k', 'callback: select * from v (proxy)', fmt(scanView, 1), ratio(scanView, scanRewrite)],
    ['scan 100k', 'callback: select * from v (direct to upstream)', fmt(scanViewDirect, 1), ratio(scanViewDirect, scanRewrite)],
    ['scan 100k', 'callback, fetch_size 10000 (proxy)', fmt(scanViewFetch, 1), ratio(scanViewFetch, scanRewrite)],
    ['scan 100k', 'real table (direct)', fmt(scanTable, 1), ratio(scanTable, scanRewrite)],
    ['count(*)', 'rewritten: from h', fmt(countRewrite, 1), '1.00×'],
    ['count(*)', 'callback: from v (pushed down, HLEN)', fmt(countView, 1), ratio(countView, countRewrite)],
    ["count(*) where value <> ''", 'rewritten: from h', fmt(countFilteredRewrite, 1), '1.00×'],
    ["count(*) where value <> ''", 'callback: from v (upstream evaluates)', fmt(countFiltered, 1), ratio(countFiltered, countFilteredRewrite)],
  ]));
}

runMain(main);
