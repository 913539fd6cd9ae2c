// The hot path's counters and histograms against prom-client's own, fed the same values: the
// exposition text (Prometheus and OpenMetrics) and the JSON the admin console reads must be the same.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from '../../src/metrics/hot-metrics.js';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// Edges included: a value on a bound counts in it; one past the last bound only in +Inf.
const VALUES = [0, 0.0004, 0.0005, 0.00051, 0.003, 0.02, 0.7, 1, 9.99, 10, 10.5, 123];

function feed(registry: Registry, hot: boolean): void {
  type Observe = (kind: string) => { observe(v: number): void };
  type Inc = (server: string) => { inc(n?: number): void };
  let histogram: Observe;
  let counter: Inc;
  if (hot) {
    const h = new HotHistogram('t_seconds', 'latency', ['kind'], BUCKETS, registry);
    const c = new HotCounter('t_total', 'count', ['server'], registry);
    histogram = (k) => h.labels(k);
    counter = (s) => c.labels(s);
  } else {
    const h = new Histogram({ name: 't_seconds', help: 'latency', labelNames: ['kind'], buckets: BUCKETS, registers: [registry] });
    const c = new Counter({ name: 't_total', help: 'count', labelNames: ['server'], registers: [registry] });
    histogram = (k) => h.labels(k);
    counter = (s) => c.labels(s);
  }
  VALUES.forEach((v, i) => {
    histogram(i % 3 === 0 ? 'fast' : 'upstream "q"').observe(v);
    counter(i % 2 ? 'a:1' : 'b\\2').inc(i % 4 === 0 ? 2 : 1);
  });
}

describe('hot metrics', () => {
  test('same exposition and JSON as prom-client for the same observations', async () => {
    for (const type of [Registry.PROMETHEUS_CONTENT_TYPE, Registry.OPENMETRICS_CONTENT_TYPE] as const) {
      // The typings know only the default content type; the class takes both.
      const make = (): Registry => new (Registry as unknown as new (t: string) => Registry)(type);
      const ours = make();
      const theirs = make();
      feed(ours, true);
      feed(theirs, false);
      assert.equal(await ours.metrics(), await theirs.metrics());
      const strip = (j: unknown): unknown => JSON.parse(JSON.stringify(j, (k, v) => (k === 'exemplar' || k === 'sharedLabels' ? undefined : v)));
      assert.deepEqual(strip(await ours.getMetricsAsJSON()), strip(await theirs.getMetricsAsJSON()));
    }
  });

  test('reset zeroes the series and the children handed out keep counting', async () => {
    const r = new Registry();
    const c = new HotCounter('r_total', 'count', ['k'], r);
    const child = c.labels('x');
    child.inc(5);
    r.resetMetrics();
    child.inc();
    assert.match(await r.metrics(), /^r_total\{k="x"\} 1$/m);
  });
});
