// Running it as an operator does, through the real CLI: the embedded Postgres, --version, metrics,
// health and readiness, the admin console, SIGHUP, login timeout, --tls-required, the connection
// limit's 53300, masked URLs, and a closed log pipe.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { testEnv } from '../harness/env.js';
import { cleanPgEnv, psql, runProc, waitFor } from '../support/proto-tools.js';
import { urlParts } from '../support/proto-client.js';
import { REDIS_DB } from '../support/redis-dbs.js';
import { CLI, cli, listenPort, stop, type Cli } from '../support/cli-proc.js';

const env = testEnv();
const up = urlParts(env.pgUrl);
const REDIS = new URL(env.redisUrl);


describe('embedded Postgres (no upstream configured)', { timeout: 240_000 }, () => {
  let home: string;
  let dataDir: string;
  const table = `emb_${process.pid}`;
  const key = `emb:${process.pid}`;

  before(() => {
    home = mkdtempSync(path.join(os.tmpdir(), 'fdwproxy-home-'));
    // A root proxy runs Postgres as an unprivileged user, who must be able to enter the data directory's parent.
    chmodSync(home, 0o755);
    dataDir = path.join(home, 'data');
  });
  after(() => rmSync(home, { recursive: true, force: true }));

  const start = (): Promise<Cli> => cli(['--listen', '127.0.0.1:0', '--data-dir', dataDir], { HOME: home, XDG_DATA_HOME: '' }, /connect with:|redis-fdw-proxy: /);

  test('psql works through it, foreign-table DDL and SELECT over Redis work, and the table survives a restart; a second proxy on the data directory is refused', async () => {
    execFileSync('redis-cli', ['-h', REDIS.hostname, '-p', REDIS.port, 'hset', key, 'a', '1', 'b', '2']);
    const p = await start();
    let q: Cli | undefined;
    try {
      const line = p.logged(/connect with:/, 'psql');
      assert.match(line, /^PGPASSWORD="\$\(cat .*\/password\)" psql "postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres"$/, line);
      const pwFile = path.join(dataDir, 'password');
      assert.equal(readFileSync(pwFile, 'utf8').trim().length > 16, true);
      assert.equal(execFileSync('stat', ['-c', '%a', pwFile], { encoding: 'utf8' }).trim(), '600');
      const password = readFileSync(pwFile, 'utf8').trim();
      const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${listenPort(p)}/postgres`;
      if (process.getuid?.() === 0) assert.match(p.output(), /"osUser":"redis-fdw-proxy"/);

      const r = await psql(url, `select current_setting('data_directory') as d;`, ['-At']);
      assert.equal(r.stdout.split('\n')[0], path.join(dataDir, 'pgdata'), r.stderr);
      // The README's first example, as written, but for this test's throwaway Redis and a key of its own.
      const readme = readFileSync(path.resolve(path.dirname(CLI), '../../../README.md'), 'utf8');
      const example = /```sql\n([\s\S]*?)```/.exec(readme)![1]!;
      assert.match(example, /redis:\/\/127\.0\.0\.1:6379\/0/);
      const runnable = example.replace('redis://127.0.0.1:6379/0', `redis://${REDIS.host}/0`).replace("src_key 'hash'", `src_key '${key}:readme'`);
      const ex = await psql(url, runnable, ['-v', 'ON_ERROR_STOP=1']);
      assert.equal(ex.code, 0, ex.stderr);
      assert.match(ex.stdout, /greeting \| hello/);
      execFileSync('redis-cli', ['-h', REDIS.hostname, '-p', REDIS.port, 'del', `${key}:readme`]);

      const ddl = await psql(url, `create extension if not exists wrappers;
create server ${table}_srv foreign data wrapper redis_wrapper options (conn_url 'redis://${REDIS.host}/0');
create foreign table ${table} (key text, value text) server ${table}_srv options (src_type 'hash', src_key '${key}');
select key, value from ${table} order by key;`, ['-At']);
      assert.equal(ddl.stderr, '');
      assert.match(ddl.stdout, /a\|1\nb\|2/);
      // Callback mode is on by default here: Postgres itself can evaluate the table (views, information_schema).
      const pgEval = await psql(url, `select h.handler::regproc from pg_foreign_data_wrapper w join lateral (select w.fdwhandler as handler) h on true where w.fdwname = 'redis_wrapper';
create view ${table}_v as select * from ${table};
select string_agg(key || '=' || value, ',' order by key) from ${table}_v;
select is_insertable_into from information_schema.tables where table_name = '${table}';`, ['-At', '-v', 'ON_ERROR_STOP=1']);
      assert.equal(pgEval.stdout, 'postgres_fdw_handler\nCREATE VIEW\na=1,b=2\nYES\n', pgEval.stderr);
      // Listens only on its own Unix socket, with passwords required.
      const where = await psql(url, `show listen_addresses;\nshow unix_socket_directories;\nselect count(*) from pg_hba_file_rules where auth_method not in ('scram-sha-256');`, ['-At']);
      assert.equal(where.stdout, `\n${path.join(dataDir, 'run')}\n0\n`, where.stderr);

      q = await start();
      assert.notEqual(await q.exited, 0);
      assert.match(q.output(), /in use by another redis-fdw-proxy/);
    } finally {
      assert.equal(await stop(p), 0, p.output());
    }
    // Postgres stopped with the proxy.
    assert.ok(!existsSync(path.join(dataDir, 'pgdata', 'postmaster.pid')), 'postmaster.pid is gone after SIGTERM');

    const p2 = await start();
    try {
      const password = readFileSync(path.join(dataDir, 'password'), 'utf8').trim();
      const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${listenPort(p2)}/postgres`;
      const again = await psql(url, `select key, value from ${table} order by key;`, ['-At']);
      assert.equal(again.stdout, 'a|1\nb|2\n', again.stderr);
    } finally {
      assert.equal(await stop(p2), 0);
      execFileSync('redis-cli', ['-h', REDIS.hostname, '-p', REDIS.port, 'del', key]);
    }
  });
});

describe('operations through the CLI (external upstream)', () => {
  let p: Cli;
  let metricsUrl: string;
  const login = (db = up.database): string => `postgres://${encodeURIComponent(up.user)}:${encodeURIComponent(up.password)}@127.0.0.1:${listenPort(p)}/${db}`;

  before(async () => {
    p = await cli(['--listen', '127.0.0.1:0', '--upstream', env.pgUrl, '--metrics-listen', '127.0.0.1:0', '--admin-users', 'ops_admin_role'], {}, /metrics listening|redis-fdw-proxy: /);
    metricsUrl = p.logged(/metrics listening/, 'metrics').replace(/\/metrics$/, '');
  });
  after(async () => {
    await stop(p);
  });

  const scrape = async (): Promise<Map<string, number>> => {
    const text = await (await fetch(`${metricsUrl}/metrics`)).text();
    const m = new Map<string, number>();
    for (const fam of parsePrometheusTextFormat(text) as { name: string; metrics: { value?: string; count?: string; labels?: Record<string, string> }[] }[]) {
      for (const x of fam.metrics) {
        const labels = x.labels && Object.keys(x.labels).length ? JSON.stringify(x.labels) : '';
        if (x.value !== undefined) m.set(`${fam.name}${labels}`, Number(x.value));
      }
    }
    // parse-prometheus-text-format drops a labelled histogram's labels, count and sum: read _count lines as they are.
    for (const [, name, labels, value] of text.matchAll(/^(\w+_count)\{([^}]*)\} (\S+)$/gm)) {
      m.set(`${name}${JSON.stringify(Object.fromEntries([...labels!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]])))}`, Number(value));
    }
    return m;
  };

  test('/metrics counts connections and bytes by the right amounts; /health and /ready answer', async () => {
    const before = await scrape();
    const c = new pg.Client({ connectionString: login() });
    await c.connect();
    await c.query('select 1');
    await c.end();
    const after = await waitFor('the session to close', async () => {
      const m = await scrape();
      return m.get('redis_fdw_proxy_client_connections') === 0 ? m : undefined;
    });
    assert.equal(after.get('redis_fdw_proxy_client_connections_total')! - before.get('redis_fdw_proxy_client_connections_total')!, 1);
    assert.ok(after.get('redis_fdw_proxy_client_bytes_received_total')! > before.get('redis_fdw_proxy_client_bytes_received_total')!);
    assert.ok(after.has('redis_fdw_proxy_process_resident_memory_bytes'), 'default process metrics');
    const health = await fetch(`${metricsUrl}/health`);
    assert.equal(health.status, 200);
    const ready = await fetch(`${metricsUrl}/ready`);
    assert.equal(ready.status, 200);
    assert.equal(((await ready.json()) as { upstream: { ok: boolean } }).upstream.ok, true);
  });

  test('statements by kind, Redis commands, staged writes and catalog reloads move by the workload; a slow statement is logged without its parameters', async () => {
    const db = `ops_${process.pid}`;
    const admin = new pg.Client({ connectionString: env.pgUrl });
    await admin.connect();
    await admin.query(`drop database if exists ${db}`);
    await admin.query(`create database ${db}`);
    await admin.end();
    const redisUrl = new URL(env.redisUrl);
    redisUrl.pathname = `/${REDIS_DB.ops}`;
    const server = `${redisUrl.hostname}:${redisUrl.port}`;
    const c = new pg.Client({ connectionString: login(db) });
    await c.connect();
    try {
      await c.query(`create foreign data wrapper redis_wrapper handler redis_fdw_handler validator redis_fdw_validator`);
      await c.query(`create server rs foreign data wrapper redis_wrapper options (conn_url '${redisUrl.toString()}')`);
      await c.query(`create foreign table h (key text, value text) server rs options (src_type 'hash', src_key 'ops:h:${process.pid}')`);
      await c.query(`select 1`);
      const before = await scrape();
      const reads = 4;
      for (let i = 0; i < reads; i++) await c.query(`select * from h`);
      await c.query('begin');
      for (let i = 0; i < 3; i++) await c.query(`insert into h values ('k${i}', 'v')`);
      await c.query('commit');
      await c.query(`insert into h values ('solo', 'v')`);
      await c.query('select 2');
      await c.query('select 3');
      await c.query('set log_min_duration_statement = -1');
      const after = await scrape();
      const d = (k: string): number => (after.get(k) ?? 0) - (before.get(k) ?? 0);
      // A read is answered by the fast path or through upstream; either way it is one foreign read.
      assert.equal(d('redis_fdw_proxy_statements_total{"kind":"foreign_read_upstream"}') + d('redis_fdw_proxy_statements_total{"kind":"foreign_read_fast"}'), reads);
      assert.equal(d('redis_fdw_proxy_statements_total{"kind":"foreign_write"}'), 4);
      assert.ok(d('redis_fdw_proxy_statements_total{"kind":"passthrough"}') >= 3, 'select 2, select 3, set ... (and begin/commit)');
      assert.equal(d('redis_fdw_proxy_staged_writes_total'), 3);
      assert.equal(d('redis_fdw_proxy_statement_duration_seconds_count{"kind":"foreign_read_upstream"}') + d('redis_fdw_proxy_statement_duration_seconds_count{"kind":"foreign_read_fast"}'), reads);
      assert.ok(d(`redis_fdw_proxy_redis_commands_total{"server":"${server}"}`) >= reads + 2, 'one read per SELECT, the writes');
      assert.ok((after.get('redis_fdw_proxy_catalog_reloads_total') ?? 0) > 0);
      assert.ok((await fetch(`${metricsUrl}/ready`).then((r) => r.json()) as { redis: { server: string; ok: boolean }[] }).redis.some((r) => r.server === server && r.ok));

      // --log-min-duration, changed live from the console: every foreign statement is slow at 0 ms.
      await psql(login('redis_fdw_proxy'), 'SET log_min_duration = 0ms;');
      await c.query({ text: `select * from h where key = $1`, values: ['secret-param-value'] });
      await waitFor('the slow statement line', () => /"msg":"slow statement"/.test(p.output()));
      assert.match(p.logged(/^slow statement$/, 'kind'), /^foreign_read_(fast|upstream)$/);
      assert.match(p.logged(/^slow statement$/, 'sql'), /where key = \$1$/);
      assert.ok(Number(p.logged(/^slow statement$/, 'durationMs')) >= 0);
      assert.ok(!p.output().includes('secret-param-value'), 'parameter values are never logged');
      await psql(login('redis_fdw_proxy'), 'SET log_min_duration = off;');

      // CREATE and DROP EXTENSION of the FDW's extension agree: both succeed, and the tables stay.
      const ext = await psql(login(db), 'create extension wrappers;\ndrop extension wrappers;\ndrop extension if exists wrappers cascade;\ncreate extension if not exists wrappers;\nselect count(*) from h;', ['-At']);
      assert.equal(ext.stderr, '');
      assert.equal(ext.stdout, 'CREATE EXTENSION\nDROP EXTENSION\nDROP EXTENSION\nCREATE EXTENSION\n4\n');

      // ioredis's own "[WARN] ..." (a password for a Redis that has none) arrives as a JSON log line.
      const withPw = new URL(redisUrl.toString());
      withPw.password = 'not-needed';
      await c.query(`create server rs_pw foreign data wrapper redis_wrapper options (conn_url '${withPw.toString()}')`);
      await c.query(`create foreign table h_pw (key text, value text) server rs_pw options (src_type 'hash', src_key 'ops:h:${process.pid}')`);
      assert.equal((await c.query('select count(*)::int as n from h_pw')).rows[0].n, 4);
      await waitFor('the ioredis warning', () => p.output().includes('does not require a password'));
      for (const line of p.output().split('\n').filter((l) => l !== '')) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
      assert.equal(p.logged(/does not require a password/, 'source'), 'console');
    } finally {
      await c.end();
      execFileSync('redis-cli', ['-h', REDIS.hostname, '-p', REDIS.port, '-n', String(REDIS_DB.ops), 'del', `ops:h:${process.pid}`]);
    }
  });

  test('the admin console answers SHOW commands as tables, masks passwords, and refuses a non-superuser', async () => {
    const r = await psql(login('redis_fdw_proxy'), 'SHOW HELP;\nSHOW CONFIG;\nSHOW CLIENTS;\nSHOW STATS;\nSHOW SERVERS;\nSHOW CACHE;\nSHOW VERSION;\nRELOAD;\nSET max_connections = 900;\nSET listen = x;\nselect 1;\n', ['-At', '-F', '|']);
    assert.match(r.stdout, /^SHOW STATS\|/m);
    assert.match(r.stdout, /^max_connections\|1000\|live$/m);
    assert.match(r.stdout, /^redis-fdw-proxy\|\d+\.\d+/m);
    assert.match(r.stdout, /^client_connections_total\|\|\d+$/m);
    assert.match(r.stdout, /^catalog_generation\|\d+$/m);
    assert.match(r.stdout, /^parse_cache_entries\|\d+$/m);
    // The upstream URL's password is masked.
    assert.match(r.stdout, /^upstream\|postgres:\/\/[^:]+:\*{8}@/m);
    if (up.password) assert.ok(!r.stdout.includes(`:${up.password}@`), 'no password printed');
    assert.match(r.stderr, /cannot be changed without restarting/);
    assert.match(r.stderr, /unrecognized admin console command/);
    const cfg = await psql(login('redis_fdw_proxy'), 'SHOW CONFIG;', ['-At']);
    assert.match(cfg.stdout, /^max_connections\|900\|live$/m);
    assert.match(p.output(), /"msg":"reload: /);

    const role = `ops_plain_${process.pid}`;
    const direct = new pg.Client({ connectionString: env.pgUrl });
    await direct.connect();
    try {
      await direct.query(`create role ${role} login password 'pw'`);
      const denied = await psql(`postgres://${role}:pw@127.0.0.1:${listenPort(p)}/redis_fdw_proxy`, 'SHOW STATS;');
      assert.match(denied.stderr, /permission denied for database "redis_fdw_proxy"/);
    } finally {
      await direct.query(`drop role ${role}`);
      await direct.end();
    }
  });

  test('SIGHUP reloads, and one log line says what changed', async () => {
    const n = (p.output().match(/"source":"SIGHUP"/g) ?? []).length;
    p.child.kill('SIGHUP');
    await waitFor('the reload log line', () => (p.output().match(/"source":"SIGHUP"/g) ?? []).length === n + 1);
    assert.match(p.output(), /"source":"SIGHUP".*"msg":"reload: parse cache flushed; catalog cache flushed"/);
  });
});

/** The CN of the certificate the proxy presents after an SSLRequest. */
function peerCN(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])));
    s.once('error', reject);
    s.once('data', (b) => {
      if (b[0] !== 0x53) return reject(new Error(`SSLRequest answered ${b[0]}`));
      const t = tls.connect({ socket: s, rejectUnauthorized: false }, () => {
        resolve(String(t.getPeerCertificate().subject?.CN));
        t.destroy();
      });
      t.once('error', reject);
    });
  });
}

