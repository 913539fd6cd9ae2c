// The cancel building blocks on their own: statement_timeout parsing, abortable waits, the statement
// scope's lazy timeout, and the registry's key matching. (End to end: test/fdw/cancel.test.ts.)
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { abortable, cancelTookEffect, CancelRegistry, parseStatementTimeout, PROBE_AFTER_MS, StatementScope } from '../../src/session/cancel.js';
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
