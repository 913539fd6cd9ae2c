// Connection option parsing for both FDW dialects, the text check, and Redis glob matching (checked against
// the real Redis's own matcher).
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { connKey, describeConn, fromConnUrl, fromHostPort, redactConnUrl } from '../../src/redis/connection.js';
import { checkText, keyForMessage, toText } from '../../src/redis/text.js';
import { globLiteral, globMatch } from '../../src/redis/glob.js';
import { PgError } from '../../src/protocol/pg-error.js';
import { testEnv } from '../harness/env.js';

function pgErr(code: string, re?: RegExp, notRe?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof PgError, `expected PgError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    if (notRe) assert.doesNotMatch(e.message, notRe);
    return true;
  };
}

describe('fromConnUrl', () => {
  test('full URL with user, password, port, db', () => {
    assert.deepEqual(fromConnUrl('redis://alice:s3cret@10.0.0.5:6380/3'), {
      host: '10.0.0.5', port: 6380, db: 3, tls: false, username: 'alice', password: 's3cret',
    });
  });
  test('defaults: port 6379, db 0, no credentials', () => {
    assert.deepEqual(fromConnUrl('redis://localhost'), { host: 'localhost', port: 6379, db: 0, tls: false });
    assert.deepEqual(fromConnUrl('redis://localhost/'), { host: 'localhost', port: 6379, db: 0, tls: false });
    assert.deepEqual(fromConnUrl('redis://localhost:7000'), { host: 'localhost', port: 7000, db: 0, tls: false });
  });
  test('password only (redis://:pw@host) and user only', () => {
    assert.deepEqual(fromConnUrl('redis://:pw@h/1'), { host: 'h', port: 6379, db: 1, tls: false, password: 'pw' });
    assert.deepEqual(fromConnUrl('redis://bob@h'), { host: 'h', port: 6379, db: 0, tls: false, username: 'bob' });
  });
  test('rediss:// is TLS; #insecure skips verification', () => {
    assert.equal(fromConnUrl('rediss://h:6380/0').tls, true);
    assert.equal(fromConnUrl('rediss://h:6380/0').tlsInsecure, undefined);
    assert.equal(fromConnUrl('rediss://h/0#insecure').tlsInsecure, true);
  });
  test('percent-encoded credentials, and raw @ and / in the password', () => {
    const s = fromConnUrl('redis://us%40er:p%3Aa%2Fss%40@h:1/2');
    assert.equal(s.username, 'us@er');
    assert.equal(s.password, 'p:a/ss@');
    assert.equal(fromConnUrl('redis://u:p@ss@h/0').password, 'p@ss');
  });
  test('IPv6 host in brackets; query options ignored', () => {
    const s = fromConnUrl('redis://[::1]:6390/4?protocol=resp3');
    assert.equal(s.host, '::1');
    assert.equal(s.port, 6390);
    assert.equal(s.db, 4);
    assert.equal(describeConn(s), '[::1]:6390');
  });
  test('unix socket URLs', () => {
    assert.deepEqual(fromConnUrl('redis+unix:///tmp/redis.sock?db=2&pass=x'), {
      host: 'localhost', port: 6379, db: 2, tls: false, path: '/tmp/redis.sock', password: 'x',
    });
    assert.equal(fromConnUrl('unix:///var/run/r.sock').path, '/var/run/r.sock');
  });
  test('malformed URLs: HV024, password never echoed', () => {
    const bad: Array<[string, RegExp]> = [
      ['127.0.0.1:6379', /must start with redis:\/\//],
      ['http://h', /unsupported scheme "http"/],
      ['redis://', /host is missing/],
      ['redis://u:hunter2@h:notaport/0', /port "notaport" is not a number/],
      ['redis://u:hunter2@h:70000', /out of range/],
      ['redis://u:hunter2@h/abc', /database must be a non-negative integer/],
      ['redis://u:hunter2@h/-1', /non-negative/],
      ['redis://u:hunter2@::1/0', /IPv6 hosts must be written in brackets/],
      ['redis://u:hunter2%zz@h/0', /percent-encoding/],
      ['redis://u:hunter2@[::1/0', /unterminated/],
    ];
    for (const [url, why] of bad) {
      assert.throws(() => fromConnUrl(url), pgErr('HV024', why, /hunter2/), url);
      assert.throws(() => fromConnUrl(url), pgErr('HV024', /^invalid conn_url "/), url);
    }
  });
  test('redactConnUrl hides passwords, even in unparsable URLs', () => {
    assert.equal(redactConnUrl('redis://u:pw@h:1/0'), 'redis://u:***@h:1/0');
    assert.equal(redactConnUrl('redis://u:p@w/x@h'), 'redis://u:***@h');
    assert.equal(redactConnUrl('redis://h:1/0'), 'redis://h:1/0');
    assert.equal(redactConnUrl('redis+unix:///s?db=1&pass=pw'), 'redis+unix:///s?db=1&pass=***');
  });
});

describe('fromHostPort', () => {
  test('host:port, database, password, username', () => {
    assert.deepEqual(fromHostPort('127.0.0.1:8899'), { host: '127.0.0.1', port: 8899, db: 0, tls: false });
    assert.deepEqual(fromHostPort('redis.local:6380', '5', 'pw', 'app'), {
      host: 'redis.local', port: 6380, db: 5, tls: false, password: 'pw', username: 'app',
    });
    assert.deepEqual(fromHostPort('h', '', ''), { host: 'h', port: 6379, db: 0, tls: false });
    assert.equal(fromHostPort('[::1]:7000').host, '::1');
  });
  test('invalid values: HV024', () => {
    assert.throws(() => fromHostPort(''), pgErr('HV024', /invalid host_port ""/));
    assert.throws(() => fromHostPort('h:x'), pgErr('HV024', /invalid host_port "h:x"/));
    assert.throws(() => fromHostPort('h:1', 'one'), pgErr('HV024', /invalid database "one"/));
  });
});

describe('connKey', () => {
  test('stable, distinguishes db / credentials / tls, hides the password', () => {
    const a = fromConnUrl('redis://u:topsecret@H:6379/0');
    assert.equal(connKey(a), connKey(fromConnUrl('redis://u:topsecret@h:6379/0')));
    assert.equal(connKey(a), connKey(fromHostPort('h:6379', '0', 'topsecret', 'u')));
    assert.notEqual(connKey(a), connKey(fromConnUrl('redis://u:topsecret@h:6379/1')));
    assert.notEqual(connKey(a), connKey(fromConnUrl('redis://u:other@h:6379/0')));
    assert.notEqual(connKey(a), connKey(fromConnUrl('redis://h:6379/0')));
    assert.notEqual(connKey(a), connKey(fromConnUrl('rediss://u:topsecret@h:6379/0')));
    assert.doesNotMatch(connKey(a), /topsecret/);
  });
});

describe('checkText / toText', () => {
  test('valid UTF-8 passes, decoded unchanged', () => {
    const s = 'héllo "q" \\ \n $$ {"a":[1]} 😀 中文';
    assert.equal(toText(Buffer.from(s), 'k', 't'), s);
    checkText(Buffer.alloc(0), 'k', 't');
  });
  test('invalid UTF-8: 22021 naming key and table, offending bytes in the detail', () => {
    for (const bytes of [[0xff], [0x61, 0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf0, 0x9f, 0x98], [0xc0, 0x80]]) {
      assert.throws(
        () => checkText(Buffer.from(bytes), 'my:key', 'redis.list'),
        (e: unknown) => {
          pgErr('22021', /^invalid byte sequence for encoding "UTF8" in Redis key "my:key" of foreign table redis\.list$/)(e);
          assert.match((e as PgError).detail ?? '', /Invalid bytes 0x[0-9a-f]{2}/);
          return true;
        },
      );
    }
  });
  test('NUL byte: 22021 saying so', () => {
    assert.throws(() => toText(Buffer.from('a\0b'), 'k', 't'), pgErr('22021', /0x00 \(NUL byte\) in Redis key "k" of foreign table t/));
  });
  test('keys in messages: control characters escaped, invalid bytes replaced, long keys cut', () => {
    assert.equal(keyForMessage(Buffer.from([0x61, 0x00, 0x0a, 0xff])), 'a\\x00\\x0a\ufffd');
    assert.ok(keyForMessage('x'.repeat(1000)).length < 300);
  });
});

describe('globMatch', () => {
  const cases: Array<[string, string, boolean]> = [
    ['*', '', true], ['**', '', false], ['a*', '', false], ['*', 'abc', true], ['a*', 'abc', true], ['a*', 'bac', false], ['*c', 'abc', true],
    ['a?c', 'abc', true], ['a?c', 'ac', false], ['a[bx]c', 'axc', true], ['a[bx]c', 'ayc', false],
    ['a[^b]c', 'abc', false], ['a[^b]c', 'axc', true], ['[a-c]x', 'bx', true], ['[c-a]x', 'bx', true],
    ['[a-c]x', 'dx', false], ['a\\*', 'a*', true], ['a\\*', 'ab', false], ['[\\]]', ']', true],
    ['h?llo*', 'hallo world', true], ['**a**b', 'xxaxxb', true], ['list:*', 'list:100', true],
    ['list:*', 'lists:1', false], ['a[', 'a', false], ['a[b', 'ab', true],
  ];
  for (const [p, s, want] of cases) test(`${p} ~ ${JSON.stringify(s)} = ${want}`, () => assert.equal(globMatch(p, s), want));

  test('globLiteral', () => {
    assert.equal(globLiteral('plain:key'), 'plain:key');
    assert.equal(globLiteral('a\\*b\\?'), 'a*b?');
    assert.equal(globLiteral('a*'), null);
    assert.equal(globLiteral('a[bc]'), null);
    assert.equal(globLiteral('a?'), null);
  });
});

describe('globMatch agrees with Redis SCAN MATCH', () => {
  const env = testEnv();
  const redis = new Redis(env.redisUrl, { protocol: 2 });
  const prefix = `t:${process.pid}:${Date.now()}:glob:`;
  after(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  test('patterns × subjects', async () => {
    // (No empty subject: with the prefix in front it is not the same question as matching the empty key.)
    const subjects = ['a', 'b', 'ab', 'abc', 'axc', 'a*', 'a]', ']', '-', 'a-b', 'hello', 'hallo', 'hxllo', 'list:100', 'é', 'x\\y', '[', 'a[b'];
    const patterns = ['*', 'a*', '*c', 'a?c', '?', '??', 'a[bx]c', 'a[^b]c', '[a-c]*', '[c-a]', '[\\]]', 'a\\*', '\\a*',
      'h[ae]llo', 'h[^e]llo', 'h*llo', '*l*', 'a[', 'a[b', '[-]', 'a[!-]b', '*\\\\*', '[é]', '?*', '*?*?'];
    const pipe = redis.pipeline();
    for (const s of subjects) pipe.set(prefix + s, '1', 'EX', 120);
    await pipe.exec();
    const escPrefix = prefix.replace(/[*?[\]\\]/g, '\\$&');
    for (const p of patterns) {
      const got = new Set<string>();
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', escPrefix + p, 'COUNT', 10000);
        cursor = next;
        for (const k of keys) got.add(k.slice(prefix.length));
      } while (cursor !== '0');
      for (const s of subjects) assert.equal(globMatch(p, s), got.has(s), `pattern ${JSON.stringify(p)} vs ${JSON.stringify(s)}`);
    }
  });
});
