// The operator's live view through the real CLI: the slow-statement log's per-statement Redis
// commands and rows (checked against Redis's own MONITOR), /ready over every Redis server the
// catalog configures, and --config re-read on SIGHUP.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { testEnv } from '../harness/env.js';
import { psql, waitFor } from '../support/proto-tools.js';
import { urlParts } from '../support/proto-client.js';
import { REDIS_DB } from '../support/redis-dbs.js';
import { cli, listenPort, stop, type Cli } from '../support/cli-proc.js';

const env = testEnv();
const up = urlParts(env.pgUrl);
const DB = REDIS_DB.opsLive;
const redisUrl = (() => {
  const u = new URL(env.redisUrl);
  u.pathname = `/${DB}`;
  return u.toString();
})();

/** Redis's own record of the commands run on our db between two markers (MONITOR sees every client). */
class Monitor {
  private seen: string[][] = [];
  private constructor(
    private readonly mon: Redis,
    private readonly marker: Redis,
  ) {}

  static async start(): Promise<Monitor> {
    const marker = new Redis(redisUrl);
    const mon = await new Redis(env.redisUrl).monitor();
    const m = new Monitor(mon, marker);
    mon.on('monitor', (_time: string, args: string[], _source: string, database: string) => {
      if (Number(database) === DB) m.seen.push(args);
    });
    return m;
  }

  /** The commands (upper-cased names) run on our db while `fn` ran, up to a closing marker Redis has echoed. */
  async during(fn: () => Promise<void>): Promise<string[]> {
    const tag = `marker-${Math.random()}`;
    await this.marker.echo(`${tag}-start`);
    await waitFor('the start marker in MONITOR', () => this.seen.some((a) => a[1] === `${tag}-start`));
    await fn();
    await this.marker.echo(`${tag}-end`);
    await waitFor('the end marker in MONITOR', () => this.seen.some((a) => a[1] === `${tag}-end`));
    const from = this.seen.findIndex((a) => a[1] === `${tag}-start`);
    const to = this.seen.findIndex((a) => a[1] === `${tag}-end`);
    return this.seen.slice(from + 1, to).map((a) => a[0]!.toUpperCase());
  }

  async close(): Promise<void> {
    this.mon.disconnect();
    this.marker.disconnect();
  }
}

/** The slow-statement log's `redis` field for a list of command names: counts, most used first. */
const summarize = (names: string[]): Map<string, number> => {
  const m = new Map<string, number>();
  for (const n of names) m.set(n, (m.get(n) ?? 0) + 1);
  return m;
};
const parseLogged = (s: string): Map<string, number> => new Map(s === '' ? [] : s.split(' ').map((p) => [p.split('×')[0]!, Number(p.split('×')[1] ?? 1)]));