describe('CLI edges', () => {
  test('npm start does not compile a built checkout', async () => {
    const main = path.resolve(path.dirname(CLI), 'main.js');
    const before = (await import('node:fs')).statSync(main).mtimeMs;
    const r = await runProc(process.execPath, [path.resolve(path.dirname(CLI), '../../../scripts/build-if-stale.mjs')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await import('node:fs')).statSync(main).mtimeMs, before, 'dist was not rewritten');
  });

  test('the Dockerfile and the compose file pass their linters; both turn metrics on and check /ready', async () => {
    const root = path.resolve(path.dirname(CLI), '../../..');
    const bin = (name: string): string => path.join(root, 'node_modules', '.bin', name);
    const dockerfile = await runProc(bin('dockerfile-utils'), ['lint', path.join(root, 'Dockerfile')]);
    assert.equal(dockerfile.code, 0, dockerfile.stdout + dockerfile.stderr);
    assert.equal(dockerfile.stdout.trim(), '');
    const compose = await runProc(bin('dclint'), [path.join(root, 'docker-compose.yml')]);
    assert.equal(compose.code, 0, compose.stdout + compose.stderr);
    assert.doesNotMatch(compose.stdout, /warning|error/);
    const df = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
    assert.match(df, /REDIS_FDW_PROXY_METRICS_LISTEN=0\.0\.0\.0:9432/);
    assert.match(df, /HEALTHCHECK[^\n]*\n[^\n]*\/ready/);
    const dc = readFileSync(path.join(root, 'docker-compose.yml'), 'utf8');
    assert.match(dc, /REDIS_FDW_PROXY_METRICS_LISTEN: 0\.0\.0\.0:9432/);
    assert.match(dc, /healthcheck:[\s\S]*\/ready/);
  });

  test('everything the proxy imports at run time is a dependency, not a devDependency (npm ci --omit=dev)', () => {
    const root = path.resolve(path.dirname(CLI), '../../..');
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const files = execFileSync('find', [path.join(root, 'src'), '-name', '*.ts'], { encoding: 'utf8' }).trim().split('\n');
    const used = new Set<string>();
    for (const f of files) {
      for (const m of readFileSync(f, 'utf8').matchAll(/^import (?!type )[^'"]*['"]([^'"./][^'"]*)['"]/gm)) {
        const spec = m[1]!;
        if (spec.startsWith('node:')) continue;
        used.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    }
    assert.ok(used.has('pino-pretty') && used.has('prom-client'), [...used].join(', '));
    for (const name of used) assert.ok(pkg.dependencies[name], `${name} is imported by src/ but is not in dependencies`);
  });

  test('--log-format pretty starts and logs readable lines', async () => {
    const p = await cli(['--listen', '127.0.0.1:0', '--upstream', env.pgUrl, '--log-format', 'pretty'], {}, /redis-fdw-proxy listening|redis-fdw-proxy: /);
    try {
      assert.match(p.output(), /INFO.*redis-fdw-proxy listening/);
    } finally {
      assert.equal(await stop(p), 0);
    }
  });

  test('--version prints the package version', async () => {
    const r = await runProc(process.execPath, [CLI, '--version']);
    assert.equal(r.code, 0);
    const pkg = JSON.parse(readFileSync(path.resolve(path.dirname(CLI), '../../../package.json'), 'utf8')) as { version: string };
    assert.equal(r.stdout.trim(), pkg.version);
  });

  test('a malformed --upstream URL is echoed with its password masked', async () => {
    const r = await runProc(process.execPath, [CLI, '--upstream', 'postgres://joe:s3cr3t-pw@db:notaport/x']);
    assert.notEqual(r.code, 0);
    assert.ok(!r.stderr.includes('s3cr3t-pw'), r.stderr);
    assert.match(r.stderr, /joe:\*\*\*@/);
  });

  test('a missing --tls-cert file is one line, not a stack trace', async () => {
    const r = await runProc(process.execPath, [CLI, '--upstream', env.pgUrl, '--tls-cert', '/nonexistent/cert.pem', '--tls-key', '/nonexistent/key.pem']);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /--tls-cert .* cannot be read: ENOENT/);
  });

  test('an unreachable upstream says what to do', async () => {
    const r = await runProc(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--upstream', 'postgres://x@127.0.0.1:1/db']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--upstream.*REDIS_FDW_PROXY_UPSTREAM.*embedded/);
  });

  test('at --max-connections the next client gets 53300 "sorry, too many clients already" as psql shows it, and it is logged', async () => {
    const p = await cli(['--listen', '127.0.0.1:0', '--upstream', env.pgUrl, '--max-connections', '1'], {}, /redis-fdw-proxy listening/);
    try {
      const url = `postgres://${encodeURIComponent(up.user)}:${encodeURIComponent(up.password)}@127.0.0.1:${listenPort(p)}/${up.database}`;
      const first = new pg.Client({ connectionString: url });
      await first.connect();
      try {
        // psql's default sslmode=prefer sends SSLRequest first.
        const r = await runProc('psql', ['-X', '-d', url, '-c', 'select 1'], { env: { PGSSLMODE: 'prefer' } });
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /FATAL: {2}sorry, too many clients already/);
        assert.ok(!/SSL exchange/.test(r.stderr), r.stderr);
        await waitFor('the refusal log line', () => /client refused: sorry, too many clients already/.test(p.output()));
      } finally {
        await first.end();
      }
    } finally {
      await stop(p);
    }
  });

  test('--login-timeout closes a silent client and a one-byte-at-a-time client', async () => {
    const p = await cli(['--listen', '127.0.0.1:0', '--upstream', env.pgUrl, '--login-timeout', '300ms'], {}, /redis-fdw-proxy listening/);
    try {
      const port = listenPort(p);
      const closedAfter = (trickle: boolean): Promise<boolean> =>
        new Promise((resolve) => {
          const s = net.connect(port, '127.0.0.1');
          const startup = Buffer.from([0, 0, 0, 40, 0, 3, 0, 0]);
          let i = 0;
          const timer = trickle ? setInterval(() => s.write(startup.subarray(i, ++i)), 50) : undefined;
          s.on('error', () => {});
          s.on('close', () => {
            clearInterval(timer);
            resolve(true);
          });
          setTimeout(() => {
            clearInterval(timer);
            s.destroy();
            resolve(false);
          }, 20_000).unref();
        });
      assert.equal(await closedAfter(false), true);
      assert.equal(await closedAfter(true), true);
      assert.match(p.output(), /did not log in within --login-timeout/);
      // A client that logs in in time is not affected.
      const c = new pg.Client({ connectionString: `postgres://${encodeURIComponent(up.user)}:${encodeURIComponent(up.password)}@127.0.0.1:${port}/${up.database}` });
      await c.connect();
      await new Promise((r) => setTimeout(r, 600));
      assert.equal((await c.query('select 2 as n')).rows[0].n, 2);
      await c.end();
    } finally {
      await stop(p);
    }
  });

  test('--tls-required refuses a client without TLS as a hostssl-only Postgres does, and serves one with TLS', { skip: !existsSync('/usr/bin/openssl') && 'needs openssl' }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fdwproxy-tlsreq-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    const p = await cli(['--listen', '127.0.0.1:0', '--upstream', env.pgUrl, '--tls-cert', cert, '--tls-key', key, '--tls-required'], {}, /redis-fdw-proxy listening/);
    try {
      const url = `postgres://${encodeURIComponent(up.user)}:${encodeURIComponent(up.password)}@127.0.0.1:${listenPort(p)}/${up.database}`;
      const plain = await runProc('psql', ['-X', '-d', url, '-c', 'select 1'], { env: { PGSSLMODE: 'disable' } });
      assert.notEqual(plain.code, 0);
      assert.match(plain.stderr, /FATAL: {2}no pg_hba\.conf entry for host "127\.0\.0\.1", user "[^"]+", database "[^"]+", no encryption/);
      const secure = await runProc('psql', ['-X', '-At', '-d', url, '-c', 'select 3'], { env: { PGSSLMODE: 'require' } });
      assert.equal(secure.stdout.trim(), '3', secure.stderr);

      // SIGHUP re-reads the certificate and key: new connections get the new certificate.
      assert.equal(await peerCN(listenPort(p)), 'localhost');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=reloaded', '-days', '1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
      p.child.kill('SIGHUP');
      await waitFor('the reload line', () => /TLS certificate and key re-read/.test(p.output()));
      assert.equal(await peerCN(listenPort(p)), 'reloaded');
    } finally {
      await stop(p);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a closed log pipe (| head -1) does not block SIGTERM', async () => {
    const sh = spawn('sh', ['-c', `"${process.execPath}" "${CLI}" --listen 127.0.0.1:0 --upstream "${env.pgUrl}" 2>&1 | head -1; sleep 30`], { env: cleanPgEnv(), stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    sh.stdout!.on('data', (b) => (out += b));
    let pid = 0;
    try {
      await waitFor('the first log line', () => out.includes('listening'), 20_000);
      pid = Number(/"pid":(\d+)/.exec(out)![1]);
      process.kill(pid, 'SIGTERM');
      await waitFor('the proxy to exit after SIGTERM', () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      }, 10_000);
    } finally {
      sh.kill('SIGKILL');
      try {
        if (pid) process.kill(pid, 'SIGKILL');
      } catch {
        /* exited, as it should */
      }
    }
  });
});
