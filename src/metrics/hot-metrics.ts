/**
 * Labelled counters and histograms for the per-statement hot path, exposed through the prom-client
 * registry in prom-client's own shape (text and JSON alike).
 *
 * prom-client validates and hashes a metric's labels on every inc() and observe(), even through a child
 * from labels(). A point lookup records four values (its statement's count and latency, its Redis
 * command's count and latency); measured under pgbench (bench/lookup.ts), those calls were 3–4% of the
 * proxy's CPU. Here a child is a plain object of numbers, and the exposition is built when scraped.
 * test/unit/hot-metrics.test.ts holds the output equal to prom-client's for the same observations.
 */
import type { Registry } from 'prom-client';

type Labels = Record<string, string>;

interface Value {
  labels: Labels;
  sharedLabels?: Labels;
  value: number;
  metricName?: string;
}

interface MetricData {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: Value[];
  aggregator: 'sum';
}

abstract class HotMetric<C> {
  abstract readonly type: 'counter' | 'histogram';
  readonly aggregator = 'sum' as const;
  protected readonly children = new Map<string, { labels: Labels; child: C }>();

  constructor(
    /** Not readonly: the registry renames counters for OpenMetrics. */
    public name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    registry: Registry,
    /** Runs before each scrape (e.g. to add counts kept elsewhere). */
    readonly collect?: () => void,
  ) {
    registry.registerMetric(this as never);
  }

  /** The child for these label values (in labelNames order); keep it, it is the cheap part. */
  labels(...values: string[]): C {
    const key = values.join('\u0000');
    let c = this.children.get(key);
    if (!c) {
      const labels: Labels = {};
      this.labelNames.forEach((n, i) => (labels[n] = values[i] ?? ''));
      c = { labels, child: this.make() };
      this.children.set(key, c);
    }
    return c.child;
  }

  /** Zeroes every series (the children handed out stay the ones counted). */
  reset(): void {
    for (const c of this.children.values()) this.zero(c.child);
  }

  protected abstract make(): C;
  protected abstract zero(child: C): void;
  protected abstract values(): Value[];

  /** As prom-client's: labels of a histogram's series kept apart from `le` until get() splays them. */
  async getForPromString(): Promise<MetricData> {
    this.collect?.();
    return { name: this.name, help: this.help, type: this.type, values: this.values(), aggregator: this.aggregator };
  }

  async get(): Promise<MetricData> {
    const data = await this.getForPromString();
    data.values = data.values.map(({ sharedLabels, labels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } }));
    return data;
  }
}

export class HotCounter extends HotMetric<{ inc(n?: number): void; value: number }> {
  readonly type = 'counter' as const;

  protected make(): { inc(n?: number): void; value: number } {
    return {
      value: 0,
      inc(n = 1) {
        this.value += n;
      },
    };
  }

  protected zero(child: { value: number }): void {
    child.value = 0;
  }

  protected values(): Value[] {
    return [...this.children.values()].map(({ labels, child }) => ({ value: child.value, labels }));
  }
}

export class HotHistogram extends HotMetric<{ observe(v: number): void }> {
  readonly type = 'histogram' as const;

  constructor(name: string, help: string, labelNames: readonly string[], readonly upperBounds: readonly number[], registry: Registry) {
    super(name, help, labelNames, registry);
  }

  protected make(): { observe(v: number): void; counts: Float64Array; sum: number; count: number } {
    const bounds = this.upperBounds;
    return {
      counts: new Float64Array(bounds.length),
      sum: 0,
      count: 0,
      observe(v: number) {
        // prom-client refuses (throws on) a value that isn't a finite number; a latency always is.
        if (!Number.isFinite(v)) return;
        for (let i = 0; i < bounds.length; i++) {
          if (v <= bounds[i]!) {
            this.counts[i]!++;
            break;
          }
        }
        this.sum += v;
        this.count++;
      },
    };
  }

  protected zero(child: { observe(v: number): void }): void {
    const c = child as ReturnType<HotHistogram['make']>;
    c.counts.fill(0);
    c.sum = 0;
    c.count = 0;
  }

  protected values(): Value[] {
    const out: Value[] = [];
    const bucket = `${this.name}_bucket`;
    for (const { labels, child } of this.children.values()) {
      const c = child as ReturnType<HotHistogram['make']>;
      let acc = 0;
      this.upperBounds.forEach((le, i) => {
        acc += c.counts[i]!;
        out.push({ labels: { le: le as unknown as string }, sharedLabels: labels, value: acc, metricName: bucket });
      });
      out.push({ labels: { le: '+Inf' }, sharedLabels: labels, value: c.count, metricName: bucket });
      out.push({ labels: {}, sharedLabels: labels, value: c.sum, metricName: `${this.name}_sum` });
      out.push({ labels: {}, sharedLabels: labels, value: c.count, metricName: `${this.name}_count` });
    }
    return out;
  }
}
