// psql through the proxy, compared with psql straight to upstream; and query cancellation by every
// route a client has: psql's Ctrl-C, node-postgres and postgres.js CancelRequests, pg_cancel_backend.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import postgres from 'postgres';
import { testEnv } from '../harness/env.js';
import { startProxy, type RunningProxy } from '../harness/proxy.js';
import { msg } from '../support/proto-client.js';
import { cleanPgEnv, psql, sleep, within, uniqueName, waitActive, waitFor, withParam } from '../support/proto-tools.js';

const env = testEnv();
const SCHEMA = `psqlt_${process.pid}`;
let proxy: RunningProxy;
let proxyUrl: string;
let tmp: string;

before(async () => {
  proxy = await startProxy(env.pgUrl);
  proxyUrl = proxy.url();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'fdwproxy-psql-'));
});

after(async () => {
  await proxy?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** A script exercising describe commands, errors, \copy and repeated queries; run once per target. */
function script(dir: string): string {
  const S = SCHEMA;
  const out = path.join(dir, 'items.csv');
  const bad = path.join(dir, 'bad.csv');
  writeFileSync(bad, 'id,name,price,tags\n7,ok,1,{}\nnot-a-number,x,1,{}\n');
  return [
    `drop schema if exists ${S} cascade;`,
    `create schema ${S};`,
    `set search_path = ${S};`,
    `create table items (id int primary key, name text not null, price numeric(10,2) default 0, tags text[]);`,
    `create index items_name on items (name);`,
    `create view cheap as select id, name from items where price < 2;`,
    `comment on table items is 'psql test table';`,
    `insert into items values (1, 'apple', 1.5, '{red,fruit}'), (2, 'pear', 2.25, null), (3, 'plum', null, '{}');`,
    `\\d`,
    `\\d items`,
    `\\d+ cheap`,
    `\\dt ${S}.*`,
    `\\di ${S}.*`,
    `\\dn ${S}`,
    `\\df ${S}.*`,
    `select * from items order by id;`,
    `\\x on`,
    `select * from items where id = 1;`,
    `\\x off`,
    `select 1/0;`,
    `select * from nosuch;`,
    `insert into items values (1, 'dup', 0);`,
    `insert into items (id) values (99);`,
    `selec 1;`,
    `select 'unterminated`,
    `';`,
    `\\errverbose`,
    `\\copy items to '${out}' csv header`,
    `truncate items;`,
    `\\copy items from '${out}' csv header`,
    `select count(*), sum(price), string_agg(name, ',' order by id) from items;`,
    `\\copy items from '${bad}' csv header`,
    `\\copy (select id, upper(name) from items order by id) to stdout`,
    `\\copy items from stdin`,
    `4\tfig\t3.00\t{}`,
    `\\.`,
    `begin;`,
    `insert into items values (10, 'ten', 0);`,
    `select 1/0;`,
    `select 1;`,
    `commit;`,
    `select count(*) as after_failed_tx from items where id = 10;`,
    `\\set VERBOSITY verbose`,
    `select 1/0;`,
    `\\set VERBOSITY default`,
    `select $$dollar 'quoted'$$ as q, E'tab\\there' as e, null as n, 1.5::float8 as f, '2024-01-02'::date as d;`,
    `do $$ begin raise notice 'notice from do block'; end $$;`,
    `\\gdesc`,
    `select id, name from items order by id \\gdesc`,
    `select count(*) as watch_n from items \\gset`,
    `\\echo watched :watch_n`,
    // A \watch stand-in (psql 15's \watch has no count): the same query 50 times.
    ...Array.from({ length: 50 }, () => `select count(*) as repeat_n, max(id) from items;`),
    `drop schema ${S} cascade;`,
    `\\echo done`,
  ].join('\n') + '\n';
}

describe('psql', () => {
  test('the same script gives byte-identical output directly and through the proxy', async () => {
    const dirDirect = mkdtempSync(path.join(tmp, 'direct-'));
    const dirProxy = mkdtempSync(path.join(tmp, 'proxy-'));
    const direct = await psql(env.pgUrl, script(dirDirect));
    const proxied = await psql(proxyUrl, script(dirProxy));
    const strip = (s: string, dir: string): string => s.split(dir).join('<dir>');
    assert.equal(strip(proxied.stderr, dirProxy), strip(direct.stderr, dirDirect), 'stderr differs');
    assert.equal(strip(proxied.stdout, dirProxy), strip(direct.stdout, dirDirect), 'stdout differs');
    assert.equal(proxied.code, direct.code);
    assert.equal(readFileSync(path.join(dirProxy, 'items.csv'), 'utf8'), readFileSync(path.join(dirDirect, 'items.csv'), 'utf8'), '\\copy out wrote the same file');

    // And the output is the one expected, not merely the same.
    const o = proxied.stdout;
    const e = proxied.stderr;
    assert.equal(proxied.code, 0, e);
    assert.match(o, new RegExp(`${SCHEMA} \\| items +\\| table`), '\\d lists the table');
    assert.match(o, new RegExp(`Table "${SCHEMA}.items"`));
    assert.match(o, /"items_name" btree \(name\)/);
    assert.match(o, /COPY 3\n/);
    assert.match(o, /3 \| 3\.75 \| apple,pear,plum/, '\\copy round trip kept the rows');
    assert.match(o, /1\tAPPLE\n2\tPEAR\n3\tPLUM\n/, '\\copy to stdout');
    assert.equal(o.match(/repeat_n \| max/g)?.length, 50, 'all 50 repeated queries answered');
    assert.match(o, /watched 4\n/);
    assert.match(o, /after_failed_tx \n-+\n +0\n/);
    assert.match(o, /ROLLBACK\n/);
    assert.match(o, /done\n$/);
    for (const m of [
      'ERROR:  division by zero',
      'ERROR:  relation "nosuch" does not exist',
      'ERROR:  duplicate key value violates unique constraint "items_pkey"',
      'ERROR:  null value in column "name" of relation "items" violates not-null constraint',
      'ERROR:  syntax error at or near "selec"',
      'ERROR:  invalid input syntax for type integer: "not-a-number"',
      'ERROR:  current transaction is aborted, commands ignored until end of transaction block',
      'ERROR:  22012: division by zero',
      'LOCATION:  int4div',
      'NOTICE:  notice from do block',
    ]) assert.ok(e.includes(m), `stderr has ${JSON.stringify(m)}:\n${e}`);
  });

  test('Ctrl-C in interactive psql (a real pty) cancels the statement; psql goes on with the next one', { skip: !existsSync('/usr/bin/script') && 'needs util-linux script(1) for a pty' }, async () => {
    const run = async (url: string): Promise<{ out: string; cancelMs: number; code: number | null }> => {
      const app = uniqueName('psql_ctrlc');
      // `exec`: script(1) runs the command under $SHELL or /bin/sh; a shell left waiting as psql's
      // parent gets the same SIGINT, and dash then exits 130 after psql ends normally.
      const child = spawn('script', ['-qfec', `exec psql -X -v ON_ERROR_STOP=0 -d '${withParam(url, 'application_name', app)}'`, '/dev/null'], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: cleanPgEnv({ TERM: 'dumb', PAGER: '' }),
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      try {
        child.stdin.write('select pg_sleep(30);\n');
        await waitActive(env.pgUrl, app);
        const t0 = Date.now();
        child.stdin.write('\x03'); // the terminal turns this into SIGINT for psql, exactly like a user's Ctrl-C
        await waitFor('psql to report the cancel', () => out.includes('canceling statement'), 8000, 20);
        const cancelMs = Date.now() - t0;
        child.stdin.write("select 'after cancel' as next;\n\\q\n");
        const code = await within(exited, 10_000, 'timeout' as const);
        assert.notEqual(code, 'timeout', `psql did not exit: ${out}`);
        return { out, cancelMs, code: code as number | null };
      } finally {
        child.kill('SIGKILL');
      }
    };
    const direct = await run(env.pgUrl);
    const proxied = await run(proxyUrl);
    for (const r of [direct, proxied]) {
      assert.match(r.out, /Cancel request sent\r?\nERROR: {2}canceling statement due to user request\r?\n/);
      assert.match(r.out, /after cancel\r?\n\(1 row\)/, 'psql ran the next statement on the same connection');
      assert.equal(r.code, 0);
    }
    assert.ok(proxied.cancelMs < 5000, `cancel took ${proxied.cancelMs} ms through the proxy`);
    const core = (s: string): string => s.slice(s.indexOf('postgres=#'));
    assert.equal(core(proxied.out), core(direct.out));
  });

  test('SIGINT to psql running a script: the statement is canceled at once, as upstream does it', async () => {
    const run = async (url: string): Promise<{ stdout: string; stderr: string; code: number | null; afterSignalMs: number }> => {
      const app = uniqueName('psql_sigint');
      let child: ChildProcess | undefined;
      const done = psql(withParam(url, 'application_name', app), `select pg_sleep(30);\nselect 'after cancel' as next;\n`, [], { onSpawn: (c) => (child = c), timeoutMs: 40_000 });
      await waitActive(env.pgUrl, app);
      const t0 = Date.now();
      child!.kill('SIGINT');
      const r = await done;
      return { stdout: r.stdout, stderr: r.stderr, code: r.code, afterSignalMs: Date.now() - t0 };
    };
    const direct = await run(env.pgUrl);
    const proxied = await run(proxyUrl);
    assert.match(proxied.stderr, /ERROR: {2}canceling statement due to user request/);
    assert.ok(proxied.afterSignalMs < 5000, `psql finished ${proxied.afterSignalMs} ms after SIGINT`);
    // A non-interactive psql stops its script after Ctrl-C (psql's own rule, same as upstream).
    assert.equal(proxied.stderr, direct.stderr);
    assert.equal(proxied.stdout, direct.stdout);
    assert.equal(proxied.code, direct.code);
  });

  test('psql reports a connection refused by upstream the way upstream does (unknown database)', async () => {
    const u = new URL(proxyUrl);
    u.pathname = '/no_such_db_psql';
    const d = new URL(env.pgUrl);
    d.pathname = '/no_such_db_psql';
    const proxied = await psql(u.toString(), 'select 1;\n');
    const direct = await psql(d.toString(), 'select 1;\n');
    assert.equal(proxied.code, 2);
    assert.match(proxied.stderr, /FATAL: {2}database "no_such_db_psql" does not exist/);
    const tail = (s: string): string => s.replace(/^.*?(FATAL:)/s, '$1');
    assert.equal(tail(proxied.stderr), tail(direct.stderr));
  });
});

describe('cancel', () => {
  /** Resolves with the query's error (or 'no error'); the client stays usable afterwards. */
  async function sleepingClient(app: string): Promise<{ client: pg.Client; query: pg.Query; result: Promise<unknown>; pid: number }> {
    const client = new pg.Client({ connectionString: proxyUrl, application_name: app });
    client.on('error', () => {});
    await client.connect();
    const query = new pg.Query('select pg_sleep(30)');
    const result = new Promise<unknown>((resolve) => {
      query.on('error', resolve);
      query.on('end', () => resolve('no error'));
    });
    client.query(query);
    const pid = await waitActive(env.pgUrl, app);
    return { client, query, result, pid };
  }

  async function expectCanceled(result: Promise<unknown>, t0: number): Promise<void> {
    const err = (await within(result, 8000, 'timeout')) as { code?: string; message?: string } | string;
    assert.notEqual(err, 'timeout', 'query was not canceled within 8 s');
    assert.equal(typeof err === 'object' ? err.code : err, '57014');
    assert.equal(typeof err === 'object' ? err.message : err, 'canceling statement due to user request');
    assert.ok(Date.now() - t0 < 5000, `cancel took ${Date.now() - t0} ms`);
  }

  test('node-postgres: its processID/secretKey reach upstream (Client#cancel through the proxy)', async () => {
    const app = uniqueName('pg_cancel');
    const { client, query, result, pid } = await sleepingClient(app);
    try {
      assert.equal((client as unknown as { processID: number }).processID, pid, 'BackendKeyData carries the upstream pid');
      const t0 = Date.now();
      (new pg.Client({ connectionString: proxyUrl }) as unknown as { cancel(c: pg.Client, q: pg.Query): void }).cancel(client, query);
      await expectCanceled(result, t0);
      assert.equal((await client.query('select 1 as ok')).rows[0].ok, 1, 'session usable after cancel');
    } finally {
      await client.end();
    }
  });

  test('raw 16-byte CancelRequest to the proxy port; a wrong secret key cancels nothing', async () => {
    const app = uniqueName('raw_cancel');
    const { client, result } = await sleepingClient(app);
    const send = (pid: number, key: number): Promise<void> =>
      new Promise((resolve, reject) => {
        const s = net.connect(proxy.port, '127.0.0.1', () => s.write(msg.cancelRequest(pid, key)));
        s.on('error', reject);
        s.on('data', (d) => reject(new Error(`unexpected reply to CancelRequest: ${d.toString('hex')}`)));
        s.on('close', () => resolve());
      });
    try {
      const c = client as unknown as { processID: number; secretKey: number };
      await send(c.processID, (c.secretKey ^ 0x5a5a5a5a) | 0);
      const early = await within(result, 1500, 'still running');
      assert.equal(early, 'still running', 'a CancelRequest with a wrong key must not cancel');
      const t0 = Date.now();
      await send(c.processID, c.secretKey);
      await expectCanceled(result, t0);
      assert.equal((await client.query('select 2 as ok')).rows[0].ok, 2);
    } finally {
      await client.end();
    }
  });

  test('postgres.js query.cancel() through the proxy', async () => {
    const app = uniqueName('pgjs_cancel');
    const sql = postgres(proxyUrl, { connection: { application_name: app }, max: 1, onnotice: () => {} });
    try {
      const q = sql`select pg_sleep(30)`;
      const result = q.then(() => 'no error', (e: unknown) => e);
      await waitActive(env.pgUrl, app);
      const t0 = Date.now();
      await q.cancel();
      await expectCanceled(result, t0);
      assert.deepEqual([...(await sql`select 3 as ok`)], [{ ok: 3 }]);
    } finally {
      await sql.end({ timeout: 2 });
    }
  });

  test('pg_cancel_backend from another session through the proxy', async () => {
    const app = uniqueName('backend_cancel');
    const { client, result, pid } = await sleepingClient(app);
    const other = new pg.Client({ connectionString: proxyUrl });
    await other.connect();
    try {
      const t0 = Date.now();
      const r = await other.query('select pg_cancel_backend($1) as ok', [pid]);
      assert.equal(r.rows[0].ok, true);
      await expectCanceled(result, t0);
      assert.equal((await client.query('select 4 as ok')).rows[0].ok, 4);
    } finally {
      await other.end();
      await client.end();
    }
  });

  test('a cancel that arrives when nothing runs is harmless', async () => {
    const client = new pg.Client({ connectionString: proxyUrl });
    await client.connect();
    try {
      const c = client as unknown as { processID: number; secretKey: number };
      await new Promise<void>((resolve) => {
        const s = net.connect(proxy.port, '127.0.0.1', () => s.end(msg.cancelRequest(c.processID, c.secretKey)));
        s.on('close', () => resolve());
        s.on('error', () => resolve());
      });
      await waitFor('cancel to be processed', async () => (await sleep(300), true));
      assert.equal((await client.query('select 5 as ok')).rows[0].ok, 5);
    } finally {
      await client.end();
    }
  });
});
