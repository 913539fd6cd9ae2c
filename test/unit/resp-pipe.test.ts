// The point lookups' raw pipelined connection (redis/resp-pipe.ts) against a Redis of its own (with a
// password, a non-zero db, and SIGSTOP/kill for the faults): replies in order and as values, bulks split
// over chunks, the command timeout failing everything behind a silent command, a dropped connection
// failing what was in flight, a refused login, and reconnecting once the retry delay has passed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { RespError, RespPipe, encode, type Reply } from '../../src/redis/resp-pipe.js';
import { fromConnUrl } from '../../src/redis/connection.js';
import { startRedis, type RedisInstance } from '../harness/servers.js';

const PASSWORD = 'pipe-secret';
const DB = 5;
let r: RedisInstance;
let admin: Redis;

before(async () => {
  r = await startRedis({ password: PASSWORD });
  admin = new Redis({ host: r.host, port: r.port, password: PASSWORD, db: DB });
  await admin.hset('h', { a: '1', b: '', 'ü': 'ünï' });
  await admin.set('big', Buffer.alloc(2 * 1024 * 1024, 0x61));
  await admin.set('str', 'x');
});

after(async () => {
  r?.resume();
  admin?.disconnect();
  await r?.stop();
});

const url = (password = PASSWORD): string => `redis://:${password}@${r.host}:${r.port}/${DB}`;
const pipeFor = (commandTimeoutMs = 5000, password?: string): RespPipe => new RespPipe(fromConnUrl(url(password)), { connectTimeoutMs: 2000, commandTimeoutMs });
const text = (v: Reply): unknown => (Buffer.isBuffer(v) ? v.toString('utf8') : Array.isArray(v) ? v.map(text) : v instanceof RespError ? `ERR:${v.message}` : v);

/** Polls until `pipe.available` (the retry delay after a failure has passed). */
async function availableAgain(pipe: RespPipe): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!pipe.available) {
    if (Date.now() > deadline) throw new Error('the pipe did not become available again within 10 s');
    await new Promise((res) => setTimeout(res, 20));
  }
}

describe('RespPipe', () => {
  test('commands sent in one turn are answered in order, as values (the login and SELECT first)', async () => {
    const pipe = pipeFor();
    try {
      const replies = await Promise.all([
        pipe.call(encode(['HMGET', 'h', 'a', 'missing', 'ü', 'b'])),
        pipe.call(encode(['GET', 'str'])),
        pipe.call(encode(['HLEN', 'h'])),
        pipe.call(encode(['HGET', 'str', 'x'])), // WRONGTYPE: an answer, not a failure
        pipe.call(encode(['GET', 'nope'])),
        pipe.call(encode(['HSCAN', 'h', '0', 'MATCH', 'a'])),
        pipe.call(encode(['PING'])),
      ]);
      assert.deepEqual(replies.map(text), [
        ['1', null, 'ünï', ''],
        'x',
        '3',
        'ERR:WRONGTYPE Operation against a key holding the wrong kind of value',
        null,
        ['0', ['a', '1']],
        'PONG',
      ]);
      assert.equal(pipe.inFlight, 0);
    } finally {
      pipe.close();
    }
  });

  test('a reply bigger than a socket chunk comes back whole', async () => {
    const pipe = pipeFor();
    try {
      const [big, after] = await Promise.all([pipe.call(encode(['GET', 'big'])), pipe.call(encode(['GET', 'str']))]);
      assert.ok(Buffer.isBuffer(big) && big.length === 2 * 1024 * 1024 && big.every((b) => b === 0x61));
      assert.equal(text(after), 'x');
    } finally {
      pipe.close();
    }
  });

  test('a refused login fails the commands behind it', async () => {
    const pipe = pipeFor(5000, 'wrong');
    try {
      await assert.rejects(pipe.call(encode(['PING'])), /WRONGPASS|invalid password/);
      assert.equal(pipe.available, false, 'not used again before the retry delay');
    } finally {
      pipe.close();
    }
  });

  test('a silent server: the command timeout fails every command in flight; after the retry delay a new connection answers', async () => {
    const pipe = pipeFor(300);
    try {
      assert.equal(text(await pipe.call(encode(['PING']))), 'PONG');
      r.pause();
      let failed: unknown[];
      const t0 = performance.now();
      try {
        failed = await Promise.all([1, 2, 3].map(() => pipe.call(encode(['GET', 'str'])).then(() => 'answered', (e: Error) => e.message)));
      } finally {
        r.resume();
      }
      const ms = performance.now() - t0;
      assert.deepEqual(failed, ['Command timed out', 'Command timed out', 'Command timed out']);
      assert.ok(ms >= 250 && ms < 3000, `failed after ${Math.round(ms)} ms`);
      assert.equal(pipe.available, false);
      await availableAgain(pipe);
      assert.equal(text(await pipe.call(encode(['GET', 'str']))), 'x');
    } finally {
      pipe.close();
    }
  });

  test('a dropped connection fails what was in flight; after the retry delay a new connection answers', async () => {
    const pipe = pipeFor();
    try {
      assert.equal(text(await pipe.call(encode(['PING']))), 'PONG');
      const outcome = (p: Promise<Reply>): Promise<string> => p.then(() => 'answered', (e: Error) => e.message);
      r.pause();
      const inFlight = [outcome(pipe.call(encode(['GET', 'str']))), outcome(pipe.call(encode(['HLEN', 'h'])))];
      await new Promise((res) => setImmediate(res)); // the turn's write has left
      await r.kill();
      for (const why of await Promise.all(inFlight)) assert.match(why, /Connection is closed|ECONNRESET/);
      await r.restart();
      await admin.set('str', 'y');
      await availableAgain(pipe);
      assert.equal(text(await pipe.call(encode(['GET', 'str']))), 'y');
    } finally {
      pipe.close();
    }
  });
});
