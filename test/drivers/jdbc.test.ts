// PostgreSQL JDBC (Debian's libpostgresql-jdbc-java) through the proxy. The scenarios live in
// java/JdbcDriver.java, run as a single source file with `java`; it prints JSON. It runs against
// upstream directly and through the proxy, and both documents must be identical (plus explicit
// checks). JDBC is the client that sends BEGIN and SET through the extended protocol, sets
// extra_float_digits at startup, switches to named statements after prepareThreshold, reads with
// Execute row limits (setFetchSize) and cancels through a CancelRequest to the host it connected to.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { testEnv } from '../harness/env.js';
import { startProxy, type RunningProxy } from '../harness/proxy.js';
import { helperPath, runJsonProgram, runProgram, sameScenarios } from './common.js';

const env = testEnv();
// TEST_JDBC_JAR only exists to check the skip path.
const JAR = process.env.TEST_JDBC_JAR ?? '/usr/share/java/postgresql.jar';
const P = `drv_jdbc_${process.pid}`;

async function jdbcMissing(): Promise<string | false> {
  if (!existsSync(JAR)) return `${JAR} not installed (libpostgresql-jdbc-java)`;
  const r = await runProgram('java', ['-version'], { timeoutMs: 30_000 }).catch((e: unknown) => ({ code: -1, stdout: '', stderr: String(e) }));
  if (r.code !== 0) return `java not runnable: ${r.stderr.trim().split('\n')[0]}`;
  const m = /version "(\d+)/.exec(r.stderr);
  if (m && Number(m[1]) < 11) return `java ${m[1]} cannot run a single source file (needs 11+)`;
  return false;
}

const missing = await jdbcMissing();
let proxy: RunningProxy | undefined;

before(async () => {
  if (!missing) proxy = await startProxy(env.pgUrl);
});
after(async () => {
  await proxy?.close();
});

type Doc = Record<string, any>;

function runJava(host: string, port: number): Promise<Doc> {
  const u = new URL(env.pgUrl);
  const db = decodeURIComponent(u.pathname.slice(1)) || 'postgres';
  const jdbcUrl = `jdbc:postgresql://${host}:${port}/${encodeURIComponent(db)}`;
  return runJsonProgram('java', ['-cp', JAR, helperPath('java/JdbcDriver.java'), jdbcUrl, decodeURIComponent(u.username), decodeURIComponent(u.password), P], { timeoutMs: 180_000 });
}

test('PostgreSQL JDBC through the proxy', { skip: missing }, async (t) => {
  const u = new URL(env.pgUrl);
  const direct = await runJava(u.hostname, Number(u.port || 5432));
  const via = await runJava('127.0.0.1', proxy!.port);

  await sameScenarios(t, via, direct);

  await t.test('PreparedStatement reuse past prepareThreshold', () => {
    const p = via.prepare_threshold;
    assert.equal(p.vals.length, 10);
    assert.deepEqual(p.vals[9], [10, 's9', 1.5, true]);
    assert.ok(p.server_prepare.every((x: boolean) => x === true), 'prepareThreshold=1: server-prepared');
    assert.deepEqual(p.prepared_upstream, [[true, '{integer,"character varying"}']], 'exactly one named S_n statement upstream');
    // Counts of prepared statements after each execution: named from the 5th one on, then reused.
    const counts = p.threshold5.filter((_: number, i: number) => i % 2 === 1);
    assert.deepEqual(counts, [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
  });
  await t.test('batch inserts', () => {
    const b = via.batch;
    assert.equal(b.counts_len, 1000);
    assert.equal(b.counts_all_one, true);
    assert.equal(b.batch_error.sqlstate, '23505');
    assert.deepEqual(b.stmt_batch, [10, 10, 1]);
    assert.deepEqual(b.agg.slice(0, 2), [991, 494555]);
    assert.equal(b.rewrite_total, 300);
  });
  await t.test('setFetchSize cursor in a transaction', () => {
    const f = via.fetch_size;
    assert.deepEqual(f.stmt, [3000, 4501500]);
    assert.deepEqual(f.prepared[0], [333, 166833]);
    assert.equal(f.prepared.length, 6);
    assert.equal(f.interleaved, 5044950);
  });
  await t.test('BEGIN/SET through the extended protocol, errors, savepoints, warnings', () => {
    const s = via.begin_and_set;
    assert.equal(s.startup_app, 'drv_jdbc_start');
    assert.equal(s.extra_float_digits, '3');
    assert.equal(s.float_roundtrip, 0.30000000000000004);
    assert.equal(s.app, 'drv_jdbc');
    assert.equal(s.client_info_app, 'drv_jdbc', 'driver saw the ParameterStatus for application_name');
    assert.equal(s.search_path, 'public, pg_catalog');
    assert.equal(s.same_tx, true, 'autocommit=false really opened a transaction (BEGIN via extended protocol)');
    assert.equal(s.local_timeout, '12345ms');
    assert.equal(s.after_commit_timeout, '0');
    assert.equal(s.isolation, 'serializable');
    assert.equal(s.read_only_error.sqlstate, '25006');
    assert.equal(s.div.sqlstate, '22012');
    assert.equal(s.aborted.sqlstate, '25P02');
    assert.equal(s.after_rollback, 'fine');
    assert.equal(s.in_savepoint, '42703');
    assert.equal(s.after_savepoint, 'fine again');
    assert.deepEqual(s.warnings, [['00000', 'jdbc notice 5'], ['01000', 'jdbc warning']]);
  });
  await t.test('getGeneratedKeys and RETURNING', () => {
    const g = via.generated_keys;
    assert.deepEqual(g.keys.map((k: unknown[]) => k[0]), [1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(g.keys[6], [7, 'k6', 42]);
    assert.deepEqual(g.named_cols, [[8, 42]]);
    assert.deepEqual(g.batch_keys, [9, 10, 11]);
    assert.deepEqual(g.returning, [[1, 'k0!'], [2, 'k1!'], [3, 'k2!']]);
  });
  await t.test('DatabaseMetaData', () => {
    const m = via.metadata;
    assert.equal(m.product, 'PostgreSQL');
    assert.deepEqual(m.tables, [[`${P}_meta`, 'TABLE', 'drv meta table'], [`${P}_meta_child`, 'TABLE', null], [`${P}_meta_view`, 'VIEW', null]]);
    assert.deepEqual(m.columns.map((c: unknown[]) => c[0]), ['id', 'name', 'score', 'tags']);
    assert.deepEqual(m.pks, ['id']);
    assert.deepEqual(m.fks, [[`${P}_meta`, 'pid']]);
    assert.deepEqual(m.param_meta, [1, 'int8']);
  });
  await t.test('CopyManager, LISTEN/NOTIFY, cancel', () => {
    const c = via.copy_and_notify;
    assert.equal(c.copied_in, 10000);
    assert.equal(c.copied_out, 10000);
    assert.equal(c.roundtrip_equal, true);
    assert.deepEqual(c.notifications, [[`${P}_chan`, 'jdbc payload', true], [`${P}_chan`, 'second', true]]);
    const k = via.cancel;
    assert.equal(k.timeout, '57014', 'setQueryTimeout cancelled the statement');
    assert.equal(k.cancel, '57014', 'Statement.cancel() cancelled the statement');
    assert.equal(k.fast, true);
    assert.equal(k.usable, 'after cancel');
  });
});