describe('the operator\'s live view (external upstream)', () => {
  let p: Cli;
  let dir: string;
  let configFile: string;
  let metricsUrl: string;
  const db = `ops_live_${process.pid}`;
  const key = `ops:live:${process.pid}`;
  const login = (database = db): string => `postgres://${encodeURIComponent(up.user)}:${encodeURIComponent(up.password)}@127.0.0.1:${listenPort(p)}/${database}`;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'fdwproxy-live-'));
    configFile = path.join(dir, 'proxy.json');
    writeFileSync(configFile, JSON.stringify({ 'log-min-duration': '0ms', 'max-connections': 50 }));
    const admin = new pg.Client({ connectionString: env.pgUrl });
    await admin.connect();
    await admin.query(`drop database if exists ${db}`);
    await admin.query(`create database ${db}`);
    await admin.end();
    const r = new Redis(redisUrl);
    await r.flushdb();
    await r.hset(key, { a: '1', b: '2', c: '3', d: '4', e: '5' });
    r.disconnect();
    p = await cli(['--listen', '127.0.0.1:0', '--upstream', env.pgUrl, '--metrics-listen', '127.0.0.1:0', '--config', configFile], {}, /metrics listening|redis-fdw-proxy: /);
    metricsUrl = p.logged(/metrics listening/, 'metrics').replace(/\/metrics$/, '');
    const setup = await psql(login(), `create foreign data wrapper redis_wrapper handler redis_fdw_handler validator redis_fdw_validator;
create server rs foreign data wrapper redis_wrapper options (conn_url '${redisUrl}');
create foreign table h (key text, value text) server rs options (src_type 'hash', src_key '${key}');`, ['-v', 'ON_ERROR_STOP=1']);
    assert.equal(setup.stderr, '');
  });
  after(async () => {
    await stop(p);
    rmSync(dir, { recursive: true, force: true });
  });

  test('a slow statement\'s log line has its kind, the Redis commands it ran as Redis saw them, its rows, and the client\'s SQL without parameter values', async () => {
    const c = new pg.Client({ connectionString: login() });
    await c.connect();
    const mon = await Monitor.start();
    try {
      await c.query('select count(*) from h'); // the pooled connection exists before MONITOR counts
      const cases: { sql: string; values?: string[]; kind: RegExp; rows: number }[] = [
        { sql: 'select key, value from h', kind: /^foreign_read_(fast|upstream)$/, rows: 5 },
        { sql: 'select key, value from h where key = $1', values: ['b'], kind: /^foreign_read_(fast|upstream)$/, rows: 1 },
        { sql: 'select value from h where key = $1', values: ['secret-param-b'], kind: /^foreign_read_(fast|upstream)$/, rows: 0 },
        { sql: "insert into h values ('f', '6')", kind: /^foreign_write$/, rows: 1 },
        { sql: 'update h set value = $1 where key = $2', values: ['secret-param-v', 'a'], kind: /^foreign_write$/, rows: 1 },
      ];
      for (const k of cases) {
        const before = p.lines(/^slow statement$/).length;
        let clientRows = 0;
        const redisSaw = await mon.during(async () => {
          const r = await c.query({ text: k.sql, values: k.values });
          clientRows = r.rowCount ?? 0;
        });
        const line = await waitFor(`the slow statement line for ${k.sql}`, () => p.lines(/^slow statement$/).slice(before).find((l) => l.sql === k.sql));
        assert.equal(line.sql, k.sql, 'the client\'s SQL, not the rewrite');
        assert.match(String(line.kind), k.kind);
        assert.equal(line.rows, k.rows, JSON.stringify(line));
        assert.equal(clientRows, k.rows, 'the rows the client got');
        assert.equal(line.redisCommands, redisSaw.length, `Redis saw ${redisSaw.join(' ')}`);
        assert.deepEqual(parseLogged(String(line.redis)), summarize(redisSaw));
        assert.ok(redisSaw.length > 0);
      }
      assert.ok(!p.output().includes('secret-param'), 'parameter values are never logged');
      // Passthrough is not timed here: upstream's own log_min_duration_statement covers it.
      const n = p.lines(/^slow statement$/).length;
      await c.query('select 1');
      await c.query('select count(*) from h');
      const next = await waitFor('the next slow statement line', () => p.lines(/^slow statement$/)[n]);
      assert.equal(next.sql, 'select count(*) from h');
    } finally {
      await mon.close();
      await c.end();
    }
  });

  test('/ready checks every Redis server configured in the catalog, used or not, and names the unreachable one with its password masked', async () => {
    const ready = async (): Promise<{ status: number; body: { ready: boolean; redis: { server: string; names?: string[]; ok: boolean; error?: string }[] }; text: string }> => {
      const r = await fetch(`${metricsUrl}/ready`);
      const text = await r.text();
      return { status: r.status, body: JSON.parse(text), text };
    };
    const ok = await ready();
    assert.equal(ok.status, 200, ok.text);
    // Never used since start, and nothing listens on port 1.
    const add = await psql(login(), `create server dead foreign data wrapper redis_wrapper options (conn_url 'redis://:s3cret-pw@127.0.0.1:1/0');`);
    assert.equal(add.stderr, '');
    const bad = await ready();
    assert.equal(bad.status, 503, bad.text);
    const dead = bad.body.redis.find((r) => r.server === '127.0.0.1:1');
    assert.ok(dead && !dead.ok && dead.error, bad.text);
    assert.deepEqual(dead.names, [`${db}/dead`]);
    assert.ok(bad.body.redis.some((r) => r.ok && r.names?.includes(`${db}/rs`)), bad.text);
    assert.ok(!bad.text.includes('s3cret-pw'), 'no password in /ready');
    const drop = await psql(login(), 'drop server dead;');
    assert.equal(drop.stderr, '');
    assert.equal((await ready()).status, 200);
  });

  test('SIGHUP re-reads --config: live settings change, existing sessions\' loggers included; a restart-only one is named in a warning; a broken file changes nothing', async () => {
    const held = new pg.Client({ connectionString: login() });
    await held.connect();
    await held.query('select key from h where key = $1', ['held']);
    const heldSession = await waitFor('the held session\'s slow line', () => p.lines(/^slow statement$/).find((l) => l.sql === 'select key from h where key = $1')?.session);
    // The one line per reload that says what changed (a restart warning is a line of its own).
    const summaries = (): Record<string, unknown>[] => p.lines(/^reload: /).filter((l) => Array.isArray(l.changed));
    const reloads = (): number => summaries().length;
    const hup = async (): Promise<Record<string, unknown>> => {
      const n = reloads();
      p.child.kill('SIGHUP');
      await waitFor('the reload log line', () => reloads() === n + 1);
      return summaries()[n]!;
    };
    writeFileSync(configFile, JSON.stringify({ 'log-level': 'debug', 'max-connections': 2, 'log-min-duration': '2m', 'max-value-bytes': 1000 }));
    const line = await hup();
    assert.match(String(line.msg), /^reload: log_level info -> debug; max_connections 50 -> 2; log_min_duration 0 -> 120000; parse cache flushed; catalog cache flushed$/);
    assert.match(p.logged(/can only change with a restart/, 'msg'), /^reload: max_value_bytes changed/);
    // The session opened before the reload logs at debug now: its close is logged.
    await held.end();
    await waitFor('the held session\'s debug line', () => p.lines(/^session closed$/).some((l) => l.session === heldSession));
    // max-connections 2: the third client gets Postgres's 53300.
    const a = new pg.Client({ connectionString: login() });
    const b = new pg.Client({ connectionString: login() });
    await a.connect();
    await b.connect();
    const third = new pg.Client({ connectionString: login() });
    await assert.rejects(third.connect(), (e: { code?: string }) => e.code === '53300');
    await a.end();
    await b.end();
    // A broken file: nothing changes, and the warning says so.
    writeFileSync(configFile, '{"log-level": ');
    const broken = await hup();
    assert.equal(broken.level, 40);
    assert.match(String(broken.msg), /configuration not reloaded \(the running one stays\): --config .* is not valid JSON/);
    const cfg = await waitFor('a console slot', async () => {
      const r = await psql(login('redis_fdw_proxy'), 'SHOW CONFIG;', ['-At']);
      return r.stdout === '' ? undefined : r.stdout;
    });
    assert.match(cfg, /^max_connections\|2\|live$/m);
    assert.match(cfg, /^log_level\|debug\|live$/m);
  });
});
