// RedisPool against real Redis servers: sharing, wrong passwords, dead and hung servers, restarts.
import { describe, test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Redis } from 'ioredis';
import { RedisPool } from '../../src/redis/pool.js';
import { fromConnUrl, type RedisConnSpec } from '../../src/redis/connection.js';
import { readTable } from '../../src/redis/read.js';
import { PgError } from '../../src/protocol/pg-error.js';
import { testEnv } from '../harness/env.js';
import { freePort, startRedis, type RedisInstance } from '../harness/servers.js';

const env = testEnv();
const shared = fromConnUrl(env.redisUrl);

// ioredis prints "[ioredis] Unhandled error event" when an 'error' event has no listener: fail on that.
const unhandled: string[] = [];
const origConsoleError = console.error;
before(() => {
  console.error = (...args: unknown[]) => {
    if (String(args[0]).includes('Unhandled error event')) unhandled.push(args.map(String).join(' '));
    origConsoleError(...args);
  };
});
after(() => {
  console.error = origConsoleError;
  assert.deepEqual(unhandled, [], 'ioredis reported unhandled error events');
});

async function rejectsWith(p: Promise<unknown>, code: string, re: RegExp, notRe?: RegExp): Promise<PgError> {
  let caught: unknown;
  await assert.rejects(p, (e: unknown) => {
    caught = e;
    return true;
  });
  assert.ok(caught instanceof PgError, `expected a PgError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.match(caught.message, re);
  if (notRe) assert.doesNotMatch(caught.message, notRe);
  return caught;
}

async function timed<T>(f: () => Promise<T>): Promise<[T | undefined, unknown, number]> {
  const t0 = Date.now();
  try {
    return [await f(), undefined, Date.now() - t0];
  } catch (e) {
    return [undefined, e, Date.now() - t0];
  }
}

describe('RedisPool', () => {
  test('get() gives a ready client, one per spec, shared by concurrent callers', async () => {
    const pool = new RedisPool();
    try {
      const [a, b, c] = await Promise.all([pool.get(shared), pool.get(shared), pool.get({ ...shared })]);
      assert.equal(a!.status, 'ready');
      assert.equal(a, b);
      assert.equal(a, c);
      assert.equal(await a!.ping(), 'PONG');
      const other = await pool.get({ ...shared, db: shared.db === 1 ? 2 : 1 });
      assert.notEqual(other, a);
      assert.equal(pool.size, 2);
      assert.equal(await pool.get(shared), a, 'reused while ready');
    } finally {
      await pool.close();
    }
  });

  test('commands sent in one turn leave in one socket write; each gets its own reply', async () => {
    const pool = new RedisPool();
    try {
      const client = await pool.get(shared);
      await client.set('pool:turn', 'x');
      const sock = client.stream as unknown as { _writeGeneric: (...a: unknown[]) => unknown };
      const write = sock._writeGeneric;
      let writes = 0;
      sock._writeGeneric = function (this: unknown, ...a: unknown[]) {
        writes++;
        return write.apply(this, a);
      };
      try {
        const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? client.get('pool:turn') : client.echo(`e${i}`))));
        assert.deepEqual(replies, Array.from({ length: 10 }, (_, i) => (i % 2 ? 'x' : `e${i}`)));
        assert.equal(writes, 1, 'ten commands of one turn, one write');
      } finally {
        sock._writeGeneric = write;
      }
    } finally {
      await pool.close();
    }
  });

  test('close() quits every client; get() afterwards is HV00N', async () => {
    const pool = new RedisPool();
    const c = await pool.get(shared);
    await pool.close();
    assert.equal(c.status, 'end');
    assert.equal(pool.size, 0);
    await rejectsWith(pool.get(shared), 'HV00N', /pool is closed/);
  });

  test('db out of range: HV00N with Redis reason', async () => {
    const pool = new RedisPool();
    try {
      await rejectsWith(pool.get({ ...shared, db: 12345 }), 'HV00N', /could not connect to Redis at .*: ERR DB index is out of range/);
      assert.equal(pool.size, 0, 'a client the server refused is not kept');
    } finally {
      await pool.close();
    }
  });

  test('nothing listening: HV00N (connection refused) quickly', async () => {
    const pool = new RedisPool();
    try {
      const port = await freePort();
      const [, err, ms] = await timed(() => pool.get({ host: '127.0.0.1', port, db: 0, tls: false }));
      assert.ok(err instanceof PgError);
      assert.equal(err.code, 'HV00N');
      assert.equal(err.message, `could not connect to Redis at 127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}`);
      assert.ok(ms < 3000, `took ${ms} ms`);
    } finally {
      await pool.close();
    }
  });

  test('a server that accepts but never answers: HV00N within the bound, no hang', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    const pool = new RedisPool({ connectTimeoutMs: 1000 });
    try {
      const [, err, ms] = await timed(() => pool.get({ host: '127.0.0.1', port, db: 0, tls: false, password: 'pw-not-in-message' }));
      assert.ok(err instanceof PgError, String(err));
      assert.equal(err.code, 'HV00N');
      assert.match(err.message, new RegExp(`^could not connect to Redis at 127\\.0\\.0\\.1:${port}: `));
      assert.doesNotMatch(err.message, /pw-not-in-message/);
      assert.ok(ms < 3000, `took ${ms} ms`);
    } finally {
      await pool.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  describe('password-protected Redis', () => {
    let srv: RedisInstance;
    before(async () => {
      srv = await startRedis({ password: 'right-pw' });
    });
    after(async () => {
      await srv?.stop();
    });

    test('wrong password: HV00N with WRONGPASS, password not echoed', async () => {
      const pool = new RedisPool();
      try {
        const spec: RedisConnSpec = { host: srv.host, port: srv.port, db: 0, tls: false, password: 'wrong-pw-xyz' };
        const [, err, ms] = await timed(() => pool.get(spec));
        assert.ok(err instanceof PgError, String(err));
        assert.equal(err.code, 'HV00N');
        assert.match(err.message, new RegExp(`^could not connect to Redis at 127\\.0\\.0\\.1:${srv.port}: WRONGPASS`));
        assert.doesNotMatch(err.message, /wrong-pw-xyz|right-pw/);
        assert.ok(ms < 3000, `took ${ms} ms`);
        assert.equal(pool.size, 0, 'the refused client is dropped, not retried forever');
        // and again: a fresh attempt, same answer
        await rejectsWith(pool.get(spec), 'HV00N', /WRONGPASS/);
      } finally {
        await pool.close();
      }
    });

    test('no password: HV00N (NOAUTH)', async () => {
      const pool = new RedisPool();
      try {
        await rejectsWith(pool.get({ host: srv.host, port: srv.port, db: 0, tls: false }), 'HV00N', /NOAUTH/);
      } finally {
        await pool.close();
      }
    });

    test('right password (URL form) works', async () => {
      const pool = new RedisPool();
      try {
        const c = await pool.get(fromConnUrl(srv.url));
        assert.equal(await c.ping(), 'PONG');
      } finally {
        await pool.close();
      }
    });
  });

  test('Redis killed: commands and get() fail with HV00N within ~3 s; after restart get() works again', async () => {
    const srv = await startRedis();
    const pool = new RedisPool();
    try {
      const spec = fromConnUrl(srv.url);
      const c1 = await pool.get(spec);
      await c1.rpush('l', 'a', 'b');
      const spec2 = { table: 'redis.l', type: 'list' as const, multi: 'none' as const, key: 'l', columns: [], roles: [{ kind: 'element' as const }] };
      const rows: unknown[] = [];
      await readTable(c1, spec2, {}, { row: (_k, v) => rows.push(v) });
      assert.equal(rows.length, 2);

      await srv.kill();

      // A read on the pooled client now fails fast with HV00N naming the server, key and table.
      const [, readErr, readMs] = await timed(() => readTable(c1, spec2, {}, { row: () => {} }));
      assert.ok(readErr instanceof PgError, String(readErr));
      assert.equal(readErr.code, 'HV00N');
      assert.match(readErr.message, new RegExp(`Redis at 127\\.0\\.0\\.1:${srv.port}.*key "l" of foreign table redis\\.l`));
      assert.ok(readMs < 3000, `read took ${readMs} ms`);

      const [, getErr, getMs] = await timed(() => pool.get(spec));
      assert.ok(getErr instanceof PgError, String(getErr));
      assert.equal(getErr.code, 'HV00N');
      assert.match(getErr.message, new RegExp(`^could not connect to Redis at 127\\.0\\.0\\.1:${srv.port}: `));
      assert.ok(getMs < 3500, `get took ${getMs} ms`);

      await srv.restart();
      const c2 = await pool.get(spec);
      assert.equal(await c2.ping(), 'PONG');
      assert.equal(c2, c1, 'the pooled client reconnected in the background');
      rows.length = 0;
      await readTable(c2, spec2, {}, { row: (_k, v) => rows.push(v) });
      assert.equal(rows.length, 0, 'a fresh server (no persistence) has no list');
    } finally {
      await pool.close();
      await srv.stop();
    }
  });

  test('Redis killed before the first get(): HV00N, then works once it is up', async () => {
    const srv = await startRedis();
    const pool = new RedisPool();
    try {
      await srv.kill();
      const [, err, ms] = await timed(() => pool.get(fromConnUrl(srv.url)));
      assert.ok(err instanceof PgError && err.code === 'HV00N', String(err));
      assert.ok(ms < 3000, `took ${ms} ms`);
      await srv.restart();
      const c = await pool.get(fromConnUrl(srv.url));
      assert.equal(await c.ping(), 'PONG');
    } finally {
      await pool.close();
      await srv.stop();
    }
  });

  test('many concurrent get()s while Redis is down all fail promptly, none hang', async () => {
    const srv = await startRedis();
    const pool = new RedisPool();
    try {
      const spec = fromConnUrl(srv.url);
      await pool.get(spec);
      await srv.kill();
      const t0 = Date.now();
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => pool.get(spec)));
      assert.ok(Date.now() - t0 < 3500);
      for (const r of results) {
        assert.equal(r.status, 'rejected');
        assert.equal((r.reason as PgError).code, 'HV00N');
      }
    } finally {
      await pool.close();
      await srv.stop();
    }
  });

  test('a command in flight when the connection drops fails at once instead of hanging; the next get() works', async () => {
    const pool = new RedisPool();
    const admin = new Redis(env.redisUrl);
    try {
      const c = await pool.get(shared);
      const id = await c.client('ID');
      const t0 = Date.now();
      const inFlight = c.call('BLPOP', `t:${process.pid}:never`, '5');
      setTimeout(() => void admin.client('KILL', 'ID', String(id)), 100);
      const [, err, ms] = await timed(() => inFlight);
      assert.ok(err instanceof Error, 'rejected');
      assert.match(err.message, /^Connection is closed/);
      assert.ok(ms < 2000, `took ${ms} ms`);
      const again = await pool.get(shared);
      assert.equal(await again.ping(), 'PONG');
      assert.ok(Date.now() - t0 < 4000);
    } finally {
      admin.disconnect();
      await pool.close();
    }
  });

  test('a plain ioredis client sharing the server is unaffected (sanity)', async () => {
    const r = new Redis(env.redisUrl);
    try {
      assert.equal(await r.ping(), 'PONG');
    } finally {
      r.disconnect();
    }
  });
});
