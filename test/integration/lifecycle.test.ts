// Everything around the byte stream: TLS for clients, upstream death, client disconnects, graceful
// SIGTERM shutdown, the CLI's errors and env vars, connection limits, and backpressure from a slow client.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { testEnv } from '../harness/env.js';
import { spawnProxy, startProxy, type RunningProxy, type SpawnedProxy } from '../harness/proxy.js';
import { freePort, startPostgres, type PgInstance } from '../harness/servers.js';
import { buildProgram } from '../../src/cli/program.js';
import { errorFields, msg, ProtoConn, urlParts } from '../support/proto-client.js';
import { backendsOf, directQuery, psql, runProc, sleep, uniqueName, waitActive, waitFor, within, withParam } from '../support/proto-tools.js';

const env = testEnv();
const up = urlParts(env.pgUrl);
const login = { user: up.user, password: up.password, database: up.database };
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const T = `life_${process.pid}`;

interface PgErr {
  code?: string;
  message?: string;
  severity?: string;
}

/** A pg.Client whose asynchronous errors (FATAL while idle, socket loss) are recorded, not thrown. */
async function client(url: string, extra: pg.ClientConfig = {}): Promise<{ c: pg.Client; errors: PgErr[]; ended: Promise<void> }> {
  const c = new pg.Client({ connectionString: url, ...extra });
  const errors: PgErr[] = [];
  c.on('error', (e: PgErr) => errors.push(e));
  const ended = new Promise<void>((r) => c.on('end', () => r()));
  await c.connect();
  return { c, errors, ended };
}

// ------------------------------------------------------------------ TLS

