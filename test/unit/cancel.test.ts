// The cancel building blocks on their own: statement_timeout parsing, abortable waits, the statement
// scope's lazy timeout, and the registry's key matching. (End to end: test/fdw/cancel.test.ts.)
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { abortable, cancelTookEffect, CancelRegistry, CancelSource, parseStatementTimeout, PROBE_AFTER_MS, StatementScope } from '../../src/session/cancel.js';
import { PgError } from '../../src/protocol/pg-error.js';

describe('parseStatementTimeout', () => {
  test('current_setting forms', () => {
    assert.equal(parseStatementTimeout('0'), 0);
    assert.equal(parseStatementTimeout('250ms'), 250);
    assert.equal(parseStatementTimeout('5s'), 5000);
    assert.equal(parseStatementTimeout('2min'), 120_000);
    assert.equal(parseStatementTimeout('1h'), 3_600_000);
    assert.equal(parseStatementTimeout('1d'), 86_400_000);
    assert.equal(parseStatementTimeout('1500'), 1500);
    assert.equal(parseStatementTimeout('soon'), undefined);
  });
});

describe('abortable', () => {
  test('rejects with the reason as soon as the signal fires, and marks the cancel as used', async () => {
    const c = new AbortController();
    const never = new Promise<number>(() => {});
    const p = abortable(never, c.signal);
    const reason = new PgError('57014', 'canceling statement due to user request');
    c.abort(reason);
    await assert.rejects(p, (e) => e === reason);
    assert.equal(cancelTookEffect(c.signal), true);
  });

  test('settles as the promise does when nothing fires; an abort afterwards was not used', async () => {
    const c = new AbortController();
    assert.equal(await abortable(Promise.resolve(7), c.signal), 7);
    c.abort(new Error('late'));
    assert.equal(cancelTookEffect(c.signal), false);
    await assert.rejects(abortable(Promise.reject(new Error('own')), new AbortController().signal), /own/);
  });
});

describe('StatementScope', () => {
  test('statement_timeout learnt after PROBE_AFTER_MS fires with its own wording', async () => {
    const t0 = Date.now();
    const scope = new StatementScope(async () => 120);
    await once(scope.signal, 'abort');
    const reason = scope.signal.reason as PgError;
    assert.equal(reason.code, '57014');
    assert.equal(reason.message, 'canceling statement due to statement timeout');
    assert.ok(Date.now() - t0 >= 120 - 5, 'not before the timeout');
    scope.end();
  });

  test('a timeout already passed when it is learnt fires at once; 0 means none', async () => {
    const expired = new StatementScope(async () => 1);
    await once(expired.signal, 'abort');
    expired.end();
    let probed = false;
    const none = new StatementScope(async () => {
      probed = true;
      return 0;
    });
    await new Promise((r) => setTimeout(r, PROBE_AFTER_MS * 3));
    assert.equal(probed, true);
    assert.equal(none.signal.aborted, false);
    none.end();
  });

  test('nothing aborts a scope that has ended', () => {
    const scope = new StatementScope();
    scope.end();
    scope.cancel();
    assert.equal(scope.signal.aborted, false);
  });
});

describe('a session\'s scopes', () => {
  test('share one signal until a cancel fires it; the next scope gets a fresh one', () => {
    const source = new CancelSource();
    const a = new StatementScope(undefined, source);
    const first = a.signal;
    a.end();
    const b = new StatementScope(undefined, source);
    assert.equal(b.signal, first, 'made once, kept while unused');
    b.cancel();
    assert.equal(b.signal.aborted, true);
    b.end();
    const c = new StatementScope(undefined, source);
    assert.notEqual(c.signal, first);
    assert.equal(c.signal.aborted, false, 'a cancel fails one statement');
    c.end();
  });

  test('a thousand waits on one reused signal, then a cancel: only the wait in progress fails', async () => {
    const source = new CancelSource();
    for (let i = 0; i < 1000; i++) {
      const s = new StatementScope(undefined, source);
      assert.equal(await abortable(Promise.resolve(i), s.signal), i);
      s.end();
    }
    const s = new StatementScope(undefined, source);
    const p = abortable(new Promise<number>(() => {}), s.signal);
    s.cancel();
    await assert.rejects(p, /canceling statement due to user request/);
    assert.equal(s.tookEffect, true);
    s.end();
  });

  test('one timer probes every scope still running after PROBE_AFTER_MS, once each; ended ones never', async () => {
    const probed: string[] = [];
    const running = ['a', 'b', 'c'].map((name) => {
      let done!: () => void;
      const seen = new Promise<void>((r) => (done = r));
      const scope = new StatementScope(async () => {
        probed.push(name);
        done();
        return 0;
      });
      return { name, scope, seen };
    });
    const ended = new StatementScope(async () => {
      probed.push('ended');
      return 0;
    });
    ended.end();
    await Promise.all(running.map((r) => r.seen));
    for (const r of running) r.scope.end();
    // The ended scope started with the others: its probe would have come in the same firing.
    assert.deepEqual(probed.sort(), ['a', 'b', 'c']);
  });
});

describe('CancelRegistry', () => {
  test('finds a session only by its exact key', () => {
    const r = new CancelRegistry();
    const key = Buffer.from([0, 0, 0, 42, 1, 2, 3, 4]);
    let hits = 0;
    r.register(key, () => hits++);
    assert.equal(r.cancel(Buffer.from([0, 0, 0, 42, 1, 2, 3, 5])), false, 'a wrong secret cancels nothing');
    assert.equal(r.cancel(Buffer.from(key)), true);
    assert.equal(hits, 1);
    r.unregister(key);
    assert.equal(r.cancel(key), false);
    assert.equal(r.size, 0);
  });
});
