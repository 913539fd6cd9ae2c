/** Helpers for foreign-table tests: a fresh database and Redis db per test file, psql and raw Redis. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { Redis } from 'ioredis';
import { testEnv } from '../harness/env.js';
import { startProxy, type RunningProxy } from '../harness/proxy.js';
import type { ProxyConfig } from '../../src/config/config.js';

const run = promisify(execFile);

export interface FdwFixture {
  proxy: RunningProxy;
  /** URL of the fresh database through the proxy. */
  url: string;
  /** URL of the same database straight to upstream. */
  directUrl: string;
  db: string;
  redis: Redis;
  /** The Redis URL with this fixture's db number, for conn_url. */
  redisUrl: string;
  redisHostPort: string;
  redisDb: number;
  psql(sql: string, extra?: string[]): Promise<string>;
  close(): Promise<void>;
}

/** Drops and creates `<name>_<pid>` on upstream; its name. */
export async function freshDatabase(pgUrl: string, name: string): Promise<string> {
  const db = `${name}_${process.pid}`;
  const admin = new pg.Client({ connectionString: pgUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${db}`);
    await admin.query(`CREATE DATABASE ${db}`);
  } finally {
    await admin.end();
  }
  return db;
}

/**
 * Each test file gets its own Postgres database (FDW and server names are per database) and its own
 * Redis db number, so files run concurrently without seeing each other's objects.
 */
export async function fdwFixture(name: string, redisDb: number, proxyConfig: Partial<ProxyConfig> = {}): Promise<FdwFixture> {
  const env = testEnv();
  const db = await freshDatabase(env.pgUrl, name);
  const directUrl = withDb(env.pgUrl, db);
  const proxy = await startProxy(directUrl, proxyConfig);
  const url = withDb(proxy.url(), db);
  const ru = new URL(env.redisUrl);
  ru.pathname = `/${redisDb}`;
  const redisUrl = ru.toString();
  const redis = new Redis(redisUrl);
  await redis.flushdb();
  return {
    proxy,
    url,
    directUrl,
    db,
    redis,
    redisUrl,
    redisHostPort: `${ru.hostname}:${ru.port || 6379}`,
    redisDb,
    psql: (sql, extra = []) => psql(url, sql, extra),
    async close() {
      redis.disconnect();
      await proxy.close();
      const a = new pg.Client({ connectionString: env.pgUrl });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await a.end();
    },
  };
}

export function withDb(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

/** Runs psql as users do (no psqlrc), returning stdout and stderr together, as a terminal shows them. */
export async function psql(url: string, sql: string, extra: string[] = []): Promise<string> {
  try {
    const { stdout, stderr } = await run('psql', ['-X', '-d', url, ...extra, '-c', sql], { env: { ...process.env, PGCONNECT_TIMEOUT: '10' } });
    return stdout + stderr;
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string };
    return (x.stdout ?? '') + (x.stderr ?? '');
  }
}

/** Runs a psql script file-style (-f -), one session, statements in order. */
export async function psqlScript(url: string, script: string): Promise<string> {
  return new Promise((resolve) => {
    const child = execFile('psql', ['-X', '-d', url, '-f', '-'], { env: { ...process.env, PGCONNECT_TIMEOUT: '10' } }, (_e, stdout, stderr) => resolve(stdout + stderr));
    child.stdin!.end(script);
  });
}

/** Rows of an unaligned, tuples-only psql result (-At), sorted, for types whose order Redis doesn't define. */
export function sortedLines(out: string): string[] {
  return out.split('\n').filter((l) => l !== '').sort();
}