describe('TLS for clients', { skip: !existsSync('/usr/bin/openssl') && 'needs openssl' }, () => {
  let dir: string;
  let proxy: RunningProxy;
  let plainProxy: RunningProxy;
  let cert: string;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'fdwproxy-tls-'));
    cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    proxy = await startProxy(env.pgUrl, { tls: { cert, key } });
    plainProxy = await startProxy(env.pgUrl);
  });
  after(async () => {
    await within(Promise.all([proxy?.close(), plainProxy?.close()]), 5000, undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  test('node-postgres with ssl gets a TLS socket to the proxy, and queries work over it', async () => {
    const { c } = await client(proxy.url(), { ssl: { rejectUnauthorized: false } });
    try {
      const stream = (c as unknown as { connection: { stream: unknown } }).connection.stream;
      assert.ok(stream instanceof tls.TLSSocket, 'socket to the proxy is a TLSSocket');
      assert.equal(stream.encrypted, true);
      assert.match(String(stream.getProtocol()), /^TLSv1\.[23]$/);
      assert.equal(stream.getPeerCertificate().subject?.CN, 'localhost');
      const r = await c.query(`select repeat('t', 3000000) as big, 1 as one`);
      assert.equal(r.rows[0].big.length, 3_000_000);
      // The upstream side of this session is plain TCP (the proxy terminates TLS).
      const s = await c.query('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
      assert.equal(s.rows[0].ssl, false);
    } finally {
      await c.end();
    }
  });

  test('the certificate verifies as the proxy\'s own (sslmode=verify-full, CN=localhost)', async () => {
    const url = `postgres://${encodeURIComponent(up.user)}:${encodeURIComponent(up.password)}@localhost:${proxy.port}/${up.database}?sslmode=verify-full&sslrootcert=${encodeURIComponent(cert)}&hostaddr=127.0.0.1`;
    const r = await psql(url, 'select 1 as verified;\n', ['-tA'], { env: { PGSSLMODE: 'verify-full' } });
    assert.equal(r.stderr, '');
    assert.equal(r.stdout, '1\n');
  });

  test('psql sslmode=require connects over TLS (\\conninfo says SSL)', async () => {
    const r = await psql(withParam(proxy.url(), 'sslmode', 'require'), '\\conninfo\nselect 42 as answer;\n', ['-tA'], { env: { PGSSLMODE: 'require' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /SSL connection \(protocol: TLSv1\.[23], cipher: /);
    assert.match(r.stdout, /^42$/m);
  });

  test('a plain client still works on the TLS-enabled proxy (sslmode=disable)', async () => {
    const r = await psql(withParam(proxy.url(), 'sslmode', 'disable'), '\\conninfo\nselect 43;\n', ['-tA']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /SSL connection/);
    assert.match(r.stdout, /^43$/m);
  });

  test('without TLS configured, sslmode=require fails the way it fails against upstream', async () => {
    const p = await psql(withParam(plainProxy.url(), 'sslmode', 'require'), 'select 1;\n', [], { env: { PGSSLMODE: 'require' } });
    const d = await psql(withParam(env.pgUrl, 'sslmode', 'require'), 'select 1;\n', [], { env: { PGSSLMODE: 'require' } });
    assert.equal(p.code, 2);
    assert.match(p.stderr, /server does not support SSL, but SSL was required/);
    const tail = (s: string): string => s.replace(/^.*failed: /s, '');
    assert.equal(tail(p.stderr), tail(d.stderr));
  });

  test('bytes sent right behind SSLRequest are refused, never fed into the TLS handshake or a session', async () => {
    const c = await ProtoConn.connect(proxy.port);
    try {
      c.write(Buffer.concat([msg.sslRequest(), msg.startup({ user: up.user, database: up.database })]));
      const first = await c.readBytes(1, 5000).catch(() => Buffer.alloc(0));
      assert.notEqual(first.toString('latin1'), 'S', 'must not start TLS with plaintext already buffered');
      await within(c.closed, 5000, undefined);
      assert.ok(c.isClosed, 'connection closed');
      assert.ok(!c.log.some((f) => f.type === 'R'), 'no authentication started');
    } finally {
      c.destroy();
    }
  });
});

// ------------------------------------------------------------------ upstream death

/** Runs pg_ctl as the postgres OS user when we are root (postgres refuses to run as root). */
function pgCtl(inst: PgInstance, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let ids: { uid: number; gid: number } | undefined;
  if (process.getuid?.() === 0) {
    ids = {
      uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
      gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
    };
  }
  const root = path.dirname(inst.dataDir);
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(inst.bindir, 'pg_ctl'), ['-D', inst.dataDir, ...args], { cwd: root, ...(ids ?? {}), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('upstream death', () => {
  let inst: PgInstance;
  let proxy: RunningProxy;

  before(async () => {
    inst = await startPostgres();
    proxy = await startProxy(inst.url);
  });
  after(async () => {
    await within(proxy?.close() ?? Promise.resolve(), 5000, undefined);
    await inst?.stop();
  });

  test('pg_terminate_backend of a busy session: upstream\'s FATAL 57P01 reaches the client, the connection closes', async () => {
    const seen = async (url: string, app: string): Promise<{ err: PgErr; closedMs: number }> => {
      const { c, errors, ended } = await client(url, { application_name: app });
      const q = c.query('select pg_sleep(30)').then(() => ({}) as PgErr, (e: PgErr) => e);
      const pid = await waitActive(inst.url, app);
      const t0 = Date.now();
      await directQuery(inst.url, 'select pg_terminate_backend($1)', [pid]);
      const err = await within(q, 5000, { code: 'timeout' } as PgErr);
      await within(ended, 5000, undefined);
      void errors;
      return { err: { code: err.code, message: err.message, severity: err.severity }, closedMs: Date.now() - t0 };
    };
    const direct = await seen(inst.url, uniqueName('term_direct'));
    const proxied = await seen(proxy.url(), uniqueName('term_proxy'));
    assert.deepEqual(proxied.err, { code: '57P01', message: 'terminating connection due to administrator command', severity: 'FATAL' });
    assert.deepEqual(proxied.err, direct.err);
    assert.ok(proxied.closedMs < 5000, `closed after ${proxied.closedMs} ms`);
    await waitFor('the proxy to drop the session', () => proxy.server.sessionCount === 0, 5000);
    // The proxy carries on.
    const { c } = await client(proxy.url());
    assert.equal((await c.query('select 1 as ok')).rows[0].ok, 1);
    await c.end();
  });

  test('pg_terminate_backend of an idle session: the FATAL is delivered without any request in flight', async () => {
    const app = uniqueName('term_idle');
    const { c, errors, ended } = await client(proxy.url(), { application_name: app });
    const [pid] = await waitFor('the backend', () => backendsOf(inst.url, app).then((p) => (p.length ? p : undefined)));
    await directQuery(inst.url, 'select pg_terminate_backend($1)', [pid]);
    await within(ended, 5000, undefined);
    assert.equal(errors[0]?.code, '57P01', `client saw ${JSON.stringify(errors)}`);
    await assert.rejects(c.query('select 1'));
  });

  test('pg_ctl -m immediate stop mid-query: an error, the connection closes, no hang; the proxy recovers with upstream', async () => {
    const app = uniqueName('crash');
    const { c, ended } = await client(proxy.url(), { application_name: app });
    const notices: string[] = [];
    c.on('notice', (n: PgErr) => notices.push(`${n.code} ${n.message}`));
    const q = c.query('select pg_sleep(30)').then(() => ({}) as PgErr, (e: PgErr) => e);
    await waitActive(inst.url, app);
    const stopped = await pgCtl(inst, ['-m', 'immediate', '-w', 'stop']);
    assert.equal(stopped.code, 0, stopped.stderr);
    const err = await within(q, 5000, { code: 'timeout' } as PgErr);
    assert.ok(err.code === '08006' || err.code === '57P01', `query error: ${JSON.stringify(err)} (notices: ${notices.join('; ')})`);
    assert.notEqual(await within(ended, 5000, 'hang'), 'hang', 'client connection closed');

    // While upstream is down: a prompt, clear FATAL (no hang, no silent close).
    const t0 = Date.now();
    const down = await new pg.Client({ connectionString: proxy.url(), connectionTimeoutMillis: 8000 }).connect().then(() => 'connected', (e: PgErr) => e);
    assert.ok(Date.now() - t0 < 5000, `refusal took ${Date.now() - t0} ms`);
    assert.equal((down as PgErr).code, '08006', `while upstream is down: ${JSON.stringify(down)}`);

    const started = await pgCtl(inst, ['-l', path.join(path.dirname(inst.dataDir), 'restart.log'), '-w', '-t', '60', 'start']);
    assert.equal(started.code, 0, started.stderr + started.stdout);
    const { c: again } = await client(proxy.url());
    assert.equal((await again.query('select 2 as ok')).rows[0].ok, 2);
    await again.end();
  });
});

// ------------------------------------------------------------------ client going away

describe('client disconnects', () => {
  let proxy: RunningProxy;
  before(async () => {
    proxy = await startProxy(env.pgUrl);
  });
  after(async () => {
    await within(proxy?.close() ?? Promise.resolve(), 5000, undefined);
  });

  test('client connection reset (RST) mid-query: the upstream backend is gone within a few seconds', async () => {
    const app = uniqueName('vanish_rst');
    const c = await ProtoConn.open(proxy.port, { ...login, params: { application_name: app } });
    c.write(msg.query('select pg_sleep(30)'));
    await waitActive(env.pgUrl, app);
    // A reset cannot be a half-close: the client is gone and will read nothing more.
    c.socket.resetAndDestroy();
    try {
      await waitFor('the proxy session to close', () => proxy.server.sessionCount === 0, 5000);
      // Postgres does not notice a lost client while it sleeps (unless client_connection_check_interval
      // is set); the proxy does, and holds the BackendKeyData to cancel the statement, so the backend
      // does not burn 30 s (or hold locks) for nobody.
      const gone = await waitFor('the upstream backend to go', async () => (await backendsOf(env.pgUrl, app)).length === 0, 6000).catch(() => false);
      assert.ok(gone, `upstream backend(s) ${(await backendsOf(env.pgUrl, app)).join(', ')} still running pg_sleep(30) 6 s after the client connection was reset`);
    } finally {
      await directQuery(env.pgUrl, 'select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [app]);
    }
  });

  test('client closes (FIN) mid-query: treated as a half-close, so session and backend end when the query does', async () => {
    const app = uniqueName('vanish_fin');
    const c = await ProtoConn.open(proxy.port, { ...login, params: { application_name: app } });
    c.write(msg.query('select pg_sleep(2)'));
    await waitActive(env.pgUrl, app);
    const t0 = Date.now();
    c.destroy();
    try {
      await waitFor('the upstream backend to go', async () => (await backendsOf(env.pgUrl, app)).length === 0, 7000);
      await waitFor('the proxy session to close', () => proxy.server.sessionCount === 0, 3000);
      assert.ok(Date.now() - t0 < 7000);
    } finally {
      await directQuery(env.pgUrl, 'select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [app]);
    }
  });

  test('client vanishes while idle in a transaction: the backend goes and its locks are released', async () => {
    const app = uniqueName('vanish_tx');
    await directQuery(env.pgUrl, `create table if not exists ${T}_locks (id int primary key)`);
    const c = await ProtoConn.open(proxy.port, { ...login, params: { application_name: app } });
    await c.rows(`begin; lock table ${T}_locks in access exclusive mode`);
    c.destroy();
    await waitFor('the upstream backend to go', async () => (await backendsOf(env.pgUrl, app)).length === 0, 5000);
    await directQuery(env.pgUrl, `set lock_timeout = '2s'; insert into ${T}_locks values (1)`);
    await directQuery(env.pgUrl, `drop table ${T}_locks`);
  });
});

// ------------------------------------------------------------------ backpressure

describe('backpressure', () => {
  test('a slow reader of a ~500 MB result: proxy memory stays bounded; closing the socket ends the session', { timeout: 60_000 }, async (t) => {
    const proxy = await startProxy(env.pgUrl);
    const app = uniqueName('slow');
    const c = await ProtoConn.open(proxy.port, { ...login, params: { application_name: app } });
    try {
      const mem = (): { rss: number; buffers: number } => {
        const m = process.memoryUsage();
        return { rss: m.rss, buffers: m.external + m.arrayBuffers };
      };
      await sleep(200);
      const base = mem();
      let peak = { ...base };
      let received = 0;
      // Count and drop the bytes: the test's own buffering must not be mistaken for the proxy's.
      c.socket.removeAllListeners('data');
      c.socket.on('data', (d: Buffer) => (received += d.length));
      c.socket.pause();
      c.write(msg.query(`select repeat('x', 1000) from generate_series(1, 500000)`));
      // Read a little every 100 ms: resume until one chunk arrives, then pause again.
      const reader = setInterval(() => {
        c.socket.once('data', () => c.socket.pause());
        c.socket.resume();
      }, 100);
      const sampler = setInterval(() => {
        const m = mem();
        peak = { rss: Math.max(peak.rss, m.rss), buffers: Math.max(peak.buffers, m.buffers) };
      }, 50);
      await waitActive(env.pgUrl, app, '%generate_series%');
      await sleep(6000);
      clearInterval(reader);
      clearInterval(sampler);
      const MB = 1024 * 1024;
      t.diagnostic(`received ${(received / MB).toFixed(1)} MB in 6 s; rss +${((peak.rss - base.rss) / MB).toFixed(1)} MB, buffers +${((peak.buffers - base.buffers) / MB).toFixed(1)} MB`);
      assert.ok(received < 200 * MB, 'the reader really was slow');
      assert.ok(peak.buffers - base.buffers < 100 * MB, `external+arrayBuffers grew by ${((peak.buffers - base.buffers) / MB).toFixed(0)} MB`);
      assert.ok(peak.rss - base.rss < 100 * MB, `rss grew by ${((peak.rss - base.rss) / MB).toFixed(0)} MB`);
      const [busy] = await directQuery<{ state: string }>(env.pgUrl, 'select state from pg_stat_activity where application_name = $1', [app]);
      assert.equal(busy?.state, 'active', 'the query is still in flight (upstream is being held back)');

      c.destroy();
      await waitFor('the session to close', () => proxy.server.sessionCount === 0, 5000);
      await waitFor('the upstream backend to go', async () => (await backendsOf(env.pgUrl, app)).length === 0, 8000);
    } finally {
      c.destroy();
      await within(proxy.close(), 5000, undefined);
    }
  });
});

// ------------------------------------------------------------------ limits

describe('--max-connections', () => {
  test('one client too many gets FATAL 53300 "sorry, too many clients already", as upstream says it', async () => {
    const proxy = await startProxy(env.pgUrl, { maxConnections: 2 });
    const held: ProtoConn[] = [];
    try {
      for (let i = 0; i < 2; i++) held.push(await ProtoConn.open(proxy.port, login));
      const extra = await ProtoConn.connect(proxy.port);
      extra.write(msg.startup({ user: up.user, database: up.database }));
      const frames = await extra.readUntilClose(5000);
      assert.equal(frames.length, 1);
      const f = errorFields(frames[0]!.body);
      assert.deepEqual([f.S, f.C, f.M], ['FATAL', '53300', 'sorry, too many clients already']);
      held.pop()!.destroy();
      await waitFor('a slot to free up', () => proxy.server.sessionCount < 2, 5000);
      const again = await ProtoConn.open(proxy.port, login);
      assert.deepEqual(await again.rows('select 1'), [['1']]);
      await again.end();
    } finally {
      for (const h of held) h.destroy();
      await within(proxy.close(), 3000, undefined);
    }
  });

  test('refused connections release their sockets (no fd leak; close() still completes)', async (t) => {
    const proxy = await startProxy(env.pgUrl, { maxConnections: 1 });
    const fds = (): number => readdirSync('/proc/self/fd').length;
    const holder = await ProtoConn.open(proxy.port, login);
    let leaked: number;
    try {
      const before = fds();
      for (let i = 0; i < 30; i++) {
        const extra = await ProtoConn.connect(proxy.port);
        extra.write(msg.startup({ user: up.user, database: up.database }));
        await extra.readUntilClose(5000);
        extra.destroy();
      }
      await sleep(500);
      leaked = fds() - before;
      t.diagnostic(`file descriptors: ${before} before, ${before + leaked} after 30 refused connections`);
    } finally {
      holder.destroy();
    }
    const closed = await within(proxy.close().then(() => 'closed'), 4000, 'hung');
    assert.ok(leaked < 5, `${leaked} file descriptors still open after 30 refused (and client-closed) connections`);
    assert.equal(closed, 'closed', 'ProxyServer.close() never finished: refused sockets are still counted as open connections');
  });
});

// ------------------------------------------------------------------ SIGTERM and the CLI

function listenPort(p: SpawnedProxy): number {
  const m = /"listen":"[^"]*:(\d+)"/.exec(p.output());
  assert.ok(m, `no listen address in output: ${p.output()}`);
  return Number(m[1]);
}

describe('SIGTERM', () => {
  test('idle clients get 57P01, a transaction may COMMIT within the grace period, new connections are refused, exit 0', { timeout: 30_000 }, async () => {
    await directQuery(env.pgUrl, `drop table if exists ${T}_term; create table ${T}_term (id int)`);
    const p = await spawnProxy(['--listen', '127.0.0.1:0', '--upstream', env.pgUrl, '--shutdown-timeout', '2s', '--log-level', 'info']);
    try {
      const port = listenPort(p);
      const url = `postgres://${encodeURIComponent(up.user)}:${encodeURIComponent(up.password)}@127.0.0.1:${port}/${up.database}`;
      const idle = await client(url);
      const inTx = await client(url);
      const stuck = await client(url);
      await inTx.c.query(`begin; insert into ${T}_term values (1)`);
      await stuck.c.query(`begin; insert into ${T}_term values (2)`);

      const t0 = Date.now();
      p.child.kill('SIGTERM');
      await within(idle.ended, 2000, undefined);
      assert.equal(idle.errors[0]?.code, '57P01', `idle client got ${JSON.stringify(idle.errors)}`);
      assert.ok(Date.now() - t0 < 1500, 'idle client disconnected at once');

      const refused = await new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 }).connect().then(() => 'connected', (e: PgErr & { errno?: unknown }) => e.code ?? e.message);
      assert.notEqual(refused, 'connected', 'new connections are refused after SIGTERM');
      assert.ok(refused === 'ECONNREFUSED' || refused === '57P01' || refused === 'ECONNRESET', `refused with ${String(refused)}`);

      await inTx.c.query(`insert into ${T}_term values (3)`);
      await inTx.c.query('commit');
      assert.ok(Date.now() - t0 < 2000, 'COMMIT was inside the grace period');
      await within(inTx.ended, 2000, undefined);
      assert.equal(inTx.errors[0]?.code, '57P01', 'closed once its transaction ended');

      await within(stuck.ended, 5000, undefined);
      const stuckMs = Date.now() - t0;
      assert.equal(stuck.errors[0]?.code, '57P01');
      assert.ok(stuckMs > 1500 && stuckMs < 4500, `the open transaction was cut at ${stuckMs} ms (grace 2 s)`);

      const code = await within(p.exited, 5000, 'still running');
      assert.equal(code, 0, p.output());
      const rows = await directQuery<{ id: number }>(env.pgUrl, `select id from ${T}_term order by id`);
      assert.deepEqual(rows.map((r) => r.id), [1, 3], 'the committed transaction persisted, the cut one rolled back');
    } finally {
      p.child.kill('SIGKILL');
      await directQuery(env.pgUrl, `drop table if exists ${T}_term`);
    }
  });

  test('with no clients, SIGTERM exits 0 promptly', async () => {
    const p = await spawnProxy(['--listen', '127.0.0.1:0', '--upstream', env.pgUrl, '--shutdown-timeout', '2s']);
    try {
      listenPort(p);
      const t0 = Date.now();
      p.child.kill('SIGTERM');
      assert.equal(await within(p.exited, 5000, 'still running'), 0);
      assert.ok(Date.now() - t0 < 1500, `took ${Date.now() - t0} ms`);
    } finally {
      p.child.kill('SIGKILL');
    }
  });
});

describe('CLI', () => {
  const cli = (args: string[], extraEnv: Record<string, string> = {}): ReturnType<typeof runProc> => runProc(process.execPath, [CLI, ...args], { env: extraEnv, timeoutMs: 20_000 });
  const oneLine = (s: string): void => {
    const lines = s.trim().split('\n');
    assert.equal(lines.length, 1, `expected one line on stderr, got:\n${s}`);
    assert.ok(lines[0]!.length > 10, 'the line says something');
  };

  test('a bad --listen exits non-zero with one line on stderr', async () => {
    const r = await cli(['--listen', 'nope', '--upstream', env.pgUrl]);
    assert.notEqual(r.code, 0);
    oneLine(r.stderr);
    assert.match(r.stderr, /--listen/);
  });

  test('an unknown flag exits non-zero with one line on stderr', async () => {
    const r = await cli(['--no-such-flag']);
    assert.notEqual(r.code, 0);
    oneLine(r.stderr);
  });

  test('a bad env var value exits non-zero with one line naming the setting', async () => {
    const r = await cli(['--upstream', env.pgUrl, '--listen', '127.0.0.1:0'], { REDIS_FDW_PROXY_SHUTDOWN_TIMEOUT: 'soon' });
    assert.notEqual(r.code, 0);
    oneLine(r.stderr);
    assert.match(r.stderr, /shutdown-timeout|SHUTDOWN_TIMEOUT/);
  });

  test('an unreachable upstream exits non-zero with one line on stderr', async () => {
    const r = await cli(['--listen', '127.0.0.1:0', '--upstream', 'postgres://x@127.0.0.1:1/db']);
    assert.notEqual(r.code, 0);
    oneLine(r.stderr);
    assert.match(r.stderr, /127\.0\.0\.1:1/);
    assert.ok(r.ms < 15_000);
  });

  test('--help mentions every REDIS_FDW_PROXY_* environment variable', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    const fromProgram = buildProgram().options.map((o) => o.envVar).filter((v): v is string => typeof v === 'string');
    const expected = new Set([
      ...fromProgram,
      ...['LISTEN', 'UPSTREAM', 'TLS_CERT', 'TLS_KEY', 'LOG_LEVEL', 'LOG_FORMAT', 'SHUTDOWN_TIMEOUT', 'MAX_CONNECTIONS'].map((n) => `REDIS_FDW_PROXY_${n}`),
    ]);
    for (const o of buildProgram().options) if (o.long !== '--help' && o.long !== '--version') assert.ok(o.envVar, `${o.long} has an env var`);
    for (const v of expected) assert.ok(r.stdout.includes(v), `--help mentions ${v}`);
  });

  test('REDIS_FDW_PROXY_LISTEN and REDIS_FDW_PROXY_UPSTREAM are honoured; a flag wins over its variable', async () => {
    const port = await freePort();
    const p = await spawnProxy([], { REDIS_FDW_PROXY_LISTEN: `127.0.0.1:${port}`, REDIS_FDW_PROXY_UPSTREAM: env.pgUrl, REDIS_FDW_PROXY_LOG_LEVEL: 'info' });
    try {
      assert.equal(listenPort(p), port, p.output());
      const { c } = await client(`postgres://${encodeURIComponent(up.user)}:${encodeURIComponent(up.password)}@127.0.0.1:${port}/${up.database}`);
      assert.equal((await c.query('select 7 as n')).rows[0].n, 7);
      await c.end();
    } finally {
      p.child.kill('SIGTERM');
      await within(p.exited, 5000, undefined);
    }
    const other = await freePort();
    const q = await spawnProxy(['--listen', `127.0.0.1:${other}`], { REDIS_FDW_PROXY_LISTEN: `127.0.0.1:${port}`, REDIS_FDW_PROXY_UPSTREAM: env.pgUrl });
    try {
      assert.equal(listenPort(q), other, q.output());
    } finally {
      q.child.kill('SIGTERM');
      await within(q.exited, 5000, undefined);
    }
  });
});
