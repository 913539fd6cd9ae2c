// Smoke tests for the test harness itself: if these fail, nothing else can be trusted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import pg from 'pg';
import { Redis } from 'ioredis';
import { authAvailable, authUsers, testEnv } from '../harness/env.js';
import { startRedis } from '../harness/servers.js';

const env = testEnv();

function pgAs(user: string, password: string): pg.Client {
  const url = new URL(env.pgUrl);
  return new pg.Client({ host: url.hostname, port: Number(url.port), database: 'postgres', user, password });
}

test('postgres answers select 1', async () => {
  const client = new pg.Client({ connectionString: env.pgUrl });
  await client.connect();
  try {
    const res = await client.query('select 1 as one');
    assert.equal(res.rows[0].one, 1);
  } finally {
    await client.end();
  }
});

test('redis SET/GET round-trips', async () => {
  const redis = new Redis(env.redisUrl);
  try {
    const key = `harness:${process.pid}:${Date.now()}`;
    await redis.set(key, 'hello', 'EX', 60);
    assert.equal(await redis.get(key), 'hello');
    await redis.del(key);
  } finally {
    redis.disconnect();
  }
});

test('each pg_hba auth method accepts its user', { skip: !authAvailable && 'external Postgres: auth users not ours' }, async (t) => {
  for (const [method, { user, password }] of Object.entries(authUsers)) {
    await t.test(method, async () => {
      const client = pgAs(user, password);
      await client.connect();
      try {
        const res = await client.query('select current_user as u');
        assert.equal(res.rows[0].u, user);
      } finally {
        await client.end();
      }
    });
  }
});

test('passwords are stored as the auth method expects', { skip: !authAvailable && 'external Postgres: auth users not ours' }, async () => {
  const client = new pg.Client({ connectionString: env.pgUrl });
  await client.connect();
  try {
    const res = await client.query<{ rolname: string; pw: string | null }>(
      `select rolname, rolpassword as pw from pg_authid where rolname = any($1)`,
      [Object.values(authUsers).map((u) => u.user)],
    );
    const pw = Object.fromEntries(res.rows.map((r) => [r.rolname, r.pw]));
    assert.match(pw.scram_user ?? '', /^SCRAM-SHA-256\$/);
    assert.match(pw.md5_user ?? '', /^md5[0-9a-f]{32}$/); // an md5 pg_hba line would silently use SCRAM otherwise
    assert.equal(pw.trust_user, null);
  } finally {
    await client.end();
  }
});

test('scram_user with a wrong password fails with 28P01', { skip: !authAvailable && 'external Postgres: auth users not ours' }, async () => {
  const client = pgAs(authUsers.scram.user, 'wrong');
  await assert.rejects(client.connect(), (err: { code?: string }) => err.code === '28P01');
});

// A raw socket, because client libraries hide the server's exact reply to an unauthenticated command.
function rawCommand(port: number, cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(`${cmd}\r\n`));
    sock.once('data', (d) => {
      resolve(d.toString());
      sock.destroy();
    });
    sock.once('error', reject);
  });
}

test('startRedis: password, kill, restart, stop', async () => {
  const srv = await startRedis({ password: 's3cret' });
  try {
    const redis = new Redis(srv.url, { maxRetriesPerRequest: 1, retryStrategy: () => null, lazyConnect: true });
    redis.on('error', () => {});
    await redis.connect();
    assert.equal(await redis.ping(), 'PONG');
    assert.match(await rawCommand(srv.port, 'PING'), /^-NOAUTH/, 'requirepass is enforced');
    await srv.kill();
    await assert.rejects(redis.ping());
    redis.disconnect();

    await srv.restart();
    const again = new Redis(srv.url);
    try {
      assert.equal(await again.ping(), 'PONG');
    } finally {
      again.disconnect();
    }
  } finally {
    await srv.stop();
  }
  assert.equal(existsSync(srv.dir), false, 'stop() removes the temp dir');
});
