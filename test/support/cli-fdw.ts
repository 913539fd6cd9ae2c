/**
 * A fresh database served by the real CLI process (not in-process), for tests that time the proxy's
 * event loop without the test's own work on it, or that kill the proxy with signals.
 */
import assert from 'node:assert/strict';
import pg from 'pg';
import { Redis } from 'ioredis';
import { testEnv } from '../harness/env.js';
import { spawnProxy, type SpawnedProxy } from '../harness/proxy.js';
import { freshDatabase, withDb } from './fdw.js';

export interface CliFdw {
  db: string;
  directUrl: string;
  redisUrl: string;
  redis: Redis;
  proxy: SpawnedProxy;
  /** URL of the database through the currently running proxy. */
  url: string;
  /** Starts a proxy (again) with the fixture's flags plus `extra`; the old one must be gone. */
  start(extra?: string[]): Promise<void>;
  /** SIGKILL: no shutdown work at all. */
  kill(): Promise<void>;
  close(): Promise<void>;
}

function listenPort(p: SpawnedProxy): number {
  const m = /"listen":"[^"]*:(\d+)"/.exec(p.output());
  assert.ok(m, `no listen address in proxy output: ${p.output()}`);
  return Number(m[1]);
}

/** `redis`: a Redis URL with its db number (e.g. a test's own server), or a db number on the runner's Redis. */
export async function cliFdw(name: string, redis: string | number, flags: string[] = []): Promise<CliFdw> {
  const env = testEnv();
  const db = await freshDatabase(env.pgUrl, name);
  const directUrl = withDb(env.pgUrl, db);
  const ru = new URL(typeof redis === 'string' ? redis : env.redisUrl);
  if (typeof redis === 'number') ru.pathname = `/${redis}`;
  const client = new Redis(ru.toString(), { maxRetriesPerRequest: 1 });
  client.on('error', () => {
    /* fault tests stop this server; the next command fails the test if it matters */
  });
  await client.flushdb();
  const fx: CliFdw = {
    db,
    directUrl,
    redisUrl: ru.toString(),
    redis: client,
    proxy: undefined as unknown as SpawnedProxy,
    url: '',
    async start(extra = []) {
      fx.proxy = await spawnProxy(['--listen', '127.0.0.1:0', '--upstream', directUrl, '--log-level', 'info', ...flags, ...extra]);
      const u = new URL(directUrl);
      u.host = `127.0.0.1:${listenPort(fx.proxy)}`;
      fx.url = u.toString();
    },
    async kill() {
      if (fx.proxy.child.exitCode !== null || fx.proxy.child.signalCode !== null) return;
      fx.proxy.child.kill('SIGKILL');
      await fx.proxy.exited;
    },
    async close() {
      if (fx.proxy && fx.proxy.child.exitCode === null && fx.proxy.child.signalCode === null) {
        fx.proxy.child.kill('SIGTERM');
        await fx.proxy.exited;
      }
      client.disconnect();
      const a = new pg.Client({ connectionString: env.pgUrl });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await a.end();
    },
  };
  await fx.start();
  return fx;
}
