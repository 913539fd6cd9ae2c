// psycopg 3 (Debian's python3-psycopg, run with /usr/bin/python3) through the proxy. The scenarios
// live in python/psycopg_driver.py, which prints JSON; it runs against upstream directly and through
// the proxy, and both documents must be identical (plus explicit checks on the proxy's run).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { testEnv } from '../harness/env.js';
import { startProxy, type RunningProxy } from '../harness/proxy.js';
import { helperPath, runJsonProgram, runProgram, sameScenarios } from './common.js';

const env = testEnv();
// TEST_PSYCOPG_PYTHON only exists to check the skip path; the brief's interpreter is /usr/bin/python3.
const PY = process.env.TEST_PSYCOPG_PYTHON ?? '/usr/bin/python3';
const P = `drv_py_${process.pid}`;

async function psycopgMissing(): Promise<string | false> {
  if (!existsSync(PY)) return `${PY} not installed`;
  const r = await runProgram(PY, ['-c', 'import psycopg; print(psycopg.__version__)'], { timeoutMs: 30_000 }).catch((e: unknown) => ({ code: -1, stdout: '', stderr: String(e) }));
  return r.code === 0 ? false : `python3-psycopg not importable by ${PY}: ${r.stderr.trim().split('\n').pop()}`;
}

const missing = await psycopgMissing();
let proxy: RunningProxy | undefined;

before(async () => {
  if (!missing) proxy = await startProxy(env.pgUrl);
});
after(async () => {
  await proxy?.close();
});

type Doc = Record<string, any>;

const run = (url: string): Promise<Doc> => runJsonProgram(PY, [helperPath('python/psycopg_driver.py'), url, P], { timeoutMs: 120_000, env: { PYTHONDONTWRITEBYTECODE: '1' } });

test('psycopg 3 through the proxy', { skip: missing }, async (t) => {
  const direct = await run(env.pgUrl);
  const via = await run(proxy!.url());

  await sameScenarios(t, via, direct);

  // Explicit expectations, so the test fails even if upstream itself misbehaved identically.
  await t.test('connect, params, binary cursor', () => {
    assert.equal(via.connect.status, 'OK');
    assert.equal(via.connect.has_pid, true);
    assert.equal(via.params.row[0], 42);
    assert.equal(via.params.row[1], "it's; drop table x; --");
    assert.deepEqual(via.params.row[2], { bytes: '0001ff' });
    assert.deepEqual(via.params.named, [42, 6]);
    assert.equal(via.params.bad.sqlstate, '22P02');
    assert.deepEqual(via.binary_cursor.formats, [1, 1, 1, 1, 1, 1, 1, 1, 1], 'binary cursor gets binary columns');
    assert.deepEqual(via.binary_cursor.row.slice(0, 4), [1, -2, 1.5, 'héllo']);
    assert.deepEqual(via.binary_cursor.row[4], { bytes: '00ff' });
    assert.deepEqual(via.binary_cursor.row[7], [1, 2, 3]);
  });
  await t.test('executemany, server-side cursor, COPY', () => {
    assert.equal(via.executemany.rowcount, 500);
    assert.equal(via.executemany.returned.length, 5);
    assert.equal(via.executemany.dup.sqlstate, '23505');
    assert.deepEqual(via.executemany.agg.slice(0, 2), [500, 124750]);
    assert.equal(via.server_side_cursor.n, 5000);
    assert.deepEqual(via.server_side_cursor.in_cursors, [['drv_named_cur', false, true]]);
    assert.equal(via.server_side_cursor.gone, 0);
    assert.equal(via.server_side_cursor.held_len, 250);
    assert.equal(via.copy.loaded, 20000);
    assert.equal(via.copy.count, 25000);
    assert.equal(via.copy.bad.sqlstate, '22P02');
    assert.deepEqual(via.copy.rows[2], [24999, 'raw 24999', null]);
  });
  await t.test('transactions and pipeline mode', () => {
    assert.deepEqual(via.transactions.rows, [3, 4]);
    assert.deepEqual(via.transactions.final, [3, 4, 6]);
    assert.equal(via.transactions.status_after_error, 'INERROR');
    assert.equal(via.transactions.in_failed.sqlstate, '25P02');
    assert.equal(via.transactions.unique.sqlstate, '23505');
    assert.equal(via.pipeline.returning.length, 50);
    assert.equal(via.pipeline.returning[49], 490);
    assert.deepEqual(via.pipeline.agg, [50, 1225]);
    assert.equal(via.pipeline.error.sqlstate, '23505');
    assert.deepEqual(via.pipeline.rows_after_error, [], 'an autocommit pipeline is one implicit transaction up to its Sync');
    assert.equal(via.pipeline.tx_error.sqlstate, '22012');
    assert.equal(via.pipeline.tx_rows, 0);
    assert.equal(via.pipeline.usable, 'ok');
  });
  await t.test('prepare=True, automatic preparation, notices, notifies, ParameterStatus', () => {
    assert.deepEqual(via.prepare.vals, [0, 3, 6, 9, 12]);
    assert.deepEqual(via.prepare.prepared, [1, [true]], 'prepare=True made one _pg3_ statement upstream');
    assert.equal(via.prepare.auto, 1, 'automatic preparation after prepare_threshold');
    assert.equal(via.prepare.never, 0);
    assert.deepEqual(via.notices_notifies_params.notices, [['NOTICE', '00000', 'py notice 1'], ['WARNING', '01000', 'py warning']]);
    assert.deepEqual(via.notices_notifies_params.notifies, [[`${P}_chan`, 'hello', true], [`${P}_chan`, 'wörld', true]]);
    assert.equal(via.notices_notifies_params.app, 'drv_psycopg');
  });
  await t.test('client_encoding LATIN1: bytes pass through untouched', () => {
    assert.deepEqual(via.client_encoding.row, ['café', 'naïve', 4, 2]);
    assert.equal(via.client_encoding.unmappable.sqlstate, '22P05');
    assert.equal(via.client_encoding.enc, 'iso8859-1');
    assert.equal(via.client_encoding.back, 'café ✓');
  });
});
