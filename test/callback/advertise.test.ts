/** --advertise: parsing, and when `auto` may stand for the listen address (both ends on this machine). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toConfig } from '../../src/cli/program.js';
import { ConfigError, parseUpstreamUrl, type ProxyConfig } from '../../src/config/config.js';
import { resolveAdvertise, splitAdvertise } from '../../src/callback/advertise.js';
import { callbackDatabase, callbackDbname } from '../../src/callback/reserved.js';

const base = { listen: '127.0.0.1:6432', upstream: 'postgres://postgres@127.0.0.1:5432/postgres', logLevel: 'info', logFormat: 'json', shutdownTimeout: '30s', maxConnections: '10', maxValueBytes: '100' };
const cfg = (over: Partial<ProxyConfig>): ProxyConfig => ({ ...toConfig(base), ...over });

test('--advertise takes HOST:PORT or auto, and refuses anything else with the flag named', () => {
  assert.equal(toConfig({ ...base, advertise: '10.0.0.5:6432' }).advertise, '10.0.0.5:6432');
  assert.equal(toConfig({ ...base, advertise: 'auto' }).advertise, 'auto');
  assert.throws(() => toConfig({ ...base, advertise: 'nowhere' }), (e: unknown) => e instanceof ConfigError && /--advertise/.test(e.message));
  assert.equal(toConfig(base).advertise, undefined);
});

test('auto is the listen address only when it is loopback and upstream is local (loopback or a Unix socket)', () => {
  assert.equal(resolveAdvertise(cfg({ advertise: 'auto' }), 40000), '127.0.0.1:40000');
  assert.equal(resolveAdvertise(cfg({ advertise: 'auto', listenHost: '::1' }), 40000), '[::1]:40000');
  assert.equal(resolveAdvertise(cfg({ advertise: 'auto', upstream: parseUpstreamUrl('postgres://u@localhost/db?host=/var/run/postgresql') }), 1), '127.0.0.1:1');
  assert.equal(resolveAdvertise(cfg({ advertise: 'auto', listenHost: '0.0.0.0' }), 40000), undefined);
  assert.equal(resolveAdvertise(cfg({ advertise: 'auto', upstream: parseUpstreamUrl('postgres://u@db.internal:5432/db') }), 40000), undefined);
  assert.equal(resolveAdvertise(cfg({ advertise: 'proxy.internal:6432' }), 40000), 'proxy.internal:6432');
  assert.equal(resolveAdvertise(cfg({}), 40000), undefined);
  assert.deepEqual(splitAdvertise('[::1]:6432'), { host: '::1', port: '6432' });
});

test('the reserved database name carries the upstream database, and nothing else is reserved', () => {
  assert.equal(callbackDatabase(callbackDbname('app db')), 'app db');
  assert.equal(callbackDatabase('redis_fdw_proxy_callback'), '');
  assert.equal(callbackDatabase('postgres'), undefined);
  assert.equal(callbackDatabase('redis_fdw_proxy_callbackx'), undefined);
});
