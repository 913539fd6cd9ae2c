// pgbench through the proxy: initialisation, then select-only and tpcb-like in all three query modes
// (simple, extended, prepared), 8 clients for 10 s each. Every transaction must succeed, and the tpcb
// bookkeeping must balance afterwards (no write lost or doubled on the way through the proxy).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testEnv } from '../harness/env.js';
import { startProxy, type RunningProxy } from '../harness/proxy.js';
import { directQuery, runProc, withCredentials } from '../support/proto-tools.js';

const env = testEnv();
const DB = `pgbench_${process.pid}`;
const up = new URL(env.pgUrl);
let proxy: RunningProxy;
let proxyDbUrl: string;
let directDbUrl: string;

before(async () => {
  await directQuery(env.pgUrl, `drop database if exists ${DB}`);
  await directQuery(env.pgUrl, `create database ${DB}`);
  proxy = await startProxy(env.pgUrl);
  proxyDbUrl = proxy.url(decodeURIComponent(up.username), decodeURIComponent(up.password), DB);
  directDbUrl = withCredentials(env.pgUrl, decodeURIComponent(up.username), decodeURIComponent(up.password), DB);
});

after(async () => {
  await proxy?.close();
  await directQuery(env.pgUrl, `drop database if exists ${DB} with (force)`).catch(() => {});
});

interface BenchResult {
  tps: number;
  processed: number;
  failed: number;
  stdout: string;
  stderr: string;
}

function parse(stdout: string, stderr: string): BenchResult {
  const num = (re: RegExp): number => {
    const m = re.exec(stdout);
    return m ? Number(m[1]) : NaN;
  };
  return {
    tps: num(/^tps = ([\d.]+)/m),
    processed: num(/^number of transactions actually processed: (\d+)/m),
    failed: num(/^number of failed transactions: (\d+)/m),
    stdout,
    stderr,
  };
}

describe('pgbench through the proxy', () => {
  test('pgbench -i -s 1', async () => {
    const r = await runProc('pgbench', ['-i', '-s', '1', '-q', proxyDbUrl], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /error|fatal/i);
    assert.match(r.stderr, /done in [\d.]+ s/);
    const [row] = await directQuery<{ n: string }>(directDbUrl, 'select count(*) as n from pgbench_accounts');
    assert.equal(row?.n, '100000');
  });

  for (const script of [['-S'], []] as const) {
    for (const mode of ['simple', 'extended', 'prepared'] as const) {
      const name = `${script.length ? 'select-only (-S)' : 'tpcb-like'} -M ${mode}, -c 8 -j 2 -T 10`;
      test(name, { timeout: 40_000 }, async (t) => {
        const r = await runProc('pgbench', [...script, '-M', mode, '-c', '8', '-j', '2', '-T', '10', '-n', proxyDbUrl], { timeoutMs: 35_000 });
        const b = parse(r.stdout, r.stderr);
        assert.equal(r.code, 0, `pgbench exited ${r.code}\n${r.stdout}\n${r.stderr}`);
        assert.doesNotMatch(r.stderr, /error/i, 'stderr mentions an error');
        assert.equal(b.failed, 0, `failed transactions\n${r.stdout}`);
        assert.ok(b.processed > 0, `transactions processed: ${b.processed}`);
        assert.ok(b.tps > 0, `tps: ${b.tps}`);
        t.diagnostic(`tps ${b.tps}, ${b.processed} transactions`);
      });
    }
  }

  test('tpcb bookkeeping balances: accounts = tellers = branches = history', async () => {
    const [row] = await directQuery<{ a: string; t: string; b: string; h: string; n: string }>(
      directDbUrl,
      `select (select sum(abalance) from pgbench_accounts) as a, (select sum(tbalance) from pgbench_tellers) as t,
              (select sum(bbalance) from pgbench_branches) as b, (select coalesce(sum(delta), 0) from pgbench_history) as h,
              (select count(*) from pgbench_history) as n`,
    );
    assert.ok(row);
    assert.ok(Number(row.n) > 0, 'tpcb-like runs wrote history');
    assert.equal(row.a, row.h);
    assert.equal(row.t, row.h);
    assert.equal(row.b, row.h);
  });
});
